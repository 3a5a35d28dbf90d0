package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cmcd/pair"
	"cmcd/redfish"
)

// Load-aware reads (SPEC D1, D2). Clients reach only the floating address,
// i.e. the active module, so the active is the controller:
//
//   - D1: each module measures its own load (pairLoad: Redfish reads in
//     flight plus the recent CPU time of its own process from
//     /proc/self/stat — per process, so it tells two modules apart even
//     when they share one kernel, as in the lab) and publishes it in its
//     GET /cmcd/pair/status and in the X-Cmcd-Load header of every read it
//     serves for the other module (reads in flight: writes are few and
//     go through the active anyway). Whether the standby is in sync is its
//     last status (standby, CanServeReads, applied index at least the
//     active's commit index of that moment), read every peerPoll by
//     pairRF and at most 2 polls old.
//   - D2: on the active, a Redfish GET/HEAD of pair-wide data (not the
//     module's own Manager, firmware, tasks or event service, not an SSE
//     stream) goes to the standby when it is in sync and its load is
//     lower by a margin (hysteresis: routing starts when the active's
//     load exceeds the standby's by routeStart and stops once the
//     difference falls below routeStop); otherwise the active serves it.
//     The proxied request carries the client's own authentication (the
//     standby checks it against the replicated accounts and sessions), is
//     signed with the pair key, and names the index of the last entry the
//     active applied (X-Cmcd-Read-Index; pair.FSM.LastApplied, which
//     covers every acknowledged write): the standby serves it only if it
//     can serve reads (hears the active within one heartbeat timeout) and
//     its own FSM has applied that index — values handed to its sinks, not
//     just to raft — waiting for it at most readIndexWait. A read index,
//     so a read routed after an acknowledged write sees it.
//     Any failure (connection, timeout, the standby behind, 401/403/5xx, a
//     body over proxyMaxBody) makes the active serve the read itself: a
//     read never fails because of routing. Every read answered through
//     the pair carries X-Cmcd-Served-By: <module ID>, and the counts are in
//     the status and under Oem.Cmcd.Pair.Reads of the module's Manager.

const (
	cpuSample     = 250 * time.Millisecond
	cpuWeight     = 4.0  // a core fully busy weighs as 4 reads in flight
	routeStart    = 1.0  // start routing when the active's load exceeds the standby's by this
	routeStop     = 0.25 // and stop once the difference is below this
	proxyTimeout  = 2 * time.Second
	proxyMaxBody  = 8 << 20
	readIndexWait = 100 * time.Millisecond

	servedByHeader  = "X-Cmcd-Served-By"
	loadHeader      = "X-Cmcd-Load"
	readIndexHeader = "X-Cmcd-Read-Index"
	behindHeader    = "X-Cmcd-Read-Behind"
)

// pairLoadBias raises a module's load figure by the value stored under its
// ID: a test hook (daemon tests), never set in production.
var pairLoadBias sync.Map

// loadInfo is a module's load as published.
type loadInfo struct {
	InFlight int     `json:"inFlight"` // Redfish reads being served here
	CPU      float64 `json:"cpu"`      // this process's CPU use, cores (EWMA)
	Score    float64 `json:"score"`    // InFlight + cpuWeight*CPU (+ test bias)
}

// readCounts counts the reads a module answered through the pair.
type readCounts struct {
	Local     uint64  `json:"local"`     // served here
	Routed    uint64  `json:"routed"`    // sent to the other module and answered there
	Fallback  uint64  `json:"fallback"`  // sent there, failed, served here (included in Local)
	ForPeer   uint64  `json:"forPeer"`   // served here for the other module
	Routing   bool    `json:"routing"`   // the hysteresis state: reads go to the other module now
	PeerScore float64 `json:"peerScore"` // the other module's load as last known (-1: unknown)
}

// pairLoad is a module's D1/D2 state.
type pairLoad struct {
	m        *pairModule
	inflight atomic.Int64
	cpuBits  atomic.Uint64 // float64 EWMA

	local, routed, fallback, forPeer atomic.Uint64

	mu        sync.Mutex
	routing   bool
	peerScore float64 // last known (status or a routed answer)
	peerAt    time.Time
	bad       map[string]time.Time // peer base URL -> last failure

	touch  func(token string) bool // refreshes a session on this module (redfish.Server.TouchSession); nil: none yet
	client *http.Client
}

func newPairLoad(m *pairModule) *pairLoad {
	return &pairLoad{m: m, peerScore: -1, bad: map[string]time.Time{},
		client: &http.Client{Timeout: proxyTimeout, Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 300 * time.Millisecond}).DialContext,
			MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}}}
}

// cpuTicks is utime+stime of this process in clock ticks (USER_HZ, 100 on
// Linux).
func cpuTicks() (uint64, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command (in parentheses, which may hold spaces).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/self/stat: no command field")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/self/stat: %d fields", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/self/stat: utime %q stime %q", f[11], f[12])
	}
	return u + s, nil
}

