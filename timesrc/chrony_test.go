package timesrc

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/beevik/ntp"

	"cmcd/clock"
	"cmcd/timesrc/chronytest"
	"cmcd/timesrc/discipline"
)

// startService starts a time source on a free loopback port and returns it
// with its NTP address.
func startService(t *testing.T, cfg Config) (*Service, string) {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.Poll == 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return s, s.Servers()[0].Addr().String()
}

// wrongCore is a core server whose clock is off by offset: a cmcd time
// source with a local stratum-1 reference over a virtual clock started
// offset away from the machine's clock. It stands in for "a core server
// with a wrong clock" honestly: it tells the truth about its stratum and
// serves its own (wrong) time, exactly what a misconfigured core would do.
// (chronyd -x cannot be made to serve a clock other than the machine's.)
func wrongCore(t *testing.T, offset time.Duration) string {
	_, addr := startService(t, Config{Role: "core", LocalStratum: 1,
		Clock: discipline.NewVirtual(clock.Real(), offset)})
	return addr
}

func peerState(s *Service, addr string) string {
	for _, p := range s.Poller.Status().Peers {
		if p.Addr == addr {
			return p.State
		}
	}
	return "absent"
}

// TestChronydCoreRegionAndClients: two chronyd cores (stratum 1) and one
// wrong core (+2 s); the region selects a chronyd, rejects the wrong one as
// a falseticker and serves stratum 2; beevik/ntp validates it, a chronyd
// client selects it at stratum 2 (and becomes stratum 3), and chronyd -Q
// measures it within a few milliseconds of the machine's clock.
func TestChronydCoreRegionAndClients(t *testing.T) {
	a := chronytest.Start(t, chronytest.Options{LocalStratum: 1})
	b := chronytest.Start(t, chronytest.Options{LocalStratum: 1})
	wrong := wrongCore(t, 2*time.Second)
	region, addr := startService(t, Config{Name: "chassis-1", Upstream: []string{a.Addr(), b.Addr(), wrong}})

	chronytest.Eventually(t, 20*time.Second, func() string {
		st := region.Poller.Status()
		if !st.Synced || st.Stratum != 2 || peerState(region, wrong) != "falseticker" {
			return fmt.Sprintf("region not synced to a chronyd with the wrong core rejected: %+v", st)
		}
		if st.RefAddr != a.Addr() && st.RefAddr != b.Addr() {
			return "reference is " + st.RefAddr
		}
		return ""
	})
	// served time: within a few ms of the machine clock (the chronyds serve it)
	r, err := ntp.Query(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("beevik/ntp Validate against cmcd: %v", err)
	}
	if r.Stratum != 2 || r.Leap != ntp.LeapNoWarning {
		t.Fatalf("stratum %d leap %d, want 2 / 0", r.Stratum, r.Leap)
	}
	if want := uint32(127<<24 | 1); r.ReferenceID != want {
		t.Fatalf("reference id %08x, want the upstream's address %08x", r.ReferenceID, want)
	}
	if r.ClockOffset.Abs() > 5*time.Millisecond {
		t.Fatalf("cmcd serves a time %v away from the chronyd cores", r.ClockOffset)
	}
	if r.RootDistance <= 0 || r.RootDelay <= 0 {
		t.Fatalf("root delay/distance not accumulated: delay %v distance %v", r.RootDelay, r.RootDistance)
	}

	client := chronytest.Start(t, chronytest.Options{NoServe: true, Servers: []string{addr}})
	chronytest.Eventually(t, 30*time.Second, func() string {
		ss, err := client.Sources()
		if err != nil {
			return err.Error()
		}
		if len(ss) != 1 || ss[0].State != "*" || ss[0].Stratum != 2 {
			return fmt.Sprintf("chronyc sources: %+v", ss)
		}
		tr, err := client.Tracking()
		if err != nil {
			return err.Error()
		}
		if tr.Stratum != 3 || tr.Leap != "Normal" {
			return fmt.Sprintf("chronyc tracking: %+v", tr)
		}
		return ""
	})
	off, out := chronytest.QueryOnce(t, addr)
	if math.Abs(off) > 0.005 {
		t.Fatalf("chronyd -Q offset %g s against cmcd, want < 5 ms:\n%s", off, out)
	}
	t.Logf("chronyd -Q against cmcd: %g s", off)
}

// TestRegionFollowsCore: a single core 300 ms ahead of the machine clock;
// the region's virtual clock follows it (never touching the machine's), so
// chronyd -Q measures cmcd 300 ms away while the machine's clock is unchanged.
func TestRegionFollowsCore(t *testing.T) {
	core := wrongCore(t, 300*time.Millisecond)
	region, addr := startService(t, Config{Upstream: []string{core}})
	chronytest.Eventually(t, 20*time.Second, func() string {
		if st := region.Poller.Status(); !st.Synced {
			return fmt.Sprintf("not synced: %+v", st)
		}
		return ""
	})
	off, out := chronytest.QueryOnce(t, addr)
	if math.Abs(math.Abs(off)-0.3) > 0.005 {
		t.Fatalf("chronyd -Q offset %g s, want ±0.300 (cmcd follows its core):\n%s", off, out)
	}
	if d := time.Until(region.Clock.Now()); (d - 300*time.Millisecond).Abs() > 5*time.Millisecond {
		t.Fatalf("served clock %v ahead, want 300ms", d)
	}
}

// TestUnsynchronisedServesLeap3: without any reachable core the region
// answers leap 3 / stratum 16, and a chronyd client does not select it.
func TestUnsynchronisedServesLeap3(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", chronytest.FreeUDPPort(t))
	_, addr := startService(t, Config{Upstream: []string{dead}})
	r, err := ntp.Query(addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Leap != ntp.LeapNotInSync || r.Stratum != 16 {
		t.Fatalf("leap %d stratum %d, want 3 / 16", r.Leap, r.Stratum)
	}
	if r.Validate() == nil {
		t.Fatal("beevik/ntp must refuse an unsynchronised server")
	}
	client := chronytest.Start(t, chronytest.Options{NoServe: true, Servers: []string{addr}})
	chronytest.Eventually(t, 20*time.Second, func() string {
		d, err := client.NTPData()
		if err != nil {
			return err.Error()
		}
		if d.TotalRX < 3 || d.Leap != "Not synchronised" {
			return fmt.Sprintf("chronyd has not seen cmcd's unsynchronised answers yet: %+v", d)
		}
		return ""
	})
	ss, err := client.Sources()
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 || ss[0].State == "*" || ss[0].Reach != 0 {
		t.Fatalf("chronyd must not count or select an unsynchronised server: %+v", ss)
	}
}
