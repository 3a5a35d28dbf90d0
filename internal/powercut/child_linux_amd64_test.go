package powercut

// The children the tests trace: the test binary re-executed with
// childEnv=<mode>. They write into the directory named by dirEnv, print
// "ready" (or progress lines) on stdout and then block until killed.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

const (
	childEnv = "POWERCUT_TEST_CHILD"
	dirEnv   = "POWERCUT_TEST_DIR"
)

var children = map[string]func(dir string) error{
	"ab":         childAB,
	"pages":      childPages,
	"dirmodel":   func(dir string) error { return childDirModel(dir, false) },
	"dirsync":    func(dir string) error { return childDirModel(dir, true) },
	"threads":    childThreads,
	"parent":     childParent,
	"bolt":       childBolt,
	"boltbench":  childBoltBench,
	"statbench":  childStatBench,
	"syncsbench": childSyncsBench,
	"mmap":       childMmap,
	"syncall":    childSyncAll,
	"signals":    childSignals,
	"sfr":        childSyncFileRange,
}

// runChild runs the child named by mode and exits.
func runChild(mode string) {
	f := children[mode]
	if f == nil {
		fmt.Fprintf(os.Stderr, "powercut test child: unknown mode %q\n", mode)
		os.Exit(2)
	}
	if err := f(os.Getenv(dirEnv)); err != nil {
		fmt.Fprintf(os.Stderr, "powercut test child %s: %v\n", mode, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func ready() {
	fmt.Println("ready")
	time.Sleep(time.Hour)
}

func fill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// The A/B file: A = two pages of 'A' (synced), then B = page 1 and a new
// page 2 of 'B' (not synced).
var (
	contentA = fill('A', 2*PageSize)
	contentB = append(append(fill('A', PageSize), fill('B', PageSize)...), fill('B', PageSize)...)
)

func childAB(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(contentA); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if _, err := f.WriteAt(contentB[PageSize:], PageSize); err != nil {
		return err
	}
	ready()
	return nil
}

const manyPages = 64

func childPages(dir string) error {
	f, err := os.Create(filepath.Join(dir, "pages"))
	if err != nil {
		return err
	}
	if _, err := f.Write(fill('a', manyPages*PageSize)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if _, err := f.WriteAt(fill('b', manyPages*PageSize), 0); err != nil {
		return err
	}
	ready()
	return nil
}

// childDirModel expects "old" and "gone" to exist at start.
func childDirModel(dir string, syncTheDir bool) error {
	p := func(name string) string { return filepath.Join(dir, name) }
	writeSynced := func(name, content string) error {
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.WriteString(content); err != nil {
			return err
		}
		return f.Sync()
	}
	// A new file whose data is synced but whose directory entry is not.
	if err := writeSynced(p("new"), "N"); err != nil {
		return err
	}
	// Atomic replace without the directory sync.
	if err := writeSynced(p("tmp"), "replaced"); err != nil {
		return err
	}
	if err := os.Rename(p("tmp"), p("old")); err != nil {
		return err
	}
	// A file never synced at all.
	if err := os.WriteFile(p("unsynced"), []byte("U"), 0o644); err != nil {
		return err
	}
	// A removal.
	if err := os.Remove(p("gone")); err != nil {
		return err
	}
	// A new directory, synced itself, but not in its parent.
	if err := os.Mkdir(p("sub"), 0o755); err != nil {
		return err
	}
	if err := writeSynced(p("sub/f"), "F"); err != nil {
		return err
	}
	if err := syncDir(p("sub")); err != nil {
		return err
	}
	if syncTheDir {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	ready()
	return nil
}

const (
	threadsN    = 6
	threadsRecs = 20
)

func threadRecord(g, k int) []byte {
	rec := fill(byte('a'+g), PageSize)
	copy(rec, fmt.Sprintf("g%d-k%d;", g, k))
	return rec
}

func childThreads(dir string) error {
	files := make([]*os.File, threadsN)
	for g := range files {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("t%d", g)))
		if err != nil {
			return err
		}
		files[g] = f
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, threadsN)
	start := make(chan struct{})
	for g, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Hold a thread of its own, so the syncs come from
			// different threads.
			runtime.LockOSThread()
			<-start
			for k := range threadsRecs {
				if _, err := f.WriteAt(threadRecord(g, k), int64(k)*PageSize); err != nil {
					errs[g] = err
					return
				}
				if err := f.Sync(); err != nil {
					errs[g] = err
					return
				}
			}
			_, errs[g] = f.WriteAt(fill('X', PageSize), threadsRecs*PageSize)
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ready()
	return nil
}

// childParent runs a child process (mode "ab") and waits; the grandchild's
// "ready" reaches the test through the shared stdout.
func childParent(dir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"=ab")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Wait()
}

// The bolt child: bucket "b" holds "counter" (the last committed counter n,
// 8 bytes) and slots "s00".."s15": slot n%16 holds boltValue(n), so the whole
// database state is a function of the counter.
const boltSlots = 16

func boltValue(n uint64) []byte {
	size := 100 + int(n*2654435761%(3*PageSize))
	v := make([]byte, size)
	for i := range v {
		v[i] = byte(n*31 + uint64(i)*7)
	}
	binary.BigEndian.PutUint64(v, n)
	return v
}

func boltSlot(n uint64) []byte { return []byte(fmt.Sprintf("s%02d", n%boltSlots)) }

func boltCommit(db *bolt.DB, n uint64) error {
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], n)
		if err := b.Put([]byte("counter"), c[:]); err != nil {
			return err
		}
		return b.Put(boltSlot(n), boltValue(n))
	})
}

