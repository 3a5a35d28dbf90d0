package redfish

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"cmcd/accounts"
	"cmcd/syncsel"
)

// EventService (R5): events reach clients as Server-Sent Events on
// /redfish/v1/EventService/SSE. See doc.go, "# Events".

// Event stream limits and defaults.
const (
	// SSEMaxStreams bounds the open SSE streams; SSEMaxStreamsPerUser
	// bounds them per user name. Past either a new stream gets 503
	// EventSubscriptionLimitExceeded.
	SSEMaxStreams        = 16
	SSEMaxStreamsPerUser = 4
	// DefaultSSEKeepAlive is how often an idle stream gets a comment line
	// (and its credentials are re-checked).
	DefaultSSEKeepAlive = 15 * time.Second
	// SSERing is how many recent events are held for Last-Event-ID resumes.
	SSERing = 256
	// sseQueue is each stream's queue; a stream that falls this far behind
	// is ended (the client resumes with Last-Event-ID).
	sseQueue = 64
	// DefaultSensorPoll is how often the running store is checked for
	// health changes of PSUs, fans, nodes and node sensors.
	DefaultSensorPoll = 2 * time.Second

	eventServiceURI  = "/redfish/v1/EventService"
	sseURI           = eventServiceURI + "/SSE"
	subscriptionsURI = eventServiceURI + "/Subscriptions"
)

// sseWriteTimeout ends a stream whose client stops reading (a variable
// for tests).
var sseWriteTimeout = 10 * time.Second

// streamed is what a GET handler returns when it has written the answer
// itself (the SSE stream).
type streamed struct{}

// hubEvent is one published event: its sequence number (the SSE id and
// the Event's Id) and the Event payload.
type hubEvent struct {
	seq  uint64
	data []byte
}

// sseStream is one open SSE connection; it is listed as a subscription of
// SubscriptionType SSE.
type sseStream struct {
	id      string
	user    string
	token   string // the session's key (tokenKey); "" for Basic auth
	remote  string
	created time.Time
	ch      chan *hubEvent
	kill    chan struct{}
	killed  bool // under hub.mu
	lost    bool // ended because it fell behind; under hub.mu
}

