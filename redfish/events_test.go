package redfish

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stmcginnis/gofish"
	gfschemas "github.com/stmcginnis/gofish/schemas"

	"cmcd/internal/rfschema"
)

// newEventRig is newRig with a server whose keep-alive and health polling
// are fast.
func newEventRig(t *testing.T) *rig {
	t.Helper()
	return newEventRigTree(t, false)
}

// newEventRigTree is newEventRig; withBoard gives the server the
// simulated board (its enclosure temperatures, node actions).
func newEventRigTree(t *testing.T, withBoard bool) *rig {
	t.Helper()
	r := newRig(t)
	r.srv.Close()
	r.ts.Close()
	var tree TreeOptions
	if withBoard {
		tree.Board = r.sim.Board()
	}
	r.srv = New(Options{Accounts: r.acct, Engine: r.eng, Now: r.clock, SessionTimeout: 10 * time.Minute,
		SSEKeepAlive: 100 * time.Millisecond, SensorPoll: 20 * time.Millisecond, Tree: tree})
	r.ts = httptest.NewServer(r.srv)
	t.Cleanup(r.ts.Close)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// sseMsg is one SSE event as a client sees it.
type sseMsg struct {
	id   string
	data []byte
}

// sseReader parses a text/event-stream body into events (comments are
// counted, not delivered).
type sseReader struct {
	body     io.ReadCloser
	events   chan sseMsg
	comments chan struct{}
	done     chan struct{} // closed at EOF
}

func readSSE(body io.ReadCloser) *sseReader {
	s := &sseReader{body: body, events: make(chan sseMsg, 4096), comments: make(chan struct{}, 4096), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var cur sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.data != nil {
					s.events <- cur
				}
				cur = sseMsg{}
			case strings.HasPrefix(line, ":"):
				select {
				case s.comments <- struct{}{}:
				default:
				}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "data: "):
				cur.data = append(cur.data, line[6:]...)
			}
		}
	}()
	return s
}

// next returns the next event or fails after timeout.
func (s *sseReader) next(t *testing.T, timeout time.Duration) sseMsg {
	t.Helper()
	select {
	case m := <-s.events:
		return m
	case <-s.done:
		select {
		case m := <-s.events:
			return m
		default:
		}
		t.Fatal("event stream ended")
	case <-time.After(timeout):
		t.Fatal("no event within", timeout)
	}
	return sseMsg{}
}

// ended reports whether the stream ends within timeout.
func (s *sseReader) ended(timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case <-s.done:
			return true
		case <-s.events:
		case <-deadline:
			return false
		}
	}
}

// openSSE opens the event stream with a as credentials and reads it.
func (r *rig) openSSE(a auth, hdr ...string) (*sseReader, *http.Response) {
	r.t.Helper()
	res := r.openSSERaw(a, hdr...)
	if res.StatusCode != 200 {
		return nil, res
	}
	return readSSE(res.Body), res
}

// openSSERaw opens the event stream and leaves the body unread.
func (r *rig) openSSERaw(a auth, hdr ...string) *http.Response {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", r.ts.URL+sseURI, nil)
	if a.token != "" {
		req.Header.Set("X-Auth-Token", a.token)
	} else if a.user != "" {
		req.SetBasicAuth(a.user, a.pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { cancel(); res.Body.Close() })
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		cancel()
		return &http.Response{StatusCode: res.StatusCode, Status: res.Status, Header: res.Header,
			Body: io.NopCloser(strings.NewReader(string(b))), Request: req}
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		r.t.Fatalf("SSE Content-Type %q", ct)
	}
	return res
}

