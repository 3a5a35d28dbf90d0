package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cmcd/internal/rfschema"
	"cmcd/pair"
)

// TestDecideRoute: the hysteresis of D2 — routing starts only when the
// active's load exceeds the standby's by routeStart, holds while the
// difference stays at least routeStop, stops below it, and never routes
// to a standby whose load is unknown.
func TestDecideRoute(t *testing.T) {
	for _, c := range []struct {
		routing    bool
		self, peer float64
		want       bool
	}{
		{false, 0, 0, false}, {false, 0.9, 0, false}, {false, 1, 0, true}, {false, 5, 4.5, false},
		{true, 0.9, 0, true}, {true, 0.3, 0, true}, {true, 0.2, 0, false}, {true, 0, 3, false},
		{false, 10, -1, false}, {true, 10, -1, false},
	} {
		if got := decideRoute(c.routing, c.self, c.peer); got != c.want {
			t.Errorf("decideRoute(%v, %v, %v) = %v, want %v", c.routing, c.self, c.peer, got, c.want)
		}
	}
}

// TestPairLoadAwareReads (D1, D2; in-process pair with a witness): both
// modules publish their load in /cmcd/pair/status. Idle, reads through
// the active A are served by A (X-Cmcd-Served-By). With A's load raised
// (test hook), pair-wide reads through A are served by the in-sync
// standby B with the bodies A gave (schema-valid), authenticated there by
// Basic auth and by a session token made on A; an account created on A
// is readable through routing at once (read index); a wrong password is
// answered by A (401); A's own Manager stays on A and shows the routed
// count under Oem.Cmcd.Pair.Reads. A standby that cannot reach the read
// index (frozen applied index, test hook) and a stopped standby get no
// reads, and every read still succeeds. With A's load back, A serves again.
func TestPairLoadAwareReads(t *testing.T) {
	// A 1 s heartbeat: schema validation in this process must not cost
	// the active its role on a loaded machine.
	r := newPairRig(t, func(_ string, c *Config) { c.Pair.Heartbeat = "1s" })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's log:\n%s\nB's log:\n%s", r.mods["A"].logs.String(), r.mods["B"].logs.String())
		}
	})
	r.waitRole("A", pair.RoleActive)
	r.waitRole("B", pair.RoleStandby)
	v, err := rfschema.New()
	if err != nil {
		t.Fatal(err)
	}
	var admin []string
	r.eventually("the pair's admin password", func() error {
		for _, id := range []string{"A", "B"} {
			raw, err := os.ReadFile(filepath.Join(r.mods[id].c.Data, "initial-admin-password"))
			if err != nil {
				continue
			}
			pw := strings.TrimSpace(string(raw))
			if x := r.do("A", "GET", "/redfish/v1/Chassis", "", []string{"admin", pw}, ""); x.code == 200 {
				admin = []string{"admin", pw}
				return nil
			}
		}
		return fmt.Errorf("no initial admin password works on A")
	})
	status := func(id string) pairStatus {
		var st pairStatus
		x := r.do(id, "GET", "/cmcd/pair/status", "", nil, "")
		if x.code != 200 || json.Unmarshal(x.body, &st) != nil {
			t.Fatalf("status of %s: %d %s", id, x.code, x.body)
		}
		return st
	}
	r.eventually("B in sync with its load known to A", func() error {
		b := status("B")
		if !b.CanServeReads || b.Load == nil {
			return fmt.Errorf("B: in sync %v, load %v", b.CanServeReads, b.Load)
		}
		if a := status("A"); a.Load == nil || a.Reads == nil {
			return fmt.Errorf("A publishes no load")
		}
		return nil
	})
	paths := []string{"/redfish/v1/", "/redfish/v1/Chassis", "/redfish/v1/AccountService/Accounts",
		"/redfish/v1/SessionService"}
	servedBy := func(x rigResp) string { return x.hdr.Get(servedByHeader) }

	// Idle: A serves.
	want := map[string][]byte{}
	for _, p := range paths {
		x := r.do("A", "GET", p, "", admin, "")
		if x.code != 200 || servedBy(x) != "A" {
			t.Fatalf("idle GET %s: %d served by %q", p, x.code, servedBy(x))
		}
		want[p] = x.body
	}

	// A loaded: pair-wide reads go to B, with the same bodies.
	pairLoadBias.Store("A", 50.0)
	defer pairLoadBias.Delete("A")
	r.eventually("a read through A served by B", func() error {
		if x := r.do("A", "GET", "/redfish/v1/Chassis", "", admin, ""); x.code != 200 || servedBy(x) != "B" {
			return fmt.Errorf("%d served by %q", x.code, servedBy(x))
		}
		return nil
	})
	for _, p := range paths {
		x := r.do("A", "GET", p, "", admin, "")
		if x.code != 200 || servedBy(x) != "B" {
			t.Fatalf("loaded GET %s: %d served by %q: %s\n%s\n%s", p, x.code, servedBy(x), x.body, r.mods["A"].logs.String(), r.mods["B"].logs.String())
		}
		if err := v.Validate(x.body); err != nil {
			t.Fatalf("GET %s via B: %v", p, err)
		}
		if !bytes.Equal(x.body, want[p]) {
			t.Errorf("GET %s: served by B\n%s\nserved by A\n%s", p, x.body, want[p])
		}
	}
	// A session made on A authenticates the routed read on B.
	x := r.do("A", "POST", "/redfish/v1/SessionService/Sessions", "", nil,
		fmt.Sprintf(`{"UserName":"admin","Password":%q}`, admin[1]))
	if x.code != 201 {
		t.Fatalf("login: %d %s", x.code, x.body)
	}
	tok := x.hdr.Get("X-Auth-Token")
	if x := r.do("A", "GET", "/redfish/v1/Chassis", tok, nil, ""); x.code != 200 || servedBy(x) != "B" {
		t.Fatalf("session read: %d served by %q", x.code, servedBy(x))
	}
	if x := r.do("A", "GET", "/redfish/v1/Chassis", "", []string{"admin", "wrong"}, ""); x.code != 401 || servedBy(x) != "A" ||
		v.ValidateAgainst(x.body, rfschema.ErrorSchema) != nil {
		t.Fatalf("wrong password: %d served by %q: %s", x.code, servedBy(x), x.body)
	}
	// Read your write: an account created on A, read at once through A.
	x = r.do("A", "POST", "/redfish/v1/AccountService/Accounts", "", admin,
		`{"UserName":"loadreader","Password":"Load-Reader-2026","RoleId":"ReadOnly"}`)
	if x.code != 201 || v.Validate(x.body) != nil {
		t.Fatalf("create account: %d %s", x.code, x.body)
	}
	loc := x.hdr.Get("Location")
	// Routed or not (the standby may not have it within readIndexWait),
	// the read sees the write; and once the standby has it, it serves it.
	if x := r.do("A", "GET", loc, "", admin, ""); x.code != 200 || !bytes.Contains(x.body, []byte("loadreader")) {
		t.Fatalf("GET %s right after its creation: %d served by %q: %s", loc, x.code, servedBy(x), x.body)
	}
	r.eventually("the new account read through B", func() error {
		if x := r.do("A", "GET", loc, "", admin, ""); x.code != 200 || servedBy(x) != "B" || !bytes.Contains(x.body, []byte("loadreader")) {
			return fmt.Errorf("%d served by %q", x.code, servedBy(x))
		}
		return nil
	})
	if x := r.do("A", "GET", "/redfish/v1/Chassis", "", []string{"loadreader", "Load-Reader-2026"}, ""); x.code != 200 || servedBy(x) != "B" {
		t.Fatalf("read as the new account: %d served by %q", x.code, servedBy(x))
	}
	// The module's own Manager stays on A and counts the routed reads.
	x = r.do("A", "GET", "/redfish/v1/Managers/CMC", "", admin, "")
	if x.code != 200 || servedBy(x) != "A" {
		t.Fatalf("Managers/CMC: %d served by %q", x.code, servedBy(x))
	}
	if err := v.Validate(x.body); err != nil {
		t.Fatal(err)
	}
	var mgr map[string]any
	json.Unmarshal(x.body, &mgr)
	reads, _ := pairOf(mgr)["Reads"].(map[string]any)
	if reads == nil || reads["RoutedToPeer"].(float64) < 7 || reads["Routing"] != true || reads["Load"].(float64) < 50 {
		t.Fatalf("Oem.Cmcd.Pair.Reads %v", reads)
	}
	if b := status("B"); b.Reads == nil || b.Reads.ForPeer < 7 {
		t.Fatalf("B's reads %+v", b.Reads)
	}

	// B behind the read index: A serves, nothing fails.
	pairReadBehind.Store("B", true)
	before := status("A").Reads.Fallback
	for _, p := range paths {
		if x := r.do("A", "GET", p, "", admin, ""); x.code != 200 || servedBy(x) != "A" || v.Validate(x.body) != nil {
			t.Fatalf("B behind, GET %s: %d served by %q: %s", p, x.code, servedBy(x), x.body)
		}
	}
	if got := status("A").Reads.Fallback; got < before+uint64(len(paths)) {
		t.Errorf("fallbacks %d -> %d", before, got)
	}
	pairReadBehind.Delete("B")
	r.eventually("B serving again", func() error {
		if x := r.do("A", "GET", "/redfish/v1/Chassis", "", admin, ""); servedBy(x) != "B" {
			return fmt.Errorf("served by %q", servedBy(x))
		}
		return nil
	})

	// B stopped: A serves every read; A stays active with the witness.
	r.stop("B")
	for range 20 {
		if x := r.do("A", "GET", "/redfish/v1/Chassis", "", admin, ""); x.code != 200 || servedBy(x) != "A" {
			t.Fatalf("B stopped: %d served by %q", x.code, servedBy(x))
		}
	}
	r.start("B")
	r.waitRole("B", pair.RoleStandby)
	r.eventually("B serving after its restart", func() error {
		if x := r.do("A", "GET", "/redfish/v1/Chassis", "", admin, ""); servedBy(x) != "B" {
			return fmt.Errorf("served by %q", servedBy(x))
		}
		return nil
	})
	// The standby more loaded than the active: the active serves.
	pairLoadBias.Store("B", 100.0)
	defer pairLoadBias.Delete("B")
	r.eventually("A serving again", func() error {
		if x := r.do("A", "GET", "/redfish/v1/Chassis", "", admin, ""); x.code != 200 || servedBy(x) != "A" {
			return fmt.Errorf("%d served by %q", x.code, servedBy(x))
		}
		return nil
	})
	for range 5 {
		if x := r.do("A", "GET", "/redfish/v1/Chassis", "", admin, ""); x.code != 200 || servedBy(x) != "A" {
			t.Fatalf("B more loaded: %d served by %q", x.code, servedBy(x))
		}
	}
}
