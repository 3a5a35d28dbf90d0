// Command cmcd is the chassis management controller daemon. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"cmcd/daemon"
	"cmcd/flash"
	"cmcd/internal/version"
	"cmcd/syncsel"
)

const usage = `usage:
  cmcd run     --data DIR [--board sim] [--config FILE] [--sync-interval DUR] [flags]
  cmcd verify  --data DIR
  cmcd witness --data DIR --id W --listen ADDR --key FILE --peer ID=ADDR[,ADDR][;witness] ...
  cmcd witness-key --pair-key FILE [--out FILE]
  cmcd image   keygen|build|sign|inspect|install|status|activate ...
  cmcd version
Run "cmcd run -h" for every flag.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "run":
		os.Exit(run(os.Args[2:]))
	case "witness":
		os.Exit(witness(os.Args[2:]))
	case "witness-key":
		os.Exit(witnessKey(os.Args[2:]))
	case "verify":
		os.Exit(verify(os.Args[2:]))
	case "image":
		os.Exit(image(os.Args[2:]))
	case "version", "--version", "-v":
		fmt.Println("cmcd", version.Version)
	default:
		fmt.Fprintf(os.Stderr, "cmcd: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func run(args []string) int {
	c := daemon.Defaults()
	fs := flag.NewFlagSet("cmcd run", flag.ContinueOnError)
	configFile := fs.String("config", "", "config file (JSON); flags override it")
	data := fs.String("data", c.Data, "data directory (both images' data areas live under it)")
	boardName := fs.String("board", c.Board, "sim or a board profile")
	interval := fs.String("sync-interval", "", "sync schedule interval (e.g. 200ms, 30s, 1h); default: the saved value, else 30s")
	redfish := fs.String("redfish", c.Redfish, "Redfish over TLS address")
	insecure := fs.String("insecure-http", "", "an extra plain-HTTP Redfish listener, for tests only")
	ipmi := fs.String("ipmi", c.IPMI, "IPMI over LAN (RMCP+) address")
	ntp := fs.String("ntp", c.NTP, "NTP server address for the region")
	var upstream multi
	fs.Var(&upstream, "ntp-upstream", "upstream (core) NTP server host:port; repeatable")
	ntpRole := fs.String("ntp-role", "region", "time source role: region (syncs from --ntp-upstream, serves the chassis) or core")
	ntpRegion := fs.String("ntp-region", "", "time source region name (default: the role)")
	ntpType := fs.String("ntp-region-type", "", "time source region type: business and/or site, e.g. hpc/site-a")
	ntpClock := fs.String("ntp-clock", "virtual", "virtual (corrected time kept in cmcd; the machine clock is never touched) or adjtimex (real boards)")
	ntpCore := fs.String("ntp-core-report", "", "region: the core's time-source report URL (T2)")
	var trusted multi
	fs.Var(&trusted, "trusted-key", "trusted firmware signing key (PEM public key file); repeatable")
	bootLimit := fs.Int("boot-limit", 0, "boots an activated image gets to report healthy before falling back (default 3)")
	logLevel := fs.String("log-level", c.LogLevel, "debug, info, warn or error")
	seed := fs.Int64("sim-seed", c.Sim.Seed, "simulated chassis: random seed")
	nodes := fs.Int("sim-nodes", c.Sim.Nodes, "simulated chassis: number of nodes (1..16)")
	selRate := fs.Float64("sim-sel-rate", c.Sim.SELRate, "simulated chassis: SEL events per node per second")
	faultRate := fs.Float64("sim-fault-rate", c.Sim.FaultRate, "simulated chassis: faults per node per second")
	fillSEL := fs.Int("sim-fill-sel", 0, "simulated chassis: entries each node SEL holds at start")
	simNodeIPMI := fs.Bool("sim-node-ipmi", c.Sim.NodeIPMI, "simulated chassis: serve each node with a simulated BMC on loopback and read the nodes over IPMI")
	nodeCreds := fs.String("node-credentials", "", "node BMC credentials file (JSON, mode 0600): read the nodes over IPMI from these BMCs")
	applyPair := daemon.PairFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configFile != "" {
		if err := c.LoadFile(*configFile); err != nil {
			fmt.Fprintln(os.Stderr, "cmcd:", err)
			return 2
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data":
			c.Data = *data
		case "board":
			c.Board = *boardName
		case "sync-interval":
			c.SyncInterval = *interval
		case "redfish":
			c.Redfish = *redfish
		case "insecure-http":
			c.InsecureHTTP = *insecure
		case "ipmi":
			c.IPMI = *ipmi
		case "ntp":
			c.NTP = *ntp
		case "ntp-upstream":
			c.NTPUpstream = upstream
		case "ntp-role":
			c.NTPRole = *ntpRole
		case "ntp-region":
			c.NTPRegion = *ntpRegion
		case "ntp-region-type":
			c.NTPType = *ntpType
		case "ntp-clock":
			c.NTPClock = *ntpClock
		case "ntp-core-report":
			c.NTPCore = *ntpCore
		case "log-level":
			c.LogLevel = *logLevel
		case "sim-seed":
			c.Sim.Seed = *seed
		case "sim-nodes":
			c.Sim.Nodes = *nodes
		case "sim-sel-rate":
			c.Sim.SELRate = *selRate
		case "sim-fault-rate":
			c.Sim.FaultRate = *faultRate
		case "sim-fill-sel":
			c.Sim.FillSEL = *fillSEL
		case "sim-node-ipmi":
			c.Sim.NodeIPMI = *simNodeIPMI
		case "node-credentials":
			c.NodeCredentials = *nodeCreds
		case "trusted-key":
			c.Firmware.TrustedKeyFiles = append(c.Firmware.TrustedKeyFiles, trusted...)
		case "boot-limit":
			c.Firmware.BootLimit = *bootLimit
		}
	})
	if err := applyPair(&c); err != nil {
		fmt.Fprintln(os.Stderr, "cmcd:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "cmcd: --log-level %q: want debug, info, warn or error\n", c.LogLevel)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, c, log); err != nil {
		log.Error("cmcd stopped", "err", err)
		return 1
	}
	log.Info("cmcd stopped")
	return 0
}

func verify(args []string) int {
	fs := flag.NewFlagSet("cmcd verify", flag.ContinueOnError)
	data := fs.String("data", "", "data directory")
	timeout := fs.Duration("lock-timeout", 2*time.Second, "how long to wait for a running cmcd to release the stores")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *data == "" {
		fmt.Fprintln(os.Stderr, "cmcd verify: --data DIR is required")
		return 2
	}
	if st, err := os.Stat(*data); err != nil || !st.IsDir() {
		fmt.Fprintf(os.Stderr, "cmcd verify: --data %s: not a directory\n", *data)
		return 2
	}
	r := syncsel.Verify(flash.Areas{Root: *data}, *timeout)
	r.Print(os.Stdout)
	if !r.Consistent() {
		return 1
	}
	return 0
}
