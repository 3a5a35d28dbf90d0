package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"cmcd/accounts"

	"cmcd/clock"
	"cmcd/firmware"
	"cmcd/flash"
	"cmcd/internal/version"
	"cmcd/redfish"
	"cmcd/syncsel"
	"cmcd/web"
)

// Run starts cmcd and blocks until ctx ends.
func Run(ctx context.Context, c Config, log *slog.Logger) error {
	if err := c.Validate(); err != nil {
		return err
	}
	clk := clock.Real()
	chassis, simc, err := openBoard(c, clk, log)
	if err != nil {
		return err
	}
	defer chassis.Shutdown()
	areas := flash.Areas{Root: c.Data}
	if err := areas.Ensure(); err != nil {
		return err
	}
	brd, stopNodes, err := boardFor(ctx, c, chassis, simc, log)
	if err != nil {
		return err
	}
	defer stopNodes()
	fw, err := openFirmware(c, log)
	if err != nil {
		return err
	}
	defer fw.Close()
	images := fw.Images()
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
		Board:    brd,
		Clock:    clk,
		Log:      log,
		Initial:  syncsel.DefaultConfig(),
		Override: override,
	})
	if err != nil {
		return err
	}
	defer eng.Close()
	if err := fw.AttachData(firmware.NewEngineData(eng)); err != nil {
		return err
	}
	st := eng.State()
	cfg := eng.Config()
	log.Info("cmcd started", "version", version.Version, "data", c.Data, "board", c.Board, "nodes", len(chassis.Nodes.Slots()),
		"running", st.Running, "source", st.Source, "dest", st.Dest, "interval", cfg.Interval, "groups", cfg.Groups,
		"selected", cfg.Selected)
	if rb := st.RecoveredAtRun; rb != nil {
		log.Warn("recovered a cut round at start-up", "round", rb.Round, "base", rb.Base, "verified", rb.Verified)
	}
	acct, err := accounts.Open(c.Data)
	if err != nil {
		return err
	}
	if _, created, err := acct.EnsureInitialAdmin(); err != nil {
		return err
	} else if created {
		log.Warn("created the initial Redfish/IPMI account \"admin\"; its password was written to " +
			filepath.Join(c.Data, accounts.InitialPasswordFile) + " (change it, then the file is removed)")
	}
	ts, err := startNTP(ctx, c, log, eng)
	if err != nil {
		return err
	}
	pm, err := startPair(c, eng, acct, log)
	if err != nil {
		return err
	}
	defer pm.Close()
	rf := redfish.New(redfish.Options{Accounts: acct, Engine: eng, Log: log, Tree: redfishTree(c, brd, images, areas), TimeSource: ts, Firmware: fw, Pair: pm.redfishView()})
	var handler http.Handler = web.Mount(rf)
	if pm != nil {
		if err := pm.attachRedfish(rf); err != nil {
			log.Warn("pair: replicated sessions", "err", err)
		}
		if err := pm.attachFirmware(fw); err != nil {
			log.Warn("pair: replicated firmware state", "err", err)
		}
		handler = pm.RedfishHandler(pm.Handler(handler))
	}
	stopWeb, err := serveRedfish(c, handler, log, func(bound map[string]string) { rf.SetProtocols(redfishProtocols(c, bound)) })
	if err != nil {
		rf.Close()
		return err
	}
	defer stopWeb()
	stopIPMI, err := serveIPMI(c, acct, eng, brd, log, pm.ipmiGateOrNil())
	if err != nil {
		return err
	}
	defer stopIPMI()
	defer rf.Close() // first: ends the event streams, which the listeners' shutdown waits for
	if err := reportHealth(fw, areas.StorePath(eng.State().Running), log); err != nil {
		return err
	}
	pm.firmwareOffered() // daemon/pairfw.go
	return eng.Run(ctx)
}

// serveRedfish starts the Redfish listeners: TLS on c.Redfish (with the
// certificate kept in the data directory, generated on first start) and,
// if configured, plain HTTP on c.InsecureHTTP. The returned function stops
// them. onBound, if not nil, is told every bound address (scheme ->
// host:port) before a listener serves.
func serveRedfish(c Config, h http.Handler, log *slog.Logger, onBound func(map[string]string)) (stop func(), err error) {
	var servers []*http.Server
	bound := map[string]string{}
	stop = func() {
		for _, s := range servers {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.Shutdown(ctx)
			cancel()
		}
	}
	start := func(addr string, tlsOn bool) error {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("redfish listener %s: %w", addr, err)
		}
		scheme := "http"
		if tlsOn {
			cert, created, err := redfish.EnsureCertificate(c.Data)
			if err != nil {
				ln.Close()
				return err
			}
			if created {
				log.Info("generated a self-signed TLS certificate for Redfish", "cert", filepath.Join(c.Data, redfish.CertFile))
			}
			srv.TLSConfig = redfish.TLSConfig(cert)
			scheme = "https"
		}
		servers = append(servers, srv)
		bound[scheme] = ln.Addr().String()
		if onBound != nil {
			onBound(bound)
		}
		go func() {
			var err error
			if tlsOn {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && err != http.ErrServerClosed {
				log.Error("redfish listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
		log.Info("redfish listening", "url", scheme+"://"+ln.Addr().String()+"/redfish/v1/")
		return nil
	}
	if c.Redfish != "" {
		if err := start(c.Redfish, true); err != nil {
			stop()
			return nil, err
		}
	}
	if c.InsecureHTTP != "" {
		log.Warn("plain-HTTP Redfish listener enabled (for tests only)", "addr", c.InsecureHTTP)
		if err := start(c.InsecureHTTP, false); err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}
