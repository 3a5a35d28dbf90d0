package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"time"

	"cmcd/timesrc/events"
	"cmcd/timesrc/server"
)

// Config tunes the engine; zero values take the defaults in brackets.
type Config struct {
	Role             string        // region or core
	Name, Type       string        // this region (T8)
	AbnormalOffset   time.Duration // |offset| beyond this is abnormal [100ms]
	PlausibleOffset  time.Duration // transmit-vs-receive beyond this = hidden clock [1000s]
	AbnormalAfter    int           // consecutive abnormal evaluations before repairs start [3]
	Repairs          []string      // [poll-fast, step, restart-client]
	RepairTries      int           // abnormal evaluations per repair step [3]
	ClientPauseShare float64       // T5 [0.5]
	RegionPauseShare float64       // T3 [0.5]
	MinClients       int           // shares apply from this many active clients/regions [2]
	PauseFor         time.Duration // [10m]
	Active           time.Duration // a client is active if seen within [10m]
	SpreadWindow     time.Duration // T6 [16s]
	Seed             uint64        // random source for T6 (0: from the time)
}

func (c *Config) defaults() {
	if c.AbnormalOffset == 0 {
		c.AbnormalOffset = 100 * time.Millisecond
	}
	if c.PlausibleOffset == 0 {
		c.PlausibleOffset = 1000 * time.Second
	}
	if c.AbnormalAfter == 0 {
		c.AbnormalAfter = 3
	}
	if len(c.Repairs) == 0 {
		c.Repairs = []string{"poll-fast", "step", "restart-client"}
	}
	if c.RepairTries == 0 {
		c.RepairTries = 3
	}
	if c.ClientPauseShare == 0 {
		c.ClientPauseShare = 0.5
	}
	if c.RegionPauseShare == 0 {
		c.RegionPauseShare = 0.5
	}
	if c.MinClients == 0 {
		c.MinClients = 2
	}
	if c.PauseFor == 0 {
		c.PauseFor = 10 * time.Minute
	}
	if c.Active == 0 {
		c.Active = 10 * time.Minute
	}
	if c.SpreadWindow == 0 {
		c.SpreadWindow = 16 * time.Second
	}
}

// Report is an explicit sync-state report from a node or a region server.
type Report struct {
	ID              string        `json:"id"`   // stable name of the reporter
	Kind            string        `json:"kind"` // "node" or "region"
	Region          string        `json:"region,omitempty"`
	RegionType      string        `json:"regionType,omitempty"`
	Synced          bool          `json:"synced"`
	Offset          time.Duration `json:"offsetNs"`
	Stratum         uint8         `json:"stratum,omitempty"`
	Holdover        bool          `json:"holdover,omitempty"`
	Paused          bool          `json:"paused,omitempty"`   // region: upstream paused by the core
	Abnormal        bool          `json:"abnormal,omitempty"` // region: its own judgement of its sync
	Clients         int           `json:"clients,omitempty"`
	AbnormalClients int           `json:"abnormalClients,omitempty"`
	Addr            string        `json:"addr,omitempty"` // filled by the API: the sender's address
}

// Directive is the answer to a report.
type Directive struct {
	Action        string        `json:"action,omitempty"` // "", poll-fast, step, restart-client
	PauseUpstream bool          `json:"pauseUpstream"`    // T3: regions hold over
	PauseClients  bool          `json:"pauseClients"`     // T5: run on your own oscillator
	Until         time.Time     `json:"until,omitempty"`
	PollOffset    time.Duration `json:"pollOffsetNs"` // T6: poll phase
	SpreadFactor  float64       `json:"spreadFactor"`
}

// Client is one row of the client table.
type Client struct {
	Key         string        `json:"key"`
	Kind        string        `json:"kind"` // ntp, node, region
	Addr        string        `json:"addr"`
	Region      string        `json:"region,omitempty"`
	RegionType  string        `json:"regionType,omitempty"`
	FirstSeen   time.Time     `json:"firstSeen"`
	LastSeen    time.Time     `json:"lastSeen"`
	Requests    uint64        `json:"requests"`
	Interval    time.Duration `json:"observedIntervalNs"` // smoothed time between requests
	Poll        int8          `json:"poll"`               // advertised by the client
	Stratum     uint8         `json:"stratum"`
	TxOffset    time.Duration `json:"txOffsetNs"` // client transmit − our receive
	ClockHidden bool          `json:"clockHidden"`
	Synced      bool          `json:"synced"` // from its last report
	Offset      time.Duration `json:"offsetNs"`
	Abnormal    bool          `json:"abnormal"`
	Streak      int           `json:"abnormalStreak"`
	Repair      string        `json:"repair,omitempty"` // current repair step
	Alarm       bool          `json:"alarm"`
	PollOffset  time.Duration `json:"pollOffsetNs"`
	step        int
	tries       int
	reported    bool
}

