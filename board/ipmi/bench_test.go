package ipmi

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"cmcd/board"
	"cmcd/board/ipmi/ipmitest"
)

// refreshChassis reads every node the way the daemon's collector loop
// does: all nodes at once, each Node + SEL + Faults + FRU.
func refreshChassis(ctx context.Context, src board.NodeSource) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(src.Slots()))
	for _, slot := range src.Slots() {
		wg.Add(1)
		go func(slot int) {
			defer wg.Done()
			if _, err := src.Node(ctx, slot); err != nil {
				errs <- err
				return
			}
			if _, err := src.SEL(ctx, slot); err != nil {
				errs <- err
				return
			}
			if _, err := src.Faults(ctx, slot); err != nil {
				errs <- err
				return
			}
			if _, err := src.FRU(ctx, slot); err != nil {
				errs <- err
			}
		}(slot)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// BenchmarkChassisRefresh measures a full chassis refresh (Node, SEL,
// Faults and FRU of every node, nodes in parallel) against 16 ipmi_sim
// node BMCs, each with 10 sensors, FRU data and a 5-entry SEL.
func BenchmarkChassisRefresh(b *testing.B) {
	const nodes = board.MaxNodes
	sims := make([]*ipmitest.Sim, nodes)
	var wg sync.WaitGroup
	for i := range sims {
		wg.Add(1)
		go func() { defer wg.Done(); sims[i] = ipmitest.StartSim(b, testNode(i+1)) }()
	}
	wg.Wait()
	src := newSource(b, sims)
	ctx := context.Background()
	// The first refresh opens the sessions and reads SDRs and SELs whole.
	t0 := time.Now()
	if err := refreshChassis(ctx, src); err != nil {
		b.Fatal(err)
	}
	cold := time.Since(t0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := refreshChassis(ctx, src); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/refresh")
	b.ReportMetric(float64(cold.Microseconds())/1000, "ms/first-refresh")
	fmt.Printf("chassis refresh, %d ipmi_sim nodes (Node+SEL+Faults+FRU each): first %s (sessions, SDRs, SELs), then %s per refresh\n",
		nodes, cold.Round(time.Microsecond), per.Round(time.Microsecond))
}
