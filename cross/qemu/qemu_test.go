package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
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
// from the host (Chassis, Manager, SyncNow) and checks that the round
// copied records primary -> backup; the emulated I2C devices (PSUs, fans,
// the inlet tmp105, the FRU EEPROM) show in Redfish, and the real peers
// (gofish, redfishtool, ipmitool -I lanplus) read what was set in QEMU. Then, with 100 ms rounds, it cuts the
// power (QEMU frozen, then killed) in the middle of rounds, checks the
// flash images (UBI in the data partitions only, boot regions untouched),
// and boots again on the same images: `cmcd verify`, run in the guest
// before cmcd, must pass or find only an unfinished round, which cmcd must
// roll back and verify at start; the last round logged as committed before
// the cut must be in the backup's journal, and round numbers continue.
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
	cfg["syncInterval"] = "24h" // only SyncNow runs rounds during the test
	// Both sync groups have records, and new SEL entries and faults make
	// most 100 ms rounds of the power-cut phase write something.
	cfg["Sim"] = map[string]any{"fillSel": 64, "selRate": 2.0, "faultRate": 0.5}
	cfg["logLevel"] = "debug" // "round started": the power cuts aim at running rounds
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
	b1.checkI2CSensors(t, first)
	b1.checkInletTemp(t, first)
	b1.checkPeers(t, first, 38.5) // the inlet temperature checkInletTemp set last
	r1 := b1.syncNowChanged(t)
	if r1.Source != "primary" || r1.Dest != "backup" || r1.Written == 0 {
		t.Fatalf("SyncNow round: %+v; want primary -> backup with records written", r1)
	}
	hist := b1.history(t)
	if len(hist) == 0 || hist[0].ID != r1.ID {
		t.Fatalf("round %d not first in Oem.Cmcd.Sync.RoundHistory: %+v", r1.ID, hist)
	}
	t.Logf("boot 1: round %d committed primary -> backup, %d records written, categories %v", r1.ID, r1.Written, r1.Changed)
	rss := b1.rss(t)

	// Power cuts in the middle of rounds: 100 ms rounds, QEMU frozen at a
	// random instant and killed, then the next boot on the same flash
	// images checks the data areas. Ten by default (the minimum),
	// alternately aimed at a running round and at a random instant
	// (CMCD_QEMU_POWERCUTS=N).
	cuts := 10
	if v := os.Getenv("CMCD_QEMU_POWERCUTS"); v != "" {
		if cuts, err = strconv.Atoi(v); err != nil || cuts < 1 {
			t.Fatalf("CMCD_QEMU_POWERCUTS=%q: want a count >= 1", v)
		}
	}
	b := b1
	recovered := 0
	for cut := 1; cut <= cuts; cut++ {
		t0 := time.Now()
		last := b.cutMidRound(t, cut%2 == 1)
		tCut := time.Since(t0)
		if cut == 1 {
			checkFlashImage(t, c.Primary)
			checkFlashImage(t, c.Backup)
		}
		b = bootCMC(t, c, v, "cmcinit.showpw cmcinit.verify")
		if b.checkAfterCut(t, last) {
			recovered++
		}
		t.Logf("power cut %d: last round logged as committed: %d; rounds cut so far: %d (%.1f s to the cut, boot %.1f s, %.1f s in all)",
			cut, last, recovered, tCut.Seconds(), b.bootTime.Seconds(), time.Since(t0).Seconds())
	}
	r2 := b.syncNowChanged(t)
	if r2.ID <= r1.ID {
		t.Errorf("round id %d after the cuts does not continue after boot 1's %d", r2.ID, r1.ID)
	}
	fmt.Printf("SUMMARY emulated CMC (qemu tacoma-bmc, TCG): boot to Redfish %.1f s (erased flash), %.1f s (after a power cut, verify first); cmcd RSS %s; %d power cuts mid-round (%d cut a round), backup consistent after each\n",
		b1.bootTime.Seconds(), b.bootTime.Seconds(), rss, cuts, recovered)
}

