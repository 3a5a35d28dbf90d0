package redfish_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"cmcd/flash"
	"cmcd/internal/testexec"
	"cmcd/syncsel"
)

// cmcdBinary builds cmd/cmcd for this test.
func cmcdBinary(t *testing.T) string { return testexec.CmcdBinary(t) }

// daemon is a real `cmcd run` on loopback ports the OS picks.
type daemon struct {
	*testexec.Proc
	t           *testing.T
	data        string
	https, http string // host:port
	pw          string
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startDaemonIn(t, t.TempDir(), args...)
}

// startDaemonIn starts cmcd on the data directory data (a restart when a
// daemon ran there before).
func startDaemonIn(t *testing.T, data string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, data: data}
	args = append([]string{"run", "--data", d.data, "--sync-interval", "1h", "--sim-nodes", "2", "--sim-fill-sel", "5",
		"--sim-sel-rate", "0", "--sim-fault-rate", "0", "--redfish", "127.0.0.1:0", "--insecure-http", "127.0.0.1:0",
		"--ipmi", "127.0.0.1:0", "--ntp", "127.0.0.1:0"}, args...)
	d.Proc = testexec.Start(t, nil, cmcdBinary(t), args...)
	d.https = d.WaitFor(t, regexp.MustCompile(`url=https://(\S+)/redfish/v1/`))[1]
	d.http = d.WaitFor(t, regexp.MustCompile(`url=http://(\S+)/redfish/v1/`))[1]
	pw, err := os.ReadFile(filepath.Join(d.data, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	d.pw = strings.TrimSpace(string(pw))
	return d
}

var insecureClient = &http.Client{Timeout: 30 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// get fetches a resource with Go's client as admin (the reference the
// redfishtool output is compared with).
func (d *daemon) get(path string) map[string]any {
	d.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+d.http+path, nil)
	req.SetBasicAuth("admin", d.pw)
	res, err := insecureClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil || res.StatusCode != 200 {
		d.t.Fatalf("GET %s: %s %v", path, res.Status, err)
	}
	return m
}

// rft runs redfishtool against the plain-HTTP listener (or, with
// secure, the TLS one) and returns stdout, stderr and the exit code.
func (d *daemon) rft(secure bool, args ...string) (string, string, int) {
	d.t.Helper()
	host, mode := d.http, "Never"
	if secure {
		host, mode = d.https, "Always"
	}
	cmd := exec.Command("redfishtool", append([]string{"-r", host, "-S", mode, "-T", "30"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("redfishtool %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// rftJSON runs redfishtool as admin and decodes its JSON output.
func (d *daemon) rftJSON(secure bool, args ...string) map[string]any {
	d.t.Helper()
	out, errs, code := d.rft(secure, append([]string{"-u", "admin", "-p", d.pw}, args...)...)
	if code != 0 {
		d.t.Fatalf("redfishtool %v: exit %d\n%s%s", args, code, out, errs)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		d.t.Fatalf("redfishtool %v: output is not JSON: %v\n%s", args, err, out)
	}
	return m
}

func ids(coll map[string]any) []string {
	var out []string
	for _, m := range coll["Members"].([]any) {
		out = append(out, m.(map[string]any)["@odata.id"].(string))
	}
	return out
}

// TestRedfishtool drives a real `cmcd run` with redfishtool (Debian's
// redfishtool 1.1.5) over HTTP and HTTPS, and checks what it shows and
// changes against the API (Go's client) and, after the daemon stopped,
// the data store.
func TestRedfishtool(t *testing.T) {
	if _, err := exec.LookPath("redfishtool"); err != nil {
		t.Fatal("redfishtool is not installed (make test installs it: scripts/apt-packages.txt)")
	}
	d := startDaemon(t, "--ntp-upstream", "127.0.0.1:1123")

	// Chassis list: the same members, with their asset tags.
	list := d.rftJSON(false, "Chassis", "list")
	api := d.get("/redfish/v1/Chassis")
	if fmt.Sprint(ids(list)) != fmt.Sprint(ids(api)) || len(ids(api)) != 3 {
		t.Errorf("Chassis list %v, API %v", ids(list), ids(api))
	}
	for _, m := range list["Members"].([]any) {
		mm := m.(map[string]any)
		if tag, ok := mm["AssetTag"]; ok && d.get(mm["@odata.id"].(string))["AssetTag"] != tag {
			t.Errorf("%v: AssetTag %v", mm["@odata.id"], tag)
		}
	}

	// Chassis -I Node1 Power: PowerControl as the API has it (retried
	// until the collector left the reading alone during the call).
	var p map[string]any
	for i := 0; ; i++ {
		before := d.get("/redfish/v1/Chassis/Node1/Power")
		p = d.rftJSON(false, "Chassis", "-I", "Node1", "Power")
		after := d.get("/redfish/v1/Chassis/Node1/Power")
		if fmt.Sprint(before) == fmt.Sprint(after) {
			if fmt.Sprint(p) != fmt.Sprint(after) {
				t.Errorf("Chassis -a Power:\n%v\nAPI:\n%v", p, after)
			}
			break
		}
		if i == 20 {
			t.Fatal("the Power reading never held still")
		}
	}
	if pc := p["PowerControl"].([]any); len(pc) != 1 || pc[0].(map[string]any)["PowerConsumedWatts"].(float64) <= 0 {
		t.Errorf("Power: %v", p)
	}

	// Chassis Sensors: redfishtool's table lists the node's sensors with
	// their upper critical thresholds.
	out, errs, code := d.rft(false, "-u", "admin", "-p", d.pw, "Chassis", "-I", "Node1", "Sensors")
	if code != 0 {
		t.Fatalf("Sensors: %d %s", code, errs)
	}
	cpu := d.get("/redfish/v1/Chassis/Node1/Sensors/CPUTemp")
	ucr := cpu["Thresholds"].(map[string]any)["UpperCritical"].(map[string]any)["Reading"].(float64)
	if !regexp.MustCompile(`(?m)^CPUTemp\s+[0-9.]+\s+` + regexp.QuoteMeta(strconv.FormatFloat(ucr, 'f', -1, 64)) + `\s*$`).MatchString(out) {
		t.Errorf("Sensors table lacks CPUTemp with UpperCritical %v:\n%s", ucr, out)
	}

	// Managers: the collection, the CMC, its NetworkProtocol with the
	// bound ports and the configured NTP upstream.
	mgrs := d.rftJSON(false, "Managers")
	if fmt.Sprint(ids(mgrs)) != "[/redfish/v1/Managers/CMC]" {
		t.Errorf("Managers: %v", mgrs)
	}
	mgr := d.rftJSON(false, "Managers", "-I", "CMC")
	if mgr["ManagerType"] != "EnclosureManager" ||
		mgr["Links"].(map[string]any)["ActiveSoftwareImage"].(map[string]any)["@odata.id"] != "/redfish/v1/UpdateService/FirmwareInventory/Primary" {
		t.Errorf("Manager: %v", mgr)
	}
	np := d.rftJSON(false, "Managers", "-I", "CMC", "NetworkProtocol")
	_, hp, _ := strings.Cut(d.https, ":")
	_, pp, _ := strings.Cut(d.http, ":")
	if fmt.Sprint(np["HTTPS"].(map[string]any)["Port"]) != hp || fmt.Sprint(np["HTTP"].(map[string]any)["Port"]) != pp ||
		fmt.Sprint(np["NTP"].(map[string]any)["NTPServers"]) != "[127.0.0.1:1123]" {
		t.Errorf("NetworkProtocol (https %s, http %s): %v", d.https, d.http, np)
	}

	// SessionService login, use of the token, logout; the token then fails.
	login := d.rftJSON(false, "SessionService", "login")
	tok, sid := login["X-Auth-Token"].(string), login["SessionId"].(string)
	if tok == "" || login["SessionLocation"] != "/redfish/v1/SessionService/Sessions/"+sid {
		t.Fatalf("login: %v", login)
	}
	if out, errs, code := d.rft(false, "-A", "Session", "-t", tok, "Chassis", "list"); code != 0 || !strings.Contains(out, "Node2") {
		t.Fatalf("with the session token: %d %s%s", code, out, errs)
	}
	if out, errs, code := d.rft(false, "-A", "Session", "-t", tok, "SessionService", "logout", "-i", sid); code != 0 {
		t.Fatalf("logout: %d %s%s", code, out, errs)
	}
	if _, errs, code := d.rft(false, "-A", "Session", "-t", tok, "Chassis", "list"); code == 0 || !strings.Contains(errs, "401") {
		t.Errorf("token after logout: exit %d %s", code, errs)
	}

	// raw PATCH of the sync configuration: redfishtool GETs the Manager and
	// sends its ETag in If-Match; a stale If-Match is refused with 412.
	cfg := func() map[string]any {
		return d.get("/redfish/v1/Managers/CMC")["Oem"].(map[string]any)["Cmcd"].(map[string]any)["Sync"].(map[string]any)["Configuration"].(map[string]any)
	}
	patched := d.rftJSON(false, "raw", "PATCH", "/redfish/v1/Managers/CMC",
		"-d", `{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":"41s","category.fault":false}}}}}`)
	if c := cfg(); c["interval"] != "41s" || c["category.fault"] != false || patched["Id"] != "CMC" {
		t.Errorf("after raw PATCH: %v", c)
	}
	_, errs, code = d.rft(false, "-u", "admin", "-p", d.pw, "-H", `{"If-Match":"\"stale\""}`, "raw", "PATCH",
		"/redfish/v1/Managers/CMC", "-d", `{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":"42s"}}}}}`)
	if code == 0 || !strings.Contains(errs, "412") || cfg()["interval"] != "41s" {
		t.Errorf("stale If-Match: exit %d %s, interval %v", code, errs, cfg()["interval"])
	}
	_, errs, code = d.rft(false, "-u", "admin", "-p", d.pw, "raw", "PATCH",
		"/redfish/v1/Managers/CMC", "-d", `{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":"1ms"}}}}}`)
	if code == 0 || !strings.Contains(errs, "400") || cfg()["interval"] != "41s" {
		t.Errorf("bad interval: exit %d %s, interval %v", code, errs, cfg()["interval"])
	}

	// ClearLog of Node1's SEL (redfishtool's Chassis clearLog is not
	// implemented, so raw POST to the advertised target) and a Reset.
	sel := d.get("/redfish/v1/Chassis/Node1/LogServices/SEL")
	target := sel["Actions"].(map[string]any)["#LogService.ClearLog"].(map[string]any)["target"].(string)
	n2 := d.get("/redfish/v1/Chassis/Node2/LogServices/SEL/Entries")["Members@odata.count"]
	if n := d.get("/redfish/v1/Chassis/Node1/LogServices/SEL/Entries")["Members@odata.count"]; n != 5.0 || n2 != 5.0 {
		t.Fatalf("SEL entries before the clear: %v %v", n, n2)
	}
	d.rftJSON(false, "raw", "POST", target, "-d", "{}")
	if n := d.get("/redfish/v1/Chassis/Node1/LogServices/SEL/Entries")["Members@odata.count"]; n != 0.0 {
		t.Errorf("Node1 SEL after ClearLog: %v entries", n)
	}
	d.rftJSON(false, "raw", "POST", "/redfish/v1/Chassis/Node2/Actions/Chassis.Reset", "-d", `{"ResetType":"ForceOff"}`)
	if ps := d.get("/redfish/v1/Chassis/Node2")["PowerState"]; ps != "Off" {
		t.Errorf("Node2 after ForceOff: %v", ps)
	}
	_, errs, code = d.rft(false, "-u", "admin", "-p", d.pw, "raw", "POST", "/redfish/v1/Chassis/Node2/Actions/Chassis.Reset",
		"-d", `{"ResetType":"Explode"}`)
	if code == 0 || !strings.Contains(errs, "400") {
		t.Errorf("bad ResetType: exit %d %s", code, errs)
	}

	// Over HTTPS with the generated certificate (redfishtool does not
	// verify certificates: it passes verify=False to requests).
	if l := d.rftJSON(true, "Chassis", "list"); fmt.Sprint(ids(l)) != fmt.Sprint(ids(api)) {
		t.Errorf("HTTPS Chassis list: %v", ids(l))
	}
	login = d.rftJSON(true, "SessionService", "login")
	if out, errs, code := d.rft(true, "-A", "Session", "-t", login["X-Auth-Token"].(string), "SessionService", "logout",
		"-i", login["SessionId"].(string)); code != 0 {
		t.Errorf("HTTPS logout: %d %s%s", code, out, errs)
	}

	// The NTP upstream set: changed with redfishtool, saved across the
	// restart below (the configured --ntp-upstream no longer applies).
	d.rftJSON(false, "raw", "PATCH", "/redfish/v1/Managers/CMC/NetworkProtocol", "-d", `{"NTP":{"NTPServers":["127.0.0.1:1125", null]}}`)
	if got := fmt.Sprint(d.get("/redfish/v1/Managers/CMC/NetworkProtocol")["NTP"].(map[string]any)["NTPServers"]); got != "[127.0.0.1:1125]" {
		t.Errorf("NTPServers after PATCH: %s", got)
	}

	// The store holds what redfishtool changed.
	d.Stop(t)
	defer func() {
		r := startDaemonIn(t, d.data, "--ntp-upstream", "127.0.0.1:1123")
		defer r.Stop(t)
		if got := fmt.Sprint(r.get("/redfish/v1/Managers/CMC/NetworkProtocol")["NTP"].(map[string]any)["NTPServers"]); got != "[127.0.0.1:1125]" {
			t.Errorf("NTPServers after a restart: %s, want the PATCHed [127.0.0.1:1125]", got)
		}
	}()
	st, err := syncsel.OpenStore(flash.Areas{Root: d.data}.StorePath(flash.Primary), flash.Primary, syncsel.StoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, ok, err := st.LoadConfig()
	if err != nil || !ok || c.Interval.String() != "41s" || c.IsSelected(syncsel.CatFault) {
		t.Errorf("stored configuration: %v %v %+v", ok, err, c)
	}
	s1, err1 := st.SEL(1)
	s2, err2 := st.SEL(2)
	if err1 != nil || err2 != nil || len(s1) != 0 || len(s2) != 5 {
		t.Errorf("stored SEL: node1 %d (%v), node2 %d (%v)", len(s1), err1, len(s2), err2)
	}
	nodes, err := st.Nodes()
	if err != nil || len(nodes) != 2 || nodes[1].Power != "Off" {
		t.Errorf("stored nodes: %+v %v", nodes, err)
	}
}
