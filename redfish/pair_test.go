package redfish

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func pairOemOf(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	oem, _ := m["Oem"].(map[string]any)
	cm, _ := oem["Cmcd"].(map[string]any)
	p, ok := cm["Pair"].(map[string]any)
	if !ok {
		t.Fatalf("%v: no Oem.Cmcd.Pair", m["@odata.id"])
	}
	return p
}

func stateOf(m map[string]any) (string, any) {
	st := m["Status"].(map[string]any)
	return st["State"].(string), st["Health"]
}

// TestPairManagers: with a pair both modules' Managers are listed and
// schema-valid (Manager, ManagerCollection): this module's at the
// unchanged Managers/CMC (Enabled while active, StandbySpare while
// standby), the other module's at Managers/CMC-B, both EnclosureManager
// with a Failover Redundancy over the two and the pair's state under
// Oem.Cmcd.Pair. A peer not heard from is UnavailableOffline with its
// state null, and the redundancy Critical. Without a pair there is one
// Manager and no CMC-B.
func TestPairManagers(t *testing.T) {
	fp := NewFakePair("A", "B")
	took := time.Now().Add(-time.Minute).UTC()
	fp.Set(func(s *PairState) {
		s.FloatingAddress = "10.0.0.100/24"
		yes := true
		s.WitnessReachable = &yes
		s.LastTakeover = &PairTakeoverInfo{Time: took, Reason: "the pair formed at power-up", Work: 3 * time.Millisecond}
		s.LastVote = &PairVoteInfo{Time: took, Reason: "takeover", Converged: true}
	})
	r := newRig(t, rigOption{pair: fp})
	coll := r.get("/redfish/v1/Managers", r.reader())
	if got := coll["Members@odata.count"]; got != 2.0 {
		t.Fatalf("Managers: %v members\n%v", got, coll)
	}
	want := []string{managerURI, "/redfish/v1/Managers/CMC-B"}
	for i, m := range coll["Members"].([]any) {
		if id := m.(map[string]any)["@odata.id"]; id != want[i] {
			t.Fatalf("member %d: %v, want %s", i, id, want[i])
		}
	}
	self := r.get(managerURI, r.reader())
	peer := r.get("/redfish/v1/Managers/CMC-B", r.reader())
	for _, m := range []map[string]any{self, peer} {
		if m["ManagerType"] != "EnclosureManager" {
			t.Errorf("%v: ManagerType %v", m["@odata.id"], m["ManagerType"])
		}
		red := m["Redundancy"].([]any)[0].(map[string]any)
		if red["Mode"] != "Failover" || len(red["RedundancySet"].([]any)) != 2 {
			t.Errorf("%v: Redundancy %v", m["@odata.id"], red)
		}
		act := red["ActiveRedundancySet"].([]any)
		if len(act) != 1 || act[0].(map[string]any)["@odata.id"] != managerURI {
			t.Errorf("%v: ActiveRedundancySet %v", m["@odata.id"], act)
		}
		if h := red["Status"].(map[string]any)["Health"]; h != "OK" {
			t.Errorf("%v: redundancy health %v", m["@odata.id"], h)
		}
	}
	if s, h := stateOf(self); s != "Enabled" || h != "OK" {
		t.Errorf("self Status %s/%v", s, h)
	}
	if s, h := stateOf(peer); s != "StandbySpare" || h != "OK" {
		t.Errorf("peer Status %s/%v", s, h)
	}
	sp, pp := pairOemOf(t, self), pairOemOf(t, peer)
	for k, v := range map[string]any{"Module": "A", "Role": "Active", "Term": 2.0, "Leader": "A", "CommitIndex": 10.0,
		"AppliedIndex": 10.0, "InSync": true, "HoldsFloatingAddress": true, "WitnessReachable": true, "Witness": "W",
		"ReplicatedStateAgrees": true, "FloatingAddress": "10.0.0.100/24"} {
		if sp[k] != v {
			t.Errorf("self Oem.Cmcd.Pair.%s = %v, want %v", k, sp[k], v)
		}
	}
	if lt := sp["LastTakeover"].(map[string]any); lt["Reason"] != "the pair formed at power-up" || lt["Previous"] != nil {
		t.Errorf("LastTakeover %v", lt)
	}
	if lv := sp["LastVote"].(map[string]any); lv["FingerprintsAgree"] != true {
		t.Errorf("LastVote %v", lv)
	}
	for _, c := range []struct {
		v    PairVoteInfo
		want bool
	}{
		{PairVoteInfo{Time: took, Converged: true, Disagreed: []string{"B/backup"}}, true}, // synced and verified
		{PairVoteInfo{Time: took, Converged: false, Disagreed: []string{"B/backup"}}, false},
		{PairVoteInfo{Time: took, Converged: true, NoMajority: []string{"sel"}}, false},
	} {
		fp.Set(func(s *PairState) { v := c.v; s.LastVote = &v })
		if lv := pairOemOf(t, r.get(managerURI, r.reader()))["LastVote"].(map[string]any); lv["FingerprintsAgree"] != c.want {
			t.Errorf("vote %+v: FingerprintsAgree %v, want %v", c.v, lv["FingerprintsAgree"], c.want)
		}
	}
	if pp["Module"] != "B" || pp["Role"] != "Standby" || pp["StateKnown"] != true {
		t.Errorf("peer Oem.Cmcd.Pair %v", pp)
	}
	act := self["Actions"].(map[string]any)["#Manager.ForceFailover"].(map[string]any)
	if act["target"] != forceFailoverURI || act["NewManager@Redfish.AllowableValues"].([]any)[0] != "/redfish/v1/Managers/CMC-B" {
		t.Errorf("ForceFailover action %v", act)
	}

	// The peer goes silent: nothing about it is invented.
	fp.Set(func(s *PairState) { s.Peer = PairModule{ID: "B", LastHeard: took} })
	peer = r.get("/redfish/v1/Managers/CMC-B", r.reader())
	if s, h := stateOf(peer); s != "UnavailableOffline" || h != nil {
		t.Errorf("silent peer Status %s/%v", s, h)
	}
	pp = pairOemOf(t, peer)
	for _, k := range []string{"Role", "Term", "CommitIndex", "AppliedIndex", "InSync", "Fingerprint"} {
		if v, ok := pp[k]; !ok || v != nil {
			t.Errorf("silent peer Oem.Cmcd.Pair.%s = %v, want null", k, v)
		}
	}
	self = r.get(managerURI, r.reader())
	if h := self["Redundancy"].([]any)[0].(map[string]any)["Status"].(map[string]any)["Health"]; h != "Critical" {
		t.Errorf("redundancy health with a silent peer: %v", h)
	}
	if v, ok := pairOemOf(t, self)["ReplicatedStateAgrees"]; !ok || v != nil {
		t.Errorf("ReplicatedStateAgrees with a silent peer: %v", v)
	}
	expectError(t, r.do("GET", "/redfish/v1/Managers/CMC-C", r.reader(), ""), 404, "ResourceNotFound")

	// Without a pair: one Manager, as before.
	single := newRig(t)
	coll = single.get("/redfish/v1/Managers", single.reader())
	if coll["Members@odata.count"] != 1.0 {
		t.Fatalf("single CMC: %v", coll)
	}
	m := single.get(managerURI, single.reader())
	if _, ok := m["Redundancy"]; ok {
		t.Error("single CMC has a Redundancy")
	}
	expectError(t, single.do("GET", "/redfish/v1/Managers/CMC-B", single.reader(), ""), 404, "ResourceNotFound")
	expectError(t, single.do("POST", forceFailoverURI, single.admin(), `{"NewManager":{"@odata.id":"/redfish/v1/Managers/CMC-B"}}`),
		400, "ActionNotSupported")
}

