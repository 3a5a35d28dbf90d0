// Package vip holds the pair's floating management address (H2, H4).
//
// The active module takes the address in three steps: a duplicate-address
// probe (an ARP probe as in RFC 5227: sender IP 0.0.0.0, target the
// address, broadcast; any ARP reply or request from another host for the
// address within the probe wait means someone still holds it), adding the
// address to the configured interface over netlink, and gratuitous ARP
// (request and reply, sender = target = the address) so that switches and
// clients move to this module's MAC at once. Losing the role removes the
// address before anything else happens; cmcd also removes it at start, so a
// module that crashed with the address never keeps it after a restart.
//
// The probe wait is short (ProbeWait, default 100 ms, instead of RFC 5227's
// 1-2 s) because the peer that might hold the address is on the same
// chassis segment and answers ARP from its kernel within microseconds; the
// takeover time budget is half a second. ProbeWithin probes with another
// wait: the takeover uses 30 ms right after fencing a module whose process
// was proven gone (pair/fast.go). Acquire sends the first gratuitous ARP
// round before it returns and repeats it in the background (Announce
// rounds, 20 ms apart, while the address is held).
//
// Netlink is the real implementation (Linux, CAP_NET_ADMIN and CAP_NET_RAW);
// FakeNet is an in-memory segment for unit tests of the role logic.
package vip
