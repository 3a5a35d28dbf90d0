// Package sim is a simulated chassis behind the board interfaces: N compute
// nodes (default 4, up to 16), 2-4 PSUs and 4-8 fans whose readings drift
// over time, SEL events and faults arriving at a configurable rate, and FRU
// data per node. Everything is reproducible from a seed: the same seed and
// the same sequence of clock readings give the same chassis.
//
// Tests and benchmarks drive it directly too: inject events and faults,
// fail a PSU, make a node unreachable, or fill SELs to capacity.
package sim
