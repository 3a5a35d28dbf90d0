// Package powercut simulates a power cut under a child process that writes
// files, for crash tests: writes the process did not make durable are lost or
// only partly persisted, and everything it synced survives.
//
// Placeholder; the full model is described below once written.
package powercut