// eventHub turns engine events and sensor health changes into Redfish
// Events and fans them out to the SSE streams. Publishing never blocks: a
// stream whose queue is full is ended, so a slow client never holds up the
// engine.
type eventHub struct {
	s          *Server
	keepAlive  time.Duration
	poll       time.Duration
	maxStreams int
	maxPerUser int

	mu      sync.Mutex
	base    uint64 // sequence numbers of this process start above base
	seq     uint64
	ring    []*hubEvent // oldest first
	streams map[string]*sseStream
	nextID  uint64

	healthReady chan struct{} // closed once the health watcher has its baseline

	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newEventHub(s *Server, o Options) *eventHub {
	h := &eventHub{s: s, keepAlive: o.SSEKeepAlive, poll: o.SensorPoll,
		maxStreams: SSEMaxStreams, maxPerUser: SSEMaxStreamsPerUser,
		// Microseconds since the epoch: ids keep growing across restarts,
		// so a Last-Event-ID from before a restart is recognised as such.
		base:    uint64(time.Now().UnixMicro()),
		streams: map[string]*sseStream{}, stop: make(chan struct{}), healthReady: make(chan struct{})}
	h.seq = h.base
	if h.keepAlive <= 0 {
		h.keepAlive = DefaultSSEKeepAlive
	}
	if h.poll <= 0 {
		h.poll = DefaultSensorPoll
	}
	if s.eng != nil {
		ch, unsub := s.eng.Subscribe()
		h.wg.Add(2)
		go func() { defer h.wg.Done(); defer unsub(); h.pumpEngine(ch) }()
		go func() { defer h.wg.Done(); h.watchHealth() }()
	}
	return h
}

// Close ends the event streams and stops the goroutines of the Server.
func (s *Server) Close() {
	s.events.closeOnce.Do(func() { close(s.events.stop) })
	s.events.wg.Wait()
}

// record is one event before publication.
type record struct {
	msgID     string // a message of the Cmcd registry
	args      []string
	severity  string
	eventType string
	origin    string // OriginOfCondition
	logEntry  string // the CMC event log entry, if any
	when      time.Time
}

func (h *eventHub) payload(seq uint64, r record) []byte {
	id := strconv.FormatUint(seq, 10)
	if seq == 0 {
		id = "0"
	}
	sev := severity(r.severity)
	rec := obj{
		"MemberId":          "0",
		"EventId":           id,
		"EventType":         r.eventType,
		"EventTimestamp":    r.when.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		"MessageId":         cmcdRegistry + "." + r.msgID,
		"Message":           cmcdMessageText(r.msgID, r.args),
		"MessageArgs":       r.args,
		"MessageSeverity":   sev,
		"Severity":          sev,
		"OriginOfCondition": odataID(r.origin),
	}
	if r.logEntry != "" {
		rec["LogEntry"] = odataID(r.logEntry)
	}
	b, _ := json.Marshal(obj{
		"@odata.type":        "#Event.v1_13_0.Event",
		"Id":                 id,
		"Name":               "cmcd Event",
		"Events":             []any{rec},
		"Events@odata.count": 1,
	})
	return b
}

// publish numbers, stores and sends an event. It never blocks.
func (h *eventHub) publish(r record) {
	if r.when.IsZero() {
		r.when = h.s.now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	ev := &hubEvent{seq: h.seq, data: h.payload(h.seq, r)}
	if len(h.ring) == SSERing {
		copy(h.ring, h.ring[1:])
		h.ring = h.ring[:SSERing-1]
	}
	h.ring = append(h.ring, ev)
	for _, st := range h.streams {
		select {
		case st.ch <- ev:
		default:
			st.lost = true
			h.killLocked(st)
		}
	}
}

func (h *eventHub) killLocked(st *sseStream) {
	if !st.killed {
		st.killed = true
		close(st.kill)
		delete(h.streams, st.id)
	}
}

// detail drops the engine's own lead-in ("round 12 committed: ") that the
// registry message already says.
func detail(msg string) string {
	lead, rest, ok := strings.Cut(msg, ": ")
	if ok && (strings.HasPrefix(lead, "round ") || lead == "sync configuration changed" || lead == "backup image started") {
		return rest
	}
	return msg
}

// engineRecord maps an engine event onto the Cmcd registry.
func engineRecord(ev syncsel.Event) record {
	r := record{severity: ev.Severity, origin: managerURI, when: ev.Time}
	if ev.ID != 0 {
		r.logEntry = managerURI + "/LogServices/EventLog/Entries/" + strconv.FormatUint(ev.ID, 10)
	}
	if timeRecord(ev, &r) || pairRecord(ev.Kind, ev.Message, &r) {
		return r
	}
	round := strconv.FormatUint(ev.Round, 10)
	switch ev.Kind {
	case "RoundCommitted":
		r.msgID, r.eventType, r.args = "RoundCommitted", "Other", []string{round, detail(ev.Message)}
	case "RoundRolledBack":
		r.msgID, r.eventType, r.args = "RoundRolledBack", "Alert", []string{round, detail(ev.Message)}
	case "BackupStarted":
		r.msgID, r.eventType, r.args = "BackupImageStarted", "Alert", []string{detail(ev.Message)}
	case "ConfigChanged":
		r.msgID, r.eventType, r.args = "ConfigurationChanged", "ResourceUpdated", []string{detail(ev.Message)}
	case "Alarm":
		r.msgID, r.eventType, r.args = "Alarm", "Alert", []string{ev.Message}
	case "FirmwareUpgraded": // firmware: the S5 choice is pending
		r.msgID, r.eventType, r.args = "DataChoicePending", "Alert", []string{ev.Message}
	case "DataChoiceApplied": // firmware: the S5 choice was answered
		r.msgID, r.eventType, r.args = "DataChoiceAnswered", "ResourceUpdated", []string{ev.Message}
	default:
		r.msgID, r.eventType, r.args = "CMCEvent", "Other", []string{ev.Message}
	}
	return r
}

func (h *eventHub) pumpEngine(ch <-chan syncsel.Event) {
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			h.publish(engineRecord(ev))
		case <-h.stop:
			return
		}
	}
}

// healthItem is one component whose health is watched.
type healthItem struct {
	name, origin, health string
}

