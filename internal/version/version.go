// Package version holds the build's version, set by the Makefile with
// -ldflags "-X cmcd/internal/version.Version=...".
package version

// Version is the cmcd version; "dev" for untagged builds.
var Version = "dev"