// TestPairForceFailover: #Manager.ForceFailover needs ConfigureManager,
// names NewManager (a link or its URI), which must be the other module's
// Manager; it is refused (409) while the other module is behind or when
// this module is the standby. Accepted, it answers 200 and hands the
// role over after the answer: the Managers then show the roles flipped.
func TestPairForceFailover(t *testing.T) {
	fp := NewFakePair("A", "B")
	r := newRig(t, rigOption{pair: fp})
	const peer = `{"NewManager":{"@odata.id":"/redfish/v1/Managers/CMC-B"}}`
	expectError(t, r.do("POST", forceFailoverURI, r.reader(), peer), 403, "InsufficientPrivilege")
	expectError(t, r.do("POST", forceFailoverURI, r.operator(), peer), 403, "InsufficientPrivilege") // ConfigureComponents only
	expectError(t, r.do("POST", forceFailoverURI, r.admin(), `{}`), 400, "ActionParameterMissing")
	expectError(t, r.do("POST", forceFailoverURI, r.admin(), `{"NewManager":7}`), 400, "ActionParameterValueTypeError")
	expectError(t, r.do("POST", forceFailoverURI, r.admin(), `{"NewManager":{"@odata.id":"/redfish/v1/Managers/CMC"}}`),
		400, "ActionParameterValueNotInList")
	expectError(t, r.do("POST", forceFailoverURI, r.admin(), `{"NewManager":"/redfish/v1/Managers/CMC-C"}`),
		400, "ActionParameterValueNotInList")
	expectError(t, r.do("POST", forceFailoverURI, r.admin(), `{"NewManager":{"@odata.id":"/redfish/v1/Managers/CMC-B"},"Force":true}`),
		400, "ActionParameterUnknown")
	expectError(t, r.do("GET", forceFailoverURI, r.admin(), ""), 405, "OperationNotAllowed")

	fp.Set(func(s *PairState) { s.Peer.AppliedIndex, s.Peer.InSync = 7, false })
	x := r.do("POST", forceFailoverURI, r.admin(), peer)
	expectError(t, x, 409, "ActionParameterValueConflict")
	if !strings.Contains(string(x.body), "not in sync") {
		t.Errorf("refusal does not say why: %s", x.body)
	}
	fp.Set(func(s *PairState) { s.Peer.AppliedIndex, s.Peer.InSync = 10, true })
	if h := fp.Handovers(); len(h) != 0 {
		t.Fatalf("refused requests handed over: %v", h)
	}

	x = r.do("POST", forceFailoverURI, r.admin(), `{"NewManager":"/redfish/v1/Managers/CMC-B"}`) // gofish sends the URI
	if x.StatusCode != 200 {
		t.Fatalf("ForceFailover: %s\n%s", x.Status, x.body)
	}
	if !strings.Contains(string(x.body), "Cmcd.1.0.PairHandover") {
		t.Errorf("answer does not announce the hand-over: %s", x.body)
	}
	select {
	case <-fp.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the hand-over did not run")
	}
	if h := fp.Handovers(); len(h) != 1 || h[0] != "admin -> B" {
		t.Fatalf("hand-overs %v", h)
	}
	if s, _ := stateOf(r.get(managerURI, r.reader())); s != "StandbySpare" {
		t.Errorf("after the hand-over this module is %s", s)
	}
	if s, _ := stateOf(r.get("/redfish/v1/Managers/CMC-B", r.reader())); s != "Enabled" {
		t.Errorf("after the hand-over the other module is %s", s)
	}
	// Now standby: refused.
	expectError(t, r.do("POST", forceFailoverURI, r.admin(), peer), 409, "ResourceInStandby")
}

