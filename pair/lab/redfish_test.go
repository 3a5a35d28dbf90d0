package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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

// freeze stops module m (SIGSTOP) and returns once every thread of it is
// stopped: the kernel takes a few milliseconds, in which it still answers.
func (l *lab) freeze(m string) {
	l.t.Helper()
	pid := l.procs[m].Process.Pid
	syscall.Kill(pid, syscall.SIGSTOP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(tasks) > 0
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || len(b) < i+3 || (b[i+2] != 'T' && b[i+2] != 't') {
				stopped = false
			}
		}
		if stopped {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("module %s does not stop", m)
		}
		time.Sleep(time.Millisecond)
	}
}

// ackWrites makes n acknowledged writes through the floating address
// (l.writes with the patient client of l.as).
func (l *lab) ackWrites(from, n int) []string {
	l.t.Helper()
	var keys []string
	for i := from; i < from+n; i++ {
		k := fmt.Sprintf("w%04d", i)
		if code, body := l.as(accounts.InitialAdmin, l.pw, "POST", "/cmcd/pair/write?key="+k, "v-"+k); code != 200 {
			l.t.Fatalf("write %s: %d %s", k, code, body)
		}
		keys = append(keys, k)
	}
	return keys
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
// (gofish) sees both modules' Managers — the active x (Enabled) at
// Managers/CMC, the standby y (StandbySpare) at Managers/CMC-<y>, both
// schema-valid with the pair's state under Oem.Cmcd.Pair. ForceFailover
// is refused (409) while the standby does not answer (SIGSTOP) and for a
// target that is not the other module (400); with the standby back and in
// sync, gofish's ForceFailover hands the role over: y then holds the
// address (ARP from the client, interfaces), every acknowledged write is
// there, the roles are flipped in the Managers read through the floating
// address (and under a load skew, eight concurrent readers, reads through
// it are served by both modules: D1, D2, readSpread in load_test.go), and
// the event streams of both modules carried the hand-over,
// x's standby and y's takeover with its reason as Cmcd registry messages.
// Then y is killed: x takes over (PairPeerFenced when it had to fence y,
// PairTakeover naming why), shows CMC-<y> UnavailableOffline with its
// state null and the redundancy Critical, and refuses a ForceFailover to
// the dead module.
func TestLabRedfishPairView(t *testing.T) {
	l := newLab(t)
	defer l.dumpLogs()
	// x is the first active: A, the preset module (D7: a module elected
	// first hands the role to it at power-up), y the other.
	l.form()
	x, y := "A", "B"
	acked := l.ackWrites(0, 10)

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
	if byID["CMC"] == nil || byID["CMC-"+y] == nil {
		t.Fatalf("gofish Managers: %v", byID)
	}
	if s := byID["CMC"].Status.State; s != schemas.EnabledState {
		t.Errorf("gofish CMC: State %s", s)
	}
	target := "/redfish/v1/Managers/CMC-" + y
	p := l.waitManager(target, "StandbySpare")
	if p["Module"] != y || p["Role"] != "Standby" || p["InSync"] != true {
		t.Fatalf("CMC-%s Oem.Cmcd.Pair %v", y, p)
	}
	_, p = l.manager("/redfish/v1/Managers/CMC")
	if p["Module"] != x || p["Role"] != "Active" || p["HoldsFloatingAddress"] != true || p["Witness"] != "W" {
		t.Fatalf("CMC Oem.Cmcd.Pair %v", p)
	}

	ff := "/redfish/v1/Managers/CMC/Actions/Manager.ForceFailover"
	v, err := rfschema.New()
	if err != nil {
		t.Fatal(err)
	}
	if code, body := l.as(accounts.InitialAdmin, l.pw, "POST", ff, `{"NewManager":{"@odata.id":"/redfish/v1/Managers/CMC"}}`); code != 400 ||
		v.ValidateAgainst(body, rfschema.ErrorSchema) != nil {
		t.Fatalf("ForceFailover to itself: %d %s", code, body)
	}
	// The standby frozen: it cannot be asked whether it is in sync.
	l.freeze(y)
	tStop := time.Now()
	code, body := l.as(accounts.InitialAdmin, l.pw, "POST", ff, `{"NewManager":{"@odata.id":"`+target+`"}}`)
	syscall.Kill(l.procs[y].Process.Pid, syscall.SIGCONT)
	t.Logf("ForceFailover with %s frozen answered %d after %v", y, code, time.Since(tStop))
	if code != 409 || !strings.Contains(string(body), "does not answer") {
		t.Fatalf("ForceFailover with %s frozen: %d %s", y, code, body)
	}
	if err := v.ValidateAgainst(body, rfschema.ErrorSchema); err != nil {
		t.Fatalf("ForceFailover refusal: %v", err)
	}
	l.agree("A", "B")
	l.waitManager(target, "StandbySpare")

	evX, evY := l.sseEvents(x), l.sseEvents(y)
	t0 := time.Now()
	if _, err := byID["CMC"].ForceFailover(target); err != nil {
		t.Fatalf("gofish ForceFailover: %v", err)
	}
	answered := time.Since(t0)
	took := l.waitActive(y, 30*time.Second)
	t.Logf("ForceFailover answered after %v; %s active at the floating address %v after the answer", answered, y, took)
	if h := l.holders(); len(h) != 1 || h[0] != y {
		t.Fatalf("after ForceFailover: address holders %v, want [%s]", h, y)
	}
	l.checkWrites(acked)

	// Through the floating address now: y is this module, x the other.
	p = l.waitManager("/redfish/v1/Managers/CMC-"+x, "StandbySpare")
	if p["Module"] != x || p["Role"] != "Standby" {
		t.Fatalf("CMC-%s after the failover: %v", x, p)
	}
	st, p := l.manager("/redfish/v1/Managers/CMC")
	lt, _ := p["LastTakeover"].(map[string]any)
	if st != "Enabled" || p["Module"] != y || p["Role"] != "Active" || lt == nil || lt["Previous"] != x ||
		!strings.Contains(lt["Reason"].(string), "ForceFailover by Redfish user admin") {
		t.Fatalf("CMC after the failover: %s %v", st, p)
	}
	mgrs, err = gc.Service.Managers()
	if err != nil || len(mgrs) != 2 {
		t.Fatalf("gofish Managers after the failover: %d %v", len(mgrs), err)
	}
	for _, m := range mgrs {
		want := map[string]schemas.State{"CMC": schemas.EnabledState, "CMC-" + x: schemas.StandbySpareState}[m.ID]
		if m.Status.State != want {
			t.Errorf("gofish %s after the failover: %s, want %s", m.ID, m.Status.State, want)
		}
	}
	l.readSpread(y, x) // D1, D2 with the roles flipped (load_test.go)

	reason := "ForceFailover by Redfish user admin"
	if a := waitEvent(t, x, evX, "PairHandover", 20*time.Second); strings.Join(a, "|") != x+"|"+y+"|"+reason {
		t.Errorf("%s PairHandover args %q", x, a)
	}
	if a := waitEvent(t, x, evX, "PairBecameStandby", 20*time.Second); a[0] != x || !strings.Contains(a[1], reason) {
		t.Errorf("%s PairBecameStandby args %q", x, a)
	}
	if a := waitEvent(t, y, evY, "PairTakeover", 20*time.Second); a[0] != y || a[1] != x || !strings.Contains(a[2], reason) {
		t.Errorf("%s PairTakeover args %q", y, a)
	}

	// y dies: x takes over (fencing y when y's kernel still answers for
	// the address), says so on its event stream, and shows y offline.
	syscall.Kill(l.procs[y].Process.Pid, syscall.SIGKILL)
	took = l.waitActive(x, 30*time.Second)
	t.Logf("SIGKILL of %s: %s active at the floating address after %v", y, x, took)
	sx, err := l.status(vipAddr)
	if err != nil {
		t.Fatal(err)
	}
	if sx.Fences > 0 {
		if a := waitEvent(t, x, evX, "PairPeerFenced", 20*time.Second); a[0] != x || a[1] != y {
			t.Errorf("%s PairPeerFenced args %q", x, a)
		}
	}
	a := waitEvent(t, x, evX, "PairTakeover", 20*time.Second)
	t.Logf("%s: PairTakeover %q (fences %d)", x, a, sx.Fences)
	if a[0] != x || a[1] != y || (sx.Fences > 0) != strings.Contains(a[2], "fenced") ||
		(sx.Fences == 0 && !strings.Contains(a[2], "did not answer")) {
		t.Errorf("%s PairTakeover after SIGKILL of %s (fences %d): args %q", x, y, sx.Fences, a)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, p := l.manager(target)
		if st == "UnavailableOffline" && p["StateKnown"] == false && p["Role"] == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CMC-%s after its SIGKILL: %s %v", y, st, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, body = l.as(accounts.InitialAdmin, l.pw, "GET", "/redfish/v1/Managers/CMC", "")
	var m struct {
		Redundancy []struct{ Status struct{ Health string } }
	}
	if json.Unmarshal(body, &m); code != 200 || len(m.Redundancy) != 1 || m.Redundancy[0].Status.Health != "Critical" {
		t.Errorf("redundancy with %s dead: %d %s", y, code, body)
	}
	if code, body := l.as(accounts.InitialAdmin, l.pw, "POST", ff, `{"NewManager":{"@odata.id":"`+target+`"}}`); code != 409 ||
		v.ValidateAgainst(body, rfschema.ErrorSchema) != nil {
		t.Errorf("ForceFailover to a dead module: %d %s", code, body)
	}
}
