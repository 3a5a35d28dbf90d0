package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	"cmcd/accounts"
	"cmcd/internal/rfschema"
)

// sseEvents streams module m's Redfish events (from its own address, not
// the floating one) and delivers each Event payload validated against the
// Event schema; it ends with the test.
func (l *lab) sseEvents(m string) <-chan map[string]any {
	l.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l.t.Cleanup(cancel)
	c := l.clientIn("C")
	c.Timeout = 0
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+l.ip[m]+":8080/redfish/v1/EventService/SSE", nil)
	req.SetBasicAuth(accounts.InitialAdmin, l.pw)
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		l.t.Fatalf("SSE on %s: %v %v", m, resp, err)
	}
	out := make(chan map[string]any, 64)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if err := validate(l.t, []byte(data)); err != nil {
				l.t.Errorf("event from %s: %v\n%s", m, err, data)
			}
			var ev struct{ Events []map[string]any }
			json.Unmarshal([]byte(data), &ev)
			for _, e := range ev.Events {
				select {
				case out <- e:
				default:
				}
			}
		}
	}()
	return out
}

// waitEvent returns the first event with MessageId Cmcd.1.0.id.
func waitEvent(t *testing.T, from string, ch <-chan map[string]any, id string, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-ch:
			if e["MessageId"] == "Cmcd.1.0."+id {
				var args []string
				for _, a := range e["MessageArgs"].([]any) {
					args = append(args, a.(string))
				}
				return args
			}
		case <-deadline:
			t.Fatalf("no %s event from %s within %v", id, from, timeout)
		}
	}
}

