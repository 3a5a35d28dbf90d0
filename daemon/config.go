package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Config is cmcd's configuration: read from the config file (JSON), then
// overridden by command-line flags. Every default is safe on a real board.
type Config struct {
	Data         string   `json:"data"`          // data directory: both images' data areas live under it
	Board        string   `json:"board"`         // "sim" or the path of a board profile (board/hw)
	SyncInterval string   `json:"syncInterval"`  // e.g. "30s"; empty = keep the saved value
	Redfish      string   `json:"redfish"`       // Redfish over TLS
	InsecureHTTP string   `json:"insecureHttp"`  // extra plain-HTTP Redfish listener (tests only)
	IPMI         string   `json:"ipmi"`          // IPMI over LAN (RMCP+)
	NTP          string   `json:"ntp"`           // NTP server for the region
	NTPUpstream  []string `json:"ntpUpstream"`   // upstream (core) NTP servers
	NTPRole      string   `json:"ntpRole"`       // region (default) or core; see daemon/ntp.go
	NTPRegion    string   `json:"ntpRegion"`     // region name (T8)
	NTPType      string   `json:"ntpRegionType"` // region type: business and/or site (T8)
	NTPClock     string   `json:"ntpClock"`      // virtual (default, never touches the machine clock) or adjtimex
	NTPCore      string   `json:"ntpCoreReport"` // region: the core's report URL (T2)
	LogLevel     string   `json:"logLevel"`      // debug, info, warn, error
	// NodeCredentials is the node BMC credentials file (board/ipmi
	// LoadConfig format, mode 0600): the nodes are read over IPMI from
	// those BMCs. Empty: the simulated nodes (see Sim.NodeIPMI).
	NodeCredentials string `json:"nodeCredentials"`
	Sim             SimConfig
	Firmware        FirmwareConfig `json:"firmware"`
	Pair            PairConfig     `json:"pair"` // redundant pair (daemon/pair.go); empty: none
}

// SimConfig shapes the simulated chassis (--board sim).
type SimConfig struct {
	Seed      int64   `json:"seed"`
	Nodes     int     `json:"nodes"`
	PSUs      int     `json:"psus"`
	Fans      int     `json:"fans"`
	SELRate   float64 `json:"selRate"`   // SEL events per node per second
	FaultRate float64 `json:"faultRate"` // faults per node per second
	FillSEL   int     `json:"fillSel"`   // entries each node SEL starts with
	// NodeIPMI serves each simulated node with a simulated BMC on a
	// loopback port and reads the nodes over IPMI (default true).
	NodeIPMI bool `json:"nodeIpmi"`
}

// Defaults returns the configuration used when neither file nor flags say
// otherwise.
func Defaults() Config {
	return Config{
		Data:     "/var/lib/cmcd",
		Board:    "sim",
		Redfish:  ":443",
		IPMI:     ":623",
		NTP:      ":123",
		LogLevel: "info",
		Sim:      SimConfig{Seed: 1, Nodes: 4, PSUs: 2, Fans: 6, SELRate: 0.05, FaultRate: 0.005, NodeIPMI: true},
	}
}

// LoadFile reads a JSON config file on top of c; unknown keys are errors.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Data == "" {
		return fmt.Errorf("--data: a data directory is required")
	}
	if err := checkBoard(c.Board); err != nil {
		return err
	}
	if c.SyncInterval != "" {
		d, err := time.ParseDuration(c.SyncInterval)
		if err != nil {
			return fmt.Errorf("--sync-interval %q: not a duration (examples: 200ms, 30s, 1h)", c.SyncInterval)
		}
		if d < 100*time.Millisecond || d > 24*time.Hour {
			return fmt.Errorf("--sync-interval %s: must be between 100ms and 24h", d)
		}
	}
	if err := c.validateNTP(); err != nil {
		return err
	}
	if c.Sim.Nodes < 1 || c.Sim.Nodes > 16 {
		return fmt.Errorf("--sim-nodes %d: must be 1..16", c.Sim.Nodes)
	}
	return nil
}
