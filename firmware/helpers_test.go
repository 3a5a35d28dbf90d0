package firmware

import (
	"bytes"
	"crypto/ed25519"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cmcd/flash"
)

// testDevice is a small simulated slot so tests stay fast.
var testDevice = flash.DeviceInfo{Size: 8 << 20, EraseSize: 64 << 10, WriteSize: 1}

type kit struct {
	t    *testing.T
	dir  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	ring *KeyRing
}

func newKit(t *testing.T) *kit {
	t.Helper()
	privPEM, pubPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &kit{t: t, dir: t.TempDir(), priv: priv, pub: pub, ring: NewKeyRing(pub)}
}

// unsigned builds an unsigned image of a pseudo-random payload.
func (k *kit) unsigned(version, board string, size int) string {
	k.t.Helper()
	payload := filepath.Join(k.dir, version+"-"+board+".payload")
	b := make([]byte, size)
	rand.New(rand.NewSource(int64(len(version)*7919 + size))).Read(b)
	if err := os.WriteFile(payload, b, 0o600); err != nil {
		k.t.Fatal(err)
	}
	out := filepath.Join(k.dir, version+"-"+board+".unsigned")
	f, err := os.Create(out)
	if err != nil {
		k.t.Fatal(err)
	}
	defer f.Close()
	if _, err := Build(f, payload, Manifest{Product: Product, Board: board, Version: version,
		BuildTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Description: "test image"}); err != nil {
		k.t.Fatal(err)
	}
	return out
}

// signed builds an image signed by priv (k.priv when nil).
func (k *kit) signed(version, board string, size int, priv ed25519.PrivateKey) string {
	k.t.Helper()
	if priv == nil {
		priv = k.priv
	}
	in := k.unsigned(version, board, size)
	out := filepath.Join(k.dir, version+"-"+board+".img")
	src, err := os.Open(in)
	if err != nil {
		k.t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		k.t.Fatal(err)
	}
	defer dst.Close()
	if _, err := Sign(dst, src, priv); err != nil {
		k.t.Fatal(err)
	}
	return out
}

func (k *kit) open(data string) *Service {
	k.t.Helper()
	s, err := Open(Options{Areas: flash.Areas{Root: data}, Keys: k.ring, Board: "sim", SimDevice: testDevice, BootLimit: 2, Builtin: "1.0.0"})
	if err != nil {
		k.t.Fatal(err)
	}
	return s
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b
}

// slotFiles is everything that makes up the two slots on the simulated
// board: both image files and the boot state.
func slotFiles(data string) []string {
	a := flash.Areas{Root: data}
	return []string{a.ImagePath(flash.Primary), a.ImagePath(flash.Backup), a.BootStatePath()}
}

type snapshot map[string][]byte

func takeSnapshot(t *testing.T, data string) snapshot {
	s := snapshot{}
	for _, f := range slotFiles(data) {
		s[f] = readFile(t, f)
	}
	return s
}

func (s snapshot) same(t *testing.T, data, what string) {
	t.Helper()
	for _, f := range slotFiles(data) {
		if got := readFile(t, f); !bytes.Equal(got, s[f]) {
			t.Errorf("%s: %s changed (%d bytes before, %d after)", what, filepath.Base(f), len(s[f]), len(got))
		}
	}
}
