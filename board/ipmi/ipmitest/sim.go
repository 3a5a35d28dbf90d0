package ipmitest

import (
	"bufio"
	"bytes"
	"cmcd/internal/syncbuf"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Node describes one simulated node BMC.
type Node struct {
	Name     string // BMC name; "node" when empty
	User     string // "admin" when empty
	Password string // "secret<random>" when empty
	Sensors  []Sensor
	FRU      *FRU
	// SEL entries present from the first start.
	SEL []Event
	// MaxSEL is the SEL capacity in entries; 1000 when zero.
	MaxSEL int
	// PowerOn starts the node powered on.
	PowerOn bool
}

// Sim is one running ipmi_sim process serving a node BMC on a loopback UDP
// port, with its own state directory. The test's cleanup stops it.
type Sim struct {
	Host        string // 127.0.0.1
	Port        int    // RMCP/RMCP+ UDP port
	ConsolePort int    // emulator command console (TCP, loopback)
	User        string
	Password    string
	Dir         string // config files
	StateDir    string // ipmi_sim's persistent state (SEL, users, ...)

	t    testing.TB
	node Node

	mu  sync.Mutex
	cmd *exec.Cmd
	log *syncBuffer
}

type syncBuffer = syncbuf.Buffer

// Binary paths; tests fail (not skip) when they are missing, as the peers
// are installed by scripts/install-deps.sh.
var (
	IPMISimPath  = "ipmi_sim"
	IPMIToolPath = "ipmitool"
)

// Need fails the test when a peer program is missing.
func Need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s not found: run scripts/install-deps.sh (it installs the openipmi and ipmitool packages)", p)
		}
	}
}

// StartSim starts an ipmi_sim for the node and waits until it answers. The
// process is killed (its whole process group) when the test ends.
func StartSim(t testing.TB, n Node) *Sim {
	t.Helper()
	Need(t, IPMISimPath, IPMIToolPath)
	if n.Name == "" {
		n.Name = "node"
	}
	if n.User == "" {
		n.User = "admin"
	}
	if n.Password == "" {
		n.Password = "secret" + randHex(4)
	}
	if n.MaxSEL == 0 {
		n.MaxSEL = 1000
	}
	dir := t.TempDir()
	s := &Sim{
		Host: "127.0.0.1", User: n.User, Password: n.Password,
		Dir: dir, StateDir: filepath.Join(dir, "state"),
		t: t, node: n,
	}
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if n.PowerOn {
		if err := os.WriteFile(filepath.Join(s.StateDir, "power"), []byte("1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.Kill)
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if s.Port, err = freeUDPPort(); err != nil {
			t.Fatal(err)
		}
		if s.ConsolePort, err = freeTCPPort(); err != nil {
			t.Fatal(err)
		}
		if err = s.start(true); err == nil {
			return s
		}
		s.Kill()
	}
	t.Fatalf("starting ipmi_sim: %v", err)
	return nil
}

// Restart starts the killed simulator again on the same ports with the same
// state directory: it replays its SEL from there, like a rebooted BMC.
func (s *Sim) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = s.start(false); err == nil {
			return
		}
		s.Kill()
		time.Sleep(100 * time.Millisecond) // the port may linger a moment
	}
	s.t.Fatalf("restarting ipmi_sim: %v", err)
}

