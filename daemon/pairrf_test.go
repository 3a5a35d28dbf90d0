package daemon

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cmcd/accounts"
	"cmcd/internal/rfschema"
	"cmcd/pair"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// rfPair is two cmcd modules and a witness in this process, on loopback,
// without a floating address.
type rfPair struct {
	t    *testing.T
	http map[string]string // module -> base URL
	pw   string
	v    *rfschema.Validator
}

func newRFPair(t *testing.T) *rfPair {
	t.Helper()
	dir := t.TempDir()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(3*i + 1)
	}
	keyFile := filepath.Join(dir, "pair.key")
	os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600)
	st, err := accounts.Open(filepath.Join(dir, "A"))
	if err != nil {
		t.Fatal(err)
	}
	pw, _, err := st.EnsureInitialAdmin()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "B"), 0o700)
	for _, f := range []string{"accounts.json", "device.key"} {
		b, _ := os.ReadFile(filepath.Join(dir, "A", f))
		os.WriteFile(filepath.Join(dir, "B", f), b, 0o600)
	}
	raft := map[string]string{"A": freePort(t), "B": freePort(t), "W": freePort(t)}
	web := map[string]string{"A": freePort(t), "B": freePort(t)}
	peers := []pair.Peer{{ID: "A", Addrs: []string{raft["A"]}}, {ID: "B", Addrs: []string{raft["B"]}},
		{ID: "W", Addrs: []string{raft["W"]}, Witness: true}}

	ctx, cancel := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	wkey := witnessKeyFile(t, keyFile)
	go func() {
		wdone <- RunWitness(ctx, WitnessConfig{ID: "W", Dir: filepath.Join(dir, "W"), Listen: []string{raft["W"]}, Peers: peers,
			KeyFile: wkey, Heartbeat: inProcessHeartbeat},
			slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-wdone; err != nil {
			t.Error(err)
		}
	})
	p := &rfPair{t: t, http: map[string]string{}, pw: pw}
	if p.v, err = rfschema.New(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"A", "B"} {
		other := map[string]string{"A": "B", "B": "A"}[m]
		c := Defaults()
		c.Data = filepath.Join(dir, m)
		c.Redfish, c.IPMI, c.NTP = "", "", ""
		c.InsecureHTTP = web[m]
		c.Sim.Nodes, c.Sim.NodeIPMI = 1, false
		c.Pair = PairConfig{ID: m, Listen: []string{raft[m]}, Peers: peers, Preset: "A", KeyFile: keyFile, Heartbeat: inProcessHeartbeat,
			PeerHTTP: []string{"http://" + web[other]}, VoteInterval: "0"}
		logs := runDaemon(t, c, slog.LevelInfo)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("module %s log:\n%s", m, logs.String())
			}
		})
		p.http[m] = "http://" + web[m]
	}
	return p
}

func (p *rfPair) do(m, method, path, body string) (int, []byte) {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.http[m]+path, strings.NewReader(body))
	req.SetBasicAuth(accounts.InitialAdmin, p.pw)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (p *rfPair) status(m string) pairStatus {
	var st pairStatus
	if code, b := p.do(m, "GET", "/cmcd/pair/status", ""); code == 200 {
		json.Unmarshal(b, &st)
	}
	return st
}

