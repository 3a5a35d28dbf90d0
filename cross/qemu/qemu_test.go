package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"cmcd/internal/rfschema"
)

// bootBudget is how long a boot to Redfish may take under TCG on a loaded
// 2-core machine (about 10 s unloaded).
const bootBudget = 3 * time.Minute

// TestEmulatedCMC boots cmcd on the emulated AST2600 CMC with erased
// primary and backup flash images, checks that both chips and their data
// partitions appear and are mounted as UBIFS data areas, drives Redfish
// from the host (Chassis, Manager, SyncNow), checks that the round copied
// records primary -> backup, then cuts the power (kills QEMU), checks the
// flash images (UBI in the data partitions only, boot regions untouched),
// boots again on the same images and checks that `cmcd verify` passes in
// the guest, that the first boot's round is in the backup's journal and
// that the round numbers continue.
func TestEmulatedCMC(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	v, err := rfschema.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := DefaultCmcdConfig()
	cfg["syncInterval"] = "24h"                // only SyncNow runs rounds during the test
	cfg["Sim"] = map[string]any{"fillSel": 64} // both sync groups have records
	prep := time.Now()
	c, err := Prepare(root, dir, cfg, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s; kernel, ARMv7 builds and initramfs ready in %s", c.Kernel.Package, time.Since(prep).Round(time.Millisecond))

	// Boot 1: erased flash.
	b1 := bootCMC(t, c, v, "cmcinit.showpw cmcinit.stats=5")
	con := b1.m.Console()
	for _, re := range []string{
		`\d+ fixed-partitions partitions found on MTD device bmc\n`,
		`\d+ fixed-partitions partitions found on MTD device alt-bmc\n`,
		`cmcinit: /proc/mtd: mtd\d+: 01800000 00040000 "rwfs"`,
		`cmcinit: /proc/mtd: mtd\d+: 01800000 00040000 "alt-rwfs"`,
		`cmcinit: primary data area: mtd\d+ "rwfs" \(256 KiB erase blocks\) -> ubi\d -> ubi\d:cmcd-data \(new volume, \d+ KiB\) on /data/primary`,
		`cmcinit: backup data area: mtd\d+ "alt-rwfs" \(256 KiB erase blocks\) -> ubi\d -> ubi\d:cmcd-data \(new volume, \d+ KiB\) on /data/backup`,
		`UBIFS \(ubi0:0\): default file-system created`,
		`UBIFS \(ubi1:0\): default file-system created`,
	} {
		if !regexp.MustCompile(re).MatchString(con) {
			t.Errorf("boot 1 console lacks %s", re)
		}
	}

	chassis := b1.get(t, "/redfish/v1/Chassis")
	members, _ := chassis["Members"].([]any)
	if len(members) == 0 {
		t.Fatalf("no chassis: %v", chassis)
	}
	first := members[0].(map[string]any)["@odata.id"].(string)
	ch := b1.get(t, first)
	t.Logf("chassis %s: %v, %d members in the collection", first, ch["Name"], len(members))
	r1 := b1.syncNow(t)
	if r1.Source != "primary" || r1.Dest != "backup" || r1.Written == 0 {
		t.Fatalf("SyncNow round: %+v; want primary -> backup with records written", r1)
	}
	hist := b1.history(t)
	if len(hist) == 0 || hist[0].ID != r1.ID {
		t.Fatalf("round %d not first in Oem.Cmcd.Sync.RoundHistory: %+v", r1.ID, hist)
	}
	t.Logf("boot 1: round %d committed primary -> backup, %d records written, categories %v", r1.ID, r1.Written, r1.Changed)
	rss := b1.rss(t)

	// The power cut: QEMU is killed, no shutdown.
	b1.m.Kill()
	checkFlashImage(t, c.Primary)
	checkFlashImage(t, c.Backup)

	// Boot 2: the same flash images.
	b2 := bootCMC(t, c, v, "cmcinit.showpw cmcinit.verify")
	con = b2.m.Console()
	for _, re := range []string{
		`cmcinit: cmcd verify exit 0\n`,
		`cmcinit: primary data area: .*\(existing volume, \d+ KiB\) on /data/primary`,
		`cmcinit: backup data area: .*\(existing volume, \d+ KiB\) on /data/backup`,
	} {
		if !regexp.MustCompile(re).MatchString(con) {
			t.Errorf("boot 2 console lacks %s", re)
		}
	}
	if strings.Contains(con, "default file-system created") {
		t.Error("boot 2 created a new UBIFS: the data areas did not persist")
	}
	hist = b2.history(t)
	found := false
	for _, r := range hist {
		if r.ID == r1.ID && r.Written == r1.Written && r.Source == "primary" && r.Dest == "backup" {
			found = true
		}
	}
	if !found {
		t.Fatalf("boot 2: round %d of boot 1 not in the backup's journal: %+v", r1.ID, hist)
	}
	r2 := b2.syncNow(t)
	if r2.ID <= r1.ID {
		t.Errorf("boot 2 round id %d does not continue after boot 1's %d", r2.ID, r1.ID)
	}
	fmt.Printf("SUMMARY emulated CMC (qemu tacoma-bmc, TCG): boot to Redfish %.1f s (boot 1, erased flash), %.1f s (boot 2, verify first); cmcd RSS %s; rounds %d and %d on the backup flash\n",
		b1.bootTime.Seconds(), b2.bootTime.Seconds(), rss, r1.ID, r2.ID)
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type booted struct {
	m        *Machine
	base     string
	password string
	bootTime time.Duration
	v        *rfschema.Validator
}

// bootCMC boots the CMC and waits for its Redfish service.
func bootCMC(t *testing.T, c Config, v *rfschema.Validator, appendLine string) *booted {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c.HostPort, c.Append = port, appendLine
	logPath := filepath.Join(t.TempDir(), "console.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Boot(c, logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Kill()
		logf.Close()
		if t.Failed() {
			t.Logf("console of the boot on port %d:\n%s", port, tail(m.Console(), 120))
		}
	})
	b := &booted{m: m, base: fmt.Sprintf("http://127.0.0.1:%d", port), v: v}
	ctx, cancel := context.WithTimeout(context.Background(), bootBudget)
	defer cancel()
	sub, err := m.WaitConsole(ctx, regexp.MustCompile(`cmcinit: initial admin password: (\S+)`))
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(m.Console(), 60))
	}
	b.password = sub[1]
	for {
		resp, err := http.Get(b.base + "/redfish/v1/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				if err := v.Validate(body); err != nil {
					t.Errorf("service root: %v", err)
				}
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Redfish did not answer on %s within %s (last: %v)\n%s", b.base, bootBudget, err, tail(m.Console(), 60))
		case <-m.Exited():
			t.Fatalf("QEMU exited before Redfish answered\n%s", tail(m.Console(), 60))
		case <-time.After(250 * time.Millisecond):
		}
	}
	b.bootTime = time.Since(m.Started)
	t.Logf("boot to Redfish: %s (QEMU start to the first answer on %s)", b.bootTime.Round(100*time.Millisecond), b.base)
	return b
}

