package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"cmcd/clock"
	"cmcd/redfish"
	"cmcd/syncsel"
	"cmcd/timesrc"
	"cmcd/timesrc/discipline"
	"cmcd/timesrc/events"
)

// validateNTP checks the time-source keys.
func (c Config) validateNTP() error {
	switch c.NTPRole {
	case "", "region", "core":
	default:
		return fmt.Errorf("--ntp-role %q: want region or core", c.NTPRole)
	}
	switch c.NTPClock {
	case "", "virtual":
	case "adjtimex":
		if c.Board == "sim" {
			return fmt.Errorf("--ntp-clock adjtimex: not with --board sim (it would discipline this machine's clock); use virtual")
		}
	default:
		return fmt.Errorf("--ntp-clock %q: want virtual or adjtimex", c.NTPClock)
	}
	return nil
}

// startNTP starts the region (or core) time source when --ntp is set. Its
// events go to the CMC event log (and from there to the daemon log and the
// Redfish event stream) when eng is set, else to the log; Redfish serves
// the Service under the Manager (redfish/timesrc.go).
func startNTP(ctx context.Context, c Config, log *slog.Logger, eng *syncsel.Engine) (*timesrc.Service, error) {
	if c.NTP == "" {
		return nil, nil
	}
	var disc discipline.Clock = discipline.NewVirtual(clock.Real(), 0)
	if c.NTPClock == "adjtimex" {
		disc = discipline.NewAdjtimex()
	}
	cfg := timesrc.Config{Role: c.NTPRole, Name: c.NTPRegion, Type: c.NTPType, Listen: []string{c.NTP},
		Upstream: c.NTPUpstream, UpstreamFile: filepath.Join(c.Data, "ntp-upstream.json"), Clock: disc, CoreReportURL: c.NTPCore, Log: log,
		Events: func(e events.Event) {
			lvl := slog.LevelInfo
			switch e.Severity {
			case events.Warning:
				lvl = slog.LevelWarn
			case events.Critical:
				lvl = slog.LevelError
			}
			log.Log(ctx, lvl, e.Message, "event", e.Kind, "subject", e.Subject)
		}}
	if eng != nil {
		cfg.Events = redfish.TimeEventLog(ctx, eng)
	}
	if c.NTPRole == "core" && len(c.NTPUpstream) == 0 {
		cfg.LocalStratum = 1 // a core without a reference serves its own clock
	}
	s, err := timesrc.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}