func (s *Sim) writeConfig(first bool) (lan, emu string, err error) {
	n := s.node
	chassis := filepath.Join(s.Dir, "chassis-control.sh")
	power := filepath.Join(s.StateDir, "power")
	// ipmi_sim runs "<prog> get power" / "<prog> set power <v>" for
	// chassis control; the power state lives in the state directory.
	script := fmt.Sprintf(`#!/bin/sh
f=%q
op=$1; shift
case "$op" in
get) v=$(cat "$f" 2>/dev/null || echo 0); echo "power:$v" ;;
set) while [ $# -gt 1 ]; do [ "$1" = power ] && echo "$2" > "$f"; shift 2; done ;;
esac
exit 0
`, power)
	if err := os.WriteFile(chassis, []byte(script), 0o700); err != nil {
		return "", "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name %q\n", n.Name)
	b.WriteString("set_working_mc 0x20\n")
	b.WriteString("  startlan 1\n")
	fmt.Fprintf(&b, "    addr %s %d\n", s.Host, s.Port)
	b.WriteString("    priv_limit admin\n")
	for _, p := range []string{"callback", "user", "operator", "admin"} {
		fmt.Fprintf(&b, "    allowed_auths_%s md5\n", p)
	}
	fmt.Fprintf(&b, "    guid %s\n", randHex(16))
	b.WriteString("  endlan\n")
	fmt.Fprintf(&b, "  chassis_control %q\n", chassis)
	fmt.Fprintf(&b, "  user 2 true %q %q admin 30 md5\n", n.User, n.Password)
	fmt.Fprintf(&b, "console %s %d\n", s.Host, s.ConsolePort)
	lan = filepath.Join(s.Dir, "lan.conf")
	if err := os.WriteFile(lan, []byte(b.String()), 0o600); err != nil {
		return "", "", err
	}

	b.Reset()
	b.WriteString("mc_setbmc 0x20\n")
	// No persist_sdr: the SDRs come from this file at every start.
	b.WriteString("mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n")
	fmt.Fprintf(&b, "sel_enable 0x20 %d 0x0a\n", n.MaxSEL)
	for _, sn := range n.Sensors {
		for _, c := range sn.Commands() {
			b.WriteString(c + "\n")
		}
	}
	if n.FRU != nil {
		img := n.FRU.Image()
		fmt.Fprintf(&b, "mc_add_fru_data 0x20 0 %d data", len(img))
		for i := 0; i < len(img); i += 16 {
			b.WriteString(" \\\n ")
			b.WriteString(strings.TrimPrefix(hexList(img[i:min(i+16, len(img))]), " "))
		}
		b.WriteString("\n")
	}
	if first {
		// The SEL persists in the state directory; seed it only once.
		for _, e := range n.SEL {
			b.WriteString(e.SELAdd() + "\n")
		}
	}
	b.WriteString("mc_enable 0x20\n")
	emu = filepath.Join(s.Dir, "node.emu")
	if err := os.WriteFile(emu, []byte(b.String()), 0o600); err != nil {
		return "", "", err
	}
	return lan, emu, nil
}

func (s *Sim) start(first bool) error {
	lan, emu, err := s.writeConfig(first)
	if err != nil {
		return err
	}
	log := &syncBuffer{}
	cmd := exec.Command(IPMISimPath, "-c", lan, "-f", emu, "-s", s.StateDir, "-n")
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = log, log
	// A process group of its own, so that Kill reaches the chassis
	// control script too; and killed with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", IPMISimPath, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.log = cmd, log
	s.mu.Unlock()
	waitErr := make(chan error, 1)
	go func() { waitErr <- s.waitReady(5 * time.Second) }()
	select {
	case err := <-exited:
		s.mu.Lock()
		s.cmd = nil
		s.mu.Unlock()
		return fmt.Errorf("ipmi_sim exited at start (%v): %s", err, log.String())
	case err := <-waitErr:
		if err != nil {
			return fmt.Errorf("%w: %s", err, log.String())
		}
	}
	// Keep reaping the process when it dies.
	go func() {
		<-exited
		s.mu.Lock()
		if s.cmd == cmd {
			s.cmd = nil
		}
		s.mu.Unlock()
	}()
	return nil
}

// waitReady polls the BMC with RMCP presence pings (ASF) until it answers.
func (s *Sim) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	ping := []byte{0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x01, 0x00, 0x00}
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	for time.Now().Before(deadline) {
		c, err := net.Dial("udp", addr)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = c.Write(ping)
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			c.Close()
			if err == nil && n >= 9 && buf[8] == 0x40 { // presence pong
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("ipmi_sim on %s did not answer within %s", addr, limit)
}

// Kill stops the simulator at once (SIGKILL to its process group), like a
// BMC losing power. It is a no-op when it is not running.
func (s *Sim) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT) // in case it was frozen
	// Wait for it to be gone so its port is free.
	for i := 0; i < 200; i++ {
		if err := syscall.Kill(cmd.Process.Pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Freeze stops the simulator without killing it (SIGSTOP): a hung BMC
// whose requests time out. Thaw resumes it.
func (s *Sim) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen simulator (SIGCONT).
func (s *Sim) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Sim) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}

