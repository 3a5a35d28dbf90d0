package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/facebook/time/ntp/protocol"

	"cmcd/timesrc/discipline"
)

// State is what the server advertises.
type State struct {
	Synced     bool
	Stratum    uint8 // upstream + 1
	RefID      uint32
	RefTime    time.Time // served time of the last update
	RootDelay  time.Duration
	RootDisp   time.Duration // at RefTime
	LastUpdate time.Time     // raw time of the last update (dispersion grows from it)
}

// Observation is one request as the server saw it.
type Observation struct {
	Addr     netip.Addr
	Port     uint16
	Rx       time.Time // served time scale
	ClientTx time.Time // the client's transmit timestamp (zero when the client hides it)
	Poll     int8
	Stratum  uint8
	Version  uint8
}

// Decision is a policy's answer for one request.
type Decision struct {
	Pause bool // answer with leap 3 so standard clients free-run (T5)
	Poll  int8 // 0: echo the client's poll
}

// Policy sees every answered request. Decide is called from several
// reader goroutines at once and must not keep o.
type Policy interface {
	Decide(o *Observation) Decision
}

// Config configures a Server.
type Config struct {
	Addr    string
	Clock   discipline.Clock
	State   func() State
	Policy  Policy // may be nil
	Readers int    // goroutines (OS threads) reading the socket (default: GOMAXPROCS/2, at least 1)
	// Rate limit per source address: Rate requests/s on average with bursts
	// of Burst; Rate 0 disables it. KoDInterval spaces the RATE replies to
	// one source (default 1s).
	Rate        float64
	Burst       float64
	KoDInterval time.Duration
	// Precision advertised (log2 seconds), default -20 (about 1 µs).
	Precision int8
}

// Stats counts what the server did. Readers add their counts once per
// batch of packets, before the batch's replies are sent.
type Stats struct {
	Received, Answered, KoD, Limited, Malformed, Control, OtherMode, BytesIn, BytesOut, NoKernelTS atomic.Uint64
	// SendErrors counts replies counted in Answered/KoD/BytesOut that the
	// kernel refused to send.
	SendErrors atomic.Uint64
}

// counts is a reader's private tally, added to Stats once per batch so the
// readers do not fight over the shared counters' cache lines per packet.
type counts struct {
	received, answered, kod, limited, malformed, control, otherMode, bytesIn, bytesOut, noKernelTS uint64
}

func (c *counts) flush(s *Stats) {
	add := func(a *atomic.Uint64, v *uint64) {
		if *v != 0 {
			a.Add(*v)
			*v = 0
		}
	}
	add(&s.Received, &c.received)
	add(&s.Answered, &c.answered)
	add(&s.KoD, &c.kod)
	add(&s.Limited, &c.limited)
	add(&s.Malformed, &c.malformed)
	add(&s.Control, &c.control)
	add(&s.OtherMode, &c.otherMode)
	add(&s.BytesIn, &c.bytesIn)
	add(&s.BytesOut, &c.bytesOut)
	add(&s.NoKernelTS, &c.noKernelTS)
}

// Server is one NTP listener.
type Server struct {
	cfg   Config
	sock  *socket
	addr  *net.UDPAddr
	stats Stats
	lim   *limiter
	wg    sync.WaitGroup

	mu      sync.Mutex
	serving bool
	closed  atomic.Bool
}

// Listen opens the UDP socket and enables kernel receive timestamps.
func Listen(cfg Config) (*Server, error) {
	if cfg.Clock == nil || cfg.State == nil {
		return nil, errors.New("ntp server: Clock and State are required")
	}
	if cfg.Readers <= 0 {
		// Half the Ps: a reader sleeping in recvmmsg holds its P, and when
		// no P is left idle the runtime's sysmon takes them back from the
		// sleepers every 20 µs, which costs more than a second reader gains.
		cfg.Readers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if cfg.KoDInterval <= 0 {
		cfg.KoDInterval = time.Second
	}
	if cfg.Precision == 0 {
		cfg.Precision = -20
	}
	if cfg.Burst < 1 {
		cfg.Burst = max(1, cfg.Rate*4)
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ntp server address %q: %w", cfg.Addr, err)
	}
	sock, addr, err := listenSocket(ua)
	if err != nil {
		return nil, fmt.Errorf("ntp server: %w", err)
	}
	s := &Server{cfg: cfg, sock: sock, addr: addr}
	if cfg.Rate > 0 {
		s.lim = newLimiter(cfg.Rate, cfg.Burst, cfg.KoDInterval)
	}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() *net.UDPAddr { return s.addr }

// Stats returns the counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Serve answers requests until ctx ends or Close is called.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.closed.Load() || s.serving {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.serving = true
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	for i := 0; i < s.cfg.Readers; i++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sock.serve(s)
		}()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.sock.close()
	return nil
}

// Close stops the server.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	s.sock.shutdown() // wakes the readers
	if !s.serving {
		s.sock.close()
	}
	return nil
}

const (
	modeClient = 3
	modeServer = 4
	modeCtl    = 6
	modePriv   = 7
)

var rateCode = binary.BigEndian.Uint32([]byte("RATE"))

// reader is one reader's per-packet state, reused for every packet.
type reader struct {
	s   *Server
	n   counts
	req protocol.Packet
	obs Observation
}

