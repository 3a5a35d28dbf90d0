package upstream

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"

	"cmcd/timesrc/events"
)

// DefaultPort is the port of an upstream entry given without one.
const DefaultPort = "123"

// EntryError is a refused upstream entry: which one and why.
type EntryError struct {
	Index  int    // position in the list given
	Entry  string // the entry as given
	Reason string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("upstream server %d %q: %s", e.Index, e.Entry, e.Reason)
}

// ParseServer checks and normalises one upstream entry: "host:port",
// "[v6]:port", "host" or a bare IP address (port 123). The host is an IP
// address or a DNS name (letters, digits, '-', '.', labels of 1-63).
func ParseServer(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty")
	}
	host, port := s, DefaultPort
	if ip := net.ParseIP(strings.Trim(s, "[]")); ip != nil && (!strings.HasPrefix(s, "[") || strings.HasSuffix(s, "]")) {
		host = ip.String()
	} else if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.Contains(s, ":") {
		return "", fmt.Errorf("not host:port: %v", err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", fmt.Errorf("port %q: want 1-65535", port)
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() || ip.IsMulticast() {
			return "", fmt.Errorf("address %s cannot be a server", ip)
		}
		return net.JoinHostPort(ip.String(), port), nil
	}
	if err := checkHostname(host); err != nil {
		return "", err
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

func checkHostname(h string) error {
	if h == "" {
		return fmt.Errorf("empty host")
	}
	if len(h) > 253 {
		return fmt.Errorf("host name longer than 253 characters")
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("host name %q: empty or over-long label", h)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host name %q: a label starts or ends with '-'", h)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("host name %q: character %q not allowed", h, r)
			}
		}
	}
	return nil
}

// ParseServers checks every entry (see ParseServer) and refuses
// duplicates; the first bad entry is returned as an *EntryError.
func ParseServers(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := map[string]int{}
	for i, s := range in {
		n, err := ParseServer(s)
		if err != nil {
			return nil, &EntryError{Index: i, Entry: s, Reason: err.Error()}
		}
		if j, dup := seen[n]; dup {
			return nil, &EntryError{Index: i, Entry: s, Reason: fmt.Sprintf("same server as entry %d", j)}
		}
		seen[n] = i
		out = append(out, n)
	}
	return out, nil
}

// Servers returns the configured upstream servers.
func (p *Poller) Servers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, len(p.peers))
	for i, x := range p.peers {
		out[i] = x.addr
	}
	return out
}

// SetServers replaces the upstream set at run time. Entries are checked
// with ParseServers first: on error nothing changes. Servers kept keep
// their samples; a removed reference makes the poller fall back to the
// remaining servers at the next poll (which happens at once).
func (p *Poller) SetServers(in []string, why string) ([]string, error) {
	servers, err := ParseServers(in)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	old := map[string]*peer{}
	var before []string
	for _, x := range p.peers {
		old[x.addr] = x
		before = append(before, x.addr)
	}
	peers := make([]*peer, 0, len(servers))
	refKept := false
	for _, s := range servers {
		x := old[s]
		if x == nil {
			x = &peer{addr: s, state: "new"}
		}
		refKept = refKept || s == p.st.RefAddr
		peers = append(peers, x)
	}
	p.peers = peers
	p.cfg.Servers = servers
	if !refKept {
		// The old reference's estimate points are not comparable with the
		// next server's: start the fit afresh.
		p.pts = nil
		if len(servers) == 0 && p.cfg.LocalStratum > 0 {
			p.st.Synced, p.st.Holdover, p.st.Stratum = true, false, p.cfg.LocalStratum
			p.st.RefID, p.st.RefAddr = binary.BigEndian.Uint32([]byte("LOCL")), "LOCL"
			p.st.RefTime, p.st.LastUpdate = p.disc.Now(), p.clk.Now()
		}
	}
	p.publish()
	now := p.disc.Now()
	p.mu.Unlock()
	if why == "" {
		why = "configuration"
	}
	p.emit(events.Event{Time: now, Kind: "upstream.configured", Severity: events.OK, Subject: "upstream",
		Message: fmt.Sprintf("upstream servers set to [%s] (were [%s]) by %s", strings.Join(servers, " "), strings.Join(before, " "), why),
		Data:    map[string]string{"servers": strings.Join(servers, " "), "previous": strings.Join(before, " ")}})
	p.Poke()
	return servers, nil
}