// Running reports whether the simulator process is up.
func (s *Sim) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Log returns what the simulator printed.
func (s *Sim) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// Console runs one emulator command (see ipmi_sim_cmd(5)) on the running
// simulator and returns its output.
func (s *Sim) Console(command string) (string, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.ConsolePort)), 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("ipmi_sim console: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := readPrompt(r); err != nil {
		return "", fmt.Errorf("ipmi_sim console: %w", err)
	}
	if _, err := c.Write([]byte(command + "\n")); err != nil {
		return "", fmt.Errorf("ipmi_sim console: %w", err)
	}
	out, err := readPrompt(r)
	if err != nil {
		return out, fmt.Errorf("ipmi_sim console %q: %w", command, err)
	}
	// The console echoes the command line.
	out = strings.TrimPrefix(strings.ReplaceAll(out, "\r", ""), command+"\n")
	return strings.TrimSpace(out), nil
}

// MustConsole is Console that fails the test on error.
func (s *Sim) MustConsole(command string) string {
	s.t.Helper()
	out, err := s.Console(command)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// readPrompt reads up to the console's "> " prompt, dropping telnet
// negotiation bytes.
func readPrompt(r *bufio.Reader) (string, error) {
	var out []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return string(out), err
		}
		if b == 0xff { // IAC: skip the command and its option byte
			_, _ = r.ReadByte()
			_, _ = r.ReadByte()
			continue
		}
		out = append(out, b)
		if bytes.HasSuffix(out, []byte("> ")) {
			return string(out[:len(out)-2]), nil
		}
	}
}

// Ipmitool runs ipmitool over RMCP+ with cipher suite 3 (ipmi_sim has no
// suite 17) against the simulator and returns its standard output.
func (s *Sim) Ipmitool(args ...string) (string, error) {
	return s.IpmitoolSuite("3", args...)
}

// IpmitoolSuite runs ipmitool over RMCP+ with the given cipher suite. A Sim
// literal with only Host, Port, User and Password set points it at any BMC
// (such as a simbmc one).
func (s *Sim) IpmitoolSuite(suite string, args ...string) (string, error) {
	base := []string{"-I", "lanplus", "-C", suite, "-H", s.Host, "-p", strconv.Itoa(s.Port),
		"-U", s.User, "-P", s.Password, "-N", "1", "-R", "3"}
	return s.run(IPMIToolPath, append(base, args...))
}

// run runs a client tool (in its own process group, killed if it hangs)
// and returns its standard output.
func (s *Sim) run(prog string, args []string) (string, error) {
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	name := filepath.Base(prog) + " " + strings.Join(redactArgs(args, s.Password), " ")
	select {
	case err := <-done:
		if err != nil {
			return stdout.String(), fmt.Errorf("%s: %v: %s", name, err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return stdout.String(), fmt.Errorf("%s: timed out", name)
	}
	return stdout.String(), nil
}

func redactArgs(args []string, secret string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, secret, "****")
	}
	return out
}

// FreeIPMI runs one of FreeIPMI's tools (ipmi-sensors, ipmi-sel, ipmi-fru,
// ipmi-chassis, ...) over RMCP+ with cipher suite 3 against the simulator.
// ipmi_sim does not answer an Open Session that asks for the "highest
// available" privilege with its real maximum, so the tools run with
// FreeIPMI's opensesspriv workaround and an explicit ADMIN privilege.
func (s *Sim) FreeIPMI(tool string, args ...string) (string, error) {
	base := []string{"-h", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), "-u", s.User, "-p", s.Password,
		"-l", "ADMIN", "-W", "opensesspriv", "-I", "3", "--driver-type=LAN_2_0"}
	switch tool {
	case "ipmi-sensors", "ipmi-sel", "ipmi-fru":
		cache := filepath.Join(s.Dir, "freeipmi-sdr-cache")
		if err := os.MkdirAll(cache, 0o700); err != nil {
			return "", err
		}
		base = append(base, "--quiet-cache", "--sdr-cache-directory="+cache)
	}
	return s.run(tool, append(base, args...))
}

// MustFreeIPMI is FreeIPMI that fails the test on error.
func (s *Sim) MustFreeIPMI(tool string, args ...string) string {
	s.t.Helper()
	out, err := s.FreeIPMI(tool, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// MustIpmitool is Ipmitool that fails the test on error.
func (s *Sim) MustIpmitool(args ...string) string {
	s.t.Helper()
	out, err := s.Ipmitool(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// SetSELTime sets the BMC's SEL clock to the host's time with ipmitool
// (ipmi_sim stamps entries "pre-init" until its SEL time is set). It
// changes only the simulator's clock.
func (s *Sim) SetSELTime() {
	s.t.Helper()
	s.MustIpmitool("sel", "time", "set", "now")
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