// handle answers one request: b is the received datagram (at least its
// first 48 octets; size is its full length), rawRx its kernel receive
// timestamp on the machine clock (ok false: none, rawRx is a user-space
// reading). It writes the reply into out and reports whether to send it;
// the transmit timestamp is left to stampTx, called just before sending.
// It does not allocate.
func (r *reader) handle(b []byte, size int, from netip.AddrPort, rawRx time.Time, tsOK bool, out *[protocol.PacketSizeBytes]byte) verdict {
	s := r.s
	r.n.received++
	r.n.bytesIn += uint64(size)
	if !tsOK {
		r.n.noKernelTS++
	}
	if size < protocol.PacketSizeBytes || len(b) < protocol.PacketSizeBytes {
		r.n.malformed++
		return drop
	}
	mode, vn := b[0]&7, (b[0]>>3)&7
	switch {
	case mode == modeCtl || mode == modePriv:
		r.n.control++
		return drop
	case mode != modeClient:
		r.n.otherMode++
		return drop
	case vn < 1 || vn > 4:
		r.n.malformed++
		return drop
	}
	req := &r.req
	// the header only: extension fields and MACs are not ours to answer
	if err := req.UnmarshalBinary(b[:protocol.PacketSizeBytes]); err != nil {
		r.n.malformed++
		return drop
	}
	addr := from.Addr().Unmap()
	if s.lim != nil {
		ok, kod := s.lim.allow(addr, rawRx)
		if !ok {
			r.n.limited++
			if !kod {
				return drop
			}
			// Kiss-o'-Death RATE: leap 3, stratum 0, reference id "RATE",
			// the client's transmit timestamp echoed.
			putHeader(out, &protocol.Packet{Settings: 3<<6 | (req.Settings & 0x38) | modeServer, Stratum: 0, Poll: req.Poll,
				Precision: s.cfg.Precision, ReferenceID: rateCode,
				OrigTimeSec: req.TxTimeSec, OrigTimeFrac: req.TxTimeFrac,
				RxTimeSec: req.TxTimeSec, RxTimeFrac: req.TxTimeFrac, TxTimeSec: req.TxTimeSec, TxTimeFrac: req.TxTimeFrac})
			r.n.kod++
			r.n.bytesOut += protocol.PacketSizeBytes
			return kiss
		}
	}
	rx := s.cfg.Clock.FromRaw(rawRx)
	st := s.cfg.State()
	var dec Decision
	if s.cfg.Policy != nil {
		r.obs = Observation{Addr: addr, Port: from.Port(), Rx: rx, Poll: req.Poll, Stratum: req.Stratum, Version: vn}
		if req.TxTimeSec != 0 || req.TxTimeFrac != 0 {
			r.obs.ClientTx = protocol.Unix(req.TxTimeSec, req.TxTimeFrac)
		}
		dec = s.cfg.Policy.Decide(&r.obs)
	}
	resp := protocol.Packet{Poll: req.Poll, Precision: s.cfg.Precision}
	if dec.Poll != 0 {
		resp.Poll = dec.Poll
	}
	li := uint8(0)
	if !st.Synced {
		li = 3
		resp.Stratum = 16
	} else {
		resp.Stratum = st.Stratum
		resp.ReferenceID = st.RefID
		resp.RefTimeSec, resp.RefTimeFrac = protocol.Time(st.RefTime)
		disp := st.RootDisp + time.Duration(15e-6*float64(rawRx.Sub(st.LastUpdate)))
		resp.RootDelay = short(st.RootDelay)
		resp.RootDispersion = short(disp)
		if dec.Pause {
			li = 3
		}
	}
	resp.Settings = li<<6 | vn<<3 | modeServer
	resp.OrigTimeSec, resp.OrigTimeFrac = req.TxTimeSec, req.TxTimeFrac
	resp.RxTimeSec, resp.RxTimeFrac = protocol.Time(rx)
	putHeader(out, &resp) // transmit timestamp: stampTx
	r.n.answered++
	r.n.bytesOut += protocol.PacketSizeBytes
	return answer
}

// verdict is what handle made of a request.
type verdict uint8

const (
	drop   verdict = iota
	answer         // a reply to stamp (stampTx) and send
	kiss           // a KoD RATE to send as it is (its timestamps echo the client's)
)

// stampTx writes the transmit timestamp of a reply built by handle.
func stampTx(out *[protocol.PacketSizeBytes]byte, now time.Time) {
	sec, frac := protocol.Time(now)
	binary.BigEndian.PutUint32(out[40:44], sec)
	binary.BigEndian.PutUint32(out[44:48], frac)
}

// putHeader encodes p's 48-octet header into dst without allocating; it
// is protocol.Packet.Bytes for a packet without extension fields (a test
// checks they agree), which allocates a fresh slice per call.
func putHeader(dst *[protocol.PacketSizeBytes]byte, p *protocol.Packet) {
	dst[0] = p.Settings
	dst[1] = p.Stratum
	dst[2] = byte(p.Poll)
	dst[3] = byte(p.Precision)
	binary.BigEndian.PutUint32(dst[4:8], p.RootDelay)
	binary.BigEndian.PutUint32(dst[8:12], p.RootDispersion)
	binary.BigEndian.PutUint32(dst[12:16], p.ReferenceID)
	binary.BigEndian.PutUint32(dst[16:20], p.RefTimeSec)
	binary.BigEndian.PutUint32(dst[20:24], p.RefTimeFrac)
	binary.BigEndian.PutUint32(dst[24:28], p.OrigTimeSec)
	binary.BigEndian.PutUint32(dst[28:32], p.OrigTimeFrac)
	binary.BigEndian.PutUint32(dst[32:36], p.RxTimeSec)
	binary.BigEndian.PutUint32(dst[36:40], p.RxTimeFrac)
	binary.BigEndian.PutUint32(dst[40:44], p.TxTimeSec)
	binary.BigEndian.PutUint32(dst[44:48], p.TxTimeFrac)
}

// short converts a duration to NTP short format (16.16 seconds), saturating.
func short(d time.Duration) uint32 {
	if d < 0 {
		return 0
	}
	v := math.Ceil(d.Seconds() * 65536) // round up: never understate delay or dispersion
	if v >= 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(v)
}
