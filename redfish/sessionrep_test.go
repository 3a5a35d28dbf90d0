package redfish

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSessionReplication (H3/D3 for sessions): a session created on one
// server is exported without its token (only the token's SHA-256) and,
// imported into a second server, authenticates the same X-Auth-Token
// there; a logout on the first, exported again, ends it on the second;
// idle expiry works on the second from the replicated last use, and the
// SessionTimeout travels with the state; a malformed state is refused
// whole. The hook fires on login, logout and timeout change, not on every
// request.
func TestSessionReplication(t *testing.T) {
	a, b := newRig(t), newRig(t)
	var hooks atomic.Int32
	a.srv.SetSessionsHook(func() { hooks.Add(1) })

	tok, loc := a.login("admin", a.adminPW)
	if hooks.Load() == 0 {
		t.Fatal("no hook call on login")
	}
	st := a.srv.ExportSessions()
	raw, _ := json.Marshal(st)
	if strings.Contains(string(raw), tok) {
		t.Fatal("the exported sessions hold the token itself")
	}
	if len(st.Sessions) != 1 || st.Sessions[0].TokenSHA256 != tokenKey(tok) || st.Sessions[0].User != "admin" {
		t.Fatalf("exported %s", raw)
	}
	// The rig's server keeps no token either.
	for k := range a.srv.sessions {
		if k == tok {
			t.Fatal("the session map is keyed by the token itself")
		}
	}
	expectError(t, b.do("GET", "/redfish/v1/Chassis", auth{token: tok}, ""), 401, "NoValidSession")
	if err := b.srv.ImportSessions(st); err != nil {
		t.Fatal(err)
	}
	if x := b.do("GET", "/redfish/v1/Chassis", auth{token: tok}, ""); x.StatusCode != 200 {
		t.Fatalf("token on the second server: %s %s", x.Status, x.body)
	}
	if s := b.get(loc, auth{token: tok}); s["UserName"] != "admin" {
		t.Fatalf("session on the second server: %v", s)
	}
	// Use does not call the hook on every request.
	n := hooks.Load()
	for range 5 {
		a.get("/redfish/v1/Chassis", auth{token: tok})
	}
	if hooks.Load() != n {
		t.Fatalf("hook called %d times for 5 reads", hooks.Load()-n)
	}
	a.advance(2 * time.Minute) // > timeout/10 of 10 min
	a.get("/redfish/v1/Chassis", auth{token: tok})
	if hooks.Load() == n {
		t.Fatal("no hook call once the last use moved on by a tenth of the timeout")
	}

	// A malformed state changes nothing.
	bad := a.srv.ExportSessions()
	bad.Sessions[0].TokenSHA256 = "zz"
	if err := b.srv.ImportSessions(bad); err == nil {
		t.Fatal("malformed state accepted")
	}
	if err := b.srv.ImportSessions(SessionState{TimeoutSeconds: 5}); err == nil {
		t.Fatal("timeout of 5 s accepted")
	}
	if x := b.do("GET", "/redfish/v1/Chassis", auth{token: tok}, ""); x.StatusCode != 200 {
		t.Fatalf("after refused imports: %s", x.Status)
	}

	// Logout on the first ends the session on the second.
	n = hooks.Load()
	if x := a.do("DELETE", loc, auth{token: tok}, ""); x.StatusCode != 204 {
		t.Fatalf("logout: %s %s", x.Status, x.body)
	}
	if hooks.Load() == n {
		t.Fatal("no hook call on logout")
	}
	if err := b.srv.ImportSessions(a.srv.ExportSessions()); err != nil {
		t.Fatal(err)
	}
	expectError(t, b.do("GET", "/redfish/v1/Chassis", auth{token: tok}, ""), 401, "NoValidSession")

	// Expiry on the second server, with the replicated timeout.
	tok2, _ := a.login("admin", a.adminPW)
	if x := a.do("PATCH", "/redfish/v1/SessionService", auth{token: tok2}, `{"SessionTimeout":60}`); x.StatusCode != 200 {
		t.Fatalf("PATCH SessionTimeout: %s %s", x.Status, x.body)
	}
	st = a.srv.ExportSessions()
	if st.TimeoutSeconds != 60 {
		t.Fatalf("timeout %d", st.TimeoutSeconds)
	}
	b.now = a.clock() // same wall clock on both modules
	if err := b.srv.ImportSessions(st); err != nil {
		t.Fatal(err)
	}
	if x := b.do("GET", "/redfish/v1/Chassis", auth{token: tok2}, ""); x.StatusCode != 200 {
		t.Fatalf("second token on the second server: %s", x.Status)
	}
	b.advance(61 * time.Second)
	expectError(t, b.do("GET", "/redfish/v1/Chassis", auth{token: tok2}, ""), 401, "NoValidSession")
	// A state whose sessions are already idle past the timeout imports as none.
	a.advance(61 * time.Second)
	old := st
	if err := b.srv.ImportSessions(old); err != nil {
		t.Fatal(err)
	}
	if got := b.srv.ExportSessions(); len(got.Sessions) != 0 {
		t.Fatalf("expired sessions imported: %+v", got)
	}
}