func (b *booted) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", b.password)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	cl := &http.Client{Timeout: time.Minute}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// get fetches a resource, checks 200 and validates it against its schema.
func (b *booted) get(t *testing.T, path string) map[string]any {
	t.Helper()
	code, body := b.do(t, "GET", path, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := b.v.Validate(body); err != nil {
		t.Errorf("GET %s: %v\n%s", path, err, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return m
}

type round struct {
	ID      uint64   `json:"id"`
	Source  string   `json:"source"`
	Dest    string   `json:"dest"`
	Written int      `json:"recordsWritten"`
	Changed []string `json:"changed"`
}

func (b *booted) syncNow(t *testing.T) round {
	t.Helper()
	code, body := b.do(t, "POST", "/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.SyncNow", "{}")
	if code != 200 {
		t.Fatalf("SyncNow: %d %s", code, body)
	}
	var out struct {
		Info []json.RawMessage `json:"@Message.ExtendedInfo"`
		Oem  struct {
			Cmcd struct {
				Round     *round
				Unchanged bool
			}
		}
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	msgURL, _ := rfschema.URLForType("#Message.v1_3_0.Message")
	for _, m := range out.Info {
		if err := b.v.ValidateAgainst(m, msgURL); err != nil {
			t.Errorf("SyncNow message: %v\n%s", err, m)
		}
	}
	if out.Oem.Cmcd.Round == nil {
		t.Fatalf("SyncNow committed no round (unchanged=%v): %s", out.Oem.Cmcd.Unchanged, body)
	}
	return *out.Oem.Cmcd.Round
}

func (b *booted) history(t *testing.T) []round {
	t.Helper()
	m := b.get(t, "/redfish/v1/Managers/CMC")
	raw, _ := json.Marshal(m["Oem"])
	var oem struct {
		Cmcd struct {
			Sync struct{ RoundHistory []round }
		}
	}
	if err := json.Unmarshal(raw, &oem); err != nil {
		t.Fatal(err)
	}
	return oem.Cmcd.Sync.RoundHistory
}

// rss waits for cmcinit's first report of cmcd's resident memory and
// returns the largest reported so far.
func (b *booted) rss(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	re := regexp.MustCompile(`cmcinit: cmcd pid \d+ VmRSS: (\d+) kB`)
	if _, err := b.m.WaitConsole(ctx, re); err != nil {
		t.Errorf("cmcd RSS: %v", err)
		return "?"
	}
	most := 0
	for _, m := range re.FindAllStringSubmatch(b.m.Console(), -1) {
		if n, _ := strconv.Atoi(m[1]); n > most {
			most = n
		}
	}
	return fmt.Sprintf("%.1f MiB", float64(most)/1024)
}

// checkFlashImage checks that the data partition holds UBI (erase-counter
// headers "UBI#" at every 256 KiB block used) and that nothing was written
// to the boot image region before it.
func checkFlashImage(t *testing.T, path string) {
	t.Helper()
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(img) != FlashSize {
		t.Fatalf("%s: %d bytes, want %d", path, len(img), FlashSize)
	}
	for i, c := range img[:DataOffset] {
		if c != 0xFF {
			t.Errorf("%s: boot image region written at %#x", filepath.Base(path), i)
			break
		}
	}
	ubi := 0
	for off := DataOffset; off < DataOffset+DataSize; off += 256 << 10 {
		if string(img[off:off+4]) == "UBI#" {
			ubi++
		}
	}
	if ubi != DataSize/(256<<10) {
		t.Errorf("%s: %d of %d erase blocks of the data partition carry a UBI header", filepath.Base(path), ubi, DataSize/(256<<10))
	}
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
