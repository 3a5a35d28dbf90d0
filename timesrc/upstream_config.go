package timesrc

// Upstream returns the configured core servers ("host:port").
func (s *Service) Upstream() []string { return s.Poller.Servers() }

// SetUpstream replaces the core servers at run time (the Manager's
// NetworkProtocol NTP.NTPServers). Each entry is "host:port" or "host"
// (port 123); a bad entry is an *upstream.EntryError and nothing changes.
// The change lasts until cmcd restarts: the daemon's configuration
// (--ntp-upstream) is not rewritten. why names who changed it (event log).
func (s *Service) SetUpstream(servers []string, why string) ([]string, error) {
	return s.Poller.SetServers(servers, why)
}
