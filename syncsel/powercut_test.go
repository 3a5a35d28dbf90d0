package syncsel_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"cmcd/flash"
	"cmcd/internal/powercut"
	"cmcd/syncsel"
)

// TestPowerCutDuringRounds runs a real `cmcd run` under the power-cut
// harness (ptrace; every fsync/fdatasync snapshots the file's durable
// image) and cuts the power at random instants: the data files are rewritten
// to what a disk could hold after the cut — the last synced content plus a
// random subset of the pages written since — and files whose directory entry
// was never synced may vanish. After every cut no committed round may be
// lost or half-visible; after a restart `cmcd verify` must pass.
// CMCD_POWERCUTS sets the number of cuts (default 60).
func TestPowerCutDuringRounds(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the power-cut harness traces cmcd with ptrace+seccomp on linux/amd64 only; the kill test covers this platform")
	}
	cuts := 60
	if v := os.Getenv("CMCD_POWERCUTS"); v != "" {
		cuts, _ = strconv.Atoi(v)
	}
	if testing.Short() {
		cuts = 10
	}
	bin := cmcdBinary(t)
	data := t.TempDir()
	areas := flash.Areas{Root: data}
	if err := areas.Ensure(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	var mu sync.Mutex
	var reported int64
	inside, syncs := 0, uint64(0)
	start := time.Now()
	for i := 0; i < cuts; i++ {
		cmd := exec.Command(bin, daemonArgs(data, i)...)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		tr, err := powercut.Start(cmd, []string{data})
		if err != nil {
			t.Fatal(err)
		}
		scanned := make(chan struct{})
		roundStarted := make(chan struct{}, 1)
		go watchCommits(stderr, &reported, &mu, roundStarted, scanned)
		waitToCut(rng, i, roundStarted, 900*time.Millisecond)
		rep, err := tr.Cut()
		if err != nil {
			t.Fatalf("cut %d: %v", i+1, err)
		}
		<-scanned
		syncs += tr.Stats().Syncs
		vr := syncsel.Verify(areas, time.Second)
		if !vr.Consistent() && !vr.OnlyNeedsRecovery() {
			var b bytes.Buffer
			vr.Print(&b)
			t.Fatalf("cut %d (seed %d): half a round is visible or a store is corrupt:\n%s", i+1, rep.Seed, b.String())
		}
		if vr.OnlyNeedsRecovery() {
			inside++
		}
		last, _ := lastRound(t, data)
		mu.Lock()
		if int64(last) < reported {
			t.Fatalf("cut %d (seed %d): round %d was committed (logged after its fsync) but the backup is at round %d", i+1, rep.Seed, reported, last)
		}
		mu.Unlock()
		restartAndStop(t, bin, data, i)
		if out, ok := runVerify(t, bin, data); !ok {
			t.Fatalf("cut %d (seed %d): cmcd verify failed after restart:\n%s", i+1, rep.Seed, out)
		}
	}
	last, rolledBack := lastRound(t, data)
	fmt.Printf("SUMMARY power-cut test: %d cuts, %d fsyncs traced, %d rounds committed, %d cuts inside a round, %d cut rounds rolled back at start-up, verify passed %d times, %s\n",
		cuts, syncs, last, inside, rolledBack, cuts, time.Since(start).Round(time.Second))
}
