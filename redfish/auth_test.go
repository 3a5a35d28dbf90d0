package redfish

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestOpenURIsAndUnauthorized(t *testing.T) {
	r := newRig(t)
	for _, p := range []string{"/redfish", "/redfish/v1/", "/redfish/v1", "/redfish/v1/$metadata", "/redfish/v1/odata"} {
		if x := r.do("GET", p, auth{}, ""); x.StatusCode != 200 {
			t.Errorf("GET %s without auth: %s", p, x.Status)
		}
	}
	root := r.get("/redfish/v1/", auth{})
	if root["Links"].(map[string]any)["Sessions"] == nil {
		t.Error("service root lacks Links.Sessions")
	}
	// Basic auth works for all three roles.
	for _, a := range []auth{r.admin(), r.operator(), r.reader()} {
		r.get("/redfish/v1/Chassis", a)
	}
	// (Below, the failed logins lock the admin account and then block
	// the source: the answers stay the same.)
	closed := []string{"/redfish/v1/Chassis", "/redfish/v1/Chassis/Enclosure", "/redfish/v1/Managers/CMC",
		"/redfish/v1/SessionService", sessionsURI, "/redfish/v1/Nope", "/redfish/v1/Chassis/Enclosure/Power"}
	bad := []auth{{}, {user: "admin", pass: "wrong-password"}, {user: "nobody", pass: "whatever1"}, {token: "deadbeef"}}
	var first []byte
	for _, p := range closed {
		for _, a := range bad {
			x := r.do("GET", p, a, "")
			expectError(t, x, 401, "NoValidSession")
			if first == nil {
				first = x.body
			} else if string(first) != string(x.body) {
				t.Errorf("GET %s as %+v: 401 body differs:\n%s\n%s", p, a, x.body, first)
			}
		}
	}
	// PATCH/DELETE/POST without auth: 401 too, not 405 or 404.
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC", auth{}, `{}`), 401, "NoValidSession")
	expectError(t, r.do("DELETE", sessionsURI+"/x", auth{}, ""), 401, "NoValidSession")
	expectError(t, r.do("POST", "/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.SyncNow", auth{}, `{}`), 401, "NoValidSession")
	if x := r.do("GET", "/redfish/v1/Chassis", auth{}, ""); !strings.HasPrefix(x.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("401 without WWW-Authenticate: %v", x.Header)
	}
}

func TestLoginErrorsAreAlike(t *testing.T) {
	r := newRig(t)
	var bodies []string
	for _, body := range []string{
		`{"UserName":"admin","Password":"wrong-password"}`,
		`{"UserName":"nobody","Password":"wrong-password"}`,
		`{"UserName":"","Password":""}`,
	} {
		x := r.do("POST", sessionsURI, auth{}, body)
		expectError(t, x, 401, "NoValidSession")
		if x.Header.Get("X-Auth-Token") != "" {
			t.Error("failed login returned a token")
		}
		bodies = append(bodies, string(x.body))
	}
	if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
		t.Errorf("login failures differ:\n%s", strings.Join(bodies, "\n"))
	}
	expectError(t, r.do("POST", sessionsURI, auth{}, `{"UserName":"admin"}`), 400, "PropertyMissing")
	expectError(t, r.do("POST", sessionsURI, auth{}, `{"UserName":"admin",`), 400, "MalformedJSON")
	expectError(t, r.do("POST", sessionsURI, auth{}, `{"UserName":1,"Password":"x"}`), 400, "PropertyValueTypeError")
}

func TestSourceLimiter(t *testing.T) {
	r := newRig(t)
	for i := 0; i < 10; i++ {
		expectError(t, r.do("POST", sessionsURI, auth{}, `{"UserName":"nobody","Password":"wrong-pw-1"}`), 401, "NoValidSession")
	}
	// The source is now blocked: even the right password gets the same 401.
	x := r.do("POST", sessionsURI, auth{}, fmt.Sprintf(`{"UserName":"admin","Password":%q}`, r.adminPW))
	expectError(t, x, 401, "NoValidSession")
}

