package powercut

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestBoltSurvivesPowerCuts runs a child that commits bbolt transactions in a
// loop, each setting a counter, and cuts its power at random moments, again
// and again on the same database. After every cut the database must open,
// pass tx.Check, and hold exactly the state of one commit: the last one the
// child reported (it prints the counter after Commit returns) or the next
// one (committed, not yet reported) — never an older one.
func TestBoltSurvivesPowerCuts(t *testing.T) {
	const iterations = 50
	seed := time.Now().UnixNano()
	if s, err := strconv.ParseInt(os.Getenv("POWERCUT_BOLT_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("test seed %d (replay with POWERCUT_BOLT_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))

	var dir, path string
	var prev uint64 // the counter the database held before this run
	var commits, cutsWithCommits, tornPages, lostEntries int
	for i := range iterations {
		if i%10 == 0 {
			// A fresh database now and then: its creation must be
			// durable too (bbolt does not sync the directory).
			dir = t.TempDir()
			path = filepath.Join(dir, "db")
			prev = 0
		}
		keep := []float64{0, 0.5, 1, rng.Float64()}[rng.IntN(4)]
		c := startChild(t, "bolt", dir, WithKeepProbability(keep), WithSeed(int64(rng.Uint64()>>1)))
		// A random moment: after some number of syncs (bbolt makes two
		// per commit), plus a little.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := c.tr.WaitSyncs(ctx, uint64(rng.IntN(24))); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		cancel()
		time.Sleep(time.Duration(rng.IntN(3_000)) * time.Microsecond)
		rep, err := c.tr.Cut()
		if err != nil {
			t.Fatalf("iteration %d: Cut: %v", i, err)
		}
		started, last, n := false, uint64(0), 0
		for l := range c.lines {
			if v, ok := strings.CutPrefix(l, "start "); ok {
				started = true
				last = mustUint(t, v)
				if last != prev {
					t.Fatalf("iteration %d: child started from counter %d, the database held %d", i, last, prev)
				}
				continue
			}
			last = mustUint(t, l)
			n++
		}
		commits += n
		if n > 0 {
			cutsWithCommits++
		}
		for _, f := range rep.Files {
			tornPages += f.Pages - f.PagesKept
			if f.Fate == FateNewLost || f.Fate == FateReplaceLost || f.Fate == FateRemoveLost {
				lostEntries++
			}
		}
		if !started {
			last = prev // killed before it could commit anything
		}

		got, err := checkBolt(path)
		if errors.Is(err, os.ErrNotExist) && !started && prev == 0 {
			continue // the very first database was still being created
		}
		if err != nil || got < last || got > last+1 {
			t.Fatalf("iteration %d: after the cut the database holds counter %d (err %v); "+
				"the child had reported %d committed, so want %d or %d\n%s",
				i, got, err, last, last, last+1, rep)
		}
		prev = got
	}
	t.Logf("%d cuts, %d with commits; %d commits reported; final counter %d; %d unsynced pages lost, %d directory changes lost",
		iterations, cutsWithCommits, commits, prev, tornPages, lostEntries)
	if cutsWithCommits < iterations/4 {
		t.Errorf("only %d of %d cuts hit a child that had committed: the test cuts too early to mean much", cutsWithCommits, iterations)
	}
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("child printed %q, want a counter", s)
	}
	return v
}

// checkBolt opens the database read-only, checks it and verifies that it
// holds exactly the state of commit n, which it returns.
func checkBolt(path string) (n uint64, err error) {
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		n = boltCounter(tx)
		b := tx.Bucket([]byte("b"))
		for s := uint64(0); s < boltSlots; s++ {
			// The last commit that wrote slot s.
			var want []byte
			if n >= 1 && n >= s {
				last := n - (n-s)%boltSlots
				if last >= 1 {
					want = boltValue(last)
				}
			}
			var got []byte
			if b != nil {
				got = b.Get(boltSlot(s))
			}
			if !bytes.Equal(got, want) {
				return errors.New("slot " + string(boltSlot(s)) + " does not hold what commit " +
					strconv.FormatUint(n, 10) + " left: half a commit is visible")
			}
		}
		return nil
	})
	return n, err
}
