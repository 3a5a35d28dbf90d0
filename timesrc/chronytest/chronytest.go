// Package chronytest runs real chronyd instances for tests: with -x (it
// never touches the machine's clock), as root without dropping privileges,
// with its config, pid and command socket in a private temporary directory,
// serving NTP (if at all) on an unprivileged loopback port. Every instance
// is stopped by the test's cleanup.
package chronytest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Options shape one chronyd.
type Options struct {
	// Serve: NTP server port on 127.0.0.1 (0 = pick a free one); with
	// NoServe the instance is a pure client (port 0).
	NoServe bool
	Port    int
	// LocalStratum > 0 adds "local stratum N": it serves without upstream.
	LocalStratum int
	// Servers: "host:port" upstreams, polled every 2^Poll s (default -2).
	Servers []string
	Poll    int
	Extra   []string // more config lines
}

// Chronyd is a running instance.
type Chronyd struct {
	Dir  string
	Sock string
	Port int
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// FreeUDPPort returns a currently unused loopback UDP port.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Start starts chronyd and waits until its command socket answers.
func Start(t testing.TB, o Options) *Chronyd {
	t.Helper()
	bin, err := exec.LookPath("chronyd")
	if err != nil {
		t.Fatalf("chronyd not installed (Debian package chrony; make test installs it): %v", err)
	}
	dir, err := os.MkdirTemp("", "chronyd-") // 0700: chronyd insists on it for the socket
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &Chronyd{Dir: dir, Sock: filepath.Join(dir, "chronyd.sock"), log: &bytes.Buffer{}}
	poll := o.Poll
	if poll == 0 {
		poll = -2
	}
	var conf strings.Builder
	if o.NoServe {
		conf.WriteString("port 0\n")
	} else {
		c.Port = o.Port
		if c.Port == 0 {
			c.Port = FreeUDPPort(t)
		}
		fmt.Fprintf(&conf, "port %d\nbindaddress 127.0.0.1\nallow 127.0.0.1\n", c.Port)
	}
	if o.LocalStratum > 0 {
		fmt.Fprintf(&conf, "local stratum %d\n", o.LocalStratum)
	}
	for _, s := range o.Servers {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "server %s port %s iburst minpoll %d maxpoll %d\n", h, p, poll, poll)
	}
	fmt.Fprintf(&conf, "cmdport 0\nbindcmdaddress %s\npidfile %s\n", c.Sock, filepath.Join(dir, "chronyd.pid"))
	for _, l := range o.Extra {
		conf.WriteString(l + "\n")
	}
	cf := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(cf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(bin, "-x", "-d", "-u", "root", "-f", cf)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := c.Chronyc("tracking"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chronyd did not come up; log:\n%s", c.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// Addr is the NTP address it serves on.
func (c *Chronyd) Addr() string { return "127.0.0.1:" + strconv.Itoa(c.Port) }

// Stop kills the process group and waits.
func (c *Chronyd) Stop() {
	if c.cmd == nil || c.cmd.Process == nil || c.cmd.ProcessState != nil {
		return
	}
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Log is chronyd's output so far.
func (c *Chronyd) Log() string { return c.log.String() }

// Chronyc runs chronyc against this instance (numeric, CSV output).
func (c *Chronyd) Chronyc(args ...string) (string, error) {
	a := append([]string{"-h", c.Sock, "-n", "-c"}, args...)
	out, err := exec.Command("chronyc", a...).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("506 Cannot talk")) || bytes.Contains(out, []byte("Could not")) {
		return string(out), fmt.Errorf("chronyc %v: %v: %s", args, err, out)
	}
	return string(out), nil
}

// Tracking is chronyc tracking's CSV parsed.
type Tracking struct {
	RefID    string
	RefName  string
	Stratum  int
	Offset   float64 // "System time" seconds (positive: fast)
	LastOff  float64
	RootDel  float64
	RootDisp float64
	Leap     string
}

// Tracking asks chronyc tracking.
func (c *Chronyd) Tracking() (Tracking, error) {
	out, err := c.Chronyc("tracking")
	if err != nil {
		return Tracking{}, err
	}
	f := strings.Split(strings.TrimSpace(out), ",")
	if len(f) < 14 {
		return Tracking{}, fmt.Errorf("tracking: unexpected %q", out)
	}
	var tr Tracking
	tr.RefID, tr.RefName = f[0], f[1]
	tr.Stratum, _ = strconv.Atoi(f[2])
	tr.Offset, _ = strconv.ParseFloat(f[4], 64)
	tr.LastOff, _ = strconv.ParseFloat(f[5], 64)
	tr.RootDel, _ = strconv.ParseFloat(f[11], 64)
	tr.RootDisp, _ = strconv.ParseFloat(f[12], 64)
	tr.Leap = f[len(f)-1]
	return tr, nil
}

// Source is one line of chronyc sources.
type Source struct {
	Mode, State string // "^", "*" selected, "+" combined, "-", "?" unusable, "x" falseticker, "~" too variable
	Addr        string
	Stratum     int
	Reach       int
	Offset      float64 // adjusted offset, seconds
}

// Sources asks chronyc sources.
func (c *Chronyd) Sources() ([]Source, error) {
	out, err := c.Chronyc("sources")
	if err != nil {
		return nil, err
	}
	var ss []Source
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, ",")
		if len(f) < 10 {
			continue
		}
		var s Source
		s.Mode, s.State, s.Addr = f[0], f[1], f[2]
		s.Stratum, _ = strconv.Atoi(f[3])
		r, _ := strconv.ParseInt(f[5], 8, 32)
		s.Reach = int(r)
		s.Offset, _ = strconv.ParseFloat(f[7], 64)
		ss = append(ss, s)
	}
	return ss, nil
}

// Eventually polls cond every 100 ms until it returns "" or the limit passes;
// it fails the test with the last reason.
func Eventually(t testing.TB, limit time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", limit, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// QueryOnce runs "chronyd -Q" (a one-shot measurement that never sets the
// clock) against addr and returns its offset line.
func QueryOnce(t testing.TB, addr string) (offset float64, out string) {
	t.Helper()
	h, p, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	cmd := exec.Command("chronyd", "-Q", "-u", "root", "-t", "10",
		fmt.Sprintf("server %s port %s iburst maxsamples 4", h, p),
		"pidfile "+filepath.Join(dir, "q.pid"), "cmdport 0", "port 0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	b, err := cmd.CombinedOutput()
	out = string(b)
	if err != nil {
		t.Fatalf("chronyd -Q: %v\n%s", err, out)
	}
	// "System clock wrong by 0.000012 seconds (ignored)"
	i := strings.Index(out, "System clock wrong by ")
	if i < 0 {
		t.Fatalf("chronyd -Q: no measurement:\n%s", out)
	}
	fmt.Sscanf(out[i+len("System clock wrong by "):], "%g", &offset)
	return offset, out
}

// NTPData is the part of chronyc ntpdata the tests read (the first source).
type NTPData struct {
	Leap             string // the server's leap status as chronyd saw it
	Stratum          int
	TotalRX, ValidRX int
}

// NTPData asks chronyc ntpdata.
func (c *Chronyd) NTPData() (NTPData, error) {
	out, err := c.Chronyc("ntpdata")
	if err != nil {
		return NTPData{}, err
	}
	f := strings.Split(strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]), ",")
	if len(f) < 30 {
		return NTPData{}, fmt.Errorf("ntpdata: unexpected %q", out)
	}
	var d NTPData
	d.Leap = f[5]
	d.Stratum, _ = strconv.Atoi(f[8])
	n := len(f)
	d.TotalRX, _ = strconv.Atoi(f[n-3])
	d.ValidRX, _ = strconv.Atoi(f[n-2])
	return d, nil
}