// healthSnapshot reads the health of every PSU, fan, node and node sensor
// of st.
func healthSnapshot(st *syncsel.Store) (map[string]healthItem, error) {
	out := map[string]healthItem{}
	h := func(present bool, s string) string {
		if !present {
			return "Absent"
		}
		if s == "" {
			return "OK"
		}
		return s
	}
	psus, err := st.PSUs()
	if err != nil {
		return nil, err
	}
	for _, p := range psus {
		out["psu/"+strconv.Itoa(p.ID)] = healthItem{"power supply " + p.Name,
			chassisURI + "/" + enclosureID + "/PowerSubsystem/PowerSupplies/" + strconv.Itoa(p.ID), h(p.Present, string(p.Health))}
	}
	fans, err := st.Fans()
	if err != nil {
		return nil, err
	}
	for _, f := range fans {
		out["fan/"+strconv.Itoa(f.ID)] = healthItem{"fan " + f.Name,
			chassisURI + "/" + enclosureID + "/ThermalSubsystem/Fans/" + strconv.Itoa(f.ID), h(f.Present, string(f.Health))}
	}
	nodes, err := st.Nodes()
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		uri := chassisURI + "/" + nodeID(n.Slot)
		out["node/"+strconv.Itoa(n.Slot)] = healthItem{"node " + nodeID(n.Slot), uri, h(n.Present, string(n.Health))}
		for _, sn := range n.Sensors {
			out[fmt.Sprintf("node/%d/sensor/%d", n.Slot, sn.Number)] = healthItem{
				fmt.Sprintf("sensor %s of %s", sn.Name, nodeID(n.Slot)), uri, h(true, string(sn.Health))}
		}
	}
	return out, nil
}

// tempHealth adds the health of the board's enclosure temperature
// sensors (read live, like their Sensors) to a snapshot.
func (s *Server) tempHealth(into map[string]healthItem) {
	for _, t := range s.enclosureTemps() {
		health := string(t.Health)
		if !t.Present {
			health = "Absent"
		} else if health == "" {
			health = "OK"
		}
		into["temp/"+strconv.Itoa(t.ID)] = healthItem{"temperature sensor " + t.Name,
			sensorsURI(enclosureID) + "/" + tempSensorID(t), health}
	}
}

// watchHealth publishes SensorHealthChanged when the health of a PSU, fan,
// node or node sensor changes in the running store (the collector's
// thresholds: the board reports health, cmcd keeps no thresholds of its
// own), or that of an enclosure temperature sensor (the board's
// thresholds, read live at every poll). The store is read only when its
// psu, fan or node fingerprint changed.
func (h *eventHub) watchHealth() {
	t := time.NewTicker(h.poll)
	defer t.Stop()
	var prev, stored map[string]healthItem
	var prevStore *syncsel.Store
	var prevFP [3]syncsel.CatFP
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		st := h.s.eng.Store()
		m, err := st.Matrix()
		if err != nil {
			continue
		}
		fp := [3]syncsel.CatFP{m[syncsel.CatPSU], m[syncsel.CatFan], m[syncsel.CatNode]}
		if st != prevStore || fp != prevFP || stored == nil {
			if stored, err = healthSnapshot(st); err != nil {
				continue
			}
		}
		cur := make(map[string]healthItem, len(stored)+2)
		for k, v := range stored {
			cur[k] = v
		}
		h.s.tempHealth(cur)
		for k, it := range cur {
			if old, ok := prev[k]; ok && old.health != it.health {
				sev := it.health
				if sev == "Absent" {
					sev = "Warning"
				}
				h.publish(record{msgID: "SensorHealthChanged", eventType: "StatusChange", severity: sev,
					origin: it.origin, args: []string{it.name, old.health, it.health}})
			}
		}
		if prev == nil {
			close(h.healthReady)
		}
		prev, prevStore, prevFP = cur, st, fp
	}
}

// ---- the stream ----

