package syncsel

import (
	"context"
	"testing"
	"time"

	"cmcd/board/sim"
	"cmcd/clock/clocktest"
	"cmcd/flash"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// S6: the next round is due at the end of the last one plus the interval;
// "sync now" runs a round at once; a new interval re-plans the schedule.
func TestScheduleWithFakeClock(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clk := clocktest.New(t0)
	s, _ := sim.New(sim.Config{Seed: 3, Nodes: 2, SELRate: 1, Clock: clk})
	areas := flash.Areas{Root: t.TempDir()}
	areas.Ensure()
	images, _ := flash.OpenSimImages(areas, clk.Now)
	eng, err := Open(Options{Areas: areas, Images: images, Board: s.Board(), Clock: clk,
		Override: patch("interval", `"1s"`, "collectInterval", `"100ms"`, "groups", `[["psu","fan","node","asset","sel","fault"]]`)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	rounds := func() uint64 { st := eng.State(); return st.Committed + st.Unchanged }
	if !clk.WaitTimers(2, 5*time.Second) { // collector + scheduler
		t.Fatal("engine did not arm its timers")
	}
	if next := eng.State().NextRound; !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next round %s, want %s", next, t0.Add(time.Second))
	}
	clk.Advance(999 * time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if rounds() != 0 {
		t.Fatal("round ran before it was due")
	}
	clk.Advance(time.Millisecond)
	waitFor(t, "the first round", func() bool { return rounds() == 1 })
	waitFor(t, "the re-plan", func() bool { return eng.State().NextRound.Equal(t0.Add(2 * time.Second)) })
	if eng.State().Committed != 1 {
		t.Fatalf("first round did not commit: %+v", eng.State())
	}

	// On demand.
	res, err := eng.SyncNow(ctx)
	if err != nil || (res.Record == nil && !res.Unchanged) {
		t.Fatalf("sync now: %+v %v", res, err)
	}
	if rounds() != 2 {
		t.Fatalf("rounds = %d after sync now", rounds())
	}
	// A new interval re-plans from the end of the last round.
	if _, err := eng.UpdateConfig(patch("interval", `"5s"`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "re-plan to 5s", func() bool { return eng.State().NextRound.Equal(t0.Add(6 * time.Second)) })
	clk.Advance(4 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if rounds() != 2 {
		t.Fatal("round ran before the new interval passed")
	}
	clk.Advance(time.Second)
	waitFor(t, "the scheduled round", func() bool { return rounds() == 3 })

	// autoSync off: no scheduled rounds, on demand still works.
	eng.UpdateConfig(patch("autoSync", "false"))
	waitFor(t, "schedule off", func() bool { return eng.State().NextRound.IsZero() })
	clk.Advance(time.Minute)
	time.Sleep(20 * time.Millisecond)
	if rounds() != 3 {
		t.Fatal("scheduled round ran with autoSync off")
	}
	if _, err := eng.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
}