func (r *rig) login(user, pass string) (token, location string) {
	r.t.Helper()
	x := r.do("POST", sessionsURI, auth{}, fmt.Sprintf(`{"UserName":%q,"Password":%q}`, user, pass))
	if x.StatusCode != http.StatusCreated {
		r.t.Fatalf("login %s: %s\n%s", user, x.Status, x.body)
	}
	token, location = x.Header.Get("X-Auth-Token"), x.Header.Get("Location")
	m := x.json(r.t)
	if token == "" || location == "" || m["Id"] == nil || !strings.HasSuffix(location, "/"+m["Id"].(string)) {
		r.t.Fatalf("login %s: token %q location %q body %s", user, token, location, x.body)
	}
	validatePayload(r.t, x, m)
	return token, location
}

func TestSessionLifecycle(t *testing.T) {
	r := newRig(t)
	tok, loc := r.login("admin", r.adminPW)
	a := auth{token: tok}
	r.get("/redfish/v1/Chassis", a)
	s := r.get(loc, a)
	if s["UserName"] != "admin" {
		t.Errorf("session %v", s)
	}
	col := r.get(sessionsURI, a)
	if col["Members@odata.count"].(float64) != 1 {
		t.Errorf("sessions: %v", col)
	}
	// A ReadOnly user sees only its own sessions and cannot end others'.
	rtok, rloc := r.login("reader", readerPW)
	ra := auth{token: rtok}
	if n := r.get(sessionsURI, ra)["Members@odata.count"].(float64); n != 1 {
		t.Errorf("reader sees %v sessions", n)
	}
	expectError(t, r.do("DELETE", loc, ra, ""), 404, "ResourceNotFound")
	// Logout.
	if x := r.do("DELETE", rloc, ra, ""); x.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %s %s", x.Status, x.body)
	}
	expectError(t, r.do("GET", "/redfish/v1/Chassis", ra, ""), 401, "NoValidSession")
	// Idle expiry: use keeps a session alive, idleness ends it.
	r.advance(9 * time.Minute)
	r.get("/redfish/v1/Chassis", a)
	r.advance(9 * time.Minute)
	r.get("/redfish/v1/Chassis", a)
	r.advance(10 * time.Minute)
	expectError(t, r.do("GET", "/redfish/v1/Chassis", a, ""), 401, "NoValidSession")
	// The admin can shorten the timeout.
	tok2, _ := r.login("admin", r.adminPW)
	a2 := auth{token: tok2}
	x := r.do("PATCH", "/redfish/v1/SessionService", a2, `{"SessionTimeout":60}`)
	if x.StatusCode != 200 {
		t.Fatalf("PATCH SessionTimeout: %s %s", x.Status, x.body)
	}
	r.advance(61 * time.Second)
	expectError(t, r.do("GET", "/redfish/v1/Chassis", a2, ""), 401, "NoValidSession")
	expectError(t, r.do("PATCH", "/redfish/v1/SessionService", r.admin(), `{"SessionTimeout":5}`), 400, "PropertyValueIncorrect")
}

func TestPrivileges(t *testing.T) {
	r := newRig(t)
	body := `{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":"45s"}}}}}`
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC", r.reader(), body), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC", r.operator(), body), 403, "InsufficientPrivilege")
	expectError(t, r.do("POST", "/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.SyncNow", r.reader(), `{}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", "/redfish/v1/SessionService", r.reader(), `{"SessionTimeout":60}`), 403, "InsufficientPrivilege")
	if r.eng.Config().Interval.String() == "45s" {
		t.Fatal("a refused PATCH changed the configuration")
	}
	if x := r.do("PATCH", "/redfish/v1/Managers/CMC", r.admin(), body); x.StatusCode != 200 {
		t.Fatalf("admin PATCH: %s %s", x.Status, x.body)
	}
	if got := r.eng.Config().Interval.String(); got != "45s" {
		t.Fatalf("interval %s after PATCH", got)
	}
}
