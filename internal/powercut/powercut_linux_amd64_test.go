package powercut

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		runChild(mode)
	}
	os.Exit(m.Run())
}

// child is a traced test child and the lines it printed.
type child struct {
	tr    *Tracer
	lines chan string
}

// startChild starts the test binary as the child mode, tracing it with dir
// watched.
func startChild(t testing.TB, mode, dir string, opts ...Option) *child {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+mode, dirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	// A plain pipe rather than StdoutPipe: nothing the child printed
	// before it died is lost when the tracer reaps it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	tr, err := Start(cmd, []string{dir}, opts...)
	w.Close()
	if err != nil {
		r.Close()
		t.Fatalf("Start: %v", err)
	}
	c := &child{tr: tr, lines: make(chan string, 1<<16)}
	go func() {
		defer close(c.lines)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = tr.Kill() // fails harmlessly if the test already ended it
		checkGone(t, tr)
	})
	return c
}

// expect waits for the child to print want.
func (c *child) expect(t testing.TB, want string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("child ended (%v) before printing %q", c.tr.Wait(), want)
			}
			if l == want {
				return
			}
		case <-timeout:
			t.Fatalf("child did not print %q within 20s", want)
		}
	}
}

// checkGone fails if any task the tracer followed still exists in /proc or
// anything is still traced by this process.
func checkGone(t testing.TB, tr *Tracer) {
	t.Helper()
	select {
	case <-tr.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("tracer still running 10s after the test ended it")
	}
	for _, tid := range tr.seenTasks() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
		if err != nil {
			continue // gone
		}
		// Left behind: still traced by us (the tracer never detaches, so a
		// survivor would be), or still a child of ours (alive, or a zombie
		// we should have reaped). A killed grandchild whose parent died
		// first is a zombie of init until init reaps it: dead enough. A
		// recycled id is neither traced by us nor ours.
		traced := statusField(b, "TracerPid") == os.Getpid()
		ours := statusField(b, "PPid") == os.Getpid()
		if traced || ours {
			t.Errorf("traced task %d is left behind:\n%s", tid, b)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && statusField(b, "TracerPid") == os.Getpid() {
			t.Errorf("%s is still traced by the test process", p)
		}
	}
}

// statusField returns a numeric field of /proc/<pid>/status.
func statusField(status []byte, name string) int {
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

func cut(t testing.TB, c *child) *Report {
	t.Helper()
	rep, err := c.tr.Cut()
	if err != nil {
		t.Fatalf("Cut: %v", err)
	}
	t.Logf("%s", rep)
	return rep
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustNotExist(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists after the cut (err %v), want it gone", filepath.Base(path), err)
	}
}

func mustHold(t testing.TB, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: %v", filepath.Base(path), err)
		return
	}
	if string(b) != want {
		t.Errorf("%s holds %q, want %q", filepath.Base(path), b, want)
	}
}

func forModes(t *testing.T, f func(t *testing.T, opts ...Option)) {
	t.Run("seccomp", func(t *testing.T) { f(t, WithSeccomp(true)) })
	t.Run("ptrace-syscall", func(t *testing.T) { f(t, WithSeccomp(false)) })
}