// cutMidRound switches to 100 ms rounds, waits until a round committed,
// freezes the guest and kills QEMU: aimed, just after the console showed
// a round start (0-20 ms later), else at a random instant. It returns the
// newest round the console had logged as committed at the freeze.
func (b *booted) cutMidRound(t *testing.T, aimed bool) uint64 {
	t.Helper()
	code, body := b.do(t, "PATCH", "/redfish/v1/Managers/CMC", `{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":"100ms"}}}}}`)
	if code != 200 {
		t.Fatalf("PATCH interval 100ms: %d %s", code, body)
	}
	if err := b.v.Validate(body); err != nil {
		t.Errorf("PATCH Manager reply: %v", err)
	}
	start := lastCommitted(b.m.Console())
	if h := b.history(t); len(h) > 0 && h[0].ID > start {
		start = h[0].ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// One round committed after the PATCH shows the 100 ms rounds run
	// (waiting for more cost 2-8 s per cut: a round only runs when its
	// group has changes, which arrive at the simulation's event rates).
	err := b.m.WaitFor(ctx, fmt.Sprintf("round %d committed", start+1), func(con string) bool { return lastCommitted(con) >= start+1 })
	if err != nil {
		t.Fatalf("100 ms rounds did not run: %v", err)
	}
	if aimed {
		// A round has started (its intent is durable) and not committed.
		err := b.m.WaitFor(ctx, "a round start", func(con string) bool {
			m := startedRE.FindAllStringSubmatch(con, -1)
			if len(m) == 0 {
				return false
			}
			n, _ := strconv.ParseUint(m[len(m)-1][1], 10, 64)
			return n > lastCommitted(con) && n > start+1
		})
		if err != nil {
			t.Fatalf("no round start to aim at: %v", err)
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
	} else {
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond) // a random instant, not a synchronisation
	}
	if err := b.m.Freeze(); err != nil {
		t.Fatalf("freeze: %v", err)
	}
	last := lastCommitted(b.m.Console())
	b.m.Kill()
	return last
}

var startedRE = regexp.MustCompile(`msg="round started" round=(\d+)`)

var committedRE = regexp.MustCompile(`msg="round (\d+) committed`)

func lastCommitted(console string) uint64 {
	var most uint64
	for _, m := range committedRE.FindAllStringSubmatch(console, -1) {
		if n, _ := strconv.ParseUint(m[1], 10, 64); n > most {
			most = n
		}
	}
	return most
}

// checkAfterCut checks a boot after a power cut: cmcd verify, run before
// cmcd, passed, or found only an unfinished round, which cmcd then rolled
// back and verified at start; the newest round logged as committed before
// the cut is in the backup's journal. It reports whether a round was cut.
func (b *booted) checkAfterCut(t *testing.T, lastLogged uint64) bool {
	t.Helper()
	con := b.m.Console()
	for _, re := range []string{
		`cmcinit: primary data area: .*\(existing volume, \d+ KiB\) on /data/primary`,
		`cmcinit: backup data area: .*\(existing volume, \d+ KiB\) on /data/backup`,
	} {
		if !regexp.MustCompile(re).MatchString(con) {
			t.Errorf("console after the cut lacks %s", re)
		}
	}
	if strings.Contains(con, "default file-system created") {
		t.Error("a new UBIFS was created after the cut: the data areas did not persist")
	}
	exit := regexp.MustCompile(`cmcinit: cmcd verify exit (-?\d+)\n`).FindStringSubmatch(con)
	if exit == nil {
		t.Fatal("no cmcd verify result on the console")
	}
	for _, l := range regexp.MustCompile(`cmcinit: verify: (verdict: .*|  backup: .*|  unfinished round: .*)\n`).FindAllStringSubmatch(con, -1) {
		t.Logf("cmcd verify in the guest: %s", strings.TrimSpace(l[1]))
	}
	if l := regexp.MustCompile(`msg="recovered a cut round at start-up".*\n`).FindString(con); l != "" {
		t.Logf("cmcd: %s", strings.TrimSpace(l))
	}
	cut := false
	switch exit[1] {
	case "0":
	case "1":
		// Allowed only for a round that started and did not commit.
		problems := regexp.MustCompile(`cmcinit: verify:   (\S.*)\n`).FindAllStringSubmatch(con[strings.Index(con, "verdict: INCONSISTENT"):], -1)
		for _, p := range problems {
			if !regexp.MustCompile(`^backup: round \d+ started and did not commit: the journal needs recovery`).MatchString(p[1]) {
				t.Errorf("cmcd verify after the cut: %s", p[1])
			}
		}
		if len(problems) == 0 {
			t.Errorf("cmcd verify exit 1 without problems listed")
		}
		m := b.get(t, "/redfish/v1/Managers/CMC")
		raw, _ := json.Marshal(m["Oem"])
		var oem struct {
			Cmcd struct {
				Sync struct {
					State struct {
						Recovered *struct {
							Round    uint64 `json:"round"`
							Base     uint64 `json:"base"`
							Verified bool   `json:"verified"`
						} `json:"recoveredAtStart"`
					}
				}
			}
		}
		json.Unmarshal(raw, &oem)
		rec := oem.Cmcd.Sync.State.Recovered
		if rec == nil || !rec.Verified || rec.Base < lastLogged {
			t.Errorf("after a cut round: recoveredAtStart = %+v, want a verified rollback to a base >= %d", rec, lastLogged)
		}
		cut = true
	default:
		t.Errorf("cmcd verify exit %s after the cut", exit[1])
	}
	hist := b.history(t)
	found := false
	for _, r := range hist {
		if r.ID == lastLogged && r.Source == "primary" && r.Dest == "backup" {
			found = true
		}
	}
	if !found {
		t.Errorf("round %d, logged as committed before the cut, is not in the backup's journal: %+v", lastLogged, hist)
	}
	return cut
}

// syncNowChanged runs SyncNow until a round copies records: a group with
// no change commits nothing, rounds alternate between two groups, and
// right after boot the collector may not have filled the primary yet
// (node data comes over IPMI, slow under TCG). It polls once a second for
// up to 90 s.
func (b *booted) syncNowChanged(t *testing.T) round {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	tries := 0
	for {
		tries++
		r, ok := b.trySyncNow(t)
		if ok && r.Written > 0 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d SyncNow rounds in 90 s copied nothing (last: %+v)", tries, r)
		}
		time.Sleep(time.Second) // polling the collector's progress
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type booted struct {
	m        *Machine
	base     string
	ipmiPort int
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
	ipmiPort, err := FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	c.HostPort, c.IPMIPort, c.Append = port, ipmiPort, appendLine
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
	b := &booted{m: m, base: fmt.Sprintf("http://127.0.0.1:%d", port), ipmiPort: ipmiPort, v: v}
	ctx, cancel := context.WithTimeout(context.Background(), bootBudget)
	defer cancel()
	// The PSU readings are set at once: cmcinit then opens the isl69260s'
	// warning limits and clears their status (I2CInit). QEMU latches the
	// STATUS_WORD bits of every reading beyond a limit, and the limits
	// are 0 until cmcinit writes them, so the bits are set either way (a
	// run that set the readings only after the limits were open saw them
	// too): only an effective CLEAR_FAULTS removes them (see the package
	// doc).
	for _, id := range []string{"psu1", "psu2"} {
		if err := setPSU(m, id, psuSet[id]); err != nil {
			t.Fatalf("QMP: set the emulated %s's readings: %v", id, err)
		}
	}
	if err := m.QOMSet("/machine/peripheral/inlet", "temperature", inletStart*1000); err != nil {
		t.Fatalf("QMP: set the emulated tmp105's temperature: %v", err)
	}
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

// trySyncNow runs #Cmcd.SyncNow; ok is false when the round found nothing
// to copy.
func (b *booted) trySyncNow(t *testing.T) (round, bool) {
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
		return round{}, false
	}
	return *out.Oem.Cmcd.Round, true
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
