package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestIPMIPath runs the daemon on the simulated chassis with its nodes
// behind simulated BMCs and the RMCP+ responder on a loopback port: the
// nodes' data arrive over IPMI and ipmitool reads them back from cmcd
// with the generated admin password; the node BMC credentials file is
// 0600 and no password reaches the log.
func TestIPMIPath(t *testing.T) {
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Fatal("ipmitool not found: run scripts/install-deps.sh")
	}
	c := Defaults()
	c.Data = t.TempDir()
	c.Redfish, c.NTP = "", ""
	c.IPMI = "127.0.0.1:0"
	c.Sim.Nodes = 2
	c.Sim.FillSEL = 3
	logs := runDaemon(t, c, slog.LevelDebug)
	re := regexp.MustCompile(`msg="ipmi listening" addr=127\.0\.0\.1:(\d+)`)
	var port string
	for deadline := time.Now().Add(15 * time.Second); port == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			port = m[1]
		}
	}
	if port == "" {
		t.Fatalf("no ipmi listener:\n%s", logs.String())
	}
	pw, err := os.ReadFile(filepath.Join(c.Data, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	ipmitool := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("ipmitool", append([]string{"-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p", port,
			"-U", "admin", "-P", strings.TrimSpace(string(pw)), "-N", "1", "-R", "3"}, args...)...)
		cmd.Env = append(os.Environ(), "TZ=UTC")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ipmitool %v: %v", args, err)
		}
		return string(out)
	}
	// The collector's first pass (over IPMI) fills the store.
	var sel string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if sel = ipmitool("sel", "list"); strings.Count(sel, "\n") >= 6 {
			break
		}
	}
	if strings.Count(sel, "\n") < 6 {
		t.Fatalf("sel list: %s", sel)
	}
	if out := ipmitool("sdr", "list"); !strings.Contains(out, "Node2 CPU Temp") || !strings.Contains(out, "Fan1") {
		t.Errorf("sdr list:\n%s", out)
	}
	if !strings.Contains(logs.String(), `msg="node read over IPMI" node.slot=2`) {
		t.Errorf("nodes not read over IPMI:\n%s", logs.String())
	}
	credPath := filepath.Join(c.Data, SimNodeCredentialsFile)
	fi, err := os.Stat(credPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("node credentials file: %v %v", err, fi)
	}
	var creds struct {
		Nodes []struct{ Password string }
	}
	b, _ := os.ReadFile(credPath)
	if err := json.Unmarshal(b, &creds); err != nil || len(creds.Nodes) != 2 {
		t.Fatalf("credentials: %v %s", err, b)
	}
	for _, n := range creds.Nodes {
		if n.Password == "" || strings.Contains(logs.String(), n.Password) {
			t.Error("a node BMC password is empty or in the log")
		}
	}
	if strings.Contains(logs.String(), strings.TrimSpace(string(pw))) {
		t.Error("the admin password is in the log")
	}
}

// TestNodeCredentialsFile: a board's node credentials file that others
// may read is refused before cmcd starts, naming the fix.
func TestNodeCredentialsFile(t *testing.T) {
	c := Defaults()
	c.Data = t.TempDir()
	c.Redfish, c.NTP, c.IPMI = "", "", ""
	c.NodeCredentials = filepath.Join(t.TempDir(), "nodes.json")
	if err := os.WriteFile(c.NodeCredentials, []byte(`{"nodes":[{"slot":1,"host":"127.0.0.1","port":1,"username":"u","password":"p4ssw0rd"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), c, slog.New(slog.NewTextHandler(&syncBuf{}, nil)))
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable credentials: %v", err)
	}
	if strings.Contains(err.Error(), "p4ssw0rd") {
		t.Error("the error shows the password")
	}
}
