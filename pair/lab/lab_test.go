package lab

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/vishvananda/netns"

	"cmcd/accounts"
	"cmcd/internal/rfschema"
)

const vipAddr = "10.77.0.100"

type lab struct {
	t      testing.TB
	pre    string // namespace name prefix
	dir    string
	bin    string
	pw     string
	procs  map[string]*exec.Cmd
	ip     map[string]string
	client *http.Client // in the client namespace, 300 ms: takeover polls
	writer *http.Client // in the client namespace, 10 s: writes and reads that must succeed
	ipmi   bool         // serve IPMI on each module (0.0.0.0:623)
	hb     string       // heartbeat timeout for every voter ("": the default)
	noW    bool         // two-node mode: no witness among the voters
	noFast bool         // modules detect a crashed active by raft's heartbeat timeout only
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (l *lab) ns(m string) string { return l.pre + m }

// inNS runs fn on a thread switched into namespace m (sockets made there stay there).
func (l *lab) inNS(m string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(l.ns(m))
	if err != nil {
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return err
	}
	defer netns.Set(orig)
	return fn()
}

var labSeq atomic.Int32 // several labs in one process (the benchmark) get distinct namespaces

func newLab(t testing.TB) *lab {
	if os.Geteuid() != 0 {
		t.Skip("the pair lab needs root (network namespaces, veth, bridge)")
	}
	l := &lab{t: t, pre: fmt.Sprintf("cmcdlab%d-%d-", os.Getpid()%100000, labSeq.Add(1)), dir: t.TempDir(), procs: map[string]*exec.Cmd{},
		ip: map[string]string{"A": "10.77.0.1", "B": "10.77.0.2", "W": "10.77.0.3", "C": "10.77.0.9"}}
	l.bin = filepath.Join(l.dir, "cmcd")
	run(t, "go", "build", "-o", l.bin, "cmcd/cmd/cmcd")
	for _, m := range []string{"BR", "A", "B", "W", "C"} {
		run(t, "ip", "netns", "add", l.ns(m))
		name := l.ns(m)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	}
	t.Cleanup(func() {
		for _, p := range l.procs {
			if p != nil && p.Process != nil {
				syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
				p.Wait()
			}
		}
	})
	br := l.ns("BR")
	run(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", br, "link", "set", "br0", "up")
	for _, m := range []string{"A", "B", "W", "C"} {
		run(t, "ip", "-n", br, "link", "add", "v"+m, "type", "veth", "peer", "name", "eth0", "netns", l.ns(m))
		run(t, "ip", "-n", br, "link", "set", "v"+m, "master", "br0", "up")
		run(t, "ip", "-n", l.ns(m), "addr", "add", l.ip[m]+"/24", "dev", "eth0")
		run(t, "ip", "-n", l.ns(m), "link", "set", "eth0", "up")
		run(t, "ip", "-n", l.ns(m), "link", "set", "lo", "up")
	}
	// V1: the dedicated A-B sync link.
	run(t, "ip", "-n", l.ns("A"), "link", "add", "sync0", "type", "veth", "peer", "name", "sync0", "netns", l.ns("B"))
	run(t, "ip", "-n", l.ns("A"), "addr", "add", "10.78.0.1/30", "dev", "sync0")
	run(t, "ip", "-n", l.ns("B"), "addr", "add", "10.78.0.2/30", "dev", "sync0")
	run(t, "ip", "-n", l.ns("A"), "link", "set", "sync0", "up")
	run(t, "ip", "-n", l.ns("B"), "link", "set", "sync0", "up")

	// Both modules share the pair key and start from the same account store
	// (accounts are not replicated yet).
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(l.dir, "pair.key"), []byte(hex.EncodeToString(key)+"\n"), 0o600)
	// The witness authenticates on the raft transport with the witness key
	// derived from the pair key; it never gets the pair key itself.
	run(t, l.bin, "witness-key", "--pair-key", filepath.Join(l.dir, "pair.key"), "--out", filepath.Join(l.dir, "witness.key"))
	st, err := accounts.Open(filepath.Join(l.dir, "A"))
	if err != nil {
		t.Fatal(err)
	}
	l.pw, _, err = st.EnsureInitialAdmin()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(l.dir, "B"), 0o700)
	for _, f := range []string{"accounts.json", "device.key"} {
		b, _ := os.ReadFile(filepath.Join(l.dir, "A", f))
		os.WriteFile(filepath.Join(l.dir, "B", f), b, 0o600)
	}
	fence := fmt.Sprintf("#!/bin/sh\n# sim board peer reset: stop the peer and its interface address\npid=$(cat %s/$1.pid 2>/dev/null)\n[ -n \"$pid\" ] && kill -9 $pid 2>/dev/null\nip -n %s$1 addr del %s/24 dev eth0 2>/dev/null\nexit 0\n",
		l.dir, l.pre, vipAddr)
	os.WriteFile(filepath.Join(l.dir, "fence.sh"), []byte(fence), 0o755)
	l.client = l.clientIn("C")
	// Writes and their checks must succeed: a write is answered after a
	// quorum commit (fsyncs on three voters), which takes more than the
	// polls' 300 ms on a loaded CI machine now and then.
	l.writer = l.clientInTimeout("C", 10*time.Second)
	return l
}

