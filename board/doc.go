// Package board defines how the rest of cmcd reads and drives the chassis
// hardware: power supplies, fans and compute nodes (node state, SEL, fault
// log and FRU asset data).
//
// Everything the daemon knows about the hardware arrives through the small
// interfaces in this package. Implementations live in sub-packages: board/sim
// is a whole simulated chassis (the default of `make run`); an IPMI-backed
// node source talks to real node BMCs. A Chassis value composes one source of
// each kind, so a board can mix a PMBus PSU source with an IPMI node source.
package board
