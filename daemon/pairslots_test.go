package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cmcd/pair"
)

// pairRig is a redundant pair in this process on loopback: the witness W
// and modules A and B, each a whole `cmcd run` (Run) with plain-HTTP
// Redfish and IPMI on fixed free ports; modules can be stopped and
// started again on their data directories.
type pairRig struct {
	t       *testing.T
	keyFile string
	peers   []pair.Peer
	mods    map[string]*rigModule
}

type rigModule struct {
	id     string
	c      Config
	http   string // base URL
	ipmi   string // host:port
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuf
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// inProcessHeartbeat is the pair heartbeat of the in-process pair tests.
// They test the wiring, not the timing (pair/lab measures that): three
// raft voters and two daemons in one test process on a loaded CI machine
// miss 200 ms heartbeats now and then, and the roles flap.
const inProcessHeartbeat = "1s"

func newPairRig(t *testing.T, prep ...func(id string, c *Config)) *pairRig {
	t.Helper()
	dir := t.TempDir()
	r := &pairRig{t: t, keyFile: filepath.Join(dir, "pair.key"), mods: map[string]*rigModule{}}
	if err := os.WriteFile(r.keyFile, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 7)
	raft := func(i int) string { return "127.0.0.1:" + strconv.Itoa(p[i]) }
	r.peers = []pair.Peer{{ID: "A", Addrs: []string{raft(0)}}, {ID: "B", Addrs: []string{raft(1)}},
		{ID: "W", Addrs: []string{raft(2)}, Witness: true}}
	httpURL := map[string]string{"A": "http://" + raft(3), "B": "http://" + raft(4)}
	for i, id := range []string{"A", "B"} {
		other := map[string]string{"A": "B", "B": "A"}[id]
		c := Defaults()
		c.Data = filepath.Join(dir, id)
		c.Redfish = "127.0.0.1:0"
		c.InsecureHTTP = strings.TrimPrefix(httpURL[id], "http://")
		c.IPMI = "127.0.0.1:" + strconv.Itoa(p[5+i])
		c.NTP = ""
		c.Sim.Nodes, c.Sim.NodeIPMI, c.Sim.SELRate, c.Sim.FaultRate = 1, false, 0, 0
		c.Pair = PairConfig{ID: id, Listen: []string{raft(i)}, Peers: r.peers, Preset: "A", KeyFile: r.keyFile,
			Heartbeat: inProcessHeartbeat, VoteInterval: "0", PeerHTTP: []string{httpURL[other]}}
		for _, p := range prep {
			p(id, &c)
		}
		r.mods[id] = &rigModule{id: id, c: c, http: httpURL[id], ipmi: c.IPMI}
	}
	// The witness.
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	wkey := witnessKeyFile(t, r.keyFile)
	go func() {
		wdone <- RunWitness(wctx, WitnessConfig{ID: "W", Dir: filepath.Join(dir, "W"), Listen: []string{raft(2)},
			Peers: r.peers, Heartbeat: inProcessHeartbeat, KeyFile: wkey}, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { wcancel(); <-wdone })
	for _, id := range []string{"A", "B"} {
		r.start(id)
	}
	r.dumpLogsOnFailure()
	t.Cleanup(func() {
		for _, m := range r.mods {
			r.stop(m.id)
		}
	})
	return r
}

// dumpLogsOnFailure writes each module's log to the test output when the
// test failed (the pair's role changes explain most failures).
func (r *pairRig) dumpLogsOnFailure() {
	r.t.Cleanup(func() {
		if !r.t.Failed() {
			return
		}
		for id, m := range r.mods {
			if m.logs != nil {
				r.t.Logf("module %s log:\n%s", id, m.logs.String())
			}
		}
	})
}

func (r *pairRig) start(id string) {
	m := r.mods[id]
	m.logs = new(syncBuf)
	log := slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan error, 1)
	go func() { m.done <- Run(ctx, m.c, log) }()
}

func (r *pairRig) stop(id string) {
	m := r.mods[id]
	if m.cancel == nil {
		return
	}
	m.cancel()
	if err := <-m.done; err != nil {
		r.t.Errorf("module %s: %v", id, err)
	}
	m.cancel = nil
}

type rigResp struct {
	code int
	hdr  http.Header
	body []byte
}

func (r *pairRig) do(id, method, path, token string, basic []string, body string) rigResp {
	r.t.Helper()
	req, err := http.NewRequest(method, r.mods[id].http+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return rigResp{code: -1, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rigResp{code: resp.StatusCode, hdr: resp.Header, body: b}
}

// eventually retries fn until it returns nil (30 s).
func (r *pairRig) eventually(what string, fn func() error) {
	r.t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = fn(); err == nil {
			return
		}
	}
	r.t.Fatalf("%s: %v", what, err)
}

func (r *pairRig) role(id string) pair.Role {
	x := r.do(id, "GET", "/cmcd/pair/status", "", nil, "")
	var st pair.Status
	if x.code != 200 || json.Unmarshal(x.body, &st) != nil {
		return ""
	}
	return st.Role
}

func (r *pairRig) waitRole(id string, want pair.Role) {
	r.t.Helper()
	r.eventually(id+" "+string(want), func() error {
		if got := r.role(id); got != want {
			return fmt.Errorf("role %q", got)
		}
		return nil
	})
}

func (r *pairRig) ipmitool(id, user, pw string, args ...string) (string, error) {
	host, port, _ := net.SplitHostPort(r.mods[id].ipmi)
	cmd := exec.Command("ipmitool", append([]string{"-I", "lanplus", "-C", "17", "-H", host, "-p", port, "-U", user, "-P", pw,
		"-N", "1", "-R", "2"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), err
}

// TestPairSessionsAndIPMIAccounts (H3/D3 for sessions and IPMI account
// writes, in-process pair with a witness): a Redfish session created on
// the active authenticates on the standby once applied and, after the
// active stops, on the new active; its logout there ends it on the
// restarted former active too. Session logins and IPMI account writes on
// the standby are refused (503, D5h); an IPMI password change on the
// active is committed on a quorum before ipmitool gets its answer, so the
// standby takes the new password over IPMI and Redfish and refuses the
// old one, without any Redfish write.
func TestPairSessionsAndIPMIAccounts(t *testing.T) {
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Skip("ipmitool not installed (scripts/install-deps.sh)")
	}
	r := newPairRig(t)
	r.waitRole("A", pair.RoleActive)
	r.waitRole("B", pair.RoleStandby)
	// The module first active at formation published its accounts: its
	// initial admin password is the pair's.
	var adminPW string
	r.eventually("the pair's admin password", func() error {
		for _, id := range []string{"A", "B"} {
			raw, err := os.ReadFile(filepath.Join(r.mods[id].c.Data, "initial-admin-password"))
			if err != nil {
				continue
			}
			pw := strings.TrimSpace(string(raw))
			if x := r.do("A", "GET", "/redfish/v1/Chassis", "", []string{"admin", pw}, ""); x.code == 200 {
				adminPW = pw
				return nil
			}
		}
		return fmt.Errorf("neither module's initial password works on A")
	})
	admin := []string{"admin", adminPW}
	r.eventually("the pair's admin on B", func() error {
		if x := r.do("B", "GET", "/redfish/v1/Chassis", "", admin, ""); x.code != 200 {
			return fmt.Errorf("%d %s", x.code, x.body)
		}
		return nil
	})

	// A session on the active works on the standby.
	x := r.do("A", "POST", "/redfish/v1/SessionService/Sessions", "", nil,
		fmt.Sprintf(`{"UserName":"admin","Password":%q}`, adminPW))
	if x.code != 201 {
		t.Fatalf("login on A: %d %s", x.code, x.body)
	}
	tok, loc := x.hdr.Get("X-Auth-Token"), x.hdr.Get("Location")
	r.eventually("the token on the standby", func() error {
		if x := r.do("B", "GET", "/redfish/v1/Chassis", tok, nil, ""); x.code != 200 {
			return fmt.Errorf("%d %s", x.code, x.body)
		}
		return nil
	})
	if x := r.do("B", "POST", "/redfish/v1/SessionService/Sessions", "", nil,
		fmt.Sprintf(`{"UserName":"admin","Password":%q}`, adminPW)); x.code != 503 {
		t.Fatalf("login on the standby: %d, want 503", x.code)
	}

	// IPMI: the standby refuses account writes; the active's change is
	// replicated before its answer.
	if _, err := r.ipmitool("B", "admin", adminPW, "user", "set", "password", "2", "Changed-pw-123", "20"); err == nil ||
		!strings.Contains(err.Error(), "present state") {
		t.Fatalf("IPMI password change on the standby: %v, want D5h", err)
	}
	if _, err := r.ipmitool("A", "admin", adminPW, "user", "set", "password", "2", "Changed-pw-123", "20"); err != nil {
		t.Fatalf("IPMI password change on the active: %v", err)
	}
	// Committed on a quorum before the answer: B has it or gets it from
	// the log without any further write.
	r.eventually("the new password on the standby over IPMI", func() error {
		_, err := r.ipmitool("B", "admin", "Changed-pw-123", "mc", "info")
		return err
	})
	if x := r.do("B", "GET", "/redfish/v1/Chassis", "", admin, ""); x.code != 401 {
		t.Fatalf("old password on the standby: %d, want 401", x.code)
	}

	// Failover: A stops; B takes over and accepts A's session.
	r.stop("A")
	r.waitRole("B", pair.RoleActive)
	if x := r.do("B", "GET", loc, tok, nil, ""); x.code != 200 {
		t.Fatalf("A's session on the new active: %d %s", x.code, x.body)
	}
	if x := r.do("B", "DELETE", loc, tok, nil, ""); x.code != 204 {
		t.Fatalf("logout on B: %d %s", x.code, x.body)
	}
	if x := r.do("B", "GET", "/redfish/v1/Chassis", tok, nil, ""); x.code != 401 {
		t.Fatalf("token after logout on B: %d", x.code)
	}

	// The former active comes back as the standby and takes the
	// sessions from the log; a logout on the active ends a session there.
	r.start("A")
	r.waitRole("A", pair.RoleStandby)
	x = r.do("B", "POST", "/redfish/v1/SessionService/Sessions", "", nil, `{"UserName":"admin","Password":"Changed-pw-123"}`)
	if x.code != 201 {
		t.Fatalf("login on B: %d %s", x.code, x.body)
	}
	tok2, loc2 := x.hdr.Get("X-Auth-Token"), x.hdr.Get("Location")
	r.eventually("B's session on the restarted A", func() error {
		if x := r.do("A", "GET", "/redfish/v1/Chassis", tok2, nil, ""); x.code != 200 {
			return fmt.Errorf("%d %s", x.code, x.body)
		}
		return nil
	})
	if x := r.do("A", "GET", "/redfish/v1/Chassis", tok, nil, ""); x.code != 401 {
		t.Fatalf("the session ended while A was away, on A: %d", x.code)
	}
	if x := r.do("A", "DELETE", loc2, tok2, nil, ""); x.code != 503 {
		t.Fatalf("logout on the standby: %d, want 503", x.code)
	}
	if x := r.do("B", "DELETE", loc2, tok2, nil, ""); x.code != 204 {
		t.Fatalf("logout on B: %d %s", x.code, x.body)
	}
	// Committed before the answer: once A has applied up to B's commit it
	// refuses the token (a standby serves reads only in sync).
	r.eventually("the logout on A", func() error {
		if x := r.do("A", "GET", "/redfish/v1/Chassis", tok2, nil, ""); x.code != 401 {
			return fmt.Errorf("ended session on A: %d", x.code)
		}
		return nil
	})
}