// clientIn returns an HTTP client whose connections are made in namespace
// m, with the 300 ms timeout of the takeover polls.
func (l *lab) clientIn(m string) *http.Client { return l.clientInTimeout(m, 300*time.Millisecond) }

// clientInTimeout is clientIn with another request timeout.
func (l *lab) clientInTimeout(m string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := l.inNS(m, func() (err error) {
				c, err = (&net.Dialer{Timeout: 250 * time.Millisecond}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
}

func (l *lab) peers() []string {
	if l.noW {
		return []string{"--pair-peer", "A=10.77.0.1:7400,10.78.0.1:7400", "--pair-peer", "B=10.77.0.2:7400,10.78.0.2:7400"}
	}
	return []string{"--pair-peer", "A=10.77.0.1:7400,10.78.0.1:7400", "--pair-peer", "B=10.77.0.2:7400,10.78.0.2:7400",
		"--pair-peer", "W=10.77.0.3:7400;witness"}
}

func (l *lab) start(m string) {
	var args []string
	if m == "W" {
		args = append([]string{"witness", "--data", filepath.Join(l.dir, "W"), "--id", "W", "--listen", "10.77.0.3:7400",
			"--key", filepath.Join(l.dir, "witness.key")}, l.peers()...)
		for i := range args {
			if args[i] == "--pair-peer" {
				args[i] = "--peer"
			}
		}
		if l.hb != "" {
			args = append(args, "--heartbeat", l.hb)
		}
	} else {
		sync := map[string]string{"A": "10.78.0.1", "B": "10.78.0.2"}[m]
		other := map[string]string{"A": "B", "B": "A"}[m]
		ipmi := ""
		if l.ipmi {
			ipmi = "0.0.0.0:623"
		}
		args = append([]string{"run", "--data", filepath.Join(l.dir, m), "--redfish", "", "--insecure-http", "0.0.0.0:8080",
			"--pair-peer-http", "http://" + l.ip[other] + ":8080", "--pair-peer-http", "http://" + map[string]string{"A": "10.78.0.1", "B": "10.78.0.2"}[other] + ":8080",
			"--ipmi", ipmi, "--ntp", "", "--sim-nodes", "1", "--sim-node-ipmi=false",
			"--pair-id", m, "--pair-listen", l.ip[m] + ":7400", "--pair-listen", sync + ":7400", "--pair-preset", "A",
			"--pair-key", filepath.Join(l.dir, "pair.key"), "--pair-vip-interface", "eth0", "--pair-vip", vipAddr + "/24",
			"--pair-fence-command", filepath.Join(l.dir, "fence.sh")}, l.peers()...)
		if l.hb != "" {
			args = append(args, "--pair-heartbeat", l.hb)
		}
		if l.noFast {
			args = append(args, "--pair-no-fast-takeover")
		}
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns(m), l.bin}, args...)...)
	logf, _ := os.OpenFile(filepath.Join(l.dir, m+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(l.dir, m+".pid"), []byte(fmt.Sprint(cmd.Process.Pid)), 0o600)
	l.procs[m] = cmd
	go func() { cmd.Wait(); logf.Close() }()
}

func (l *lab) dumpLogs() {
	if !l.t.Failed() {
		return
	}
	for _, m := range []string{"A", "B", "W"} {
		b, _ := os.ReadFile(filepath.Join(l.dir, m+".log"))
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		l.t.Logf("--- %s log (tail):\n%s", m, b)
	}
}

type status struct {
	ID            string `json:"id"`
	Role          string `json:"role"`
	Fingerprint   string `json:"fingerprint"`
	AppliedIndex  uint64 `json:"appliedIndex"`
	CanServeReads bool   `json:"canServeReads"`
	HoldsAddress  bool   `json:"holdsAddress"`
	Term          string `json:"term"`
	Uplink        *bool  `json:"uplink"`
	Fences        int    `json:"fences"`
}

func (l *lab) status(host string) (status, error) {
	var s status
	resp, err := l.client.Get("http://" + host + ":8080/cmcd/pair/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func (l *lab) do(method, path string, body []byte) (int, []byte, error) {
	req, _ := http.NewRequest(method, "http://"+vipAddr+":8080"+path, bytes.NewReader(body))
	req.SetBasicAuth(accounts.InitialAdmin, l.pw)
	resp, err := l.writer.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// waitActive polls the floating address until module want answers as active.
func (l *lab) waitActive(want string, timeout time.Duration) time.Duration {
	l.t.Helper()
	t0 := time.Now()
	for time.Since(t0) < timeout {
		if s, err := l.status(vipAddr); err == nil && s.Role == "active" && (want == "" || s.ID == want) {
			return time.Since(t0)
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.t.Fatalf("module %s not active at %s after %v", want, vipAddr, timeout)
	return 0
}

// holders asks "who has the floating address" from the client namespace
// and returns every MAC that answers, and checks the namespaces' interfaces.
func (l *lab) holders() []string {
	l.t.Helper()
	on, err := l.holdersNow()
	if err != nil {
		l.t.Fatal(err)
	}
	return on
}

// settledHolder waits up to timeout for exactly one module to hold the
// floating address and answer there as active, and returns it: after a
// rejoin the roles may move once before they settle.
func (l *lab) settledHolder(timeout time.Duration) string {
	l.t.Helper()
	var last string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		on, err := l.holdersNow()
		if err != nil {
			last = err.Error()
			continue
		}
		st, err := l.status(vipAddr)
		if err != nil || len(on) != 1 || st.ID != on[0] || st.Role != "active" {
			last = fmt.Sprintf("holders %v, status %+v %v", on, st, err)
			continue
		}
		return on[0]
	}
	l.t.Fatalf("no single active holder within %v: %s", timeout, last)
	return ""
}

// holdersNow is holders, returning an error where holders fails the test.
func (l *lab) holdersNow() ([]string, error) {
	macs := map[string]bool{}
	err := l.inNS("C", func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err := arp.Dial(ifi)
		if err != nil {
			return err
		}
		defer c.Close()
		p, _ := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, netip.MustParseAddr(l.ip["C"]), ethernet.Broadcast, netip.MustParseAddr(vipAddr))
		c.WriteTo(p, ethernet.Broadcast)
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			q, _, err := c.Read()
			if err != nil {
				return nil
			}
			if q.Operation == arp.OperationReply && q.SenderIP == netip.MustParseAddr(vipAddr) {
				macs[q.SenderHardwareAddr.String()] = true
			}
		}
	})
	if err != nil {
		return nil, err
	}
	var on []string
	for _, m := range []string{"A", "B"} {
		out, _ := exec.Command("ip", "-n", l.ns(m), "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		if strings.Contains(string(out), vipAddr+"/") {
			on = append(on, m)
		}
	}
	if len(macs) != len(on) {
		return on, fmt.Errorf("ARP answers from %d MACs %v, address configured on %v", len(macs), macs, on)
	}
	return on, nil
}

// form starts the witness and both modules and waits until the preset
// module A is active at the floating address (D7) and B agrees with it.
func (l *lab) form() {
	l.t.Helper()
	for _, m := range []string{"W", "A", "B"} {
		l.start(m)
	}
	l.waitActive("A", 60*time.Second)
	l.agree("A", "B")
}

func (l *lab) writes(from, n int) []string {
	var keys []string
	for i := from; i < from+n; i++ {
		k := fmt.Sprintf("w%04d", i)
		code, body, err := l.do("POST", "/cmcd/pair/write?key="+k, []byte("v-"+k))
		if err != nil || code != 200 {
			l.t.Fatalf("write %s: %d %s %v", k, code, body, err)
		}
		keys = append(keys, k)
	}
	return keys
}

func (l *lab) checkWrites(keys []string) {
	l.t.Helper()
	code, body, err := l.do("GET", "/cmcd/pair/kv", nil)
	if err != nil || code != 200 {
		l.t.Fatalf("kv list: %d %v", code, err)
	}
	var kv map[string]string
	json.Unmarshal(body, &kv)
	for _, k := range keys {
		if kv[k] != "v-"+k {
			l.t.Fatalf("acknowledged write %s lost on the active (%d keys there)", k, len(kv))
		}
	}
}

func (l *lab) agree(a, b string) {
	l.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		sa, e1 := l.status(l.ip[a])
		sb, e2 := l.status(l.ip[b])
		if e1 == nil && e2 == nil && sa.Fingerprint == sb.Fingerprint && sa.AppliedIndex == sb.AppliedIndex &&
			sa.CanServeReads && sb.CanServeReads {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.t.Fatalf("%s and %s do not agree", a, b)
}

func (l *lab) patchInterval(v string) {
	l.t.Helper()
	body := fmt.Sprintf(`{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":%q}}}}}`, v)
	code, resp, err := l.do("PATCH", "/redfish/v1/Managers/CMC", []byte(body))
	if err != nil || code != 200 {
		l.t.Fatalf("PATCH interval: %d %s %v", code, resp, err)
	}
	if err := validate(l.t, resp); err != nil {
		l.t.Fatalf("PATCH answer: %v", err)
	}
}

func (l *lab) interval() string {
	code, body, err := l.do("GET", "/redfish/v1/Managers/CMC", nil)
	if err != nil || code != 200 {
		l.t.Fatalf("GET manager: %d %v", code, err)
	}
	if err := validate(l.t, body); err != nil {
		l.t.Fatalf("manager: %v", err)
	}
	var m struct {
		Oem struct {
			Cmcd struct {
				Sync struct {
					Configuration map[string]any
				}
			}
		}
	}
	json.Unmarshal(body, &m)
	return fmt.Sprint(m.Oem.Cmcd.Sync.Configuration["interval"])
}

// TestLabFailover (H1-H5, D3, D5-D7, V1): preset A active at power-up; a
// client writes through the floating address; SIGKILL of the active, then
// SIGSTOP of the next one: each time exactly one module holds the address,
// every acknowledged write and the last sync configuration are on the new
// active, and the restarted module catches up and agrees by fingerprint.
func TestLabFailover(t *testing.T) {
	l := newLab(t)
	defer l.dumpLogs()
	l.form() // D7: A, the preset module, comes up active
	acked := l.writes(0, 30)
	l.patchInterval("41s")
	if h := l.holders(); len(h) != 1 || h[0] != "A" {
		t.Fatalf("address holders %v, want [A]", h)
	}
	cur := "A"
	for round, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP} {
		next := map[string]string{"A": "B", "B": "A"}[cur]
		acked = append(acked, l.writes(100*(round+1), 20)...)
		want := fmt.Sprintf("%ds", 50+round)
		l.patchInterval(want)
		t0 := time.Now()
		syscall.Kill(l.procs[cur].Process.Pid, sig)
		took := l.waitActive(next, 30*time.Second)
		t.Logf("%v of active %s: %s answers as active at the floating address after %v; phases from the signal: %v",
			sig, cur, next, took, l.phases(next, t0))
		if h := l.holders(); len(h) != 1 || h[0] != next {
			t.Fatalf("after %v: address holders %v, want [%s]", sig, h, next)
		}
		l.checkWrites(acked)
		if got := l.interval(); got != want {
			t.Fatalf("sync interval on the new active = %s, want %s (acknowledged PATCH lost)", got, want)
		}
		// The frozen module was fenced (killed) by the new active; restart it.
		syscall.Kill(-l.procs[cur].Process.Pid, syscall.SIGKILL)
		l.procs[cur].Process.Wait()
		acked = append(acked, l.writes(100*(round+1)+50, 10)...)
		l.start(cur)
		l.agree(cur, next)
		if h := l.holders(); len(h) != 1 || h[0] != next {
			t.Fatalf("after rejoin: address holders %v, want [%s] (no fail-back)", h, next)
		}
		cur = next
	}
	l.checkWrites(acked)
}

// TestLabSplitBrain: module A (active) loses both its links to B and its
// management link: the witness sees only B, so only B is active; A gives
// the address up. Links back: A rejoins as standby and agrees.
func TestLabSplitBrain(t *testing.T) {
	l := newLab(t)
	defer l.dumpLogs()
	l.form() // D7: A, the preset module, comes up active
	acked := l.writes(0, 20)
	run(t, "ip", "-n", l.ns("A"), "link", "set", "sync0", "down")
	run(t, "ip", "-n", l.ns("BR"), "link", "set", "vA", "down")
	took := l.waitActive("B", 30*time.Second)
	t.Logf("A cut off: B active after %v", took)
	// A, seen from inside its own namespace, must not be active.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st status
		err := func() error {
			resp, err := l.clientIn("A").Get("http://127.0.0.1:8080/cmcd/pair/status")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			return json.NewDecoder(resp.Body).Decode(&st)
		}()
		if err == nil && st.Role != "active" && !st.HoldsAddress {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("isolated A still active or holding the address: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if h := l.holders(); len(h) != 1 || h[0] != "B" {
		t.Fatalf("holders %v, want [B]", h)
	}
	acked = append(acked, l.writes(100, 20)...)
	run(t, "ip", "-n", l.ns("A"), "link", "set", "sync0", "up")
	run(t, "ip", "-n", l.ns("BR"), "link", "set", "vA", "up")
	l.agree("A", "B")
	l.checkWrites(acked)
	if h := l.holders(); len(h) != 1 || h[0] != "B" {
		t.Fatalf("holders after heal %v, want [B]", h)
	}
}

func validate(t testing.TB, body []byte) error {
	t.Helper()
	v, err := rfschema.New()
	if err != nil {
		t.Fatal(err)
	}
	return v.Validate(body)
}
