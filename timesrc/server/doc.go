// Package server is the NTP server of the region (T1 second sync).
//
// It answers mode 3 (client) requests of versions 1-4 with mode 4 replies
// and nothing else: mode 6/7 (control, private) queries, other modes,
// requests shorter than the 48-octet header and unparsable packets are
// dropped and counted. A reply is always the bare 48-octet header, so it is
// never larger than the request. Packets are decoded with
// github.com/facebook/time/ntp/protocol and encoded in its layout; receive
// timestamps come from the kernel (SO_TIMESTAMPNS; requests without one are
// counted in NoKernelTS) and are mapped onto the served time scale by the
// discipline.Clock.
//
// The state it advertises is honest, read per packet from a State function:
// stratum = upstream stratum + 1, the reference id of the selected upstream,
// root delay and root dispersion accumulated from it (the dispersion grows by
// 15 ppm of the time since the last update); leap indicator 3 and stratum 16
// when not synchronised.
//
// Each source address gets a token bucket; a source over its rate gets at
// most one Kiss-o'-Death RATE reply per KoDInterval and its other requests
// are dropped, so a flood never draws more bytes out than it sends in.
//
// A Policy (package policy) sees each answered request and may tell the
// server to answer that client with leap 3 (client pause, T5) or a
// different poll exponent (T6).
//
// The packet path is built for throughput (SPEC target: at least chronyd's,
// bench/ntpload). On Linux the socket is blocking and Config.Readers
// goroutines (GOMAXPROCS/2 by default) each sleep in recvmmsg(2) for up to
// 32 datagrams, answer them and send the replies with one sendmmsg(2),
// stamping one transmit timestamp for the batch just before the send.
// Neither direction goes through Go's network poller. The per-packet
// handler does not allocate (TestHandleDoesNotAllocate): replies are
// encoded into a per-datagram [48]byte (putHeader, checked against
// protocol.Packet.Bytes), counters are tallied per reader and added to
// Stats once per batch, the rate limiter is sharded by address with
// buckets stored by value, and the policy engine finds a known client by
// its netip.Addr. Elsewhere than Linux a plain net.UDPConn loop serves.
package server