// eventRecord validates an SSE data payload against the Event schema and
// the Cmcd registry and returns its one record.
func checkEvent(t *testing.T, m sseMsg) map[string]any {
	t.Helper()
	if err := schemas(t).Validate(m.data); err != nil {
		t.Fatalf("event payload: %v\n%s", err, m.data)
	}
	var ev struct {
		ID     string `json:"Id"`
		Events []map[string]any
	}
	if err := json.Unmarshal(m.data, &ev); err != nil || len(ev.Events) != 1 {
		t.Fatalf("event payload %s: %v", m.data, err)
	}
	rec := ev.Events[0]
	if m.id != "" && (ev.ID != m.id || rec["EventId"] != m.id) {
		t.Fatalf("SSE id %q, Event Id %q, EventId %v", m.id, ev.ID, rec["EventId"])
	}
	id, _ := rec["MessageId"].(string)
	key, ok := strings.CutPrefix(id, cmcdRegistry+".")
	msg, known := cmcdMessages[key]
	if !ok || !known {
		t.Fatalf("MessageId %q is not in the Cmcd registry", id)
	}
	args := rec["MessageArgs"].([]any)
	if len(args) != len(msg.args) {
		t.Fatalf("%s: %d args, registry says %d", id, len(args), len(msg.args))
	}
	for _, k := range []string{"Message", "EventTimestamp", "OriginOfCondition", "Severity"} {
		if rec[k] == nil {
			t.Fatalf("%s: no %s", id, k)
		}
	}
	return rec
}

// TestGofishEventStream: gofish finds the stream through EventService,
// reads it with its session, PATCHes the sync selection (with If-Match) and
// runs SyncNow; "configuration changed" and "round committed" arrive as
// schema-valid Events whose messages are in the served registry.
func TestGofishEventStream(t *testing.T) {
	r := newEventRig(t)
	c, err := gofish.Connect(gofish.ClientConfig{Endpoint: r.ts.URL, Username: "admin", Password: r.adminPW})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	es, err := c.Service.EventService()
	if err != nil {
		t.Fatal(err)
	}
	if !es.ServiceEnabled || es.ServerSentEventURI != sseURI {
		t.Fatalf("gofish EventService: enabled %v, SSE URI %q", es.ServiceEnabled, es.ServerSentEventURI)
	}
	res, err := c.Get(es.ServerSentEventURI)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	stream := readSSE(res.Body)

	// The stream is listed as an SSE subscription.
	subs, err := es.Subscriptions()
	if err != nil || len(subs) != 1 || subs[0].SubscriptionType != gfschemas.SSESubscriptionType {
		t.Fatalf("subscriptions: %v %v", subs, err)
	}

	mgrs, err := c.Service.Managers()
	if err != nil || len(mgrs) != 1 {
		t.Fatal(mgrs, err)
	}
	patch := map[string]any{"Oem": map[string]any{"Cmcd": map[string]any{"Sync": map[string]any{
		"Configuration": map[string]any{"category.fan": false}}}}}
	if err := mgrs[0].Patch(mgrs[0].ODataID, patch); err != nil {
		t.Fatalf("gofish PATCH of the sync selection: %v", err)
	}
	resp, err := c.Post(managerURI+"/Actions/Oem/Cmcd.SyncNow", map[string]any{})
	if err != nil {
		t.Fatalf("SyncNow: %v", err)
	}
	resp.Body.Close()

	want := map[string]bool{"Cmcd.1.0.ConfigurationChanged": false, "Cmcd.1.0.RoundCommitted": false}
	for missing := 2; missing > 0; {
		m := stream.next(t, 30*time.Second)
		rec := checkEvent(t, m)
		var ev gfschemas.Event
		if err := json.Unmarshal(m.data, &ev); err != nil || len(ev.Events) != 1 {
			t.Fatalf("gofish cannot decode the Event: %v", err)
		}
		id := ev.Events[0].MessageID
		if done, ok := want[id]; ok && !done {
			want[id] = true
			missing--
			t.Logf("%s: %s", id, ev.Events[0].Message)
			if id == "Cmcd.1.0.ConfigurationChanged" && !strings.Contains(ev.Events[0].Message, "category.fan") {
				t.Errorf("configuration event does not name the option: %s", ev.Events[0].Message)
			}
			if rec["LogEntry"] == nil {
				t.Errorf("%s has no LogEntry link", id)
			}
		}
	}
	// The registry the events name is served, and validates.
	reg := r.get(registriesURI+"/"+cmcdRegistry+"/Registry", r.admin())
	for id := range want {
		if reg["Messages"].(map[string]any)[strings.TrimPrefix(id, cmcdRegistry+".")] == nil {
			t.Errorf("%s not in the served registry", id)
		}
	}
}

