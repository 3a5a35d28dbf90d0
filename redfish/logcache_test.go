package redfish

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"cmcd/board"
)

// TestLogCache: the cached SEL collection is byte-for-byte what the
// handler builds, revalidates (304) with its ETag, and follows a new SEL
// entry and the fault log at once.
func TestLogCache(t *testing.T) {
	r := newRig(t)
	const uri = "/redfish/v1/Chassis/Node1/LogServices/SEL/Entries"
	uncached := func() []byte {
		t.Helper()
		rr := httptest.NewRecorder()
		req := httptest.NewRequest("GET", uri, nil)
		c := &ctx{s: r.srv, w: rr, r: req, params: map[string]string{"ch": "Node1", "log": "SEL"}}
		v, err := r.srv.getNodeLogEntries(c)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		return b
	}
	first := r.do("GET", uri, r.admin(), "")
	validatePayload(t, first, first.json(t))
	second := r.do("GET", uri, r.admin(), "")
	if !bytes.Equal(first.body, second.body) || first.Header.Get("ETag") != second.Header.Get("ETag") {
		t.Fatal("two GETs of an unchanged SEL differ")
	}
	if !bytes.Equal(second.body, uncached()) || second.Header.Get("ETag") != etagOf(second.body) {
		t.Fatal("the cached SEL payload or its ETag differs from the handler's")
	}
	if x := r.do("GET", uri, r.admin(), "", "If-None-Match", first.Header.Get("ETag")); x.StatusCode != 304 {
		t.Fatalf("If-None-Match on the cached SEL: %s", x.Status)
	}
	n := int(first.json(t)["Members@odata.count"].(float64))
	if err := r.sim.InjectSEL(1, board.SELEntry{SensorType: 1, SensorNumber: 9, EventType: 1,
		Severity: board.SeverityWarning, Message: "cache test entry"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Collector().Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	third := r.get(uri, r.admin())
	if int(third["Members@odata.count"].(float64)) != n+1 {
		t.Fatalf("after a new SEL entry the collection has %v members, want %d", third["Members@odata.count"], n+1)
	}
	if x := r.do("GET", uri, r.admin(), "", "If-None-Match", first.Header.Get("ETag")); x.StatusCode != 200 {
		t.Fatalf("stale ETag revalidated: %s", x.Status)
	}
	// The fault log has its own entry; unknown logs and nodes are 404.
	r.get("/redfish/v1/Chassis/Node1/LogServices/FaultLog/Entries", r.admin())
	expectError(t, r.do("GET", "/redfish/v1/Chassis/Node9/LogServices/SEL/Entries", r.admin(), ""), 404, "ResourceNotFound")
	expectError(t, r.do("GET", "/redfish/v1/Chassis/Node1/LogServices/Nope/Entries", r.admin(), ""), 404, "ResourceNotFound")
}

// TestChassisCache: a cached Chassis answer stays what getChassis builds
// across a change of the node records.
func TestChassisCache(t *testing.T) {
	r := newRig(t)
	const uri = "/redfish/v1/Chassis/Node1"
	built := func() []byte {
		t.Helper()
		c := &ctx{s: r.srv, w: httptest.NewRecorder(), r: httptest.NewRequest("GET", uri, nil), params: map[string]string{"ch": "Node1"}}
		v, err := r.srv.getChassis(c)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		return b
	}
	a := r.do("GET", uri, r.admin(), "")
	if b := r.do("GET", uri, r.admin(), ""); !bytes.Equal(a.body, b.body) || !bytes.Equal(b.body, built()) {
		t.Fatal("cached Chassis differs from the handler's")
	}
	if err := r.sim.SetPower(context.Background(), 1, board.ActionOff); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Collector().Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := r.do("GET", uri, r.admin(), "")
	validatePayload(t, c, c.json(t))
	if !bytes.Equal(c.body, built()) {
		t.Fatalf("after the node changed the cached Chassis is stale:\n%s\n%s", c.body, built())
	}
	if bytes.Equal(a.body, c.body) {
		t.Fatal("powering the node off did not change the Chassis (the test proves nothing)")
	}
}
