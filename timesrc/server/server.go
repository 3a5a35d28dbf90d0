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

// Policy sees every answered request.
type Policy interface {
	Decide(o *Observation) Decision
}

// Config configures a Server.
type Config struct {
	Addr    string
	Clock   discipline.Clock
	State   func() State
	Policy  Policy // may be nil
	Readers int    // goroutines reading the socket (default: GOMAXPROCS)
	// Rate limit per source address: Rate requests/s on average with bursts
	// of Burst; Rate 0 disables it. KoDInterval spaces the RATE replies to
	// one source (default 1s).
	Rate        float64
	Burst       float64
	KoDInterval time.Duration
	// Precision advertised (log2 seconds), default -20 (about 1 µs).
	Precision int8
}

// Stats counts what the server did.
type Stats struct {
	Received, Answered, KoD, Limited, Malformed, Control, OtherMode, BytesIn, BytesOut, NoKernelTS atomic.Uint64
}

// Server is one NTP listener.
type Server struct {
	cfg   Config
	conn  *net.UDPConn
	stats Stats
	lim   *limiter
	wg    sync.WaitGroup
}

// Listen opens the UDP socket and enables kernel receive timestamps.
func Listen(cfg Config) (*Server, error) {
	if cfg.Clock == nil || cfg.State == nil {
		return nil, errors.New("ntp server: Clock and State are required")
	}
	if cfg.Readers <= 0 {
		cfg.Readers = runtime.GOMAXPROCS(0)
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
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("ntp server: %w", err)
	}
	if err := enableRxTimestamps(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ntp server: enabling kernel receive timestamps: %w", err)
	}
	s := &Server{cfg: cfg, conn: conn}
	if cfg.Rate > 0 {
		s.lim = newLimiter(cfg.Rate, cfg.Burst, cfg.KoDInterval)
	}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() *net.UDPAddr { return s.conn.LocalAddr().(*net.UDPAddr) }

// Stats returns the counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Serve answers requests until ctx ends or Close is called.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	for i := 0; i < s.cfg.Readers; i++ {
		s.wg.Add(1)
		go s.reader()
	}
	s.wg.Wait()
	return nil
}

// Close stops the server.
func (s *Server) Close() error { return s.conn.Close() }

const (
	modeClient = 3
	modeServer = 4
	modeCtl    = 6
	modePriv   = 7
)

var rateCode = binary.BigEndian.Uint32([]byte("RATE"))

func (s *Server) reader() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	oob := make([]byte, oobSize)
	var req, resp protocol.Packet
	var obs Observation
	for {
		n, oobn, _, from, err := s.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		rawRx, ok := rxTimestamp(oob[:oobn])
		if !ok {
			s.stats.NoKernelTS.Add(1)
			rawRx = time.Now()
		}
		s.stats.Received.Add(1)
		s.stats.BytesIn.Add(uint64(n))
		if n < protocol.PacketSizeBytes {
			s.stats.Malformed.Add(1)
			continue
		}
		mode, vn := buf[0]&7, (buf[0]>>3)&7
		switch {
		case mode == modeCtl || mode == modePriv:
			s.stats.Control.Add(1)
			continue
		case mode != modeClient:
			s.stats.OtherMode.Add(1)
			continue
		case vn < 1 || vn > 4:
			s.stats.Malformed.Add(1)
			continue
		}
		// the header only: extension fields and MACs are not ours to answer
		if err := req.UnmarshalBinary(buf[:protocol.PacketSizeBytes]); err != nil {
			s.stats.Malformed.Add(1)
			continue
		}
		addr := from.Addr().Unmap()
		if s.lim != nil {
			ok, kod := s.lim.allow(addr, rawRx)
			if !ok {
				s.stats.Limited.Add(1)
				if kod {
					s.kod(&req, &resp, from)
				}
				continue
			}
		}
		rx := s.cfg.Clock.FromRaw(rawRx)
		st := s.cfg.State()
		var dec Decision
		if s.cfg.Policy != nil {
			obs = Observation{Addr: addr, Port: from.Port(), Rx: rx, Poll: req.Poll, Stratum: req.Stratum, Version: vn}
			if req.TxTimeSec != 0 || req.TxTimeFrac != 0 {
				obs.ClientTx = protocol.Unix(req.TxTimeSec, req.TxTimeFrac)
			}
			dec = s.cfg.Policy.Decide(&obs)
		}
		resp = protocol.Packet{Poll: req.Poll, Precision: s.cfg.Precision}
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
		resp.TxTimeSec, resp.TxTimeFrac = protocol.Time(s.cfg.Clock.Now())
		s.send(&resp, from)
		s.stats.Answered.Add(1)
	}
}

// kod answers a rate-limited request with a Kiss-o'-Death RATE: leap 3,
// stratum 0, reference id "RATE", the client's transmit timestamp echoed.
func (s *Server) kod(req, resp *protocol.Packet, to netip.AddrPort) {
	*resp = protocol.Packet{Settings: 3<<6 | (req.Settings & 0x38) | modeServer, Stratum: 0, Poll: req.Poll,
		Precision: s.cfg.Precision, ReferenceID: rateCode,
		OrigTimeSec: req.TxTimeSec, OrigTimeFrac: req.TxTimeFrac,
		RxTimeSec: req.TxTimeSec, RxTimeFrac: req.TxTimeFrac, TxTimeSec: req.TxTimeSec, TxTimeFrac: req.TxTimeFrac}
	s.send(resp, to)
	s.stats.KoD.Add(1)
}

func (s *Server) send(p *protocol.Packet, to netip.AddrPort) {
	b, err := p.Bytes()
	if err != nil {
		return
	}
	if n, err := s.conn.WriteToUDPAddrPort(b, to); err == nil {
		s.stats.BytesOut.Add(uint64(n))
	}
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

// limiter is a per-source token bucket table.
type limiter struct {
	mu       sync.Mutex
	rate     float64
	burst    float64
	kodEvery time.Duration
	m        map[netip.Addr]*bucket
	max      int
}

type bucket struct {
	tokens  float64
	last    time.Time
	lastKoD time.Time
}

func newLimiter(rate, burst float64, kodEvery time.Duration) *limiter {
	return &limiter{rate: rate, burst: burst, kodEvery: kodEvery, m: map[netip.Addr]*bucket{}, max: 65536}
}

// allow reports whether a request from a at now passes, and if not whether
// it earns a KoD.
func (l *limiter) allow(a netip.Addr, now time.Time) (ok, kod bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[a]
	if b == nil {
		if len(l.m) >= l.max {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.m[a] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, false
	}
	if now.Sub(b.lastKoD) >= l.kodEvery {
		b.lastKoD = now
		return false, true
	}
	return false, false
}

func (l *limiter) prune(now time.Time) {
	for a, b := range l.m {
		if now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.m, a)
		}
	}
	if len(l.m) >= l.max { // all busy: forget the table rather than grow without bound
		clear(l.m)
	}
}