func TestEventServiceDocs(t *testing.T) {
	r := newEventRig(t)
	root := r.get("/redfish/v1/", auth{})
	if root["EventService"] == nil || root["Registries"] == nil {
		t.Fatal("service root lacks EventService or Registries")
	}
	es := r.get(eventServiceURI, r.reader())
	if es["ServerSentEventUri"] != sseURI {
		t.Fatalf("EventService %v", es)
	}
	files := r.get(registriesURI, r.reader())
	for _, m := range files["Members"].([]any) {
		f := r.get(m.(map[string]any)["@odata.id"].(string), r.reader())
		for _, loc := range f["Location"].([]any) {
			if u, ok := loc.(map[string]any)["Uri"].(string); ok {
				r.get(u, r.reader())
			}
		}
	}
	r.get(subscriptionsURI, r.reader())
	// The stream is not open to everyone, and $filter is refused as
	// unsupported (SSEFilterPropertiesSupported says so).
	expectError(t, r.do("GET", sseURI, auth{}, ""), 401, "NoValidSession")
	expectError(t, r.do("GET", sseURI+"?$filter=MessageId%20eq%20'Cmcd.1.0.Alarm'", r.admin(), ""), 501, "QueryNotSupported")
	expectError(t, r.do("POST", subscriptionsURI, r.admin(), `{"Destination":"http://127.0.0.1:9/","Protocol":"Redfish"}`), 405, "OperationNotAllowed")
	if x := r.do("HEAD", sseURI, r.reader(), ""); x.StatusCode != 200 || x.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD SSE: %s %v", x.Status, x.Header)
	}
}

// TestSSEResume: ids, Last-Event-ID replay from the ring, the EventsLost
// marker for ids no longer held, keep-alive comments.
func TestSSEResume(t *testing.T) {
	r := newEventRig(t)
	s1, _ := r.openSSE(r.admin())
	for i := 1; i <= 3; i++ {
		r.eng.Alarm("Warning", fmt.Sprintf("test alarm %d", i))
	}
	var ids []string
	for i := 1; i <= 3; i++ {
		m := s1.next(t, 10*time.Second)
		rec := checkEvent(t, m)
		if rec["MessageId"] != "Cmcd.1.0.Alarm" || rec["MessageArgs"].([]any)[0] != fmt.Sprintf("test alarm %d", i) {
			t.Fatalf("event %d: %v", i, rec)
		}
		ids = append(ids, m.id)
	}
	select {
	case <-s1.comments:
	case <-time.After(10 * time.Second):
		t.Fatal("no keep-alive comment")
	}
	s1.body.Close()
	r.eng.Alarm("Critical", "test alarm 4")
	r.eng.Alarm("OK", "test alarm 5")
	s2, _ := r.openSSE(r.admin(), "Last-Event-ID", ids[1])
	for i := 3; i <= 5; i++ {
		rec := checkEvent(t, s2.next(t, 10*time.Second))
		if rec["MessageArgs"].([]any)[0] != fmt.Sprintf("test alarm %d", i) {
			t.Fatalf("resumed event %d: %v", i, rec)
		}
	}
	// Overwrite the ring: a resume from the first id gets the marker, then
	// every event held.
	for i := 0; i < SSERing; i++ {
		r.srv.events.publish(record{msgID: "Alarm", eventType: "Alert", severity: "OK", origin: managerURI, args: []string{"filler"}})
	}
	s3, _ := r.openSSE(r.admin(), "Last-Event-ID", ids[0])
	m := s3.next(t, 10*time.Second)
	if m.id != "" || checkEvent(t, m)["MessageId"] != "Cmcd.1.0.EventsLost" {
		t.Fatalf("first event after an overwritten Last-Event-ID: %q %s", m.id, m.data)
	}
	for i := 0; i < SSERing; i++ {
		if m := s3.next(t, 10*time.Second); m.id == "" {
			t.Fatalf("replayed event %d has no id", i)
		}
	}
	// An id from before a restart (smaller than this start's base) too.
	s4, _ := r.openSSE(r.admin(), "Last-Event-ID", "17")
	if rec := checkEvent(t, s4.next(t, 10*time.Second)); rec["MessageId"] != "Cmcd.1.0.EventsLost" {
		t.Fatalf("stale Last-Event-ID: %v", rec)
	}
}

