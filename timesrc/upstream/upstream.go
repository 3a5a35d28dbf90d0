package upstream

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/ntp"

	"cmcd/clock"
	"cmcd/timesrc/discipline"
	"cmcd/timesrc/events"
)

// Sample is one NTP exchange with a server.
type Sample struct {
	At        time.Time     // raw local time the response arrived
	Offset    time.Duration // raw clock's offset from the server's clock
	RTT       time.Duration
	RootDelay time.Duration
	RootDisp  time.Duration
	Stratum   uint8
	RefID     uint32
	Leap      uint8
}

// Querier makes one NTP exchange with a server ("host:port").
type Querier interface {
	Query(ctx context.Context, addr string) (Sample, error)
}

// NTPQuerier is the real Querier (github.com/beevik/ntp, kernel timestamps
// where the platform has them). Invalid answers (Kiss-o'-Death,
// unsynchronised servers, stratum 0 or 16) are errors.
type NTPQuerier struct {
	Timeout time.Duration
}

// ErrKoD wraps a Kiss-o'-Death answer.
var ErrKoD = errors.New("kiss-o'-death")

// Query implements Querier.
func (q NTPQuerier) Query(ctx context.Context, addr string) (Sample, error) {
	to := q.Timeout
	if to == 0 {
		to = time.Second
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < to {
		to = time.Until(dl)
	}
	r, err := ntp.QueryWithOptions(addr, ntp.QueryOptions{Timeout: to})
	if err != nil {
		return Sample{}, err
	}
	if r.IsKissOfDeath() {
		return Sample{}, fmt.Errorf("%w %s from %s", ErrKoD, r.KissCode, addr)
	}
	if err := r.Validate(); err != nil {
		return Sample{}, fmt.Errorf("%s: %w", addr, err)
	}
	return Sample{At: r.Timestamps.ClientRecv, Offset: r.ClockOffset, RTT: r.RTT, RootDelay: r.RootDelay,
		RootDisp: r.RootDispersion, Stratum: r.Stratum, RefID: r.ReferenceID, Leap: uint8(r.Leap)}, nil
}

// Config tunes the poller.
type Config struct {
	Servers     []string      // "host:port"
	Poll        time.Duration // between polls (default 16s)
	Timeout     time.Duration // per query (default 1s)
	HoldoverMax time.Duration // serve the last estimate this long after the last good update (default 1h)
	// LocalStratum, when non-zero and no server is configured, serves the
	// local clock at this stratum (the core tier without a reference).
	LocalStratum uint8
}

// PeerStatus is one server as the API shows it.
type PeerStatus struct {
	Addr      string        `json:"addr"`
	State     string        `json:"state"` // selected, truechimer, falseticker, unreachable, new
	Reach     uint8         `json:"reach"` // last 8 polls, one bit each, newest = bit 0
	Offset    time.Duration `json:"offsetNs"`
	RTT       time.Duration `json:"rttNs"`
	Dist      time.Duration `json:"rootDistanceNs"`
	Jitter    time.Duration `json:"jitterNs"`
	Stratum   uint8         `json:"stratum"`
	LastError string        `json:"lastError,omitempty"`
}

// Status is the time source's state: what the NTP server advertises and the
// API shows.
type Status struct {
	Synced     bool          `json:"synced"`   // serving a valid time (selected or in holdover)
	Holdover   bool          `json:"holdover"` // no fresh upstream update: running on the last estimate
	Paused     bool          `json:"paused"`   // upstream sync paused (T3)
	PauseWhy   string        `json:"pauseReason,omitempty"`
	Stratum    uint8         `json:"stratum"` // served stratum: 16 when not synced
	RefID      uint32        `json:"refId"`
	RefAddr    string        `json:"refAddr"`
	RefTime    time.Time     `json:"refTime"`     // corrected time of the last update
	RootDelay  time.Duration `json:"rootDelayNs"` // to the reference, at RefTime
	RootDisp   time.Duration `json:"rootDispersionNs"`
	Offset     time.Duration `json:"offsetNs"` // estimated raw-clock offset
	Freq       float64       `json:"freqPpm"`  // estimated raw-clock frequency error, ppm
	LastUpdate time.Time     `json:"lastUpdate"`
	Clock      string        `json:"clock"` // discipline backend
	Peers      []PeerStatus  `json:"peers"`
}

// Leap returns the leap indicator to serve: 0, or 3 when not synced.
func (s Status) Leap() uint8 {
	if !s.Synced {
		return 3
	}
	return 0
}

type peer struct {
	addr    string
	samples []Sample // newest last, at most 8
	reach   uint8
	lastErr string
	state   string
	cand    Candidate
	jitter  time.Duration
}

// Poller is the upstream client.
type Poller struct {
	cfg   Config
	q     Querier
	clk   clock.Clock // raw clock (timers, ages)
	disc  discipline.Clock
	emit  events.Sink
	mu    sync.Mutex
	peers []*peer
	pts   []point
	st    Status
	cur   atomic.Pointer[Status]
	wake  chan struct{}
}

// New returns a poller; emit may be nil.
func New(cfg Config, q Querier, raw clock.Clock, disc discipline.Clock, emit events.Sink) *Poller {
	if cfg.Poll <= 0 {
		cfg.Poll = 16 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.HoldoverMax <= 0 {
		cfg.HoldoverMax = time.Hour
	}
	if emit == nil {
		emit = func(events.Event) {}
	}
	p := &Poller{cfg: cfg, q: q, clk: raw, disc: disc, emit: emit, wake: make(chan struct{}, 1)}
	for _, s := range cfg.Servers {
		p.peers = append(p.peers, &peer{addr: s, state: "new"})
	}
	p.st = Status{Stratum: 16, Clock: disc.Name()}
	if len(cfg.Servers) == 0 && cfg.LocalStratum > 0 {
		p.st.Synced, p.st.Stratum, p.st.RefID, p.st.RefAddr = true, cfg.LocalStratum, binary.BigEndian.Uint32([]byte("LOCL")), "LOCL"
		p.st.RefTime = disc.Now()
		p.st.LastUpdate = raw.Now()
	}
	p.publish()
	return p
}

// Status returns the current state (cheap: an atomic load).
func (p *Poller) Status() *Status { return p.cur.Load() }

func (p *Poller) publish() {
	s := p.st
	s.Peers = make([]PeerStatus, len(p.peers))
	for i, x := range p.peers {
		s.Peers[i] = PeerStatus{Addr: x.addr, State: x.state, Reach: x.reach, Offset: x.cand.Offset,
			Dist: x.cand.Dist, Jitter: x.jitter, Stratum: x.cand.Stratum, LastError: x.lastErr}
		if n := len(x.samples); n > 0 {
			s.Peers[i].RTT = x.samples[n-1].RTT
		}
	}
	p.cur.Store(&s)
}

// SetPaused pauses (T3) or resumes upstream polling. While paused the
// poller holds over on its last estimate.
func (p *Poller) SetPaused(paused bool, why string) {
	p.mu.Lock()
	changed := p.st.Paused != paused
	p.st.Paused, p.st.PauseWhy = paused, why
	if !paused {
		p.st.PauseWhy = ""
	}
	p.publish()
	p.mu.Unlock()
	if changed {
		kind, msg := "upstream.resumed", "upstream sync resumed"
		if paused {
			kind, msg = "upstream.paused", "upstream sync paused: "+why+"; serving holdover"
		}
		p.emit(events.Event{Time: p.disc.Now(), Kind: kind, Severity: events.Warning, Subject: "upstream", Message: msg})
		p.Poke()
	}
}

// Poke makes the poller poll now.
func (p *Poller) Poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	t := p.clk.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		case <-p.wake:
			t.Stop()
		}
		p.PollOnce(ctx)
		t.Reset(p.cfg.Poll)
	}
}

