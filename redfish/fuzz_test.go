package redfish

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/http/httpguts"

	"cmcd/accounts"
	"cmcd/board/sim"
	"cmcd/flash"
	"cmcd/internal/rfschema"
	"cmcd/syncsel"
)

// fuzzTarget is the real handler over a real engine and account store.
type fuzzTarget struct {
	srv   *Server
	token string // an administrator's session
	v     *rfschema.Validator
}

func newFuzzTarget(tb testing.TB) *fuzzTarget {
	tb.Helper()
	s, err := sim.New(sim.Config{Seed: 3, Nodes: 2, PSUs: 2, Fans: 4})
	if err != nil {
		tb.Fatal(err)
	}
	for _, slot := range s.Slots() {
		if err := s.FillSEL(slot, 5); err != nil {
			tb.Fatal(err)
		}
	}
	areas := flash.Areas{Root: tb.TempDir()}
	if err := areas.Ensure(); err != nil {
		tb.Fatal(err)
	}
	images, err := flash.OpenSimImages(areas, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := syncsel.Open(syncsel.Options{Areas: areas, Images: images, Board: s.Board(),
		Override: map[string]json.RawMessage{"probeInterval": json.RawMessage(`"20ms"`), "interval": json.RawMessage(`"1h"`)}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { eng.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	if _, err := eng.Collector().Collect(context.Background()); err != nil {
		tb.Fatal(err)
	}
	acct, err := accounts.Open(tb.TempDir(), accounts.WithBcryptCost(bcrypt.MinCost))
	if err != nil {
		tb.Fatal(err)
	}
	pw, _, err := acct.EnsureInitialAdmin()
	if err != nil {
		tb.Fatal(err)
	}
	srv := New(Options{Accounts: acct, Engine: eng, SessionTimeout: 24 * time.Hour})
	tb.Cleanup(srv.Close)
	v, err := rfschema.New()
	if err != nil {
		tb.Fatal(err)
	}
	w := httptest.NewRecorder()
	req := httptest.NewRequest("POST", sessionsURI, strings.NewReader(`{"UserName":"admin","Password":"`+pw+`"}`))
	srv.ServeHTTP(w, req)
	if w.Code != 201 {
		tb.Fatalf("login: %d %s", w.Code, w.Body)
	}
	return &fuzzTarget{srv: srv, token: w.Header().Get("X-Auth-Token"), v: v}
}

// check sends one request and checks the invariants: no panic (the fuzz
// engine reports it), no 5xx other than 501 and 503, every error body a
// valid Redfish error with @Message.ExtendedInfo, every JSON body valid
// JSON, every 401 with WWW-Authenticate.
func (ft *fuzzTarget) check(t *testing.T, method, target, hname, hvalue string, body []byte, authed bool) {
	if method == "" || !httpguts.ValidHeaderFieldName(method) {
		return // net/http refuses such methods before any handler
	}
	u, err := url.ParseRequestURI(target)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return
	}
	hdr := http.Header{}
	if httpguts.ValidHeaderFieldName(hname) && httpguts.ValidHeaderFieldValue(hvalue) {
		hdr.Set(hname, hvalue)
	}
	if authed {
		hdr.Set("X-Auth-Token", ft.token)
	}
	// A bounded context: the event stream (or a SyncNow) ends with it.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := (&http.Request{Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: hdr, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		Host: "127.0.0.1", RemoteAddr: "127.0.0.1:40000"}).WithContext(ctx)
	w := httptest.NewRecorder()
	ft.srv.ServeHTTP(w, req)
	res := w.Result()
	b := w.Body.Bytes()
	where := method + " " + target
	if res.StatusCode >= 500 && res.StatusCode != 501 && res.StatusCode != 503 {
		t.Fatalf("%s: %d\n%s", where, res.StatusCode, b)
	}
	if res.StatusCode == 401 && res.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("%s: 401 without WWW-Authenticate", where)
	}
	if res.Header.Get("OData-Version") != "4.0" {
		t.Fatalf("%s: no OData-Version", where)
	}
	if method == "HEAD" || len(b) == 0 {
		return
	}
	if res.StatusCode >= 400 {
		var e struct {
			Error struct {
				Info []json.RawMessage `json:"@Message.ExtendedInfo"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil || len(e.Error.Info) == 0 {
			t.Fatalf("%s: %d with a body that is not a Redfish error: %v\n%s", where, res.StatusCode, err, b)
		}
		if err := ft.v.ValidateAgainst(b, rfschema.ErrorSchema); err != nil {
			t.Fatalf("%s: %v\n%s", where, err, b)
		}
		return
	}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") && !json.Valid(b) {
		t.Fatalf("%s: %d with invalid JSON\n%s", where, res.StatusCode, b)
	}
}

// FuzzServeHTTP sends random methods, paths, a header and bodies through
// the real handler, as an authenticated (session) and an unauthenticated
// client. The seeds run in every `go test`; `make fuzz` (FUZZTIME) fuzzes.
func FuzzServeHTTP(f *testing.F) {
	paths := []string{"/redfish", "/redfish/v1", "/redfish/v1/", "/redfish/v1/$metadata", "/redfish/v1/odata",
		"/redfish/v1/Chassis", "/redfish/v1/Chassis/Enclosure", "/redfish/v1/Chassis/Node1",
		"/redfish/v1/Chassis/Node1/LogServices/SEL/Entries", "/redfish/v1/Chassis/Node1/LogServices/SEL/Entries/1",
		"/redfish/v1/Chassis/Enclosure/Power", "/redfish/v1/Chassis/Enclosure/PowerSubsystem/PowerSupplies/1",
		"/redfish/v1/Managers/CMC", "/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.SyncNow",
		"/redfish/v1/Managers/CMC/LogServices/EventLog/Entries",
		"/redfish/v1/SessionService", sessionsURI, sessionsURI + "/x",
		accountServiceURI, accountsURI, accountsURI + "/2", accountsURI + "/3", rolesURI, rolesURI + "/Operator",
		eventServiceURI, sseURI, subscriptionsURI, subscriptionsURI + "/1",
		registriesURI, registriesURI + "/Cmcd.1.0", registriesURI + "/Cmcd.1.0/Registry",
		"/redfish/v1/Nope", "/redfish/v1/Chassis/Node99", "/redfish/v1/Chassis/?$expand=.", "//redfish//v1//Chassis",
		"/redfish/v1/Chassis?$select=Id", "/redfish/v1/Chassis/%2e%2e/Managers", "/redfish/v1/EventService/SSE?$filter=x",
	}
	bodies := []string{"", "{}", "{", "null", "[]", `{"UserName":"a","Password":"b"}`,
		`{"UserName":"new1","Password":"new-password1","RoleId":"ReadOnly"}`,
		`{"UserName":"new2","Password":"new-password1","RoleId":"Root"}`,
		`{"Password":"x"}`, `{"RoleId":7}`, `{"Locked":false}`, `{"Enabled":null}`,
		`{"SessionTimeout":"60"}`, `{"SessionTimeout":1e309}`,
		`{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":"abc"}}}}}`,
		`{"Oem":{"Cmcd":{"Sync":{"Configuration":{"category.sel":false,"groups":[["x"]]}}}}}`,
		`{"a":1}{"b":2}`, "\x00\xff", strings.Repeat(`{"a":`, 2000),
	}
	methods := []string{"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "TRACE"}
	headers := [][2]string{{"", ""}, {"If-Match", `"nope"`}, {"If-None-Match", "*"}, {"OData-Version", "3.0"},
		{"Authorization", "Basic YWRtaW46d3Jvbmc="}, {"Authorization", "Basic !!!"}, {"X-Auth-Token", "x"},
		{"Content-Type", "text/plain"}, {"Last-Event-ID", "999999999999999999999"}}
	i := 0
	for _, p := range paths {
		for _, m := range methods {
			h := headers[i%len(headers)]
			body := bodies[i%len(bodies)]
			f.Add(m, p, h[0], h[1], []byte(body), i%3 != 0)
			i++
		}
	}
	ft := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, method, path, hname, hvalue string, body []byte, authed bool) {
		ft.check(t, method, path, hname, hvalue, body, authed)
	})
}