// TestSSESlowClientAndLimits: a client that stops reading is ended without
// ever holding up publication; streams are limited per user and in total;
// subscriptions list and end streams; logout ends a session's stream.
func TestSSESlowClientAndLimits(t *testing.T) {
	old := sseWriteTimeout
	sseWriteTimeout = 500 * time.Millisecond
	defer func() { sseWriteTimeout = old }()
	r := newEventRig(t)
	r.openSSERaw(r.operator()) // never read
	start := time.Now()
	big := strings.Repeat("x", 4000)
	for i := 0; i < 5000; i++ {
		r.srv.events.publish(record{msgID: "Alarm", eventType: "Alert", severity: "OK", origin: managerURI, args: []string{big}})
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("publishing 5000 events to a stalled stream took %s", d)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(r.srv.events.list()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled stream was not ended")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Per-user limit, then the total limit is another user's to use.
	var mine []*sseReader
	for i := 0; i < SSEMaxStreamsPerUser; i++ {
		s, _ := r.openSSE(r.reader())
		mine = append(mine, s)
	}
	_, res := r.openSSE(r.reader())
	if res.StatusCode != 503 {
		t.Fatalf("stream %d of one user: %s", SSEMaxStreamsPerUser+1, res.Status)
	}
	b, _ := io.ReadAll(res.Body)
	expectError(t, resp{res, b}, 503, "EventSubscriptionLimitExceeded")
	if err := schemas(t).ValidateAgainst(b, rfschema.ErrorSchema); err != nil {
		t.Error(err)
	}
	tok, loc := r.login("admin", r.adminPW)
	adm, _ := r.openSSE(auth{token: tok})

	// Subscriptions: the reader sees its own streams, the admin all.
	if n := r.get(subscriptionsURI, r.reader())["Members@odata.count"]; n != float64(SSEMaxStreamsPerUser) {
		t.Errorf("reader sees %v subscriptions", n)
	}
	all := r.get(subscriptionsURI, r.admin())["Members"].([]any)
	if len(all) != SSEMaxStreamsPerUser+1 {
		t.Fatalf("admin sees %d subscriptions", len(all))
	}
	var adminSub string
	for _, m := range all {
		uri := m.(map[string]any)["@odata.id"].(string)
		if d := r.get(uri, r.admin()); d["Oem"].(map[string]any)["Cmcd"].(map[string]any)["UserName"] == "admin" {
			adminSub = uri
		}
	}
	expectError(t, r.do("DELETE", adminSub, r.reader(), ""), 404, "ResourceNotFound")
	first := r.get(subscriptionsURI, r.reader())["Members"].([]any)[0].(map[string]any)["@odata.id"].(string)
	if x := r.do("DELETE", first, r.reader(), ""); x.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE own subscription: %s %s", x.Status, x.body)
	}
	ended := 0
	for _, s := range mine {
		if s.ended(200 * time.Millisecond) {
			ended++
		}
	}
	if ended != 1 {
		t.Errorf("%d streams ended after one DELETE", ended)
	}
	// Logout ends the admin's stream (at the next keep-alive check).
	if x := r.do("DELETE", loc, auth{token: tok}, ""); x.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %s", x.Status)
	}
	if !adm.ended(10 * time.Second) {
		t.Error("the stream of a closed session stays open")
	}
}

