package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"cmcd/accounts"
	"cmcd/board"
	"cmcd/board/ipmi"
	"cmcd/board/ipmi/simbmc"
	"cmcd/board/sim"
	"cmcd/internal/version"
	"cmcd/ipmisrv"
	"cmcd/syncsel"
)

// SimNodeCredentialsFile is where the simulated chassis' node BMC
// credentials are written (mode 0600) under the data directory: the node
// collector reads them back with ipmi.LoadConfig, the same path a board's
// credentials file takes.
const SimNodeCredentialsFile = "sim-node-bmcs.json"

// boardFor composes the chassis the collector reads. The PSUs and fans
// are the simulation's. The nodes are read over IPMI (board/ipmi) from
//   - the BMCs listed in c.NodeCredentials, when set (a board's node BMCs);
//   - otherwise, with c.Sim.NodeIPMI, one simulated BMC (board/ipmi/simbmc)
//     per simulated node on a loopback port, so that `make run` exercises
//     the same IPMI path as a board;
//   - otherwise directly from the simulation.
//
// The returned function stops what was started.
func boardFor(ctx context.Context, c Config, b *board.Chassis, simc *sim.Chassis, log *slog.Logger) (*board.Chassis, func(), error) {
	if c.NodeCredentials == "" && (simc == nil || !c.Sim.NodeIPMI) {
		return b, func() {}, nil
	}
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	path := c.NodeCredentials
	if path == "" {
		bmcs, err := startSimBMCs(ctx, c, simc, log)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range bmcs {
			stops = append(stops, func() { _ = m.Close() })
		}
		path = filepath.Join(c.Data, SimNodeCredentialsFile)
	}
	cfg, err := ipmi.LoadConfig(path)
	if err != nil {
		stop()
		return nil, nil, err
	}
	src, err := ipmi.New(cfg, ipmi.WithLogger(log))
	if err != nil {
		stop()
		return nil, nil, err
	}
	stops = append(stops, func() { _ = src.Close() })
	b.Nodes = src
	for _, n := range cfg.Nodes {
		log.Info("node read over IPMI", "node", n) // NodeConfig logs without its password
	}
	return b, stop, nil
}

// startSimBMCs serves each simulated node with a simulated BMC on a free
// loopback port, with a generated user and password, and writes the
// credentials file (0600) the collector then loads. The passwords are
// never logged.
func startSimBMCs(ctx context.Context, c Config, simc *sim.Chassis, log *slog.Logger) ([]*simbmc.BMC, error) {
	var bmcs []*simbmc.BMC
	var cfg ipmi.Config
	fail := func(err error) ([]*simbmc.BMC, error) {
		for _, m := range bmcs {
			_ = m.Close()
		}
		return nil, err
	}
	for _, slot := range simc.Slots() {
		pw, err := randomPassword()
		if err != nil {
			return fail(err)
		}
		m, err := simbmc.Start(ctx, simbmc.Slot(simc, slot), simbmc.Config{Addr: "127.0.0.1:0", User: "cmcd",
			Password: pw, Name: fmt.Sprintf("sim-node-%d", slot), Logger: log})
		if err != nil {
			return fail(fmt.Errorf("simulated BMC of node %d: %w", slot, err))
		}
		bmcs = append(bmcs, m)
		cfg.Nodes = append(cfg.Nodes, ipmi.NodeConfig{Slot: slot, Name: fmt.Sprintf("Node%d", slot), Host: "127.0.0.1", Port: m.Addr().Port,
			Username: "cmcd", Password: ipmi.Secret(pw), CipherSuite: ipmi.CipherSuite17})
	}
	if err := writeCredentials(filepath.Join(c.Data, SimNodeCredentialsFile), cfg); err != nil {
		return fail(err)
	}
	return bmcs, nil
}

func randomPassword() (string, error) {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil // 20 characters, the RMCP+ maximum
}

// writeCredentials writes a node credentials file with mode 0600,
// crash-safely (temporary file, fsync, rename).
func writeCredentials(path string, cfg ipmi.Config) error {
	type node struct {
		Slot        int    `json:"slot"`
		Name        string `json:"name"`
		Host        string `json:"host"`
		Port        int    `json:"port"`
		Username    string `json:"username"`
		Password    string `json:"password"`
		CipherSuite int    `json:"cipherSuite"`
	}
	var out struct {
		Nodes []node `json:"nodes"`
	}
	for _, n := range cfg.Nodes {
		out.Nodes = append(out.Nodes, node{n.Slot, n.Name, n.Host, n.Port, n.Username, n.Password.Reveal(), n.CipherSuite})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("node credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err = tmp.Chmod(0o600); err == nil {
		if _, err = tmp.Write(append(b, '\n')); err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("node credentials %s: %w", path, err)
	}
	return nil
}

// serveIPMI starts the RMCP+ responder on c.IPMI (none when empty). The
// returned function stops it.
func serveIPMI(c Config, acct *accounts.Store, eng *syncsel.Engine, b *board.Chassis, log *slog.Logger, gate *ipmisrv.WriteGate) (func(), error) {
	if c.IPMI == "" {
		return func() {}, nil
	}
	srv, err := ipmisrv.Start(ipmisrv.Options{
		Addr: c.IPMI, Accounts: acct, StateDir: c.Data,
		Data:     func() ipmisrv.Reader { return eng.Store() },
		Nodes:    b.Nodes,
		Refresh:  func(ctx context.Context) error { _, err := eng.Collector().Collect(ctx); return err },
		Firmware: version.Version, Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("ipmi listener %s: %w", c.IPMI, err)
	}
	if gate != nil {
		srv.SetWriteGate(*gate)
	}
	log.Info("ipmi listening", "addr", srv.Addr().String(), "cipherSuites", "17,3")
	return func() {
		if err := srv.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			log.Warn("ipmi listener close", "err", err)
		}
	}, nil
}