// State is the engine's policy state.
type State struct {
	Role            string    `json:"role"`
	Name            string    `json:"name"`
	Type            string    `json:"type"`
	Active          int       `json:"activeClients"`
	Abnormal        int       `json:"abnormalClients"`
	ClientsPaused   bool      `json:"clientsPaused"`
	ClientsUntil    time.Time `json:"clientsPausedUntil,omitempty"`
	Regions         int       `json:"regions"`
	AbnormalRegions int       `json:"abnormalRegions"`
	UpstreamPause   bool      `json:"upstreamPause"` // core: regions told to pause
	UpstreamUntil   time.Time `json:"upstreamPauseUntil,omitempty"`
	SpreadFactor    float64   `json:"spreadFactor"`
	Alarms          []string  `json:"alarms"`
}

// Clock tells the served time.
type Clock interface{ Now() time.Time }

// Engine is the policy engine.
type Engine struct {
	cfg     Config
	clk     Clock
	emit    events.Sink
	rng     *rand.Rand
	mu      sync.Mutex
	clients map[string]*Client
	byAddr  map[netip.Addr]*Client // the "ntp" clients of clients, by address: no key string per packet
	st      State
	lastN   int
}

// New returns an engine; clk gives the served time, emit may be nil.
func New(cfg Config, clk Clock, emit events.Sink) *Engine {
	cfg.defaults()
	if emit == nil {
		emit = func(events.Event) {}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	return &Engine{cfg: cfg, clk: clk, emit: emit, rng: rand.New(rand.NewPCG(seed, seed>>1|1)),
		clients: map[string]*Client{}, byAddr: map[netip.Addr]*Client{}, st: State{Role: cfg.Role, Name: cfg.Name, Type: cfg.Type}}
}

// Decide implements server.Policy: it records the request and answers
// with the client's pause and poll state. It allocates only for a client
// it has not seen before (or an event).
func (e *Engine) Decide(o *server.Observation) server.Decision {
	e.mu.Lock()
	c := e.byAddr[o.Addr]
	now := o.Rx
	if c == nil {
		key := o.Addr.String()
		c = &Client{Key: key, Kind: "ntp", Addr: key, FirstSeen: now, Region: e.cfg.Name, RegionType: e.cfg.Type}
		e.clients[key] = c
		e.byAddr[o.Addr] = c
	} else if gap := now.Sub(c.LastSeen); gap > 0 {
		if c.Interval == 0 {
			c.Interval = gap
		} else {
			c.Interval += (gap - c.Interval) / 8
		}
	}
	c.LastSeen = now
	c.Requests++
	c.Poll, c.Stratum = o.Poll, o.Stratum
	var evs []events.Event
	if !c.reported {
		if o.ClientTx.IsZero() {
			c.ClockHidden = true
		} else {
			c.TxOffset = o.ClientTx.Sub(now)
			c.ClockHidden = c.TxOffset.Abs() > e.cfg.PlausibleOffset
			if !c.ClockHidden {
				c.Offset = c.TxOffset
				evs = e.judge(c, c.TxOffset.Abs() > e.cfg.AbnormalOffset, now)
			}
		}
	}
	d := server.Decision{Pause: e.st.ClientsPaused}
	if c.Repair == "poll-fast" {
		d.Poll = 4
	}
	e.mu.Unlock()
	e.send(evs)
	return d
}

func (e *Engine) send(evs []events.Event) {
	for _, ev := range evs {
		e.emit(ev)
	}
}

func (e *Engine) ev(now time.Time, kind string, sev events.Severity, subj, msg string, kv ...string) events.Event {
	ev := events.Event{Time: now, Kind: kind, Severity: sev, Subject: subj, Message: msg}
	if len(kv) > 0 {
		ev.Data = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			ev.Data[kv[i]] = kv[i+1]
		}
	}
	return ev
}

