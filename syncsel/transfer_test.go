package syncsel_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cmcd/board/sim"
	"cmcd/clock/clocktest"
	"cmcd/flash"
	"cmcd/internal/testexec"
	"cmcd/syncsel"
)

// filledStore is a store collected from a simulated chassis (seed, SEL
// entries per node).
func filledStore(t *testing.T, path string, seed int64, sel int) *syncsel.Store {
	t.Helper()
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	c, err := sim.New(sim.Config{Seed: seed, Nodes: 4, PSUs: 2, Fans: 4, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Slots() {
		if err := c.FillSEL(s, sel); err != nil {
			t.Fatal(err)
		}
	}
	st, err := syncsel.OpenStore(path, flash.Primary, syncsel.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := syncsel.NewCollector(c.Board(), st, clk, nil).Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

var allCats = []syncsel.Category{syncsel.CatPSU, syncsel.CatFan, syncsel.CatNode, syncsel.CatSEL, syncsel.CatFault, syncsel.CatAsset}

// TestImportCategories: an export imported into a store with other
// content makes exactly that content (fingerprint matrix equal, every
// record recomputed, only differing records written); a second import
// writes nothing; a tampered record or sum is refused whole and changes
// nothing.
func TestImportCategories(t *testing.T) {
	dir := t.TempDir()
	a := filledStore(t, filepath.Join(dir, "a.db"), 1, 200)
	b := filledStore(t, filepath.Join(dir, "b.db"), 2, 50)
	ex, err := a.ExportCategories(allCats)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := b.Matrix()
	exB, err := b.ExportCategories(allCats)
	if err != nil {
		t.Fatal(err)
	}
	bad := make([]syncsel.CategoryExport, len(ex))
	copy(bad, ex)
	bad[3].Records = append([]syncsel.ExportRecord(nil), ex[3].Records...)
	v := append([]byte(nil), bad[3].Records[0].Value...)
	v[len(v)-2] ^= 1 // payload changed, fingerprint kept
	bad[3].Records[0].Value = v
	if _, err := b.ImportCategories(bad); !errors.Is(err, syncsel.ErrBadExport) {
		t.Fatalf("tampered record: %v", err)
	}
	bad[3].Records = ex[3].Records[1:] // a record left out: the sum no longer matches
	if _, err := b.ImportCategories(bad); !errors.Is(err, syncsel.ErrBadExport) {
		t.Fatalf("short export: %v", err)
	}
	if m, _ := b.Matrix(); !m.Equal(before) {
		t.Fatal("a refused import changed the store")
	}

	st, err := b.ImportCategories(ex)
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := a.Matrix()
	mb, _ := b.Matrix()
	if !ma.Equal(mb) {
		t.Fatalf("after the import:\n%v\n%v", ma, mb)
	}
	checks, err := b.Check()
	if err != nil {
		t.Fatal(err)
	}
	for c, ck := range checks {
		if !ck.OK() {
			t.Fatalf("%s: %+v", c, ck)
		}
	}
	if st.Written == 0 {
		t.Fatalf("stats %+v: want records written", st)
	}
	if st2, err := b.ImportCategories(ex); err != nil || st2.Written != 0 || st2.Deleted != 0 {
		t.Fatalf("second import: %+v %v", st2, err)
	}
	selA, _ := a.SEL(1)
	selB, _ := b.SEL(1)
	if len(selA) != len(selB) || selA[len(selA)-1] != selB[len(selB)-1] {
		t.Fatalf("node 1 SEL: %d vs %d entries", len(selA), len(selB))
	}
	// Back to b's own smaller content: the extra log blocks are deleted.
	st, err = b.ImportCategories(exB)
	if err != nil || st.Deleted == 0 {
		t.Fatalf("import of the smaller content: %+v %v", st, err)
	}
	if m, _ := b.Matrix(); !m.Equal(before) {
		t.Fatal("b's own content did not come back")
	}
}

// TestImportCrash kills (SIGKILL) a child that imports two different
// contents in turn into one store, at random points, 10 times: after each
// kill the store opens, every fingerprint recomputes, and its matrix is
// exactly one of the two contents' — never a mix.
func TestImportCrash(t *testing.T) {
	if os.Getenv("CMCD_IMPORT_CHILD") != "" {
		importChild(t)
		return
	}
	dir := t.TempDir()
	var sums [2]syncsel.Matrix
	for i, seed := range []int64{1, 2} {
		s := filledStore(t, filepath.Join(dir, "src"+string(rune('0'+i))+".db"), seed, 600-400*i)
		ex, err := s.ExportCategories(allCats)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(ex)
		if err := os.WriteFile(filepath.Join(dir, "ex"+string(rune('0'+i))+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		sums[i], _ = s.Matrix()
	}
	target := filepath.Join(dir, "target.db")
	filledStore(t, target, 3, 10).Close()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for kill := 0; kill < 10; kill++ {
		cmd := testexec.Command(os.Args[0], "-test.run=^TestImportCrash$")
		cmd.Env = append(os.Environ(), "CMCD_IMPORT_CHILD="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for n := 0; n < 2 && sc.Scan(); { // at least one whole import first
			if strings.HasPrefix(sc.Text(), "imported") {
				n++
			}
		}
		time.Sleep(time.Duration(rng.Intn(40)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		s, err := syncsel.OpenStore(target, flash.Primary, syncsel.StoreOptions{})
		if err != nil {
			t.Fatalf("kill %d: %v", kill, err)
		}
		checks, err := s.Check()
		m, _ := s.Matrix()
		s.Close()
		if err != nil {
			t.Fatalf("kill %d: %v", kill, err)
		}
		for c, ck := range checks {
			if !ck.OK() {
				t.Fatalf("kill %d: %s: %+v", kill, c, ck)
			}
		}
		if !m.Equal(sums[0], allCats...) && !m.Equal(sums[1], allCats...) {
			t.Fatalf("kill %d: the store is neither content:\n%v", kill, m)
		}
	}
}

func importChild(t *testing.T) {
	dir := os.Getenv("CMCD_IMPORT_CHILD")
	var exs [2][]syncsel.CategoryExport
	for i := range exs {
		b, err := os.ReadFile(filepath.Join(dir, "ex"+string(rune('0'+i))+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &exs[i]); err != nil {
			t.Fatal(err)
		}
	}
	s, err := syncsel.OpenStore(filepath.Join(dir, "target.db"), flash.Primary, syncsel.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := s.ImportCategories(exs[i%2]); err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("imported\n")
	}
}
