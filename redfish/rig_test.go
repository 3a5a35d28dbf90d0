package redfish

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"cmcd/accounts"
	"cmcd/board/sim"
	"cmcd/firmware"
	"cmcd/firmware/firmwaretest"
	"cmcd/flash"
	"cmcd/internal/rfschema"
	"cmcd/syncsel"
)

type rig struct {
	t        *testing.T
	eng      *syncsel.Engine
	acct     *accounts.Store
	srv      *Server
	ts       *httptest.Server
	adminPW  string
	now      time.Time
	nowMu    sync.Mutex
	validate bool
	images   *flash.SimImages
	sim      *sim.Chassis // the simulated board the engine collects from
	acctDir  string       // the accounts store's directory
	fw       *firmware.Service
	areas    flash.Areas
}

// rigOption changes how newRig builds the service.
type rigOption struct {
	kit       *firmwaretest.Kit // non-nil: a firmware service trusting the kit's key
	upgradeTo string            // with kit: boot an upgrade to this version (the S5 choice is pending)
	device    flash.DeviceInfo  // with kit: the slots' geometry (zero: rigDevice)
	pair      PairView          // the redundant pair (nil: none)
}

const (
	operatorPW = "operator-pw1"
	readerPW   = "reader-pw-1"
)

func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	var opt rigOption
	if len(opts) > 0 {
		opt = opts[0]
	}
	s, err := sim.New(sim.Config{Seed: 7, Nodes: 2, PSUs: 2, Fans: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range s.Slots() {
		if err := s.FillSEL(slot, 3); err != nil {
			t.Fatal(err)
		}
	}
	areas := flash.Areas{Root: t.TempDir()}
	if err := areas.Ensure(); err != nil {
		t.Fatal(err)
	}
	var fw *firmware.Service
	var images *flash.SimImages
	if opt.kit != nil {
		fw = openRigFirmware(t, opt, areas)
		images = fw.Images()
	} else {
		images, err = flash.OpenSimImages(areas, time.Now)
		if err != nil {
			t.Fatal(err)
		}
	}
	eng, err := syncsel.Open(syncsel.Options{Areas: areas, Images: images, Board: s.Board(),
		Override: map[string]json.RawMessage{"probeInterval": json.RawMessage(`"20ms"`),
			"interval": json.RawMessage(`"1h"`)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := eng.Collector().Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fw != nil {
		if err := fw.AttachData(firmware.NewEngineData(eng)); err != nil {
			t.Fatal(err)
		}
		if _, err := fw.ReportHealthy(); err != nil {
			t.Fatal(err)
		}
	}
	acctDir := t.TempDir()
	acct, err := accounts.Open(acctDir, accounts.WithBcryptCost(bcrypt.MinCost))
	if err != nil {
		t.Fatal(err)
	}
	pw, created, err := acct.EnsureInitialAdmin()
	if err != nil || !created {
		t.Fatal(created, err)
	}
	if _, err := acct.Create("operator", operatorPW, accounts.RoleOperator); err != nil {
		t.Fatal(err)
	}
	if _, err := acct.Create("reader", readerPW, accounts.RoleReadOnly); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, eng: eng, acct: acct, adminPW: pw, now: time.Now(), validate: true, sim: s, images: images, acctDir: acctDir, fw: fw, areas: areas}
	r.srv = New(Options{Accounts: acct, Engine: eng, Now: r.clock, SessionTimeout: 10 * time.Minute, Firmware: fw, Pair: opt.pair,
		Tree: TreeOptions{Board: s.Board(), Images: images, Probers: map[flash.Slot]flash.Prober{
			flash.Primary: flash.AreaProber{Path: areas.StorePath(flash.Primary)},
			flash.Backup:  flash.AreaProber{Path: areas.StorePath(flash.Backup)}}}})
	r.ts = httptest.NewServer(r.srv)
	t.Cleanup(r.ts.Close)
	t.Cleanup(func() { r.srv.Close() }) // runs first: ends event streams, which ts.Close waits for
	return r
}

func (r *rig) clock() time.Time {
	r.nowMu.Lock()
	defer r.nowMu.Unlock()
	return r.now
}

func (r *rig) advance(d time.Duration) {
	r.nowMu.Lock()
	r.now = r.now.Add(d)
	r.nowMu.Unlock()
}

// auth is how a request authenticates.
type auth struct {
	user, pass string // Basic
	token      string // X-Auth-Token
}

func (r *rig) admin() auth    { return auth{user: "admin", pass: r.adminPW} }
func (r *rig) operator() auth { return auth{user: "operator", pass: operatorPW} }
func (r *rig) reader() auth   { return auth{user: "reader", pass: readerPW} }

type resp struct {
	*http.Response
	body []byte
}

func (x resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(x.body, &m); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %v\n%s", x.Request.Method, x.Request.URL.Path, err, x.body)
	}
	return m
}

func (r *rig) do(method, path string, a auth, body string, hdr ...string) resp {
	r.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.ts.URL+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("X-Auth-Token", a.token)
	} else if a.user != "" {
		req.SetBasicAuth(a.user, a.pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	if got := res.Header.Get("OData-Version"); got != "4.0" {
		r.t.Errorf("%s %s: OData-Version %q", method, path, got)
	}
	x := resp{res, b}
	if r.validate && res.StatusCode >= 400 && len(b) > 0 {
		validateAgainst(r.t, x, rfschema.ErrorSchema)
	}
	return x
}

// get fetches path, expects 200, and validates the payload against the
// schema its @odata.type names.
func (r *rig) get(path string, a auth) map[string]any {
	r.t.Helper()
	x := r.do("GET", path, a, "")
	if x.StatusCode != 200 {
		r.t.Fatalf("GET %s: %s\n%s", path, x.Status, x.body)
	}
	if x.Header.Get("ETag") == "" {
		r.t.Errorf("GET %s: no ETag", path)
	}
	m := x.json(r.t)
	if r.validate {
		validatePayload(r.t, x, m)
	}
	return m
}

// expectError checks status and the MessageId of the first extended info.
func expectError(t *testing.T, x resp, status int, id string) {
	t.Helper()
	if x.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d\n%s", x.Request.Method, x.Request.URL.Path, x.StatusCode, status, x.body)
	}
	var e struct {
		Error struct {
			Info []struct{ MessageId string } `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	if err := json.Unmarshal(x.body, &e); err != nil || len(e.Error.Info) == 0 {
		t.Fatalf("%s %s: no extended info: %v\n%s", x.Request.Method, x.Request.URL.Path, err, x.body)
	}
	if got := e.Error.Info[0].MessageId; got != "Base.1.22."+id {
		t.Fatalf("%s %s: MessageId %s, want Base.1.22.%s\n%s", x.Request.Method, x.Request.URL.Path, got, id, x.body)
	}
}

var (
	validatorOnce sync.Once
	validator     *rfschema.Validator
	validatorErr  error
)

func schemas(t *testing.T) *rfschema.Validator {
	t.Helper()
	validatorOnce.Do(func() { validator, validatorErr = rfschema.New() })
	if validatorErr != nil {
		t.Fatal(validatorErr)
	}
	return validator
}

func validatePayload(t *testing.T, x resp, m map[string]any) {
	t.Helper()
	if err := schemas(t).Validate(x.body); err != nil {
		t.Errorf("%s %s (%d) %v\n%s", x.Request.Method, x.Request.URL.Path, x.StatusCode, err, x.body)
	}
}

func validateAgainst(t *testing.T, x resp, url string) {
	t.Helper()
	if err := schemas(t).ValidateAgainst(x.body, url); err != nil {
		t.Errorf("%s %s (%d) %v\n%s", x.Request.Method, x.Request.URL.Path, x.StatusCode, err, x.body)
	}
}