// manager reads a Manager through the floating address, validated against
// the Manager schema, and returns its Status and Oem.Cmcd.Pair.
func (l *lab) manager(path string) (state string, pair map[string]any) {
	l.t.Helper()
	code, body := l.as(accounts.InitialAdmin, l.pw, "GET", path, "")
	if code != 200 {
		l.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := validate(l.t, body); err != nil {
		l.t.Fatalf("GET %s: %v", path, err)
	}
	var m struct {
		Status struct{ State string }
		Oem    struct{ Cmcd struct{ Pair map[string]any } }
	}
	json.Unmarshal(body, &m)
	return m.Status.State, m.Oem.Cmcd.Pair
}

// waitManager polls path until its Status.State is want with the other
// module's state known, and returns its Oem.Cmcd.Pair.
func (l *lab) waitManager(path, want string) map[string]any {
	l.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, p := l.manager(path)
		if st == want && p["StateKnown"] == true {
			return p
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: state %s (want %s), pair %v", path, st, want, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLabRedfishPairView: through the floating address a Redfish client
// (gofish) sees both modules' Managers — this module (active, Enabled) at
// Managers/CMC, the other (standby, StandbySpare) at Managers/CMC-B, both
// schema-valid with the pair's state under Oem.Cmcd.Pair. ForceFailover
// is refused (409) while the standby does not answer (SIGSTOP) and for a
// target that is not the other module (400); with the standby back and in
// sync, gofish's ForceFailover hands the role over: B then holds the
// address (ARP from the client, interfaces), the roles are flipped in the
// Managers read through the floating address, and the event streams of
// both modules carried the hand-over, A's standby and B's takeover with
// its reason as Cmcd registry messages.
func TestLabRedfishPairView(t *testing.T) {
	l := newLab(t)
	defer l.dumpLogs()
	for _, m := range []string{"W", "A", "B"} {
		l.start(m)
	}
	l.waitActive("A", 60*time.Second)
	l.agree("A", "B")
	acked := l.writes(0, 10)

	hc := l.clientIn("C")
	hc.Timeout = 10 * time.Second
	gc, err := gofish.Connect(gofish.ClientConfig{Endpoint: "http://" + vipAddr + ":8080", Username: accounts.InitialAdmin,
		Password: l.pw, BasicAuth: true, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Logout()
	mgrs, err := gc.Service.Managers()
	if err != nil || len(mgrs) != 2 {
		t.Fatalf("gofish Managers: %d %v", len(mgrs), err)
	}
	byID := map[string]*schemas.Manager{}
	for _, m := range mgrs {
		byID[m.ID] = m
		if m.ManagerType != schemas.EnclosureManagerManagerType || m.RedundancyCount != 1 {
			t.Errorf("gofish %s: ManagerType %s, %d Redundancy", m.ID, m.ManagerType, m.RedundancyCount)
		}
	}
	if byID["CMC"] == nil || byID["CMC-B"] == nil {
		t.Fatalf("gofish Managers: %v", byID)
	}
	if s := byID["CMC"].Status.State; s != schemas.EnabledState {
		t.Errorf("gofish CMC: State %s", s)
	}
	p := l.waitManager("/redfish/v1/Managers/CMC-B", "StandbySpare")
	if p["Module"] != "B" || p["Role"] != "Standby" || p["InSync"] != true {
		t.Fatalf("CMC-B Oem.Cmcd.Pair %v", p)
	}
	_, p = l.manager("/redfish/v1/Managers/CMC")
	if p["Module"] != "A" || p["Role"] != "Active" || p["HoldsFloatingAddress"] != true || p["Witness"] != "W" {
		t.Fatalf("CMC Oem.Cmcd.Pair %v", p)
	}

	const target = "/redfish/v1/Managers/CMC-B"
	ff := "/redfish/v1/Managers/CMC/Actions/Manager.ForceFailover"
	if code, body := l.as(accounts.InitialAdmin, l.pw, "POST", ff, `{"NewManager":{"@odata.id":"/redfish/v1/Managers/CMC"}}`); code != 400 {
		t.Fatalf("ForceFailover to itself: %d %s", code, body)
	}
	// The standby frozen: it cannot be asked whether it is in sync.
	syscall.Kill(l.procs["B"].Process.Pid, syscall.SIGSTOP)
	code, body := l.as(accounts.InitialAdmin, l.pw, "POST", ff, `{"NewManager":{"@odata.id":"`+target+`"}}`)
	syscall.Kill(l.procs["B"].Process.Pid, syscall.SIGCONT)
	if code != 409 || !strings.Contains(string(body), "does not answer") {
		t.Fatalf("ForceFailover with B frozen: %d %s", code, body)
	}
	if v, err := rfschema.New(); err != nil {
		t.Fatal(err)
	} else if err := v.ValidateAgainst(body, rfschema.ErrorSchema); err != nil {
		t.Fatalf("ForceFailover refusal: %v", err)
	}
	l.agree("A", "B")
	l.waitManager(target, "StandbySpare")

	evA, evB := l.sseEvents("A"), l.sseEvents("B")
	t0 := time.Now()
	if _, err := byID["CMC"].ForceFailover(target); err != nil {
		t.Fatalf("gofish ForceFailover: %v", err)
	}
	answered := time.Since(t0)
	took := l.waitActive("B", 30*time.Second)
	t.Logf("ForceFailover answered after %v; B active at the floating address %v after the answer", answered, took)
	if h := l.holders(); len(h) != 1 || h[0] != "B" {
		t.Fatalf("after ForceFailover: address holders %v, want [B]", h)
	}
	l.checkWrites(acked)

	// Through the floating address now: B is this module, A the other.
	p = l.waitManager("/redfish/v1/Managers/CMC-A", "StandbySpare")
	if p["Module"] != "A" || p["Role"] != "Standby" {
		t.Fatalf("CMC-A after the failover: %v", p)
	}
	st, p := l.manager("/redfish/v1/Managers/CMC")
	lt, _ := p["LastTakeover"].(map[string]any)
	if st != "Enabled" || p["Module"] != "B" || p["Role"] != "Active" || lt == nil || lt["Previous"] != "A" ||
		!strings.Contains(lt["Reason"].(string), "ForceFailover by Redfish user admin") {
		t.Fatalf("CMC after the failover: %s %v", st, p)
	}
	mgrs, err = gc.Service.Managers()
	if err != nil || len(mgrs) != 2 {
		t.Fatalf("gofish Managers after the failover: %d %v", len(mgrs), err)
	}
	for _, m := range mgrs {
		want := map[string]schemas.State{"CMC": schemas.EnabledState, "CMC-A": schemas.StandbySpareState}[m.ID]
		if m.Status.State != want {
			t.Errorf("gofish %s after the failover: %s, want %s", m.ID, m.Status.State, want)
		}
	}

	reason := "ForceFailover by Redfish user admin"
	if a := waitEvent(t, "A", evA, "PairHandover", 20*time.Second); strings.Join(a, "|") != "A|B|"+reason {
		t.Errorf("A PairHandover args %q", a)
	}
	if a := waitEvent(t, "A", evA, "PairBecameStandby", 20*time.Second); a[0] != "A" || !strings.Contains(a[1], reason) {
		t.Errorf("A PairBecameStandby args %q", a)
	}
	if a := waitEvent(t, "B", evB, "PairTakeover", 20*time.Second); a[0] != "B" || a[1] != "A" || !strings.Contains(a[2], reason) {
		t.Errorf("B PairTakeover args %q", a)
	}
}
