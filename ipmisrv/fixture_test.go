package ipmisrv_test

import (
	"bytes"
	"cmcd/internal/syncbuf"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cmcd/accounts"
	"cmcd/board/sim"
	"cmcd/clock/clocktest"
	"cmcd/flash"
	"cmcd/ipmisrv"
	"cmcd/syncsel"
)

// t0 is the simulated chassis' start; its clock stands still, so every
// reading is the same for the store and for the clients.
var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// Passwords of the fixture's accounts.
const (
	adminPW  = "Adm1n-pass-123"
	operPW   = "0per-pass-456"
	readerPW = "Read-pass-789"
)

type fixture struct {
	t       testing.TB
	dir     string
	chassis *sim.Chassis
	store   *syncsel.Store
	coll    *syncsel.Collector
	acct    *accounts.Store
	srv     *ipmisrv.Server
	port    int
	logs    *syncBuf
	// data, when set, replaces the store as what the responder reads.
	dataMu sync.Mutex
	data   ipmisrv.Reader
	// skew is added to the responder's clock.
	skew   atomic.Int64
	hsWait time.Duration
	maxAge time.Duration
	listen string // host the responder binds ("": the wildcard address)
	host   string // host ipmitool asks
}

type syncBuf = syncbuf.Buffer

// newFixture builds a real store from a simulated chassis (nodes, PSUs,
// fans, FRUs, node SELs) plus CMC events, real accounts, and starts the
// responder on a free loopback port.
func newFixture(t testing.TB, nodes, selPerNode int, limiter *accounts.Limiter, opts ...func(*fixture)) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), logs: &syncBuf{}, hsWait: time.Second, maxAge: time.Nanosecond,
		listen: "127.0.0.1", host: "127.0.0.1"}
	for _, o := range opts {
		o(f)
	}
	clk := clocktest.New(t0)
	var err error
	f.chassis, err = sim.New(sim.Config{Seed: 7, Nodes: nodes, PSUs: 3, Fans: 5, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range f.chassis.Slots() {
		if selPerNode > 0 {
			if err := f.chassis.FillSEL(slot, selPerNode); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.chassis.SetPSUFailed(3, true)
	f.store, err = syncsel.OpenStore(filepath.Join(f.dir, "cmcd.db"), flash.Primary, syncsel.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.coll = syncsel.NewCollector(f.chassis.Board(), f.store, clk, log)
	if _, err := f.coll.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"ConfigChanged", "RoundCommitted", "RoundRolledBack", "BackupStarted"} {
		sev := "OK"
		if k == "RoundRolledBack" {
			sev = "Warning"
		}
		if _, err := f.store.AppendEvent(syncsel.Event{Time: t0.Add(time.Duration(i) * time.Second), Kind: k,
			Severity: sev, Message: k, Round: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	aopts := []accounts.Option{accounts.WithBcryptCost(4)}
	if limiter != nil {
		aopts = append(aopts, accounts.WithLimiter(limiter))
	}
	f.acct, err = accounts.Open(filepath.Join(f.dir, "acct"), aopts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		u, p string
		r    accounts.Role
	}{{"admin", adminPW, accounts.RoleAdministrator}, {"oper", operPW, accounts.RoleOperator},
		{"reader", readerPW, accounts.RoleReadOnly}} {
		if _, err := f.acct.Create(a.u, a.p, a.r); err != nil {
			t.Fatal(err)
		}
	}
	f.start()
	return f
}

func (f *fixture) start() {
	f.t.Helper()
	srv, err := ipmisrv.Start(ipmisrv.Options{
		Addr: net.JoinHostPort(f.listen, strconv.Itoa(f.port)), Accounts: f.acct, StateDir: f.dir,
		Data: func() ipmisrv.Reader {
			f.dataMu.Lock()
			defer f.dataMu.Unlock()
			if f.data != nil {
				return f.data
			}
			return f.store
		},
		Now:              func() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) },
		HandshakeTimeout: f.hsWait,
		Nodes:            f.chassis, Firmware: "1.7",
		Refresh: func(ctx context.Context) error { _, err := f.coll.Collect(ctx); return err },
		MaxAge:  f.maxAge, // tests: every request sees the store as it is
		Log:     slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.srv = srv
	f.port = srv.Addr().Port
	f.t.Cleanup(func() { _ = srv.Close() })
}

// run runs a client tool in its own process group (killed if it hangs)
// with TZ=UTC and returns its standard output.
func run(prog string, args ...string) (string, error) {
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return stdout.String(), fmt.Errorf("%s %s: %v: %s", prog, redact(args), err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return stdout.String(), fmt.Errorf("%s %s: timed out", prog, redact(args))
	}
	return stdout.String(), nil
}

func redact(args []string) string {
	out := strings.Join(args, " ")
	for _, pw := range []string{adminPW, operPW, readerPW} {
		out = strings.ReplaceAll(out, pw, "****")
	}
	return out
}

// ipmitool runs ipmitool -I lanplus with a cipher suite as user/password.
func (f *fixture) ipmitoolAs(suite, user, pw string, args ...string) (string, error) {
	base := []string{"-I", "lanplus", "-C", suite, "-H", f.host, "-p", strconv.Itoa(f.port),
		"-U", user, "-P", pw, "-N", "1", "-R", "2"}
	return run("ipmitool", append(base, args...)...)
}

func (f *fixture) ipmitool(suite string, args ...string) string {
	f.t.Helper()
	out, err := f.ipmitoolAs(suite, "admin", adminPW, args...)
	if err != nil {
		f.t.Fatalf("%v\nserver log:\n%s", err, tail(f.logs.String(), 3000))
	}
	return out
}

// freeipmi runs a FreeIPMI tool over RMCP+ (LAN_2_0) with the given cipher
// suite as admin, with no workaround flags.
func (f *fixture) freeipmi(tool, suite string, args ...string) string {
	f.t.Helper()
	out, err := f.freeipmiErr(tool, suite, args...)
	if err != nil {
		f.t.Fatalf("%v\nserver log:\n%s", err, tail(f.logs.String(), 3000))
	}
	return out
}

func (f *fixture) freeipmiErr(tool, suite string, args ...string) (string, error) {
	base := []string{"-h", "127.0.0.1:" + strconv.Itoa(f.port), "-u", "admin", "-p", adminPW,
		"-I", suite, "--driver-type=LAN_2_0"}
	switch tool {
	case "ipmi-sensors", "ipmi-sel", "ipmi-fru":
		cache := filepath.Join(f.dir, "sdr-cache")
		if err := os.MkdirAll(cache, 0o700); err != nil {
			return "", err
		}
		base = append(base, "--quiet-cache", "--sdr-cache-directory="+cache)
	}
	return run(tool, append(base, args...)...)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// need fails the test when a peer is missing (make test installs them).
func need(t testing.TB, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s not found: run scripts/install-deps.sh (packages ipmitool, freeipmi-tools, openipmi)", p)
		}
	}
}

func (f *fixture) setData(r ipmisrv.Reader) {
	f.dataMu.Lock()
	f.data = r
	f.dataMu.Unlock()
}