// open registers a stream for c and returns the events to replay first
// and, when events the client asked for are gone, the Last-Event-ID to
// name in an EventsLost marker.
func (h *eventHub) open(c *ctx) (st *sseStream, replay []*hubEvent, lostAfter string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.stop:
		return nil, nil, "", errorf(http.StatusServiceUnavailable, "ServiceTemporarilyUnavailable", "5")
	default:
	}
	n := 0
	for _, o := range h.streams {
		if o.user == c.account.Username {
			n++
		}
	}
	if len(h.streams) >= h.maxStreams || n >= h.maxPerUser {
		return nil, nil, "", &Error{Status: http.StatusServiceUnavailable, MessageID: "EventSubscriptionLimitExceeded",
			Resolution: fmt.Sprintf("At most %d event streams are open at once, %d per user; close one (DELETE its subscription) first.",
				h.maxStreams, h.maxPerUser)}
	}
	h.nextID++
	st = &sseStream{id: strconv.FormatUint(h.nextID, 10), user: c.account.Username, remote: c.r.RemoteAddr,
		created: h.s.now(), ch: make(chan *hubEvent, sseQueue), kill: make(chan struct{})}
	if c.session != nil {
		st.token = c.session.key
	}
	h.streams[st.id] = st
	if last := c.r.Header.Get("Last-Event-ID"); last != "" {
		l, perr := strconv.ParseUint(strings.TrimSpace(last), 10, 64)
		oldest := h.seq + 1 // the oldest event held
		if len(h.ring) > 0 {
			oldest = h.ring[0].seq
		}
		switch {
		case perr != nil || l > h.seq || l+1 < oldest || l < h.base:
			// Unknown, from a previous start, or overwritten: say so,
			// then send everything held.
			lostAfter = last
			replay = append(replay, h.ring...)
		default:
			for _, ev := range h.ring {
				if ev.seq > l {
					replay = append(replay, ev)
				}
			}
		}
	}
	return st, replay, lostAfter, nil
}

func (h *eventHub) remove(st *sseStream) {
	h.mu.Lock()
	h.killLocked(st)
	h.mu.Unlock()
}

// stillAuthorised re-checks a stream's credentials: its session must still
// exist (an open stream counts as use of it) and its account be enabled.
func (s *Server) stillAuthorised(st *sseStream) bool {
	if st.token != "" {
		s.mu.Lock()
		now := s.now()
		s.expireLocked(now)
		sess := s.sessions[st.token]
		if sess != nil {
			sess.lastUsed = now
			s.usedLocked(sess)
		}
		s.mu.Unlock()
		if sess == nil {
			return false
		}
	}
	a, err := s.acct.Get(st.user)
	return err == nil && a.Enabled
}

func sseFrame(ev *hubEvent) []byte {
	var b bytes.Buffer
	b.WriteString("id: ")
	b.WriteString(strconv.FormatUint(ev.seq, 10))
	b.WriteString("\ndata: ")
	b.Write(ev.data)
	b.WriteString("\n\n")
	return b.Bytes()
}

// lostFrame is the EventsLost marker; it has no id line, so the client's
// Last-Event-ID stays at the last event it really received.
func (h *eventHub) lostFrame(after string) []byte {
	if _, err := strconv.ParseUint(after, 10, 64); err != nil {
		after = "0"
	}
	data := h.payload(0, record{msgID: "EventsLost", eventType: "Other", severity: "Warning",
		origin: eventServiceURI, args: []string{after}, when: h.s.now()})
	return append(append([]byte("data: "), data...), '\n', '\n')
}

// getSSE serves the event stream: text/event-stream, one Event per SSE
// event with its sequence number as id, replay after Last-Event-ID,
// keep-alive comments.
func (s *Server) getSSE(c *ctx) (any, error) {
	h := s.events
	hdr := c.w.Header()
	if c.r.Method == http.MethodHead {
		hdr.Set("Content-Type", "text/event-stream")
		c.w.WriteHeader(http.StatusOK)
		return streamed{}, nil
	}
	st, replay, lostAfter, err := h.open(c)
	if err != nil {
		return nil, err
	}
	defer h.remove(st)
	rc := http.NewResponseController(c.w)
	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, err := c.w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	s.log.Info("redfish: event stream opened", "id", st.id, "user", st.user, "source", st.remote)
	defer s.log.Info("redfish: event stream closed", "id", st.id, "user", st.user)
	if !write([]byte(": cmcd event stream " + st.id + "\nretry: 5000\n\n")) {
		return streamed{}, nil
	}
	if lostAfter != "" && !write(h.lostFrame(lostAfter)) {
		return streamed{}, nil
	}
	for _, ev := range replay {
		if !write(sseFrame(ev)) {
			return streamed{}, nil
		}
	}
	tick := time.NewTicker(h.keepAlive)
	defer tick.Stop()
	for {
		select {
		case ev := <-st.ch:
			if !s.stillAuthorised(st) || !write(sseFrame(ev)) {
				return streamed{}, nil
			}
		case <-tick.C:
			if !s.stillAuthorised(st) || !write([]byte(": keep-alive\n\n")) {
				return streamed{}, nil
			}
		case <-st.kill:
			h.mu.Lock()
			lost := st.lost
			h.mu.Unlock()
			if lost {
				s.log.Warn("redfish: event stream fell behind and was ended", "id", st.id, "user", st.user)
				write(h.lostFrame("0"))
			}
			return streamed{}, nil
		case <-c.r.Context().Done():
			return streamed{}, nil
		case <-h.stop:
			return streamed{}, nil
		}
	}
}