// judge updates a client's abnormal streak and walks the repair sequence (T4).
func (e *Engine) judge(c *Client, abnormal bool, now time.Time) []events.Event {
	var evs []events.Event
	if !abnormal {
		if c.Abnormal || c.Repair != "" || c.Alarm {
			msg := "client " + c.Key + " is normal again"
			if c.Repair != "" {
				msg = fmt.Sprintf("client %s repaired by %s", c.Key, c.Repair)
			}
			evs = append(evs, e.ev(now, "policy.client.repaired", events.OK, c.Key, msg, "repair", c.Repair))
			if c.Alarm {
				evs = append(evs, e.ev(now, "alarm.client.cleared", events.OK, c.Key, "alarm cleared for client "+c.Key))
			}
		}
		c.Abnormal, c.Streak, c.Repair, c.step, c.tries, c.Alarm = false, 0, "", 0, 0, false
		return evs
	}
	c.Streak++
	if !c.Abnormal {
		c.Abnormal = true
		evs = append(evs, e.ev(now, "policy.client.abnormal", events.Warning, c.Key,
			fmt.Sprintf("client %s abnormal (offset %v)", c.Key, c.Offset)))
	}
	if c.Alarm || c.Streak < e.cfg.AbnormalAfter {
		return evs
	}
	if c.Repair == "" || c.tries >= e.cfg.RepairTries {
		if c.Repair != "" {
			c.step++
		}
		c.tries = 0
		if c.step >= len(e.cfg.Repairs) {
			c.Repair, c.Alarm = "", true
			evs = append(evs, e.ev(now, "alarm.client", events.Critical, c.Key,
				fmt.Sprintf("client %s still abnormal after every repair policy (%v)", c.Key, e.cfg.Repairs)))
			return evs
		}
		c.Repair = e.cfg.Repairs[c.step]
		evs = append(evs, e.ev(now, "policy.client.repair", events.Warning, c.Key,
			fmt.Sprintf("client %s: repair policy %d/%d %s", c.Key, c.step+1, len(e.cfg.Repairs), c.Repair), "repair", c.Repair))
	}
	c.tries++
	return evs
}

// Report takes an explicit report and returns the directive for its sender.
func (e *Engine) Report(r Report) (Directive, error) {
	if r.ID == "" {
		return Directive{}, fmt.Errorf("report: id is required")
	}
	switch r.Kind {
	case "node", "region":
	default:
		return Directive{}, fmt.Errorf("report: kind %q: want node or region", r.Kind)
	}
	now := e.clk.Now()
	e.mu.Lock()
	key := r.Kind + ":" + r.ID
	c := e.clients[key]
	if c == nil {
		c = &Client{Key: key, Kind: r.Kind, FirstSeen: now}
		e.clients[key] = c
	}
	c.reported = true
	c.Addr, c.LastSeen, c.Synced, c.Offset, c.Stratum = r.Addr, now, r.Synced, r.Offset, r.Stratum
	c.Requests++
	c.Region, c.RegionType = r.Region, r.RegionType
	if c.Region == "" && r.Kind == "node" {
		c.Region, c.RegionType = e.cfg.Name, e.cfg.Type
	}
	var evs []events.Event
	if r.Kind == "region" {
		ab := r.Abnormal || !r.Synced || r.Offset.Abs() > e.cfg.AbnormalOffset
		if ab && !c.Abnormal {
			evs = append(evs, e.ev(now, "alarm.region", events.Critical, key,
				fmt.Sprintf("region %s (%s) reports abnormal sync (synced %v, holdover %v, offset %v)", r.ID, r.RegionType, r.Synced, r.Holdover, r.Offset)))
		} else if !ab && c.Abnormal {
			evs = append(evs, e.ev(now, "alarm.region.cleared", events.OK, key, "region "+r.ID+" reports normal sync"))
		}
		c.Abnormal, c.Alarm = ab, ab
	} else {
		evs = e.judge(c, !r.Synced || r.Offset.Abs() > e.cfg.AbnormalOffset, now)
	}
	d := Directive{Action: c.Repair, PollOffset: c.PollOffset, SpreadFactor: e.st.SpreadFactor}
	if e.st.ClientsPaused {
		d.PauseClients, d.Until = true, e.st.ClientsUntil
	}
	if r.Kind == "region" && e.st.UpstreamPause {
		d.PauseUpstream, d.Until = true, e.st.UpstreamUntil
	}
	e.mu.Unlock()
	e.send(evs)
	return d, nil
}

