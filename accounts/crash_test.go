package accounts

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"cmcd/internal/testexec"
)

// crashEnv names the data directory of the crash-test child process.
const crashEnv = "CMCD_ACCOUNTS_CRASH_DIR"

// state is what a store holds, as the crash test compares it.
type state map[string]struct {
	id      uint8
	role    Role
	enabled bool
	pw      string
}

func (st state) digest() string {
	var b strings.Builder
	for _, u := range slices.Sorted(func(yield func(string) bool) {
		for u := range st {
			if !yield(u) {
				return
			}
		}
	}) {
		a := st[u]
		fmt.Fprintf(&b, "%s:%d:%s:%v:%s;", u, a.id, a.role, a.enabled, a.pw)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

// stored reads the state of s, checking every account's hash against its
// decrypted password.
func stored(s *Store) (state, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := state{}
	for _, r := range s.data.Accounts {
		pw, err := s.unseal(r.Username, r.Secret)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", r.Username, err)
		}
		if bcrypt.CompareHashAndPassword([]byte(r.Hash), pw) != nil {
			return nil, fmt.Errorf("%s: hash and sealed password disagree", r.Username)
		}
		st[r.Username] = struct {
			id      uint8
			role    Role
			enabled bool
			pw      string
		}{r.UserID, r.Role, r.Enabled, string(pw)}
	}
	return st, nil
}

// TestCrashChild is the child process of TestCrash: it changes accounts
// forever, printing "next <digest>" before each change and "done" after it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of TestCrash")
	}
	die := func(err error) { fmt.Println("error", err); os.Exit(3) }
	s, err := Open(dir, WithBcryptCost(bcrypt.MinCost))
	if err != nil {
		die(err)
	}
	st, err := stored(s)
	if err != nil {
		die(err)
	}
	fmt.Println("start", st.digest())
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	password := func() string {
		b := make([]byte, 8+rng.IntN(13))
		for i := range b {
			b[i] = unambiguous[rng.IntN(len(unambiguous))]
		}
		return string(b)
	}
	for {
		next := state{}
		var others []string
		for u, a := range st {
			next[u] = a
			if u != InitialAdmin {
				others = append(others, u)
			}
		}
		slices.Sort(others)
		var op func() error
		if len(st) == 0 || (len(st) < 14 && rng.IntN(3) == 0) || len(others) == 0 {
			u := InitialAdmin
			if len(st) > 0 {
				u = fmt.Sprintf("u%02d", rng.IntN(40))
			}
			if _, ok := st[u]; ok {
				continue
			}
			id := uint8(MinUserID)
			for slices.ContainsFunc(others, func(o string) bool { return st[o].id == id }) || st[InitialAdmin].id == id {
				id++
			}
			a, pw := next[u], password()
			a.id, a.role, a.enabled, a.pw = id, Roles()[rng.IntN(3)], true, pw
			if u == InitialAdmin {
				a.role = RoleAdministrator
			}
			next[u] = a
			op = func() error { _, err := s.Create(u, pw, a.role); return err }
		} else {
			u := others[rng.IntN(len(others))]
			a := next[u]
			switch rng.IntN(4) {
			case 0:
				delete(next, u)
				op = func() error { return s.Delete(u) }
			case 1:
				a.pw = password()
				op = func() error { _, err := s.SetPassword(u, a.pw); return err }
			case 2:
				a.role = Roles()[rng.IntN(3)]
				op = func() error { _, err := s.SetRole(u, a.role); return err }
			case 3:
				a.enabled = !a.enabled
				op = func() error { _, err := s.SetEnabled(u, a.enabled); return err }
			}
			if _, ok := next[u]; ok {
				next[u] = a
			}
		}
		fmt.Println("next", next.digest())
		if err := op(); err != nil {
			die(err)
		}
		fmt.Println("done")
		st = next
	}
}

// TestCrash SIGKILLs a child that keeps changing accounts at random
// instants; after every kill the store must open and hold exactly the last
// state the child saw committed, or the one it was committing.
func TestCrash(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	committed, pending := state{}.digest(), ""
	ops, started := 0, 0
	for i := range 30 {
		cmd := testexec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines, opened := make(chan []string), make(chan struct{})
		go func() {
			var l []string
			for sc := bufio.NewScanner(out); sc.Scan(); {
				if l = append(l, sc.Text()); strings.HasPrefix(sc.Text(), "start ") {
					close(opened)
				}
			}
			lines <- l
		}()
		// Every fifth run dies early, maybe inside Open; the others at a
		// random instant while they change accounts.
		if i%5 != 0 {
			select {
			case <-opened:
			case <-time.After(30 * time.Second):
				t.Fatalf("run %d: child did not open the store: %s", i, stderr.String())
			}
		}
		time.Sleep(time.Duration(rand.IntN(40_000)) * time.Microsecond)
		cmd.Process.Kill()
		got := <-lines
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("run %d: child ended by itself (%v): %s\n%s", i, err, strings.Join(got, "\n"), stderr.String())
		}
		for _, l := range got {
			word, arg, _ := strings.Cut(l, " ")
			switch word {
			case "start":
				if arg != committed && arg != pending {
					t.Fatalf("run %d: child opened state %s, want %s or %s", i, arg, committed, pending)
				}
				committed, pending = arg, ""
				started++
			case "next":
				pending = arg
			case "done":
				committed, pending = pending, ""
				ops++
			}
		}

		s, err := Open(dir, WithBcryptCost(bcrypt.MinCost))
		if err != nil {
			t.Fatalf("run %d: open after kill: %v", i, err)
		}
		st, err := stored(s)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if d := st.digest(); d != committed && d != pending {
			t.Fatalf("run %d: store holds state %s, want the committed %s or the pending %s", i, d, committed, pending)
		} else {
			committed, pending = d, ""
		}
		for u, a := range st {
			if hits := filesContaining(t, dir, a.pw); len(hits) > 0 {
				t.Fatalf("run %d: clear password of %s in %v", i, u, hits)
			}
		}
		if tmp, _ := filepath.Glob(filepath.Join(dir, "*"+tmpSuffix)); len(tmp) > 0 {
			t.Fatalf("run %d: Open left %v", i, tmp)
		}
	}
	t.Logf("30 kills: %d child runs got going, %d changes committed", started, ops)
	if started < 24 || ops < 15 {
		t.Errorf("the kills came too early to test much (%d runs started, %d changes)", started, ops)
	}
}
