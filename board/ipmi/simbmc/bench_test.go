package simbmc_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"cmcd/board"
	"cmcd/board/ipmi"
	"cmcd/board/ipmi/simbmc"
)

// BenchmarkChassisRefreshSimBMC is the full chassis refresh of the node
// collector (Node, SEL, Faults and FRU of every node, nodes in parallel)
// against 16 simulated BMCs in this process, over RMCP+ with cipher suite
// 17 on loopback: the collector's own cost, without ipmi_sim.
func BenchmarkChassisRefreshSimBMC(b *testing.B) {
	var cfg ipmi.Config
	for slot := 1; slot <= board.MaxNodes; slot++ {
		bmc, err := simbmc.Start(context.Background(), newFake(), simbmc.Config{User: "admin", Password: "s3cret-pw",
			Name: fmt.Sprint(slot), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = bmc.Close() })
		cfg.Nodes = append(cfg.Nodes, ipmi.NodeConfig{Slot: slot, Host: "127.0.0.1", Port: bmc.Addr().Port,
			Username: "admin", Password: "s3cret-pw"})
	}
	src, err := ipmi.New(cfg, ipmi.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = src.Close() })
	ctx := context.Background()
	refresh := func() {
		var wg sync.WaitGroup
		for _, slot := range src.Slots() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err1 := src.Node(ctx, slot)
				_, err2 := src.SEL(ctx, slot)
				_, err3 := src.Faults(ctx, slot)
				_, err4 := src.FRU(ctx, slot)
				for _, err := range []error{err1, err2, err3, err4} {
					if err != nil {
						b.Error(err)
					}
				}
			}()
		}
		wg.Wait()
	}
	t0 := time.Now()
	refresh()
	cold := time.Since(t0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		refresh()
	}
	b.StopTimer()
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/refresh")
	fmt.Printf("chassis refresh, %d simulated BMCs (simbmc, suite 17; Node+SEL+Faults+FRU each): first %s, then %s per refresh\n",
		board.MaxNodes, cold.Round(time.Microsecond), per.Round(time.Microsecond))
}
