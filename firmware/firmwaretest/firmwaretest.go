// Package firmwaretest makes signing keys and signed, unsigned or
// wrongly signed firmware images for tests of the layers above package
// firmware (Redfish, the page, the daemon). It is test support only.
package firmwaretest

import (
	"crypto/ed25519"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cmcd/firmware"
)

// Kit is a key pair and a directory of images.
type Kit struct {
	t      testing.TB
	Dir    string
	Priv   ed25519.PrivateKey
	Pub    ed25519.PublicKey
	PubPEM []byte // the trusted key, as `cmcd run --trusted-key` reads it
}

// New generates a key pair; images go to a temporary directory.
func New(t testing.TB) *Kit {
	t.Helper()
	privPEM, pubPEM, err := firmware.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := firmware.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := firmware.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &Kit{t: t, Dir: t.TempDir(), Priv: priv, Pub: pub, PubPEM: pubPEM}
}

// Ring is a key ring trusting the kit's key.
func (k *Kit) Ring() *firmware.KeyRing { return firmware.NewKeyRing(k.Pub) }

// PubFile writes the public key to a PEM file and returns its path.
func (k *Kit) PubFile() string {
	k.t.Helper()
	p := filepath.Join(k.Dir, "trusted.pub.pem")
	if err := os.WriteFile(p, k.PubPEM, 0o600); err != nil {
		k.t.Fatal(err)
	}
	return p
}

// Unsigned builds an unsigned image of size pseudo-random payload bytes.
func (k *Kit) Unsigned(version, board string, size int) string {
	k.t.Helper()
	payload := filepath.Join(k.Dir, version+"-"+board+".payload")
	b := make([]byte, size)
	rand.New(rand.NewSource(int64(len(version)*7919 + size))).Read(b)
	if err := os.WriteFile(payload, b, 0o600); err != nil {
		k.t.Fatal(err)
	}
	out := filepath.Join(k.Dir, version+"-"+board+".unsigned")
	f, err := os.Create(out)
	if err != nil {
		k.t.Fatal(err)
	}
	defer f.Close()
	if _, err := firmware.Build(f, payload, firmware.Manifest{Product: firmware.Product, Board: board, Version: version,
		BuildTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Description: "test image"}); err != nil {
		k.t.Fatal(err)
	}
	return out
}

// Signed builds an image signed by priv (the kit's key when nil).
func (k *Kit) Signed(version, board string, size int, priv ed25519.PrivateKey) string {
	k.t.Helper()
	if priv == nil {
		priv = k.Priv
	}
	in := k.Unsigned(version, board, size)
	out := filepath.Join(k.Dir, version+"-"+board+".img")
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
	if _, err := firmware.Sign(dst, src, priv); err != nil {
		k.t.Fatal(err)
	}
	return out
}

// OtherKey is a key pair the board does not trust.
func OtherKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}