func TestCutKeepsSyncedLosesUnsynced(t *testing.T) {
	forModes(t, func(t *testing.T, opts ...Option) {
		for _, tc := range []struct {
			name string
			keep float64
			want []byte
		}{
			{"p=0", 0, contentA},
			{"p=1", 1, contentB},
		} {
			t.Run(tc.name, func(t *testing.T) {
				dir := t.TempDir()
				c := startChild(t, "ab", dir, append(opts, WithKeepProbability(tc.keep))...)
				c.expect(t, "ready")
				if got := readFile(t, filepath.Join(dir, "data")); !bytes.Equal(got, contentB) {
					t.Fatalf("before the cut the file holds %d bytes, want B (%d)", len(got), len(contentB))
				}
				st := c.tr.Stats()
				if st.Syncs < 2 || st.Snapshots < 1 || st.DirSyncs < 1 || st.SnapshotBytes < uint64(len(contentA)) {
					t.Errorf("stats %+v: want >= 2 syncs, a snapshot of %d bytes and a dir sync", st, len(contentA))
				}
				rep := cut(t, c)
				got := readFile(t, filepath.Join(dir, "data"))
				if !bytes.Equal(got, tc.want) {
					t.Errorf("after the cut the file holds %d bytes %q..., want %d bytes", len(got), got[len(got)-8:], len(tc.want))
				}
				if fi, _ := os.Stat(filepath.Join(dir, "data")); fi.Mode().Perm() != 0o640 {
					t.Errorf("mode %v after the cut, want 0640", fi.Mode().Perm())
				}
				if rep.Seed != c.tr.Seed() {
					t.Errorf("report seed %d, tracer seed %d", rep.Seed, c.tr.Seed())
				}
			})
		}
	})
}

func TestKillKeepsPageCache(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "ab", dir)
	c.expect(t, "ready")
	if err := c.tr.Kill(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "data")); !bytes.Equal(got, contentB) {
		t.Errorf("after Kill the file holds %d bytes, want B", len(got))
	}
	if _, err := c.tr.Cut(); err == nil {
		t.Errorf("Cut after Kill succeeded, want an error")
	}
	var ee *ExitError
	if err := c.tr.Wait(); !errors.As(err, &ee) || ee.Signal == nil {
		t.Errorf("Wait after Kill = %v, want death by signal", err)
	}
}

func TestStop(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "ab", dir, WithStopTimeout(5*time.Second))
	c.expect(t, "ready")
	if err := c.tr.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := readFile(t, filepath.Join(dir, "data")); !bytes.Equal(got, contentB) {
		t.Errorf("after Stop the file holds %d bytes, want B", len(got))
	}
}

func TestPagesChosenIndependently(t *testing.T) {
	run := func(seed int64) (pattern string, rep *Report) {
		dir := t.TempDir()
		c := startChild(t, "pages", dir, WithSeed(seed))
		c.expect(t, "ready")
		rep, err := c.tr.Cut()
		if err != nil {
			t.Fatal(err)
		}
		got := readFile(t, filepath.Join(dir, "pages"))
		if len(got) != manyPages*PageSize {
			t.Fatalf("size %d after the cut, want %d", len(got), manyPages*PageSize)
		}
		var b strings.Builder
		for i := range manyPages {
			page := got[i*PageSize : (i+1)*PageSize]
			switch {
			case bytes.Equal(page, fill('a', PageSize)):
				b.WriteByte('a')
			case bytes.Equal(page, fill('b', PageSize)):
				b.WriteByte('b')
			default:
				t.Fatalf("page %d is torn inside: %q...", i, page[:16])
			}
		}
		return b.String(), rep
	}
	p1, rep := run(42)
	t.Logf("seed 42: %s", p1)
	kept := strings.Count(p1, "b")
	if kept == 0 || kept == manyPages {
		t.Errorf("with p=0.5, %d of %d pages kept: want a mix", kept, manyPages)
	}
	var fo *FileOutcome
	for i := range rep.Files {
		if strings.HasSuffix(rep.Files[i].Path, "/pages") {
			fo = &rep.Files[i]
		}
	}
	if fo == nil || fo.Pages != manyPages || fo.PagesKept != kept || !fo.Synced {
		t.Errorf("report %+v, want %d pages differing, %d kept, synced", fo, manyPages, kept)
	}
	if p2, _ := run(42); p2 != p1 {
		t.Errorf("same seed, different pages:\n%s\n%s", p1, p2)
	}
	if p3, _ := run(43); p3 == p1 {
		t.Errorf("seeds 42 and 43 chose the same %d pages", manyPages)
	}
}

