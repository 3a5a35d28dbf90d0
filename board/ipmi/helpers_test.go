package ipmi

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"cmcd/board/ipmi/ipmitest"
)

// nodeConfig is how the collector reaches a simulator. ipmi_sim has no
// cipher suite 17 (nor Get Channel Cipher Suites), so tests pin suite 3.
func nodeConfig(slot int, s *ipmitest.Sim) NodeConfig {
	return NodeConfig{Slot: slot, Host: s.Host, Port: s.Port, Username: s.User,
		Password: Secret(s.Password), CipherSuite: CipherSuite3, Timeout: Duration(time.Second)}
}

// newSource returns a collector over the simulators (slot i+1 = sims[i]),
// closed when the test ends.
func newSource(t testing.TB, sims []*ipmitest.Sim, opts ...Option) *Source {
	t.Helper()
	var cfg Config
	for i, s := range sims {
		cfg.Nodes = append(cfg.Nodes, nodeConfig(i+1, s))
	}
	opts = append([]Option{WithLogger(testLogger(t))}, opts...)
	src, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// testLogger logs to the test's output (shown on failure or with -v).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ipmitoolSensor is one line of `ipmitool sensor list`.
type ipmitoolSensor struct {
	value  string
	unit   string
	status string
}

func parseSensorList(t testing.TB, out string) map[string]ipmitoolSensor {
	t.Helper()
	m := map[string]ipmitoolSensor{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) < 4 {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		m[f[0]] = ipmitoolSensor{value: f[1], unit: f[2], status: f[3]}
	}
	return m
}

// ipmitoolSEL is one line of `ipmitool sel list`.
type ipmitoolSEL struct {
	id      uint16
	preInit bool
	secs    uint32    // pre-init: seconds after BMC start
	t       time.Time // otherwise (UTC, whole seconds)
	sensor  string
	event   string
	dir     string
}

func parseSELList(t testing.TB, out string) []ipmitoolSEL {
	t.Helper()
	var list []ipmitoolSEL
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "SEL has no entries") || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "|")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		if len(f) < 6 {
			t.Fatalf("unexpected sel list line %q", line)
		}
		id, err := strconv.ParseUint(f[0], 16, 16)
		if err != nil {
			t.Fatalf("sel list line %q: %v", line, err)
		}
		e := ipmitoolSEL{id: uint16(id), sensor: f[3], event: f[4], dir: f[5]}
		if f[1] == "Pre-Init" {
			e.preInit = true
			s, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil {
				t.Fatalf("sel list line %q: %v", line, err)
			}
			e.secs = uint32(s)
		} else {
			ts, err := time.Parse("01/02/06 15:04:05 MST", f[1]+" "+f[2])
			if err != nil {
				t.Fatalf("sel list line %q: %v", line, err)
			}
			e.t = ts.UTC()
		}
		list = append(list, e)
	}
	return list
}

// parseColon reads "Key : Value" lines (ipmitool fru print, sel info).
func parseColon(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), ":")
		if !found {
			continue
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

// eventually polls cond until it holds or the time runs out.
func eventually(t testing.TB, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s (last: %s)", what, limit, last)
}

func fmtVal(v float64) string { return fmt.Sprintf("%.3f", v) }
