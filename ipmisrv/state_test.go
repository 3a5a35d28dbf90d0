package ipmisrv

import (
	"bufio"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStateCrash SIGKILLs a child that rewrites the state file in a loop,
// at random instants: the file must always load, with the GUIDs intact
// and at least the last state the child reported saved.
func TestStateCrash(t *testing.T) {
	if dir := os.Getenv("IPMISRV_CRASH_CHILD"); dir != "" {
		st, err := loadState(dir)
		if err != nil {
			os.Exit(3)
		}
		for i := st.SELCleared + 1; ; i++ {
			st.SELCleared = i
			st.SELMarks = selMarks{"cmc": uint64(i), "1": uint64(2 * i)}
			if err := saveState(dir, st); err != nil {
				os.Exit(4)
			}
			os.Stdout.WriteString(strconv.FormatInt(i, 10) + "\n")
		}
	}
	dir := t.TempDir()
	first, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	kills := 20
	for k := 0; k < kills; k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStateCrash$")
		cmd.Env = append(os.Environ(), "IPMISRV_CRASH_CHILD="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var last int64
		if sc.Scan() { // wait until the child is writing
			last, _ = strconv.ParseInt(sc.Text(), 10, 64)
		}
		time.Sleep(time.Duration(rand.Intn(20000)) * time.Microsecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		for sc.Scan() {
			if v, err := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64); err == nil {
				last = v
			}
		}
		_ = cmd.Wait()
		st, err := loadState(dir)
		if err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
		if st.SystemGUID != first.SystemGUID || st.DeviceGUID != first.DeviceGUID {
			t.Fatalf("kill %d: GUIDs changed", k)
		}
		if st.SELCleared < last || st.SELMarks["cmc"] != uint64(st.SELCleared) || st.SELMarks["1"] != uint64(2*st.SELCleared) {
			t.Fatalf("kill %d: state %+v, child had reported %d saved", k, st, last)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, StateFile+".tmp*")); len(left) != 0 {
		t.Errorf("temporary files left after loading: %v", left)
	}
	t.Logf("%d kills, state always whole", kills)
}

// TestStateDamaged: a damaged state file is reported, never replaced.
func TestStateDamaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, StateFile)
	if err := os.WriteFile(path, []byte("{\"format\": 1, \"systemGuid\": "), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadState(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged state: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "{\"format\": 1, \"systemGuid\": " {
		t.Error("the damaged file was changed")
	}
}
