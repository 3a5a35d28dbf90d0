package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"cmcd/board/sim"
	"cmcd/clock"
	"cmcd/flash"
	"cmcd/internal/version"
	"cmcd/syncsel"
)

// Run starts cmcd and blocks until ctx ends.
func Run(ctx context.Context, c Config, log *slog.Logger) error {
	if err := c.Validate(); err != nil {
		return err
	}
	clk := clock.Real()
	chassis, err := sim.New(sim.Config{Seed: c.Sim.Seed, Nodes: c.Sim.Nodes, PSUs: c.Sim.PSUs, Fans: c.Sim.Fans,
		SELRate: c.Sim.SELRate, FaultRate: c.Sim.FaultRate, Clock: clk})
	if err != nil {
		return err
	}
	for _, slot := range chassis.Slots() {
		if c.Sim.FillSEL > 0 {
			if err := chassis.FillSEL(slot, c.Sim.FillSEL); err != nil {
				return err
			}
		}
	}
	areas := flash.Areas{Root: c.Data}
	if err := areas.Ensure(); err != nil {
		return err
	}
	images, err := flash.OpenSimImages(areas, time.Now)
	if err != nil {
		return err
	}
	var override map[string]json.RawMessage
	if c.SyncInterval != "" {
		override = map[string]json.RawMessage{"interval": json.RawMessage(fmt.Sprintf("%q", c.SyncInterval))}
	}
	eng, err := syncsel.Open(syncsel.Options{
		Areas:  areas,
		Images: images,
		Probers: map[flash.Slot]flash.Prober{
			flash.Primary: flash.AreaProber{Path: areas.StorePath(flash.Primary)},
			flash.Backup:  flash.AreaProber{Path: areas.StorePath(flash.Backup)},
		},
		Board:    chassis.Board(),
		Clock:    clk,
		Log:      log,
		Initial:  syncsel.DefaultConfig(),
		Override: override,
	})
	if err != nil {
		return err
	}
	defer eng.Close()
	st := eng.State()
	cfg := eng.Config()
	log.Info("cmcd started", "version", version.Version, "data", c.Data, "board", c.Board, "nodes", c.Sim.Nodes,
		"running", st.Running, "source", st.Source, "dest", st.Dest, "interval", cfg.Interval, "groups", cfg.Groups,
		"selected", cfg.Selected)
	if rb := st.RecoveredAtRun; rb != nil {
		log.Warn("recovered a cut round at start-up", "round", rb.Round, "base", rb.Base, "verified", rb.Verified)
	}
	return eng.Run(ctx)
}
