package daemon

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"cmcd/board"
	"cmcd/board/hw"
	"cmcd/board/ipmi"
	"cmcd/board/sim"
	"cmcd/clock"
)

// checkBoard validates --board: "sim", or the path of a board profile
// (board/hw) that must load and validate.
func checkBoard(name string) error {
	if name == "sim" {
		return nil
	}
	if _, err := hw.LoadProfile(name); err != nil {
		return fmt.Errorf("--board %q: not \"sim\" and not a usable board profile: %w", name, err)
	}
	return nil
}

// openBoard builds the chassis --board selects: the simulated one, or the
// real board described by a profile (PSUs, fans, FRU over I2C/hwmon, nodes
// over IPMI when the profile names a node file).
//
// For the simulated board it also returns the simulation, whose nodes
// boardFor may put behind simulated BMCs.
func openBoard(c Config, clk clock.Clock, log *slog.Logger) (*board.Chassis, *sim.Chassis, error) {
	if c.Board == "sim" {
		return openSim(c, clk)
	}
	p, err := hw.LoadProfile(c.Board)
	if err != nil {
		return nil, nil, err
	}
	ch, err := hw.Open(p, hw.Options{Log: log.With("board", p.Name)})
	if err != nil {
		return nil, nil, fmt.Errorf("board profile %s: %w", c.Board, err)
	}
	for _, pr := range ch.FRUProblems {
		log.Warn("chassis FRU", "problem", pr)
	}
	if p.Nodes == SimNodes {
		// The board's PSUs, fans and FRU are real; its nodes are
		// simulated (the emulated CMC, cross/qemu, has no node BMCs).
		sb, simc, err := openSim(c, clk)
		if err != nil {
			ch.Close()
			return nil, nil, err
		}
		return ch.Board(sb.Nodes), simc, nil
	}
	if p.Nodes != "" {
		path := p.Nodes
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(c.Board), path)
		}
		cfg, err := ipmi.LoadConfig(path)
		if err != nil {
			ch.Close()
			return nil, nil, fmt.Errorf("board profile %s: nodes: %w", c.Board, err)
		}
		src, err := ipmi.New(cfg, ipmi.WithLogger(log))
		if err != nil {
			ch.Close()
			return nil, nil, fmt.Errorf("board profile %s: nodes: %w", c.Board, err)
		}
		b := ch.Board(src)
		b.Close = func() error { src.Close(); return ch.Close() }
		return b, nil, nil
	}
	return ch.Board(nil), nil, nil
}

// SimNodes as a board profile's "nodes" gives the real board simulated
// compute nodes (Sim shapes them, as for --board sim).
const SimNodes = "sim"

// openSim builds the simulated chassis.
func openSim(c Config, clk clock.Clock) (*board.Chassis, *sim.Chassis, error) {
	chassis, err := sim.New(sim.Config{Seed: c.Sim.Seed, Nodes: c.Sim.Nodes, PSUs: c.Sim.PSUs, Fans: c.Sim.Fans,
		SELRate: c.Sim.SELRate, FaultRate: c.Sim.FaultRate, Clock: clk})
	if err != nil {
		return nil, nil, err
	}
	if c.Sim.FillSEL > 0 {
		for _, slot := range chassis.Slots() {
			if err := chassis.FillSEL(slot, c.Sim.FillSEL); err != nil {
				return nil, nil, err
			}
		}
	}
	return chassis.Board(), chassis, nil
}
