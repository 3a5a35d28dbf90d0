// Package server is the NTP server of the region (T1 second sync).
//
// It answers mode 3 (client) requests of versions 1-4 with mode 4 replies
// and nothing else: mode 6/7 (control, private) queries, other modes,
// requests shorter than the 48-octet header and unparsable packets are
// dropped and counted. A reply is always the bare 48-octet header, so it is
// never larger than the request. Packets are decoded and encoded with
// github.com/facebook/time/ntp/protocol; receive timestamps come from the
// kernel (SO_TIMESTAMPING software RX, via github.com/facebook/time/timestamp)
// and are mapped onto the served time scale by the discipline.Clock.
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
package server