// cpuLoop keeps the EWMA of this process's CPU use until ctx ends.
func (l *pairLoad) cpuLoop(ctx context.Context) {
	prev, err := cpuTicks()
	if err != nil {
		l.m.log.Warn("pair: load: CPU time unavailable; load is reads in flight only", "err", err)
		return
	}
	t := time.NewTicker(cpuSample)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := cpuTicks()
		if err != nil {
			continue
		}
		dt := time.Since(last).Seconds()
		last = time.Now()
		use := float64(now-prev) / 100 / dt
		prev = now
		old := math.Float64frombits(l.cpuBits.Load())
		l.cpuBits.Store(math.Float64bits(old + 0.4*(use-old)))
	}
}

func (l *pairLoad) info() loadInfo {
	in := int(l.inflight.Load())
	cpu := math.Float64frombits(l.cpuBits.Load())
	s := float64(in) + cpuWeight*cpu
	if b, ok := pairLoadBias.Load(l.m.id); ok {
		s += b.(float64)
	}
	return loadInfo{InFlight: in, CPU: math.Round(cpu*1000) / 1000, Score: math.Round(s*1000) / 1000}
}

func (l *pairLoad) counts() readCounts {
	l.mu.Lock()
	c := readCounts{Routing: l.routing, PeerScore: l.peerScore}
	l.mu.Unlock()
	c.Local, c.Routed, c.Fallback, c.ForPeer = l.local.Load(), l.routed.Load(), l.fallback.Load(), l.forPeer.Load()
	return c
}

// redfishReads is the Oem.Cmcd.Pair.Reads view.
func (l *pairLoad) redfishReads() *redfish.PairReadsInfo {
	c, in := l.counts(), l.info()
	r := &redfish.PairReadsInfo{ServedLocally: c.Local, RoutedToPeer: c.Routed, FellBack: c.Fallback,
		ServedForPeer: c.ForPeer, Routing: c.Routing, Load: in.Score}
	if c.PeerScore >= 0 {
		p := c.PeerScore
		r.PeerLoad = &p
	}
	return r
}

// routable: a read the active may send to the standby — pair-wide data
// only; the module's own Manager (its event log, its network, its pair
// view), its firmware and tasks, and the event service stay local.
func routable(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.Header.Get(pairAuthHeader) != "" || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return false
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/redfish/v1/") {
		return false
	}
	for _, own := range []string{"/redfish/v1/Managers", "/redfish/v1/UpdateService", "/redfish/v1/TaskService",
		"/redfish/v1/EventService", "/redfish/v1/JsonSchemas"} {
		if p == own || strings.HasPrefix(p, own+"/") {
			return false
		}
	}
	return true
}

// peerTarget decides D2 for one read: the standby's base URLs to try when
// it gets the read, nil when this module serves it.
func (l *pairLoad) peerTarget() []string {
	if len(l.m.peerHTTP) == 0 || l.m.rf == nil {
		return nil
	}
	rf := l.m.rf
	rf.mu.Lock()
	ps, at, fenced := rf.peerSt, rf.peerAt, rf.peerFenced
	rf.mu.Unlock()
	if ps == nil || fenced || time.Since(at) > 2*peerPoll+peerPoll/2 || ps.Role != pair.RoleStandby || !ps.CanServeReads {
		l.setRouting(false)
		return nil
	}
	l.mu.Lock()
	peer := l.peerScore
	if ps.Load != nil && (at.After(l.peerAt) || peer < 0) {
		peer, l.peerScore, l.peerAt = ps.Load.Score, ps.Load.Score, at
	}
	l.routing = decideRoute(l.routing, l.info().Score, peer)
	routing := l.routing
	var bases []string
	if routing {
		// The sync link (listed last) first; a path that failed within
		// the last second last.
		var later []string
		for i := len(l.m.peerHTTP) - 1; i >= 0; i-- {
			b := l.m.peerHTTP[i]
			if time.Since(l.bad[b]) < time.Second {
				later = append(later, b)
			} else {
				bases = append(bases, b)
			}
		}
		bases = append(bases, later...)
	}
	l.mu.Unlock()
	if !routing {
		return nil
	}
	return bases[:1]
}

// decideRoute is the hysteresis of D2: whether reads go to the other
// module, given whether they do now and both load figures (peer < 0:
// unknown).
func decideRoute(routing bool, self, peer float64) bool {
	diff := self - peer
	switch {
	case peer < 0:
		return false
	case !routing:
		return diff >= routeStart
	default:
		return diff >= routeStop
	}
}

