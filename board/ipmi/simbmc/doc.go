// Package simbmc is a simulated node BMC: it serves one node's data, taken
// from any Provider (one slot of a board.NodeSource, via Slot), over
// IPMI-over-LAN (RMCP+, cipher suites 17 and 3 only, no IPMI v1.5, no
// anonymous user) on a UDP port, using go-ipmi's reference server
// (pkg/server, pkg/bmc, pkg/handlers).
//
// The simulated chassis uses it to make each simulated node a real IPMI
// endpoint, so that the node collector (board/ipmi), ipmitool and FreeIPMI
// can talk to it.
//
// What it serves:
//   - Get Chassis Status and Chassis Control (on, off, cycle) from the
//     provider's power state and SetPower;
//   - an SDR repository built at Start from the provider's sensors: a full
//     SDR per analog sensor (reading factors chosen so that the first
//     reading is exact and later ones fit), a compact one per discrete
//     sensor (no unit; its value is the state bit field);
//   - Get Sensor Reading from the provider's current readings (one Node call
//     serves NodeMaxAge); the sensor's health appears as the upper
//     non-critical and critical threshold comparison bits;
//   - the SEL (Get SEL Info, Reserve SEL, Get SEL Entry, Clear SEL, SEL
//     time) from the provider's SEL and ClearSEL;
//   - FRU device 0 encoded from the provider's FRU.
//
// go-ipmi's server lacks the sensor and SEL commands, and its Get SDR
// Repository Info reports "now" as the last change; this package registers
// its own handlers for those.
package simbmc