// bufferingMiddleware answers like the pair's write path: the inner
// handler writes into a recorder, copied out when it returns.
func bufferingMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

// handoverOrder is a PairView whose hand-over records what the client's
// writer held when it ran.
type handoverOrder struct {
	*FakePair
	out *httptest.ResponseRecorder
	saw chan string
}

func (h handoverOrder) PrepareFailover(peer, by string) (func(), error) {
	run, err := h.FakePair.PrepareFailover(peer, by)
	if err != nil {
		return nil, err
	}
	return func() {
		h.saw <- http.StatusText(h.out.Code) + "/" + map[bool]string{true: "flushed", false: "buffered"}[h.out.Flushed]
		run()
	}, nil
}

// TestForceFailoverAfterAnswer: behind a middleware that buffers the
// answer (the pair's write path), AfterResponse runs the hand-over only
// after the answer reached the client's writer and was flushed; the
// service alone does the same.
func TestForceFailoverAfterAnswer(t *testing.T) {
	r := newRig(t)
	for _, wrap := range []bool{true, false} {
		out := httptest.NewRecorder()
		view := handoverOrder{FakePair: NewFakePair("A", "B"), out: out, saw: make(chan string, 1)}
		srv := New(Options{Accounts: r.acct, Engine: r.eng, Pair: view})
		var h http.Handler = srv
		if wrap {
			h = AfterResponse(bufferingMiddleware(srv))
		}
		req := httptest.NewRequest("POST", forceFailoverURI, strings.NewReader(`{"NewManager":{"@odata.id":"/redfish/v1/Managers/CMC-B"}}`))
		req.SetBasicAuth("admin", r.adminPW)
		h.ServeHTTP(out, req)
		select {
		case got := <-view.saw:
			if got != "OK/flushed" {
				t.Errorf("wrapped %v: the hand-over ran with the answer %s", wrap, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("wrapped %v: no hand-over (%d %s)", wrap, out.Code, out.Body)
		}
		srv.Close()
	}
}

// TestPairEvents: the pair's event log entries reach the event stream as
// Cmcd registry messages with their arguments (takeover, fence, standby,
// fingerprint vote), a text that does not fit its message as CMCEvent;
// the served registry lists them and is a valid MessageRegistry.
func TestPairEvents(t *testing.T) {
	r := newEventRig(t)
	sse, res := r.openSSE(r.admin())
	if sse == nil {
		t.Fatalf("SSE: %s", res.Status)
	}
	defer res.Body.Close()
	logged := []struct{ kind, sev, text string }{
		{PairTakeover, "Warning", PairEventText(PairTakeover, "B", "A", "module A did not answer (silent, killed or cut off)")},
		{PairPeerFenced, "Critical", PairEventText(PairPeerFenced, "B", "A", "it still answered for the floating address")},
		{PairBecameStandby, "OK", PairEventText(PairBecameStandby, "A", "handed the active role to module B")},
		{"PairVote", "OK", "fingerprint vote (takeover): every replica agrees"},
		{PairTakeover, "Warning", "free text that is not the registry message"},
	}
	for _, l := range logged {
		r.eng.LogEvent(l.kind, l.sev, l.text)
	}
	want := []struct {
		id   string
		args []string
	}{
		{"PairTakeover", []string{"B", "A", "module A did not answer (silent, killed or cut off)"}},
		{"PairPeerFenced", []string{"B", "A", "it still answered for the floating address"}},
		{"PairBecameStandby", []string{"A", "handed the active role to module B"}},
		{"PairFingerprintVote", []string{"fingerprint vote (takeover): every replica agrees"}},
		{"CMCEvent", []string{"free text that is not the registry message"}}, // no arguments to recover: the generic message
	}
	for i, w := range want {
		rec := checkEvent(t, sse.next(t, 10*time.Second))
		if rec["MessageId"] != cmcdRegistry+"."+w.id {
			t.Fatalf("event %d: %v, want %s", i, rec["MessageId"], w.id)
		}
		b, _ := json.Marshal(rec["MessageArgs"])
		wb, _ := json.Marshal(w.args)
		if string(b) != string(wb) {
			t.Errorf("%s: args %s, want %s", w.id, b, wb)
		}
		if rec["Message"] != logged[i].text {
			t.Errorf("%s: Message %q, log text %q", w.id, rec["Message"], logged[i].text)
		}
		if rec["LogEntry"] == nil {
			t.Errorf("%s: no LogEntry link", w.id)
		}
	}
	reg := r.get(registriesURI+"/"+cmcdRegistry+"/Registry", r.reader())
	msgs := reg["Messages"].(map[string]any)
	for _, k := range []string{PairBecameActive, PairTakeover, PairBecameStandby, PairHandover, PairHandoverFailed, PairPeerFenced, "PairFingerprintVote"} {
		if _, ok := msgs[k]; !ok {
			t.Errorf("registry lacks %s", k)
		}
	}
}
