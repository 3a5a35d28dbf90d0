package timesrc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"cmcd/internal/durable"
	"cmcd/timesrc/events"
	"cmcd/timesrc/upstream"
)

// savedUpstream is the file Config.UpstreamFile names: the core servers an
// operator set at run time, which outlive a restart and take precedence
// over Config.Upstream (the daemon's --ntp-upstream).
type savedUpstream struct {
	Servers []string  `json:"servers"`
	By      string    `json:"changedBy"`
	At      time.Time `json:"changedAt"`
}

// loadUpstream reads the saved set. A missing file is ok=false; an
// unreadable or invalid one is an error (the caller keeps the configured
// set and the file, untouched, for the operator to look at).
func loadUpstream(path string) (saved savedUpstream, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return saved, false, nil
	}
	if err != nil {
		return saved, false, err
	}
	if err := json.Unmarshal(b, &saved); err != nil {
		return saved, false, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := upstream.ParseServers(saved.Servers); err != nil {
		return saved, false, fmt.Errorf("%s: %w", path, err)
	}
	return saved, true, nil
}

// applySavedUpstream replaces cfg.Upstream with the saved set, if any,
// and says so on the event log.
func (s *Service) applySavedUpstream() {
	if s.cfg.UpstreamFile == "" {
		return
	}
	saved, ok, err := loadUpstream(s.cfg.UpstreamFile)
	switch {
	case err != nil:
		s.Log.Emit(events.Event{Time: s.cfg.Raw.Now(), Kind: "upstream.saved-unreadable", Severity: events.Warning, Subject: "upstream",
			Message: fmt.Sprintf("the saved NTP upstream servers are unreadable (%v); serving the configured set %v", err, s.cfg.Upstream)})
	case ok:
		s.cfg.Upstream = saved.Servers
		s.cfg.Log.Info("ntp upstream servers from the saved run-time change", "servers", saved.Servers, "by", saved.By, "at", saved.At, "file", s.cfg.UpstreamFile)
	}
}

// Upstream returns the configured core servers ("host:port").
func (s *Service) Upstream() []string { return s.Poller.Servers() }

// SetUpstream replaces the core servers at run time (the Manager's
// NetworkProtocol NTP.NTPServers). Each entry is "host:port" or "host"
// (port 123); a bad entry is an *upstream.EntryError and nothing changes.
// With Config.UpstreamFile the new set is saved durably before it takes
// effect (a failed save changes nothing), so it outlives a restart. why
// names who changed it (event log).
func (s *Service) SetUpstream(servers []string, why string) ([]string, error) {
	parsed, err := upstream.ParseServers(servers)
	if err != nil {
		return nil, err
	}
	s.setMu.Lock()
	defer s.setMu.Unlock()
	if s.cfg.UpstreamFile != "" {
		b, _ := json.MarshalIndent(savedUpstream{Servers: parsed, By: why, At: s.cfg.Raw.Now().UTC()}, "", "  ")
		if err := durable.WriteFile(s.cfg.UpstreamFile, append(b, '\n'), 0o600); err != nil {
			return nil, fmt.Errorf("saving the NTP upstream servers: %w", err)
		}
	}
	return s.Poller.SetServers(parsed, why)
}
