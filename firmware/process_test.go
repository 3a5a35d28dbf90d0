package firmware

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cmcd/flash"
	"cmcd/internal/testexec"
)

// cmcdBinary builds cmd/cmcd for this test.
func cmcdBinary(t *testing.T) string { return testexec.CmcdBinary(t) }

func (k *kit) pubFile() string {
	k.t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.pub)
	if err != nil {
		k.t.Fatal(err)
	}
	p := filepath.Join(k.dir, "trusted.pub")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		k.t.Fatal(err)
	}
	return p
}

func fileHash(t *testing.T, p string) [32]byte { return sha256.Sum256(readFile(t, p)) }

// TestKillDuringInstall SIGKILLs `cmcd image install` at random points of
// the staging, erase, write and read-back of the inactive slot, until 20
// kills have landed in the erase/write (CMCD_FW_KILLS=N for more). After every kill the running slot's
// bytes are identical, and the cut slot is marked bad (never pending) once
// the slots are opened again; an uncut install then succeeds and the
// image activates (verified on flash).
func TestKillDuringInstall(t *testing.T) {
	bin := cmcdBinary(t)
	k := newKit(t)
	data := t.TempDir()
	// The backup slot runs an installed, healthy image; installs target the primary.
	o := Options{Areas: flash.Areas{Root: data}, Keys: k.ring, Board: "sim", Builtin: "1.0.0"}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	s.Boot()
	if _, err := s.InstallFile(context.Background(), k.signed("1.1.0", "sim", 1_000_000, nil), nil); err != nil {
		t.Fatal(err)
	}
	s.Activate(flash.Backup)
	s.Close()
	s, _ = Open(o)
	s.Boot()
	s.ReportHealthy()
	s.Close()
	running := flash.Areas{Root: data}.ImagePath(flash.Backup)
	runningHash := fileHash(t, running)
	img := k.signed("2.0.0", "sim", 8<<20, nil)
	pub := k.pubFile()

	kills := 20
	if v, err := strconv.Atoi(os.Getenv("CMCD_FW_KILLS")); err == nil && v > 0 {
		kills = v
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	phases := []string{"receiving", "erasing", "writing", "writing", "writing", "reading-back"}
	killed, inWrite, completed := 0, 0, 0
	for i := 0; inWrite < kills && i < kills*4; i++ {
		phase, pct := phases[rng.Intn(len(phases))], rng.Intn(100)
		cmd := exec.Command(bin, "image", "install", "--data", data, "--trusted-key", pub, img)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		sc := bufio.NewScanner(stderr)
		did := false
		var tail string
		for sc.Scan() {
			line := sc.Text()
			tail = line
			var ph string
			var done, total int64
			if _, err := fmt.Sscanf(line, "install: %s %d/%d", &ph, &done, &total); err != nil || total == 0 {
				continue
			}
			if ph == phase && done*100/total >= int64(pct) {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				did = true
				if ph == "erasing" || ph == "writing" {
					inWrite++
				}
				break
			}
		}
		go func() {
			for sc.Scan() {
			}
		}()
		werr := cmd.Wait()
		if did {
			killed++
		} else if werr != nil {
			t.Fatalf("install %d failed without a kill: %v (%s)", i, werr, tail)
		} else {
			completed++
		}
		if fileHash(t, running) != runningHash {
			t.Fatalf("kill %d (%s %d%%): the running slot changed", i, phase, pct)
		}
		s, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		img := s.State().Images.Get(flash.Primary)
		switch {
		case img.State == flash.ImagePending:
			// Only an install that got past its read-back may leave it pending.
			if err := s.readBack(flash.Primary, img, nil); err != nil {
				t.Fatalf("kill %d (%s %d%%): slot pending but does not verify: %v", i, phase, pct, err)
			}
		case did && phase != "receiving" && img.State != flash.ImageBad:
			t.Fatalf("kill %d (%s %d%%): cut slot is %s, want bad", i, phase, pct, img.State)
		case img.State == flash.ImageBad && phase != "receiving" && !strings.Contains(img.Reason, "interrupted"):
			t.Fatalf("kill %d: reason %q", i, img.Reason)
		}
		if did && phase != "receiving" && img.State != flash.ImagePending {
			if err := s.Activate(flash.Primary); err == nil {
				t.Fatalf("kill %d: the cut slot could be activated", i)
			}
		}
		s.Close()
	}
	t.Logf("SUMMARY firmware kill test: %d kills (%d during erase/write), %d installs finished; running slot identical after each", killed, inWrite, completed)
	if inWrite < kills {
		t.Fatalf("only %d kills (%d in the write)", killed, inWrite)
	}
	out, err := exec.Command(bin, "image", "install", "--data", data, "--trusted-key", pub, "--activate", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "activated: the primary slot boots at the next start") {
		t.Fatalf("uncut install: %v\n%s", err, out)
	}
	if fileHash(t, running) != runningHash {
		t.Fatal("the running slot changed")
	}
}

// startDaemon starts a real `cmcd run` child with env added.
func startDaemon(t *testing.T, bin, data, pub string, env ...string) *testexec.Proc {
	t.Helper()
	return testexec.Start(t, env, bin, "run", "--data", data, "--trusted-key", pub, "--boot-limit", "2", "--sim-nodes", "1",
		"--redfish", "127.0.0.1:0", "--ipmi", "127.0.0.1:0", "--ntp", "127.0.0.1:0", "--sync-interval", "1s")
}

type statusOut struct {
	Running    RunningImage      `json:"running"`
	Slots      []SlotInfo        `json:"slots"`
	DataChoice *flash.DataChoice `json:"dataChoice"`
}

func status(t *testing.T, bin, data string) statusOut {
	t.Helper()
	out, err := exec.Command(bin, "image", "status", "--data", data).Output()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var s statusOut
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	return s
}

// TestDaemonBootFallback runs real `cmcd run` daemons: an upgraded image
// made unhealthy with the test knob CMCD_TEST_UNHEALTHY_VERSION fails its
// start-up health check on each of its 2 trial boots (the daemon exits),
// the third start falls back to the previous image, which reports healthy;
// a healthy upgrade is confirmed and its keep-or-restore choice stays
// pending across a restart. While a daemon runs, `cmcd image install` is
// refused (the slots are locked).
func TestDaemonBootFallback(t *testing.T) {
	bin := cmcdBinary(t)
	k := newKit(t)
	data := t.TempDir()
	pub := k.pubFile()
	knob := "CMCD_TEST_UNHEALTHY_VERSION=2.0.0"
	if out, err := exec.Command(bin, "image", "install", "--data", data, "--trusted-key", pub, "--activate", k.signed("2.0.0", "sim", 200_000, nil)).CombinedOutput(); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	for boot := 1; boot <= 2; boot++ {
		d := startDaemon(t, bin, data, pub, knob)
		if err := d.Exited(t, 60*time.Second); err == nil {
			t.Fatalf("boot %d: unhealthy image kept running", boot)
		}
		if log := d.Log(); !strings.Contains(log, fmt.Sprintf("trial boot %d of 2", boot)) && !strings.Contains(log, "booted on trial (1 of 2)") ||
			!strings.Contains(log, "start-up health check failed") {
			t.Fatalf("boot %d log:\n%s", boot, log)
		}
		if st := status(t, bin, data); st.Running.Slot != flash.Backup || st.Running.Version != "2.0.0" {
			t.Fatalf("boot %d: running %+v", boot, st.Running)
		}
	}
	d := startDaemon(t, bin, data, pub, knob)
	d.WaitFor(t, regexp.MustCompile(regexp.QuoteMeta("start-up health check passed")))
	if log := d.Log(); !strings.Contains(log, "boot fell back to the other image") {
		t.Fatalf("no fallback:\n%s", log)
	}
	if out, err := exec.Command(bin, "image", "install", "--data", data, "--trusted-key", pub, k.signed("3.0.0", "sim", 1000, nil)).CombinedOutput(); err == nil || !strings.Contains(string(out), "another cmcd process owns the image slots") {
		t.Fatalf("install while the daemon runs: %v\n%s", err, out)
	}
	d.Stop(t)
	st := status(t, bin, data)
	if st.Running.Slot != flash.Primary || st.Slots[1].Image.State != flash.ImageBad || !strings.Contains(st.Slots[1].Image.Reason, "did not report healthy within 2 boots") {
		t.Fatalf("after fallback: %+v", st)
	}
	if st.DataChoice != nil {
		t.Fatal("failed upgrade offered keep-or-restore")
	}
	// A healthy upgrade.
	if out, err := exec.Command(bin, "image", "install", "--data", data, "--trusted-key", pub, "--activate", k.signed("3.0.0", "sim", 200_000, nil)).CombinedOutput(); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	d = startDaemon(t, bin, data, pub, knob)
	d.WaitFor(t, regexp.MustCompile(regexp.QuoteMeta("start-up health check passed")))
	d.WaitFor(t, regexp.MustCompile(regexp.QuoteMeta("keep the data as the upgrade left it")))
	d.Stop(t)
	for i := 0; i < 2; i++ {
		st = status(t, bin, data)
		if st.Running.Version != "3.0.0" || st.Slots[1].Image.State != flash.ImageGood || st.DataChoice == nil || st.DataChoice.State != flash.ChoicePending {
			t.Fatalf("after healthy upgrade (restart %d): %+v %+v", i, st.Running, st.DataChoice)
		}
		d = startDaemon(t, bin, data, pub)
		d.WaitFor(t, regexp.MustCompile(regexp.QuoteMeta("start-up health check passed")))
		d.Stop(t)
	}
}