// until polls cond for up to 30 s.
func (p *rfPair) until(what string, cond func() bool) {
	p.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// get reads a Redfish resource from module m, validated.
func (p *rfPair) get(m, path string) map[string]any {
	p.t.Helper()
	code, b := p.do(m, "GET", path, "")
	if code != 200 {
		p.t.Fatalf("%s GET %s: %d %s", m, path, code, b)
	}
	if err := p.v.Validate(b); err != nil {
		p.t.Fatalf("%s GET %s: %v\n%s", m, path, err, b)
	}
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

func pairOf(m map[string]any) map[string]any {
	p, _ := m["Oem"].(map[string]any)["Cmcd"].(map[string]any)["Pair"].(map[string]any)
	return p
}

// logged reports whether module m's CMC event log has an entry of kind
// whose text contains all of parts.
func (p *rfPair) logged(m, kind string, parts ...string) bool {
	entries := p.get(m, "/redfish/v1/Managers/CMC/LogServices/EventLog/Entries")["Members"].([]any)
	for _, e := range entries {
		e := e.(map[string]any)
		if e["Oem"].(map[string]any)["Cmcd"].(map[string]any)["Kind"] != kind {
			continue
		}
		all := true
		for _, s := range parts {
			all = all && strings.Contains(e["Message"].(string), s)
		}
		if all {
			return true
		}
	}
	return false
}

// TestPairRedfishInProcess: the daemon's wiring of the pair into Redfish
// (daemon/pairrf.go), without root: two modules and a witness on
// loopback. The active lists both Managers (schema-valid), the other one
// standby and in sync as read from it; ForceFailover to itself is 400;
// to the other module it answers 200, the other module becomes active,
// and the event logs hold the hand-over, the old active's standby and the
// new active's takeover naming the ForceFailover; the new active's
// Manager shows the takeover's reason and the old one as StandbySpare.
func TestPairRedfishInProcess(t *testing.T) {
	p := newRFPair(t)
	var x, y string
	p.until("one active module and an in-sync standby", func() bool {
		a, b := p.status("A"), p.status("B")
		switch {
		case a.Role == pair.RoleActive && b.Role == pair.RoleStandby && b.CanServeReads:
			x, y = "A", "B"
		case b.Role == pair.RoleActive && a.Role == pair.RoleStandby && a.CanServeReads:
			x, y = "B", "A"
		default:
			return false
		}
		return true
	})
	coll := p.get(x, "/redfish/v1/Managers")
	if n := coll["Members@odata.count"]; n != 2.0 {
		t.Fatalf("Managers on %s: %v", x, coll)
	}
	peer := "/redfish/v1/Managers/CMC-" + y
	p.until(y+" known to "+x, func() bool {
		m := p.get(x, peer)
		return m["Status"].(map[string]any)["State"] == "StandbySpare" && pairOf(m)["InSync"] == true
	})
	self := pairOf(p.get(x, "/redfish/v1/Managers/CMC"))
	if self["Module"] != x || self["Role"] != "Active" || self["Witness"] != "W" {
		t.Fatalf("%s Oem.Cmcd.Pair %v", x, self)
	}
	p.until("the witness seen reachable", func() bool { return pairOf(p.get(x, "/redfish/v1/Managers/CMC"))["WitnessReachable"] == true })

	ff := "/redfish/v1/Managers/CMC/Actions/Manager.ForceFailover"
	if code, b := p.do(x, "POST", ff, `{"NewManager":{"@odata.id":"/redfish/v1/Managers/CMC"}}`); code != 400 ||
		p.v.ValidateAgainst(b, rfschema.ErrorSchema) != nil {
		t.Fatalf("ForceFailover to itself: %d %s", code, b)
	}
	if code, b := p.do(y, "POST", ff, `{"NewManager":{"@odata.id":"/redfish/v1/Managers/CMC-`+x+`"}}`); code != 503 {
		t.Fatalf("ForceFailover on the standby: %d %s", code, b)
	}
	if code, b := p.do(x, "POST", ff, `{"NewManager":{"@odata.id":"`+peer+`"}}`); code != 200 {
		t.Fatalf("ForceFailover: %d %s", code, b)
	}
	p.until(y+" active", func() bool { return p.status(y).Role == pair.RoleActive && p.status(x).Role == pair.RoleStandby })
	const why = "ForceFailover by Redfish user admin"
	p.until("the hand-over events", func() bool {
		return p.logged(x, "PairHandover", "Module "+x+" hands the active role to module "+y, why) &&
			p.logged(x, "PairBecameStandby", why) && p.logged(y, "PairTakeover", "from module "+x, why)
	})
	m := p.get(y, "/redfish/v1/Managers/CMC")
	lt, _ := pairOf(m)["LastTakeover"].(map[string]any)
	if lt == nil || lt["Previous"] != x || !strings.Contains(lt["Reason"].(string), why) {
		t.Fatalf("%s LastTakeover %v", y, lt)
	}
	p.until(x+" standby as seen by "+y, func() bool {
		return p.get(y, "/redfish/v1/Managers/CMC-"+x)["Status"].(map[string]any)["State"] == "StandbySpare"
	})
}