// PollOnce queries every server once (unless paused) and updates the estimate.
func (p *Poller) PollOnce(ctx context.Context) {
	p.mu.Lock()
	paused := p.st.Paused
	peers := p.peers // SetServers replaces the slice, never edits it
	p.mu.Unlock()
	type res struct {
		s   Sample
		err error
	}
	results := make([]res, len(peers))
	if !paused && len(peers) > 0 {
		qctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout+100*time.Millisecond)
		var wg sync.WaitGroup
		for i, x := range peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := p.q.Query(qctx, x.addr)
				results[i] = res{s, err}
			}()
		}
		wg.Wait()
		cancel()
	}
	p.mu.Lock()
	var evs []events.Event
	defer func() {
		p.publish()
		p.mu.Unlock()
		for _, e := range evs {
			p.emit(e)
		}
	}()
	now := p.clk.Now()
	ev := func(kind string, sev events.Severity, subj, msg string) {
		evs = append(evs, events.Event{Time: p.disc.FromRaw(now), Kind: kind, Severity: sev, Subject: subj, Message: msg})
	}
	if !paused {
		for i, x := range peers {
			x.reach <<= 1
			if results[i].err != nil {
				x.lastErr = results[i].err.Error()
				if x.reach == 0 && x.state != "unreachable" {
					if x.state != "new" {
						ev("upstream.unreachable", events.Warning, x.addr, "core server "+x.addr+" unreachable: "+x.lastErr)
					}
					x.state = "unreachable"
				}
				continue
			}
			x.reach |= 1
			x.lastErr = ""
			x.samples = append(x.samples, results[i].s)
			if len(x.samples) > 8 {
				x.samples = x.samples[1:]
			}
		}
	}
	// candidates: reachable peers with a recent sample
	var cands []Candidate
	var idx []*peer
	for _, x := range p.peers {
		if x.reach == 0 || len(x.samples) == 0 {
			continue
		}
		best := x.samples[0]
		for _, s := range x.samples[1:] {
			if s.RTT <= best.RTT { // ties: the newest
				best = s
			}
		}
		var j float64
		last := x.samples[len(x.samples)-1]
		for _, s := range x.samples {
			d := (s.Offset - last.Offset).Seconds()
			j += d * d
		}
		x.jitter = time.Duration(1e9 * sqrt(j/float64(len(x.samples))))
		age := now.Sub(best.At)
		dist := best.RootDelay/2 + best.RootDisp + best.RTT/2 + x.jitter + time.Millisecond +
			time.Duration(15e-6*float64(age))
		x.cand = Candidate{Addr: x.addr, Offset: best.Offset, Dist: dist, Stratum: best.Stratum}
		cands = append(cands, x.cand)
		idx = append(idx, x)
	}
	sel := Select(cands)
	for _, x := range idx {
		x.state = "candidate"
	}
	prevRef := p.st.RefAddr
	fresh := false
	for _, i := range sel.Truechimers {
		fresh = fresh || idx[i].reach&1 != 0
	}
	if sel.OK && !paused && fresh {
		for _, i := range sel.Falsetickers {
			if idx[i].state != "falseticker" {
				ev("upstream.falseticker", events.Warning, idx[i].addr, fmt.Sprintf("core server %s rejected as falseticker (offset %v outside the majority's interval [%v, %v])", idx[i].addr, idx[i].cand.Offset, sel.Low, sel.High))
			}
			idx[i].state = "falseticker"
		}
		for _, i := range sel.Truechimers {
			idx[i].state = "truechimer"
		}
		sys := idx[sel.Truechimers[0]]
		sys.state = "selected"
		bs := sys.samples[len(sys.samples)-1]
		off := Combine(cands, sel.Truechimers)
		p.pts = append(p.pts, point{now, off})
		if len(p.pts) > 16 {
			p.pts = p.pts[1:]
		}
		o, f := fit(p.pts)
		if err := p.disc.Apply(discipline.Estimate{At: now, Offset: o, Freq: f}); err != nil {
			ev("upstream.discipline", events.Critical, p.disc.Name(), err.Error())
		}
		wasSynced, wasHold := p.st.Synced, p.st.Holdover
		p.st.Synced, p.st.Holdover = true, false
		p.st.Stratum = min(bs.Stratum+1, 15)
		p.st.RefAddr = sys.addr
		p.st.RefID = refID(sys.addr)
		p.st.RootDelay = bs.RootDelay + bs.RTT
		p.st.RootDisp = bs.RootDisp + sys.jitter + time.Duration(15e-6*float64(now.Sub(bs.At)))
		p.st.Offset, p.st.Freq = o, f*1e6
		p.st.LastUpdate = now
		p.st.RefTime = p.disc.FromRaw(now)
		if prevRef != sys.addr {
			ev("upstream.selected", events.OK, sys.addr, fmt.Sprintf("core server %s selected (stratum %d, offset %v); serving stratum %d", sys.addr, bs.Stratum, sys.cand.Offset, p.st.Stratum))
		} else if !wasSynced || wasHold {
			ev("upstream.synced", events.OK, sys.addr, "synchronised to "+sys.addr)
		}
		return
	}
	for _, i := range sel.Falsetickers {
		idx[i].state = "falseticker"
	}
	if paused {
		for _, x := range idx {
			x.state = "paused"
		}
	}
	if len(p.peers) == 0 && p.cfg.LocalStratum > 0 {
		return // local reference (core)
	}
	// holdover or unsynchronised
	if p.st.Synced && !p.st.Holdover {
		why := "no majority of core servers agrees"
		if paused {
			why = "upstream paused"
		} else if len(cands) == 0 {
			why = "no core server reachable"
		}
		p.st.Holdover = true
		ev("upstream.holdover", events.Warning, "upstream", "holdover: "+why+"; serving the last estimate")
	}
	if p.st.Synced && now.Sub(p.st.LastUpdate) > p.cfg.HoldoverMax {
		p.st.Synced, p.st.Holdover, p.st.Stratum, p.st.RefAddr = false, false, 16, ""
		ev("upstream.unsynchronised", events.Critical, "upstream", fmt.Sprintf("holdover longer than %v: serving leap 3 / stratum 16", p.cfg.HoldoverMax))
	}
}

func sqrt(x float64) float64 {
	if x <= 0 {
		return 0
	}
	z := x
	for i := 0; i < 40; i++ {
		z = (z + x/z) / 2
	}
	return z
}

// refID is the reference id a stratum ≥ 2 server advertises for its
// upstream: the IPv4 address, or the first four octets of the MD5 of an
// IPv6 address (RFC 5905).
func refID(addr string) uint32 {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		if ips, err := net.LookupIP(host); err == nil && len(ips) > 0 {
			ip = ips[0]
		}
	}
	if ip == nil {
		return 0
	}
	if v4 := ip.To4(); v4 != nil {
		return binary.BigEndian.Uint32(v4)
	}
	h := md5.Sum(ip.To16())
	return binary.BigEndian.Uint32(h[:4])
}

// SortedPeers is a helper for tests and the API: peers by address.
func SortedPeers(s *Status) []PeerStatus {
	ps := append([]PeerStatus(nil), s.Peers...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Addr < ps[j].Addr })
	return ps
}