// ---- resources ----

func (s *Server) getEventService(c *ctx) (any, error) {
	h := s.events
	return obj{
		"@odata.id":                 eventServiceURI,
		"@odata.type":               "#EventService.v1_12_0.EventService",
		"Id":                        "EventService",
		"Name":                      "Event Service",
		"Description":               "Events as Server-Sent Events; push subscriptions are not supported",
		"Status":                    status("OK"),
		"ServiceEnabled":            true,
		"ServerSentEventUri":        sseURI,
		"EventFormatTypes":          []string{"Event"},
		"RegistryPrefixes":          []string{"Cmcd"},
		"EventTypesForSubscription": []string{"Alert", "StatusChange", "ResourceUpdated", "Other"},
		"Severities":                []string{"OK", "Warning", "Critical"},
		"SSEFilterPropertiesSupported": obj{"EventFormatType": false, "EventType": false, "MessageId": false,
			"MetricReportDefinition": false, "OriginResource": false, "RegistryPrefix": false,
			"ResourceType": false, "SubordinateResources": false},
		"SSEIncludeOriginOfConditionSupported": false,
		"Subscriptions":                        odataID(subscriptionsURI),
		"Oem": obj{"Cmcd": obj{"MaxStreams": h.maxStreams, "MaxStreamsPerUser": h.maxPerUser,
			"ReplayEvents": SSERing, "KeepAliveSeconds": int(h.keepAlive / time.Second)}},
	}, nil
}

// canSeeStream: own streams, or all with ConfigureManager.
func (c *ctx) canSeeStream(st *sseStream) bool {
	return st.user == c.account.Username || accounts.HasPrivilege(c.account.Role, accounts.PrivConfigureManager)
}

func (h *eventHub) list() []*sseStream {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*sseStream, 0, len(h.streams))
	for _, st := range h.streams {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i].id)
		b, _ := strconv.Atoi(out[j].id)
		return a < b
	})
	return out
}

func (s *Server) getSubscriptions(c *ctx) (any, error) {
	var members []any
	for _, st := range s.events.list() {
		if c.canSeeStream(st) {
			members = append(members, odataID(subscriptionsURI+"/"+st.id))
		}
	}
	return collection(subscriptionsURI, "#EventDestinationCollection.EventDestinationCollection",
		"Event Subscriptions (open SSE streams)", members), nil
}

func (c *ctx) stream() (*sseStream, error) {
	for _, st := range c.s.events.list() {
		if st.id == c.param("id") && c.canSeeStream(st) {
			return st, nil
		}
	}
	return nil, notFound("EventDestination", c.param("id"))
}

func (s *Server) getSubscription(c *ctx) (any, error) {
	st, err := c.stream()
	if err != nil {
		return nil, err
	}
	return obj{
		"@odata.id":        subscriptionsURI + "/" + st.id,
		"@odata.type":      "#EventDestination.v1_16_0.EventDestination",
		"Id":               st.id,
		"Name":             "SSE stream " + st.id,
		"Context":          "",
		"SubscriptionType": "SSE",
		"Protocol":         "Redfish",
		"EventFormatType":  "Event",
		"Status":           status("OK"),
		// The client's address is not a URI (the schema's format for
		// Destination), so it goes under Oem.
		"Oem": obj{"Cmcd": obj{"UserName": st.user, "ClientAddress": st.remote, "Opened": rfTime(st.created)}},
	}, nil
}

// deleteSubscription ends an SSE stream.
func (s *Server) deleteSubscription(c *ctx) error {
	st, err := c.stream()
	if err != nil {
		return err
	}
	s.events.remove(st)
	s.log.Info("redfish: event stream ended by DELETE", "id", st.id, "user", st.user, "by", c.account.Username)
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