// boltCounter reads the counter (0 if none).
func boltCounter(tx *bolt.Tx) uint64 {
	b := tx.Bucket([]byte("b"))
	if b == nil {
		return 0
	}
	v := b.Get([]byte("counter"))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func childBolt(dir string) error {
	db, err := bolt.Open(filepath.Join(dir, "db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	// bbolt does not sync the directory after creating its file; a
	// daemon must, or a power cut can take the whole database away.
	if err := syncDir(dir); err != nil {
		return err
	}
	var n uint64
	if err := db.View(func(tx *bolt.Tx) error { n = boltCounter(tx); return nil }); err != nil {
		return err
	}
	fmt.Println("start", n)
	for {
		n++
		if err := boltCommit(db, n); err != nil {
			return err
		}
		fmt.Println(n)
	}
}

// childBoltBench commits $POWERCUT_TEST_N transactions and exits.
func childBoltBench(dir string) error {
	n, _ := strconv.Atoi(os.Getenv("POWERCUT_TEST_N"))
	db, err := bolt.Open(filepath.Join(dir, "db"), 0o600, nil)
	if err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		if err := boltCommit(db, uint64(i)); err != nil {
			return err
		}
	}
	return db.Close()
}

// childStatBench makes $POWERCUT_TEST_N stat calls (a syscall-heavy load
// with no syncs) and exits.
func childStatBench(dir string) error {
	n, _ := strconv.Atoi(os.Getenv("POWERCUT_TEST_N"))
	for range n {
		if _, err := os.Stat(dir); err != nil {
			return err
		}
	}
	return nil
}

// childSyncsBench writes and fdatasyncs one page $POWERCUT_TEST_N times.
func childSyncsBench(dir string) error {
	n, _ := strconv.Atoi(os.Getenv("POWERCUT_TEST_N"))
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		return err
	}
	page := fill('p', PageSize)
	for i := range n {
		if _, err := f.WriteAt(page, int64(i%16)*PageSize); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return f.Close()
}

// childMmap writes through a shared mapping: page 0 'M' then msync(MS_SYNC),
// then page 1 'N' without msync.
func childMmap(dir string) error {
	f, err := os.Create(filepath.Join(dir, "mapped"))
	if err != nil {
		return err
	}
	if err := f.Truncate(2 * PageSize); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, 2*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	copy(m, fill('M', PageSize))
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		return err
	}
	copy(m[PageSize:], fill('N', PageSize))
	ready()
	return nil
}

// childSyncAll writes a new file "s1" and calls sync(2), then writes "s2"
// and more of "s1" without any sync.
func childSyncAll(dir string) error {
	f, err := os.Create(filepath.Join(dir, "s1"))
	if err != nil {
		return err
	}
	if _, err := f.Write(fill('1', PageSize)); err != nil {
		return err
	}
	syscall.Sync()
	if _, err := f.Write(fill('2', PageSize)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "s2"), []byte("x"), 0o644); err != nil {
		return err
	}
	ready()
	return nil
}

// childSignals prints "usr1" for every SIGUSR1 it gets.
func childSignals(dir string) error {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	fmt.Println("ready")
	for range ch {
		fmt.Println("usr1")
	}
	return nil
}

// childSyncFileRange overwrites the existing files "f1" and "f2" with a page
// of 'A'; f1 only gets sync_file_range(WRITE), which starts writeback, f2
// one that waits for it.
func childSyncFileRange(dir string) error {
	for _, tc := range []struct {
		name  string
		flags int
	}{
		{"f1", unix.SYNC_FILE_RANGE_WRITE},
		{"f2", unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER},
	} {
		f, err := os.OpenFile(filepath.Join(dir, tc.name), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(fill('A', PageSize), 0); err != nil {
			return err
		}
		if err := unix.SyncFileRange(int(f.Fd()), 0, 0, tc.flags); err != nil {
			return err
		}
	}
	ready()
	return nil
}
