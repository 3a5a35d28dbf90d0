package daemon

import (
	"cmcd/internal/testexec"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cmcd/firmware/firmwaretest"
	"cmcd/internal/rfschema"
)

// startCmcd starts a real `cmcd run` child and waits for its start-up
// health check; it returns the plain-HTTP Redfish base URL.
func startCmcd(t *testing.T, bin, data, pub string) (*testexec.Proc, string) {
	t.Helper()
	p := testexec.Start(t, nil, bin, "run", "--data", data, "--trusted-key", pub, "--boot-limit", "2", "--sim-nodes", "1",
		"--redfish", "127.0.0.1:0", "--insecure-http", "127.0.0.1:0", "--ipmi", "127.0.0.1:0", "--ntp", "127.0.0.1:0", "--sync-interval", "1s")
	url := p.WaitFor(t, regexp.MustCompile(`url=(http://\S+)/redfish/v1/`))[1]
	p.WaitFor(t, regexp.MustCompile(`start-up health check passed`))
	return p, url
}

type rfClient struct {
	t        *testing.T
	base, pw string
	v        *rfschema.Validator
}

func (c *rfClient) do(method, path, body string, hdr ...string) (*http.Response, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.SetBasicAuth("admin", c.pw)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("%s %s: %s: %v\n%s", method, path, res.Status, err, b)
	}
	if res.StatusCode < 300 {
		if err := c.v.Validate(b); err != nil {
			c.t.Errorf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return res, m
}

func (c *rfClient) get(path string) map[string]any {
	c.t.Helper()
	res, m := c.do("GET", path, "")
	if res.StatusCode != 200 {
		c.t.Fatalf("GET %s: %s %v", path, res.Status, m)
	}
	return m
}

// TestUpgradeThroughRedfish is the operator's path on real `cmcd run`
// processes: `curl -F` upload to the UpdateService, the Task watched to
// Completed, activation by a PATCH of the Manager's ActiveSoftwareImage, a
// restart that boots the new image on trial and confirms it, the
// keep-or-restore choice pending on the Manager and answered with the
// #Cmcd.DataChoice action.
func TestUpgradeThroughRedfish(t *testing.T) {
	bin := testexec.CmcdBinary(t)
	v, err := rfschema.New()
	if err != nil {
		t.Fatal(err)
	}
	k := firmwaretest.New(t)
	pub := k.PubFile()
	data := t.TempDir()
	d, base := startCmcd(t, bin, data, pub)
	pw, err := os.ReadFile(filepath.Join(data, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	c := &rfClient{t: t, base: base, pw: strings.TrimSpace(string(pw)), v: v}
	us := c.get("/redfish/v1/UpdateService")
	push, _ := us["MultipartHttpPushUri"].(string)
	if push == "" {
		t.Fatalf("UpdateService: %v", us)
	}

	img := k.Signed("9.1.0", "sim", 500_000, nil)
	out, err := exec.Command("curl", "-sS", "-D", "-", "-u", "admin:"+c.pw,
		"-F", `UpdateParameters={"Targets":[]};type=application/json`, "-F", "UpdateFile=@"+img,
		base+push).CombinedOutput()
	if err != nil || !strings.Contains(string(out), " 202") {
		t.Fatalf("curl upload: %v\n%s", err, out)
	}
	loc := regexp.MustCompile(`(?i)\nLocation: (\S+)`).FindStringSubmatch(string(out))
	if loc == nil {
		t.Fatalf("no Location:\n%s", out)
	}
	var task map[string]any
	for deadline := time.Now().Add(60 * time.Second); ; {
		_, task = c.do("GET", loc[1], "")
		if st := task["TaskState"]; st == "Completed" || st == "Exception" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task did not end: %v", task)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if task["TaskState"] != "Completed" {
		t.Fatalf("task: %v", task)
	}
	backup := c.get("/redfish/v1/UpdateService/FirmwareInventory/Backup")
	if backup["Version"] != "9.1.0" || backup["Active"] != false {
		t.Fatalf("backup slot after upload: %v", backup)
	}
	res, m := c.do("PATCH", "/redfish/v1/Managers/CMC",
		`{"Links":{"ActiveSoftwareImage":{"@odata.id":"/redfish/v1/UpdateService/FirmwareInventory/Backup"}}}`)
	if res.StatusCode != 200 {
		t.Fatalf("activate: %s %v", res.Status, m)
	}
	d.Stop(t)

	d, base = startCmcd(t, bin, data, pub)
	defer d.Stop(t)
	c.base = base
	if !strings.Contains(d.Log(), "backup image (version 9.1.0) booted on trial (1 of 2)") {
		t.Fatalf("the new image did not boot on trial:\n%s", d.Log())
	}
	backup = c.get("/redfish/v1/UpdateService/FirmwareInventory/Backup")
	oem := backup["Oem"].(map[string]any)["Cmcd"].(map[string]any)
	if backup["Active"] != true || backup["Version"] != "9.1.0" || oem["ImageState"] != "good" || oem["OnTrial"] != false {
		t.Fatalf("backup slot after restart: %v", backup)
	}
	mgr := c.get("/redfish/v1/Managers/CMC")
	dc := mgr["Oem"].(map[string]any)["Cmcd"].(map[string]any)["DataChoice"].(map[string]any)
	if dc["Pending"] != true || dc["Version"] != "9.1.0" {
		t.Fatalf("DataChoice after the upgrade: %v", dc)
	}
	target := mgr["Actions"].(map[string]any)["Oem"].(map[string]any)["#Cmcd.DataChoice"].(map[string]any)["target"].(string)
	if res, m := c.do("POST", target, `{"Choice":"Keep"}`); res.StatusCode != 200 {
		t.Fatalf("answer: %s %v", res.Status, m)
	}
	mgr = c.get("/redfish/v1/Managers/CMC")
	if dc := mgr["Oem"].(map[string]any)["Cmcd"].(map[string]any)["DataChoice"].(map[string]any); dc["Pending"] != false || dc["Answer"] != "Keep" {
		t.Fatalf("DataChoice after the answer: %v", dc)
	}
}
