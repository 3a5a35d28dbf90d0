package upstream

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"cmcd/clock/clocktest"
	"cmcd/timesrc/discipline"
	"cmcd/timesrc/events"
)

// fakeNet answers queries from a model: true time = raw + trueOff - freq*(raw-t0),
// each server adding its own error; a server can be made unreachable.
type fakeNet struct {
	mu      sync.Mutex
	raw     *clocktest.Fake
	t0      time.Time
	trueOff time.Duration
	freq    float64
	err     map[string]time.Duration // per-server error
	down    map[string]bool
	queries int
}

func (f *fakeNet) Query(_ context.Context, addr string) (Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.down[addr] {
		return Sample{}, errors.New("i/o timeout")
	}
	now := f.raw.Now()
	off := f.trueOff - time.Duration(f.freq*now.Sub(f.t0).Seconds()*1e9) + f.err[addr]
	return Sample{At: now, Offset: off, RTT: 200 * time.Microsecond, RootDelay: 0, RootDisp: 50 * time.Microsecond, Stratum: 1}, nil
}

func TestPollerSelectsEstimatesAndHoldsOver(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	raw := clocktest.New(t0)
	net := &fakeNet{raw: raw, t0: t0, trueOff: 20 * time.Millisecond, freq: 30e-6,
		err:  map[string]time.Duration{"127.0.0.3:123": 2 * time.Second},
		down: map[string]bool{}}
	v := discipline.NewVirtual(raw, 0)
	log := events.NewLog(100, nil)
	p := New(Config{Servers: []string{"127.0.0.1:123", "127.0.0.2:123", "127.0.0.3:123"}, Poll: 8 * time.Second,
		HoldoverMax: time.Minute}, net, raw, v, log.Emit)
	if st := p.Status(); st.Synced || st.Stratum != 16 || st.Leap() != 3 {
		t.Fatalf("before the first poll the source must be unsynchronised: %+v", st)
	}
	ctx := context.Background()
	for i := 0; i < 12; i++ {
		p.PollOnce(ctx)
		raw.Advance(8 * time.Second)
	}
	st := p.Status()
	if !st.Synced || st.Stratum != 2 || st.Leap() != 0 {
		t.Fatalf("synced state: %+v", st)
	}
	states := map[string]string{}
	for _, ps := range st.Peers {
		states[ps.Addr] = ps.State
	}
	if states["127.0.0.3:123"] != "falseticker" {
		t.Fatalf("the +2s server must be a falseticker: %v", states)
	}
	if st.RefAddr == "127.0.0.3:123" || st.RefID != refID(st.RefAddr) {
		t.Fatalf("reference %s/%x", st.RefAddr, st.RefID)
	}
	if st.Freq < 29 || st.Freq > 31 {
		t.Fatalf("frequency estimate %.2f ppm, want 30", st.Freq)
	}
	// the served (virtual) time equals the model's true time
	trueNow := raw.Now().Add(net.trueOff - time.Duration(net.freq*raw.Now().Sub(t0).Seconds()*1e9))
	if d := v.Now().Sub(trueNow).Abs(); d > 10*time.Microsecond {
		t.Fatalf("served time off true time by %v", d)
	}
	// pause (T3): no queries, holdover, estimate keeps running
	q := net.queries
	p.SetPaused(true, "core says so")
	p.PollOnce(ctx)
	if net.queries != q {
		t.Fatal("a paused poller must not query")
	}
	if st := p.Status(); !st.Synced || !st.Holdover || !st.Paused {
		t.Fatalf("paused: want holdover, got %+v", st)
	}
	raw.Advance(30 * time.Second)
	trueNow = raw.Now().Add(net.trueOff - time.Duration(net.freq*raw.Now().Sub(t0).Seconds()*1e9))
	if d := v.Now().Sub(trueNow).Abs(); d > 10*time.Microsecond {
		t.Fatalf("holdover drifted %v", d)
	}
	p.SetPaused(false, "")
	p.PollOnce(ctx)
	if st := p.Status(); st.Holdover || !st.Synced {
		t.Fatalf("resumed: %+v", st)
	}
	// all servers unreachable: holdover, then unsynchronised after HoldoverMax
	net.mu.Lock()
	for _, s := range []string{"127.0.0.1:123", "127.0.0.2:123", "127.0.0.3:123"} {
		net.down[s] = true
	}
	net.mu.Unlock()
	for i := 0; i < 8; i++ {
		raw.Advance(8 * time.Second)
		p.PollOnce(ctx)
	}
	if st := p.Status(); st.Synced || st.Stratum != 16 || st.Leap() != 3 {
		t.Fatalf("after %v without upstream: %+v", time.Minute, st)
	}
	kinds := map[string]bool{}
	for _, e := range log.Events() {
		kinds[e.Kind] = true
	}
	for _, k := range []string{"upstream.selected", "upstream.falseticker", "upstream.paused", "upstream.resumed", "upstream.holdover", "upstream.unreachable", "upstream.unsynchronised"} {
		if !kinds[k] {
			t.Errorf("no %s event; got %v", k, kinds)
		}
	}
}

func TestLocalStratumCore(t *testing.T) {
	raw := clocktest.New(time.Unix(1e9, 0))
	p := New(Config{LocalStratum: 1}, nil, raw, discipline.NewVirtual(raw, 0), nil)
	p.PollOnce(context.Background())
	if st := p.Status(); !st.Synced || st.Stratum != 1 || st.RefAddr != "LOCL" {
		t.Fatalf("core with local reference: %+v", st)
	}
}
