package redfish

import (
	"context"
	"fmt"
	"testing"

	"cmcd/board"
)

// TestNodeClearLog clears a node's SEL and fault log through
// LogService.ClearLog: the node's BMC (the simulated board) is cleared,
// the store follows, and the next GET of Entries is empty; other nodes
// keep theirs; ReadOnly users, stale ETags and unknown parameters change
// nothing.
func TestNodeClearLog(t *testing.T) {
	r := newRig(t)
	a := r.admin()
	for slot := 1; slot <= 2; slot++ {
		for i := 0; i < 2; i++ {
			if err := r.sim.InjectFault(slot, board.Fault{Component: "DIMM_A1", Code: "0x0042", Severity: board.SeverityWarning,
				Message: fmt.Sprintf("test fault %d", i), Active: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := r.eng.Collector().Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	count := func(p string) int {
		return int(r.get(p, a)["Members@odata.count"].(float64))
	}
	const sel1 = "/redfish/v1/Chassis/Node1/LogServices/SEL"
	const flt1 = "/redfish/v1/Chassis/Node1/LogServices/FaultLog"
	if count(sel1+"/Entries") < 3 || count(flt1+"/Entries") < 2 {
		t.Fatalf("Node1 logs not filled: %d %d", count(sel1+"/Entries"), count(flt1+"/Entries"))
	}
	svc := r.get(sel1, a)
	act := svc["Actions"].(map[string]any)["#LogService.ClearLog"].(map[string]any)
	if act["target"] != sel1+"/Actions/LogService.ClearLog" {
		t.Fatalf("ClearLog not advertised: %v", svc["Actions"])
	}
	target := act["target"].(string)
	n2 := count("/redfish/v1/Chassis/Node2/LogServices/SEL/Entries")

	// Refusals leave every entry in place.
	expectError(t, r.do("POST", target, r.reader(), "{}"), 403, "InsufficientPrivilege")
	expectError(t, r.do("POST", target, auth{}, "{}"), 401, "NoValidSession")
	expectError(t, r.do("POST", target, a, `{"LogEntriesETag":"\"stale\""}`), 428, "PreconditionFailed")
	expectError(t, r.do("POST", target, a, `{"Everything":true}`), 400, "ActionParameterUnknown")
	expectError(t, r.do("POST", target, a, `{"LogEntriesETag":7}`), 400, "ActionParameterValueTypeError")
	expectError(t, r.do("POST", target, a, `{`), 400, "MalformedJSON")
	expectError(t, r.do("GET", target, a, ""), 405, "OperationNotAllowed")
	expectError(t, r.do("POST", "/redfish/v1/Chassis/Enclosure/LogServices/SEL/Actions/LogService.ClearLog", a, "{}"), 404, "ResourceNotFound")
	expectError(t, r.do("POST", "/redfish/v1/Chassis/Node1/LogServices/Other/Actions/LogService.ClearLog", a, "{}"), 404, "ResourceNotFound")
	if got, _ := r.sim.SEL(context.Background(), 1); len(got) < 3 || count(sel1+"/Entries") < 3 {
		t.Fatalf("a refused ClearLog cleared the SEL (%d on the board)", len(got))
	}

	// The Operator clears with the current ETag of Entries.
	etag := r.do("GET", sel1+"/Entries", a, "").Header.Get("ETag")
	x := r.do("POST", target, r.operator(), fmt.Sprintf(`{"LogEntriesETag":%q}`, etag))
	if x.StatusCode != 200 {
		t.Fatalf("ClearLog: %s %s", x.Status, x.body)
	}
	if got, _ := r.sim.SEL(context.Background(), 1); len(got) != 0 {
		t.Errorf("board SEL of node 1 holds %d entries after ClearLog", len(got))
	}
	if got, _ := r.eng.Store().SEL(1); len(got) != 0 {
		t.Errorf("stored SEL of node 1 holds %d entries after ClearLog", len(got))
	}
	if n := count(sel1 + "/Entries"); n != 0 {
		t.Errorf("GET after ClearLog: %d SEL entries", n)
	}
	if n := count("/redfish/v1/Chassis/Node2/LogServices/SEL/Entries"); n != n2 {
		t.Errorf("Node2 SEL went from %d to %d entries", n2, n)
	}
	if n := count(flt1 + "/Entries"); n < 2 {
		t.Errorf("clearing the SEL cleared the fault log too (%d left)", n)
	}

	// The fault log, without a body (as redfishtool sends it).
	if x := r.do("POST", flt1+"/Actions/LogService.ClearLog", a, ""); x.StatusCode != 200 {
		t.Fatalf("ClearLog FaultLog: %s %s", x.Status, x.body)
	}
	if n := count(flt1 + "/Entries"); n != 0 {
		t.Errorf("GET after ClearLog: %d faults", n)
	}
	if n := count("/redfish/v1/Chassis/Node2/LogServices/FaultLog/Entries"); n < 2 {
		t.Errorf("Node2 faults lost: %d", n)
	}
	// New events after the clear arrive as usual.
	if err := r.sim.InjectSEL(1, board.SELEntry{Severity: board.SeverityOK, Message: "after clear"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Collector().Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := r.get(sel1+"/Entries", a)
	if e["Members@odata.count"] != 1.0 || e["Members"].([]any)[0].(map[string]any)["Message"] != "after clear" {
		t.Errorf("after a new event: %v", e["Members"])
	}

	// A node whose BMC does not answer: 503, its stored log kept.
	r.sim.SetNodeReachable(2, false)
	expectError(t, r.do("POST", "/redfish/v1/Chassis/Node2/LogServices/SEL/Actions/LogService.ClearLog", a, ""), 503, "OperationFailed")
	if n := count("/redfish/v1/Chassis/Node2/LogServices/SEL/Entries"); n != n2 {
		t.Errorf("Node2 SEL after a failed clear: %d, want %d", n, n2)
	}
}

// TestChassisReset drives a node's power through Chassis.Reset.
func TestChassisReset(t *testing.T) {
	r := newRig(t)
	a := r.admin()
	node := r.get("/redfish/v1/Chassis/Node1", a)
	act := node["Actions"].(map[string]any)["#Chassis.Reset"].(map[string]any)
	target := act["target"].(string)
	if target != "/redfish/v1/Chassis/Node1/Actions/Chassis.Reset" ||
		fmt.Sprint(act["ResetType@Redfish.AllowableValues"]) != "[On ForceOff GracefulShutdown PowerCycle]" {
		t.Fatalf("Reset action: %v", act)
	}
	if enc := r.get("/redfish/v1/Chassis/Enclosure", a); enc["Actions"] != nil {
		t.Errorf("enclosure offers %v", enc["Actions"])
	}
	power := func(slot int) board.PowerState {
		n, err := r.sim.Node(context.Background(), slot)
		if err != nil {
			t.Fatal(err)
		}
		return n.Power
	}
	expectError(t, r.do("POST", target, r.reader(), `{"ResetType":"ForceOff"}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("POST", target, a, `{"ResetType":"Explode"}`), 400, "ActionParameterValueNotInList")
	expectError(t, r.do("POST", target, a, `{"ResetType":"ForceRestart"}`), 400, "ActionParameterValueNotInList")
	expectError(t, r.do("POST", target, a, `{"ResetType":1}`), 400, "ActionParameterValueTypeError")
	expectError(t, r.do("POST", target, a, `{}`), 400, "ActionParameterMissing")
	expectError(t, r.do("POST", target, a, ``), 400, "ActionParameterMissing")
	expectError(t, r.do("POST", target, a, `{"ResetType":"ForceOff","Delay":3}`), 400, "ActionParameterUnknown")
	expectError(t, r.do("POST", "/redfish/v1/Chassis/Enclosure/Actions/Chassis.Reset", a, `{"ResetType":"ForceOff"}`), 404, "ResourceNotFound")
	expectError(t, r.do("POST", "/redfish/v1/Chassis/Node7/Actions/Chassis.Reset", a, `{"ResetType":"ForceOff"}`), 404, "ResourceNotFound")
	if power(1) != board.PowerOn {
		t.Fatal("a refused Reset changed the power state")
	}
	for _, c := range []struct {
		typ  string
		want board.PowerState
	}{{"ForceOff", board.PowerOff}, {"On", board.PowerOn}, {"GracefulShutdown", board.PowerOff}, {"PowerCycle", board.PowerOn}} {
		x := r.do("POST", target, r.operator(), fmt.Sprintf(`{"ResetType":%q}`, c.typ))
		if x.StatusCode != 200 {
			t.Fatalf("%s: %s %s", c.typ, x.Status, x.body)
		}
		if got := power(1); got != c.want {
			t.Errorf("%s: board power %s, want %s", c.typ, got, c.want)
		}
		if got := r.get("/redfish/v1/Chassis/Node1", a)["PowerState"]; got != string(c.want) {
			t.Errorf("%s: PowerState %v on the next GET, want %s", c.typ, got, c.want)
		}
	}
	if power(2) != board.PowerOn {
		t.Error("Node2 power changed")
	}
	r.sim.SetNodeReachable(1, false)
	expectError(t, r.do("POST", target, a, `{"ResetType":"ForceOff"}`), 503, "OperationFailed")
}
