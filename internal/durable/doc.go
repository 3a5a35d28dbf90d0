// Package durable replaces small files so that a crash or power cut at any
// instant leaves either the old content or the new one, never a mix: write
// a temporary file beside the target, fsync it, rename it over the target,
// fsync the directory. Boot state, the NTP upstream set, the TLS certificate and image files
// use it; the account store keeps its own variant (it must know whether
// the rename took effect).
package durable
