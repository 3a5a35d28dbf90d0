package lab

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// statusIn reads module m's status from inside its own namespace.
func (l *lab) statusIn(m string) (status, error) {
	var st status
	resp, err := l.clientIn(m).Get("http://127.0.0.1:8080/cmcd/pair/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// steady checks for d that A stays active in the same term (no election,
// no takeover), acknowledged writes keep succeeding and module other stays
// in sync (seen from inside its namespace, so a cut management link does
// not hide it).
func (l *lab) steady(d time.Duration, other string, from int) []string {
	l.t.Helper()
	st0, err := l.status(vipAddr)
	if err != nil || st0.ID != "A" || st0.Role != "active" {
		l.t.Fatalf("before: %+v %v", st0, err)
	}
	var acked []string
	var slowest time.Duration
	for t0 := time.Now(); time.Since(t0) < d; {
		k := fmt.Sprintf("w%04d", from+len(acked))
		w0 := time.Now()
		code, body := l.as("admin", l.pw, "POST", "/cmcd/pair/write?key="+k, "v-"+k)
		if code != 200 {
			l.t.Fatalf("write %s: %d %s", k, code, body)
		}
		slowest = max(slowest, time.Since(w0))
		acked = append(acked, k)
		st, err := l.status(vipAddr)
		if err != nil || st.ID != "A" || st.Role != "active" || st.Term != st0.Term {
			l.t.Fatalf("after %v: active %+v (before: term %s) %v", time.Since(t0), st, st0.Term, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Logf("%d acknowledged writes in %v, slowest %v", len(acked), d, slowest)
	deadline := time.Now().Add(5 * time.Second)
	for {
		so, err := l.statusIn(other)
		if err == nil && so.Role == "standby" && so.CanServeReads && so.Term == st0.Term {
			break
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: %+v %v, want an in-sync standby in term %s", other, so, err, st0.Term)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if h := l.holders(); len(h) != 1 || h[0] != "A" {
		l.t.Fatalf("holders %v, want [A]", h)
	}
	return acked
}

// TestLabLinkCuts (V1, H4): one of the two A-B paths cut — the sync link,
// then the standby's management link — causes no election and no
// takeover: the active keeps its term and takes writes, the standby stays
// in sync over the other path. Then the active's own management link is
// cut: its sync link still gives it a quorum, but the floating address is
// unreachable there, so it hands the role to B (whose link is up); B
// holds the address alone, has every acknowledged write, and A stays an
// in-sync standby over the sync link and rejoins when the link is back.
func TestLabLinkCuts(t *testing.T) {
	l := newLab(t)
	defer l.dumpLogs()
	l.form()
	acked := l.writes(0, 5)
	acked = append(acked, l.steady(3*time.Second, "B", 50)...) // control: no cut

	run(t, "ip", "-n", l.ns("A"), "link", "set", "sync0", "down")
	acked = append(acked, l.steady(3*time.Second, "B", 100)...)
	run(t, "ip", "-n", l.ns("A"), "link", "set", "sync0", "up")
	l.agree("A", "B")

	run(t, "ip", "-n", l.ns("BR"), "link", "set", "vB", "down")
	acked = append(acked, l.steady(3*time.Second, "B", 200)...)
	run(t, "ip", "-n", l.ns("BR"), "link", "set", "vB", "up")
	l.agree("A", "B")
	l.checkWrites(acked)

	run(t, "ip", "-n", l.ns("BR"), "link", "set", "vA", "down")
	took := l.waitActive("B", 30*time.Second)
	t.Logf("management link of the active A cut: B active at the floating address after %v", took)
	if h := l.holders(); len(h) != 1 || h[0] != "B" {
		t.Fatalf("holders %v, want [B]", h)
	}
	l.checkWrites(acked)
	acked = append(acked, l.writes(300, 5)...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		sa, err := l.statusIn("A")
		if err == nil && sa.Role == "standby" && !sa.HoldsAddress && sa.CanServeReads && sa.Uplink != nil && !*sa.Uplink {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A with its management link cut: %+v %v, want an in-sync standby without the address", sa, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	run(t, "ip", "-n", l.ns("BR"), "link", "set", "vA", "up")
	l.agree("A", "B")
	if h := l.holders(); len(h) != 1 || h[0] != "B" {
		t.Fatalf("holders after the link is back %v, want [B]", h)
	}
	l.checkWrites(acked)
}
