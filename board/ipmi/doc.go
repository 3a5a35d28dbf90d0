// Package ipmi is the node collector of cmcd (feature I1): a
// board.NodeSource that reads and drives each compute node's BMC over
// IPMI-over-LAN (RMCP+), with the go-ipmi client.
//
// Per node it reads the power state (Get Chassis Status), the sensors (the
// SDR repository, cached until Get SDR Repository Info says it changed, and
// Get Sensor Reading per sensor, converted with the SDR's reading factors
// and linearisation), the System Event Log (read incrementally: only the
// entries after the last one read, with Get SEL Info's entry count and
// addition/erase timestamps telling clears and wraps apart), FRU device 0,
// and it powers nodes on, off and through a cycle with Chassis Control.
// Faults are derived from warning and critical SEL events and from sensors
// in a non-OK state, and kept as a per-node history that ClearFaults
// clears.
//
// Sessions use RMCP+ cipher suite 17 by default or 3 where a BMC lacks 17;
// no other suite is accepted. Node credentials come from a JSON file that
// must not be readable by group or others (LoadConfig); passwords are a
// Secret type that prints, logs and marshals redacted.
//
// Each node has one session, opened on first use and closed by Close; its
// own I/O lock, so a slow or dead node never delays another; a per-request
// timeout; and, once unreachable, an exponential backoff during which calls
// fail at once with an error wrapping board.ErrUnreachable. Time is read
// through the Clock interface so tests drive the backoff with
// ipmitest.FakeClock.
//
// The tests run the client against OpenIPMI's ipmi_sim, one process per
// node (package ipmitest starts them), and compare what it collects with
// what ipmitool reads from the same simulator.
package ipmi