func (l *pairLoad) setRouting(v bool) {
	l.mu.Lock()
	l.routing = v
	l.mu.Unlock()
}

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding",
	"Upgrade", "Content-Length", pairAuthHeader, readIndexHeader}

// serveRead answers a read that this module may serve (Handler checked
// the standby's sync): on the active, perhaps through the standby (D2).
func (m *pairModule) serveRead(w http.ResponseWriter, r *http.Request, next http.Handler) {
	l := m.load
	if m.node.Role() == pair.RoleActive {
		if routable(r) {
			if bases := l.peerTarget(); bases != nil && l.proxy(w, r, bases[0]) {
				l.routed.Add(1)
				return
			}
		}
	} else if r.Header.Get(readIndexHeader) != "" && !m.readIndexReached(w, r) {
		return
	}
	l.inflight.Add(1)
	defer l.inflight.Add(-1)
	w.Header().Set(servedByHeader, m.id)
	next.ServeHTTP(w, r)
	l.local.Add(1)
}

// readIndexReached: a read routed here by the active is served only once
// this standby can serve reads and has applied the active's commit index
// named in the request (waiting readIndexWait at most). It answers the
// active itself (503, X-Cmcd-Read-Behind) otherwise.
func (m *pairModule) readIndexReached(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get(pairAuthHeader)
	ts, mac, _ := strings.Cut(h, ":")
	t, err := strconv.ParseInt(ts, 10, 64)
	idx, err2 := strconv.ParseUint(r.Header.Get(readIndexHeader), 10, 64)
	if err != nil || err2 != nil || time.Since(time.Unix(t, 0)).Abs() >= time.Minute ||
		!hmac.Equal([]byte(mac), []byte(pairMAC(m.key, r.Method, r.URL.RequestURI(), t))) {
		http.Error(w, "bad pair signature or read index", http.StatusUnauthorized)
		return false
	}
	for deadline := time.Now().Add(readIndexWait); ; time.Sleep(2 * time.Millisecond) {
		ok, _ := m.node.CanServeReads()
		applied, _ := m.node.FSM().LastApplied()
		if ok && applied >= idx && !readBehindForTest(m.id) {
			break
		}
		if time.Now().After(deadline) {
			w.Header().Set(behindHeader, fmt.Sprintf("applied %d, read index %d", applied, idx))
			http.Error(w, "this standby has not reached the read index", http.StatusServiceUnavailable)
			return false
		}
	}
	m.load.forPeer.Add(1)
	w.Header().Set(loadHeader, strconv.FormatFloat(m.load.info().Score, 'f', 3, 64))
	return true
}

// pairReadBehind makes a module's applied index count as behind every
// read index: a test hook (daemon tests), never set in production.
var pairReadBehind sync.Map

func readBehindForTest(id string) bool { _, ok := pairReadBehind.Load(id); return ok }

// proxy sends the read to the standby at base and copies its answer;
// false (nothing written) when this module must serve it.
func (l *pairLoad) proxy(w http.ResponseWriter, r *http.Request, base string) bool {
	m := l.m
	if tok := r.Header.Get("X-Auth-Token"); tok != "" && (l.touch == nil || !l.touch(tok)) {
		return false // unknown here: this module answers (401), and a session used keeps its idle timer here
	}
	ctx, cancel := context.WithTimeout(r.Context(), proxyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, strings.TrimRight(base, "/")+r.URL.RequestURI(), nil)
	if err != nil {
		return false
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	idx, _ := m.node.FSM().LastApplied() // every acknowledged write is applied here (Put)
	req.Header.Set(readIndexHeader, strconv.FormatUint(idx, 10))
	m.signPeer(req)
	fail := func(why string, err error) bool {
		l.fallback.Add(1)
		l.mu.Lock()
		l.bad[base] = time.Now()
		l.mu.Unlock()
		m.log.Debug("pair: routed read served here", "why", why, "path", r.URL.Path, "err", err)
		return false
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return fail("request", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, proxyMaxBody+1))
	switch {
	case err != nil:
		return fail("body", err)
	case len(body) > proxyMaxBody:
		return fail("body too large", nil)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		if s, err := strconv.ParseFloat(resp.Header.Get(loadHeader), 64); err == nil {
			l.notePeerLoad(s)
		}
		l.fallback.Add(1)
		return false // the standby is behind, or this module counts the failed login
	}
	if s, err := strconv.ParseFloat(resp.Header.Get(loadHeader), 64); err == nil {
		l.notePeerLoad(s)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	w.Header().Del(loadHeader)
	n := int64(len(body))
	if r.Method == http.MethodHead && resp.ContentLength >= 0 {
		n = resp.ContentLength // the length the GET would have
	}
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
	return true
}

func (l *pairLoad) notePeerLoad(s float64) {
	l.mu.Lock()
	l.peerScore, l.peerAt = s, time.Now()
	l.mu.Unlock()
}
