// Package lab holds the network-namespace lab of the redundant pair: two
// real `cmcd run` modules, a `cmcd witness` and a client, each in its own
// namespace on a bridge (itself in a namespace), plus a second A-B link
// for the sync path. It has tests only; they need root.
package lab
