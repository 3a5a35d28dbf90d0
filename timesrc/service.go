package timesrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"cmcd/clock"
	"cmcd/timesrc/discipline"
	"cmcd/timesrc/events"
	"cmcd/timesrc/policy"
	"cmcd/timesrc/server"
	"cmcd/timesrc/upstream"
)

// Config configures the time source.
type Config struct {
	Role     string   // "region" (default) or "core"
	Name     string   // region name (T8), e.g. "chassis-7"
	Type     string   // region type (T8): business and/or site, e.g. "hpc/site-a"
	Listen   []string // NTP server addresses; two = dual-active listeners (T7)
	Upstream []string // core servers "host:port"
	// UpstreamFile, when set, keeps the servers set at run time
	// (SetUpstream) across restarts; a saved set overrides Upstream.
	UpstreamFile string
	Poll         time.Duration
	Timeout      time.Duration
	// HoldoverMax: how long the last estimate is served without upstream.
	HoldoverMax time.Duration
	// LocalStratum: with no upstream, serve the local clock at this stratum
	// (a core without a reference). 0 = unsynchronised without upstream.
	LocalStratum uint8
	// Rate limit per client address (requests/s, burst); 0 = off.
	Rate, Burst float64
	// Raw is the machine clock (clock.Real() unless testing); Clock is what
	// is served (discipline.NewVirtual(Raw, 0) when nil).
	Raw   clock.Clock
	Clock discipline.Clock
	// Querier overrides the NTP client (tests).
	Querier upstream.Querier
	// Policy tunes the feedback engine (T2-T6); Role, Name and Type are
	// filled from above.
	Policy policy.Config
	// TickEvery: how often the policy shares are evaluated [1s].
	TickEvery time.Duration
	// CoreReportURL: a region reports its sync state there (T2) every
	// ReportEvery [16s] and follows the core's directive (T3).
	CoreReportURL string
	ReportEvery   time.Duration
	// ReportToken, when set, is required as "Authorization: Bearer TOKEN"
	// on POSTs to the API and sent with the region's reports.
	ReportToken string
	// Events receives every event (may be nil); the service also keeps
	// the last 1000 for its API.
	Events events.Sink
	Log    *slog.Logger
}

// Service is a running time source.
type Service struct {
	cfg     Config
	Clock   discipline.Clock
	Poller  *upstream.Poller
	Log     *events.Log
	mu      sync.Mutex
	servers []*server.Server
	Policy  *policy.Engine
	setMu   sync.Mutex // serialises SetUpstream's save-then-apply
}

// New builds the service; Start runs it.
func New(cfg Config) (*Service, error) {
	switch cfg.Role {
	case "":
		cfg.Role = "region"
	case "region", "core":
	default:
		return nil, fmt.Errorf("--ntp-role %q: want region or core", cfg.Role)
	}
	if cfg.Raw == nil {
		cfg.Raw = clock.Real()
	}
	if cfg.Clock == nil {
		cfg.Clock = discipline.NewVirtual(cfg.Raw, 0)
	}
	if cfg.Querier == nil {
		cfg.Querier = upstream.NTPQuerier{Timeout: cfg.Timeout}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Role
	}
	s := &Service{cfg: cfg, Clock: cfg.Clock}
	s.Log = events.NewLog(1000, cfg.Events)
	cfg.Policy.Role, cfg.Policy.Name, cfg.Policy.Type = cfg.Role, cfg.Name, cfg.Type
	s.Policy = policy.New(cfg.Policy, cfg.Clock, s.Log.Emit)
	if cfg.TickEvery <= 0 {
		cfg.TickEvery = time.Second
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = 16 * time.Second
	}
	s.cfg = cfg
	s.applySavedUpstream()
	cfg = s.cfg
	s.Poller = upstream.New(upstream.Config{Servers: cfg.Upstream, Poll: cfg.Poll, Timeout: cfg.Timeout,
		HoldoverMax: cfg.HoldoverMax, LocalStratum: cfg.LocalStratum}, cfg.Querier, cfg.Raw, cfg.Clock, s.Log.Emit)
	return s, nil
}

// State is the server state derived from the poller's status.
func (s *Service) State() server.State {
	st := s.Poller.Status()
	return server.State{Synced: st.Synced, Stratum: st.Stratum, RefID: st.RefID, RefTime: st.RefTime,
		RootDelay: st.RootDelay, RootDisp: st.RootDisp, LastUpdate: st.LastUpdate}
}

// Start opens the listeners and runs everything until ctx ends; it returns
// once the listeners are open (errors opening them are returned).
func (s *Service) Start(ctx context.Context) error {
	if len(s.cfg.Listen) == 0 {
		return errors.New("time source: no NTP listen address")
	}
	for _, a := range s.cfg.Listen {
		srv, err := server.Listen(server.Config{Addr: a, Clock: s.Clock, State: s.State, Policy: s.Policy,
			Rate: s.cfg.Rate, Burst: s.cfg.Burst})
		if err != nil {
			s.closeAll()
			return err
		}
		s.mu.Lock()
		s.servers = append(s.servers, srv)
		s.mu.Unlock()
		go srv.Serve(ctx)
		s.cfg.Log.Info("ntp server listening", "addr", srv.Addr().String(), "role", s.cfg.Role, "region", s.cfg.Name)
	}
	go s.Poller.Run(ctx)
	go s.tick(ctx)
	if s.cfg.CoreReportURL != "" {
		go s.reportLoop(ctx)
	}
	context.AfterFunc(ctx, s.closeAll)
	return nil
}

func (s *Service) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, srv := range s.servers {
		srv.Close()
	}
}

// Servers returns the listeners (for tests and stats).
func (s *Service) Servers() []*server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*server.Server(nil), s.servers...)
}
