// Package daemon assembles a running cmcd from its configuration: the
// board, the two image slots, the sync engine and the services on top of
// them. cmd/cmcd parses the command line into a Config and calls Run.
package daemon