// Tick evaluates the shares (T3, T5) and the client count (T6).
func (e *Engine) Tick() {
	now := e.clk.Now()
	e.mu.Lock()
	var evs []events.Event
	active, abnormal, regions, abRegions := 0, 0, 0, 0
	for k, c := range e.clients {
		if now.Sub(c.LastSeen) > e.cfg.Active {
			if now.Sub(c.LastSeen) > 6*e.cfg.Active {
				delete(e.clients, k)
				if c.Kind == "ntp" {
					if a, err := netip.ParseAddr(k); err == nil {
						delete(e.byAddr, a)
					}
				}
			}
			continue
		}
		if c.Kind == "region" {
			regions++
			if c.Abnormal {
				abRegions++
			}
			continue
		}
		active++
		if c.Abnormal {
			abnormal++
		}
	}
	e.st.Active, e.st.Abnormal, e.st.Regions, e.st.AbnormalRegions = active, abnormal, regions, abRegions
	// T5: pause clients
	if e.st.ClientsPaused && !now.Before(e.st.ClientsUntil) {
		e.st.ClientsPaused = false
		evs = append(evs, e.ev(now, "policy.clients.resumed", events.OK, e.cfg.Name, "clients resume synchronising"))
	}
	if !e.st.ClientsPaused && active >= e.cfg.MinClients && float64(abnormal) > e.cfg.ClientPauseShare*float64(active) {
		e.st.ClientsPaused, e.st.ClientsUntil = true, now.Add(e.cfg.PauseFor)
		evs = append(evs, e.ev(now, "policy.clients.paused", events.Warning, e.cfg.Name,
			fmt.Sprintf("%d of %d clients abnormal (> %.0f%%): clients told to pause (leap 3) until %s", abnormal, active, 100*e.cfg.ClientPauseShare, e.st.ClientsUntil.Format(time.RFC3339)),
			"abnormal", fmt.Sprint(abnormal), "active", fmt.Sprint(active)))
	}
	// T3: the core pauses the regions' upstream sync
	if e.st.UpstreamPause && !now.Before(e.st.UpstreamUntil) {
		e.st.UpstreamPause = false
		evs = append(evs, e.ev(now, "policy.regions.resume-upstream", events.OK, e.cfg.Name, "regions resume upstream sync"))
	}
	if !e.st.UpstreamPause && e.cfg.Role == "core" && regions >= e.cfg.MinClients && float64(abRegions) > e.cfg.RegionPauseShare*float64(regions) {
		e.st.UpstreamPause, e.st.UpstreamUntil = true, now.Add(e.cfg.PauseFor)
		evs = append(evs, e.ev(now, "policy.regions.pause-upstream", events.Warning, e.cfg.Name,
			fmt.Sprintf("%d of %d regions abnormal (> %.0f%%): regions told to pause upstream sync and hold over until %s", abRegions, regions, 100*e.cfg.RegionPauseShare, e.st.UpstreamUntil.Format(time.RFC3339)),
			"abnormal", fmt.Sprint(abRegions), "regions", fmt.Sprint(regions)))
	}
	// T6: client count changed
	if active != e.lastN {
		if e.lastN != 0 || active > 0 {
			evs = append(evs, e.spreadLocked(now, fmt.Sprintf("client count %d -> %d", e.lastN, active)))
		}
		e.lastN = active
	}
	e.st.Alarms = e.st.Alarms[:0]
	for _, c := range e.clients {
		if c.Alarm {
			e.st.Alarms = append(e.st.Alarms, c.Key)
		}
	}
	sort.Strings(e.st.Alarms)
	e.mu.Unlock()
	e.send(evs)
}

// Spread draws a new random factor and spreads the clients' poll phases (T6, on command).
func (e *Engine) Spread(why string) {
	e.mu.Lock()
	ev := e.spreadLocked(e.clk.Now(), why)
	e.mu.Unlock()
	e.emit(ev)
}

func (e *Engine) spreadLocked(now time.Time, why string) events.Event {
	f := e.rng.Float64()
	var keys []string
	for k, c := range e.clients {
		if c.Kind != "region" && now.Sub(c.LastSeen) <= e.cfg.Active {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	n := len(keys)
	for i, k := range keys {
		e.clients[k].PollOffset = time.Duration((float64(i) + f) / float64(n) * float64(e.cfg.SpreadWindow))
	}
	e.st.SpreadFactor = f
	return e.ev(now, "policy.spread", events.OK, e.cfg.Name,
		fmt.Sprintf("%s: random factor %.4f spreads %d clients' polls over %v", why, f, n, e.cfg.SpreadWindow),
		"factor", fmt.Sprintf("%.6f", f), "clients", fmt.Sprint(n))
}

// PauseClients pauses (T5, on command) or resumes every client.
func (e *Engine) PauseClients(pause bool, why string) {
	now := e.clk.Now()
	e.mu.Lock()
	was := e.st.ClientsPaused
	e.st.ClientsPaused = pause
	e.st.ClientsUntil = now.Add(e.cfg.PauseFor)
	e.mu.Unlock()
	if was != pause {
		kind := "policy.clients.resumed"
		if pause {
			kind = "policy.clients.paused"
		}
		e.emit(e.ev(now, kind, events.Warning, e.cfg.Name, "clients "+map[bool]string{true: "paused", false: "resumed"}[pause]+" on command: "+why))
	}
}

// Clients returns the client table sorted by key.
func (e *Engine) Clients() []Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Client, 0, len(e.clients))
	for _, c := range e.clients {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// State returns the policy state.
func (e *Engine) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st
	s.Alarms = append([]string(nil), e.st.Alarms...)
	return s
}

// Client returns one client by key.
func (e *Engine) Client(key string) (Client, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.clients[key]
	if !ok {
		return Client{}, false
	}
	return *c, true
}

var _ server.Policy = (*Engine)(nil)
