package durable

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteFileReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	for _, s := range []string{"one", "two, longer", "3"} {
		if err := WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != s {
			t.Fatalf("read %q, %v; want %q", b, err, s)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

func TestWriteFuncFailureKeepsOld(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFunc(p, 0o644, func(f *os.File) error {
		f.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("content %q after a failed write", b)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

// TestKillWhileWriting: a child process rewrites a file in a loop with
// contents of different sizes; SIGKILL at random instants must leave one
// of the complete contents every time (never a mix, never empty).
func TestKillWhileWriting(t *testing.T) {
	if p := os.Getenv("DURABLE_CHILD"); p != "" {
		for i := 0; ; i++ {
			if err := WriteFile(p, content(i%3), 0o600); err != nil {
				os.Exit(3)
			}
		}
	}
	p := filepath.Join(t.TempDir(), "state")
	if err := WriteFile(p, content(0), 0o600); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	kills := 30
	for i := 0; i < kills; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillWhileWriting$")
		cmd.Env = append(os.Environ(), "DURABLE_CHILD="+p)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(5+rng.Intn(40)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("kill %d: %v", i+1, err)
		}
		whole := false
		for v := 0; v < 3; v++ {
			whole = whole || bytes.Equal(b, content(v))
		}
		if !whole {
			t.Fatalf("kill %d: the file holds %d bytes that are none of the written contents", i+1, len(b))
		}
	}
}

// content is version v of the file: sizes differ, so a mix shows.
func content(v int) []byte { return bytes.Repeat([]byte{byte('a' + v)}, 1000+v*5000) }