// TestSensorHealthEvents: a PSU and a fan failing and recovering in the
// simulated board reach the stream as SensorHealthChanged events naming
// the component.
func TestSensorHealthEvents(t *testing.T) {
	r := newEventRig(t)
	select { // the watcher has taken its first look (the baseline)
	case <-r.srv.events.healthReady:
	case <-time.After(10 * time.Second):
		t.Fatal("health watcher did not start")
	}
	s, _ := r.openSSE(r.reader())
	collect := func() {
		if _, err := r.eng.Collector().Collect(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(origin, sev string) {
		t.Helper()
		for {
			rec := checkEvent(t, s.next(t, 10*time.Second))
			if rec["MessageId"] != "Cmcd.1.0.SensorHealthChanged" {
				continue
			}
			if rec["OriginOfCondition"].(map[string]any)["@odata.id"] != origin || rec["MessageSeverity"] != sev {
				t.Fatalf("health event %v, want %s %s", rec, origin, sev)
			}
			t.Log(rec["Message"])
			return
		}
	}
	r.sim.SetPSUFailed(1, true)
	collect()
	expect(chassisURI+"/Enclosure/PowerSubsystem/PowerSupplies/1", "Critical")
	r.sim.SetPSUFailed(1, false)
	r.sim.SetFanFailed(2, true)
	collect()
	expect2 := map[string]string{}
	for len(expect2) < 2 {
		rec := checkEvent(t, s.next(t, 10*time.Second))
		if rec["MessageId"] == "Cmcd.1.0.SensorHealthChanged" {
			expect2[rec["OriginOfCondition"].(map[string]any)["@odata.id"].(string)] = rec["MessageSeverity"].(string)
		}
	}
	if expect2[chassisURI+"/Enclosure/PowerSubsystem/PowerSupplies/1"] != "OK" || expect2[chassisURI+"/Enclosure/ThermalSubsystem/Fans/2"] != "Critical" {
		t.Fatalf("health events %v", expect2)
	}
}

// TestTemperatureHealthEvents: an enclosure temperature sensor crossing
// the board's thresholds (the simulated inlet pinned above its critical
// 45 °C, then released) reaches the stream as SensorHealthChanged naming
// the sensor, without any collection pass: temperatures are read live.
func TestTemperatureHealthEvents(t *testing.T) {
	r := newEventRigTree(t, true)
	select {
	case <-r.srv.events.healthReady:
	case <-time.After(10 * time.Second):
		t.Fatal("health watcher did not start")
	}
	s, _ := r.openSSE(r.reader())
	expect := func(sev string) {
		t.Helper()
		for {
			rec := checkEvent(t, s.next(t, 10*time.Second))
			if rec["MessageId"] != "Cmcd.1.0.SensorHealthChanged" {
				continue
			}
			if rec["OriginOfCondition"].(map[string]any)["@odata.id"] != chassisURI+"/Enclosure/Sensors/InletTemp" || rec["MessageSeverity"] != sev {
				t.Fatalf("health event %v, want InletTemp %s", rec, sev)
			}
			t.Log(rec["Message"])
			return
		}
	}
	r.sim.SetTemperature(1, 50)
	expect("Critical")
	if h := r.get("/redfish/v1/Chassis/Enclosure/Sensors/InletTemp", r.admin())["Status"].(map[string]any)["Health"]; h != "Critical" {
		t.Errorf("InletTemp at 50 °C: health %v", h)
	}
	r.sim.SetTemperature(1, math.NaN())
	expect("OK")
}