// dirModelSetup creates the files the dirmodel child expects at start.
func dirModelSetup(t *testing.T) string {
	dir := t.TempDir()
	for name, content := range map[string]string{"old": "old0", "gone": "gone0"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDirModel(t *testing.T) {
	type want struct{ newF, old, unsynced, gone, subF string } // "" = absent
	for _, tc := range []struct {
		name string
		mode string
		opts []Option
		want want
	}{
		// Nothing the directory sync did not cover survives.
		{"p=0", "dirmodel", []Option{WithKeepProbability(0)},
			want{newF: "", old: "old0", unsynced: "", gone: "gone0", subF: ""}},
		// Every entry change survives; a never-synced file is empty.
		{"p=1", "dirmodel", []Option{WithKeepProbability(1)},
			want{newF: "N", old: "replaced", unsynced: "<empty>", gone: "", subF: "F"}},
		// Entries are durable at once.
		{"off", "dirmodel", []Option{WithKeepProbability(0), WithDirModel(false)},
			want{newF: "N", old: "replaced", unsynced: "<empty>", gone: "", subF: "F"}},
		// The directory sync makes every entry durable.
		{"dir-synced", "dirsync", []Option{WithKeepProbability(0)},
			want{newF: "N", old: "replaced", unsynced: "<empty>", gone: "", subF: "F"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := dirModelSetup(t)
			c := startChild(t, tc.mode, dir, tc.opts...)
			c.expect(t, "ready")
			cut(t, c)
			for name, w := range map[string]string{
				"new": tc.want.newF, "old": tc.want.old, "unsynced": tc.want.unsynced,
				"gone": tc.want.gone, "sub/f": tc.want.subF,
			} {
				p := filepath.Join(dir, name)
				switch w {
				case "":
					mustNotExist(t, p)
				case "<empty>":
					mustHold(t, p, "")
				default:
					mustHold(t, p, w)
				}
			}
			mustNotExist(t, filepath.Join(dir, "tmp"))
		})
	}
}

func TestMultiThreadedChild(t *testing.T) {
	forModes(t, func(t *testing.T, opts ...Option) {
		dir := t.TempDir()
		c := startChild(t, "threads", dir, append(opts, WithKeepProbability(0))...)
		c.expect(t, "ready")
		st := c.tr.Stats()
		if st.Syncs < threadsN*threadsRecs+1 {
			t.Errorf("%d syncs seen, want at least %d", st.Syncs, threadsN*threadsRecs+1)
		}
		if st.Tasks < threadsN+1 {
			t.Errorf("%d tasks followed, want at least %d (one thread per writer)", st.Tasks, threadsN+1)
		}
		t.Logf("stats: %+v", st)
		cut(t, c)
		for g := range threadsN {
			got := readFile(t, filepath.Join(dir, fmt.Sprintf("t%d", g)))
			var want []byte
			for k := range threadsRecs {
				want = append(want, threadRecord(g, k)...)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("t%d: %d bytes after the cut, want exactly the %d synced records", g, len(got), threadsRecs)
			}
		}
	})
}

func TestProcessTree(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "parent", dir, WithKeepProbability(0))
	c.expect(t, "ready")
	if st := c.tr.Stats(); st.Processes < 2 || st.Syncs < 2 {
		t.Errorf("stats %+v: want the grandchild followed and its syncs seen", st)
	}
	cut(t, c)
	if got := readFile(t, filepath.Join(dir, "data")); !bytes.Equal(got, contentA) {
		t.Errorf("grandchild's file holds %d bytes after the cut, want A", len(got))
	}
}

func TestWaitSyncs(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "threads", dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.tr.WaitSyncs(ctx, 50); err != nil {
		t.Fatal(err)
	}
	if n := c.tr.Stats().Syncs; n < 50 {
		t.Errorf("WaitSyncs returned at %d syncs", n)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	c.expect(t, "ready")
	if err := c.tr.WaitSyncs(ctx2, 1<<40); err == nil {
		t.Errorf("WaitSyncs for more syncs than will come returned nil")
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Start(exec.Command("/bin/true"), []string{filepath.Join(dir, "missing")}); err == nil {
		t.Errorf("Start with a missing directory succeeded")
	}
	if _, err := Start(exec.Command("/bin/true"), []string{dir}, WithKeepProbability(1.5)); err == nil {
		t.Errorf("Start with p=1.5 succeeded")
	}
	if _, err := Start(exec.Command("/nonexistent/program"), []string{dir}); err == nil {
		t.Errorf("Start of a missing program succeeded")
	}
	// A command that exits by itself; the tracer sees it through.
	tr, err := Start(exec.Command("/bin/sh", "-c", "exit 3"), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var ee *ExitError
	if err := tr.Wait(); !errors.As(err, &ee) || ee.Code != 3 {
		t.Errorf("Wait = %v, want exit status 3", err)
	}
	checkGone(t, tr)
}

func TestMsync(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "mmap", dir, WithKeepProbability(0))
	c.expect(t, "ready")
	cut(t, c)
	want := append(fill('M', PageSize), make([]byte, PageSize)...)
	if got := readFile(t, filepath.Join(dir, "mapped")); !bytes.Equal(got, want) {
		t.Errorf("after the cut the mapped file holds %q...%q, want the msynced page and a zero page", got[:4], got[len(got)-4:])
	}
}

func TestSyncAll(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "syncall", dir, WithKeepProbability(0))
	c.expect(t, "ready")
	cut(t, c)
	mustHold(t, filepath.Join(dir, "s1"), string(fill('1', PageSize)))
	mustNotExist(t, filepath.Join(dir, "s2"))
}

// TestSignals checks that signals reach the traced command, and that a
// stop/continue does not wedge it.
func TestSignals(t *testing.T) {
	forModes(t, func(t *testing.T, opts ...Option) {
		dir := t.TempDir()
		c := startChild(t, "signals", dir, opts...)
		c.expect(t, "ready")
		pid := c.tr.Pid()
		for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGSTOP, syscall.SIGCONT, syscall.SIGUSR1} {
			if err := syscall.Kill(pid, sig); err != nil {
				t.Fatal(err)
			}
			if sig == syscall.SIGUSR1 {
				c.expect(t, "usr1")
			}
		}
		if err := c.tr.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

// TestConcurrentTracers runs several tracers at once next to plain os/exec
// children: each tracer reaps only its own tasks.
func TestConcurrentTracers(t *testing.T) {
	const n = 3
	dirs := make([]string, n)
	cs := make([]*child, n)
	for i := range n {
		dirs[i] = t.TempDir()
		cs[i] = startChild(t, "ab", dirs[i], WithKeepProbability(0))
	}
	plainErr := make(chan error, 1)
	go func() {
		var err error
		for range 5 {
			if err = exec.Command("/bin/sh", "-c", "sleep 0.01").Run(); err != nil {
				break
			}
		}
		plainErr <- err
	}()
	for i, c := range cs {
		c.expect(t, "ready")
		cut(t, c)
		if got := readFile(t, filepath.Join(dirs[i], "data")); !bytes.Equal(got, contentA) {
			t.Errorf("tracer %d: file holds %d bytes after the cut, want A", i, len(got))
		}
	}
	if err := <-plainErr; err != nil {
		t.Errorf("a plain os/exec child next to the tracers failed: %v", err)
	}
}

func TestSyncFileRange(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"f1", "f2"} {
		if err := os.WriteFile(filepath.Join(dir, name), fill('0', PageSize), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := startChild(t, "sfr", dir, WithKeepProbability(0))
	c.expect(t, "ready")
	cut(t, c)
	mustHold(t, filepath.Join(dir, "f1"), string(fill('0', PageSize)))
	mustHold(t, filepath.Join(dir, "f2"), string(fill('A', PageSize)))
}
