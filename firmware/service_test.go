package firmware

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cmcd/flash"
)

// upgraded prepares a data dir where the backup slot runs a good image
// (1.1.0) and the primary holds a pending one (1.2.0): both slots hold
// bytes that a refused image must not touch.
func upgraded(t *testing.T, k *kit) string {
	t.Helper()
	data := t.TempDir()
	s := k.open(data)
	if _, err := s.Boot(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InstallFile(context.Background(), k.signed("1.1.0", "sim", 300_000, nil), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(flash.Backup); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = k.open(data)
	defer s.Close()
	if out, err := s.Boot(); err != nil || out.Slot != flash.Backup || !out.Switched {
		t.Fatalf("boot after activation: %+v %v", out, err)
	}
	if _, err := s.ReportHealthy(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InstallFile(context.Background(), k.signed("1.2.0", "sim", 200_000, nil), nil); err != nil {
		t.Fatal(err)
	}
	inv := s.Inventory()
	if inv[0].Image.State != flash.ImagePending || inv[1].Image.State != flash.ImageGood || !inv[1].Running {
		t.Fatalf("setup inventory: %+v", inv)
	}
	return data
}

func mutate(t *testing.T, k *kit, src, name string, fn func([]byte) []byte) string {
	t.Helper()
	b := readFile(t, src)
	out := filepath.Join(k.dir, name)
	if err := os.WriteFile(out, fn(append([]byte(nil), b...)), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// craft writes an image with arbitrary manifest bytes, signed by priv.
func craft(t *testing.T, k *kit, name string, manifest []byte, payload []byte, priv ed25519.PrivateKey) string {
	h := &Header{ManifestBytes: manifest}
	if priv != nil {
		h.Signatures = []Signature{{PublicKey: priv.Public().(ed25519.PublicKey), Sig: ed25519.Sign(priv, signedMessage(manifest))}}
	}
	out := filepath.Join(k.dir, name)
	if err := os.WriteFile(out, append(h.Marshal(), payload...), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRefusals offers every kind of bad image, streamed (Install) and from
// a local file (InstallFile), and checks the refusal names the reason and
// that both slots and the boot state are byte-for-byte unchanged.
func TestRefusals(t *testing.T) {
	k := newKit(t)
	data := upgraded(t, k)
	good := k.signed("2.0.0", "sim", 500_000, nil)
	hdr := func() *Header {
		f, _ := os.Open(good)
		defer f.Close()
		h, err := ReadHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}()
	hl := int(hdr.Len())
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	okManifest := hdr.ManifestBytes
	withField := bytes.Replace(okManifest, []byte(`"format":1`), []byte(`"format":1,"evil":true`), 1)
	payload := readFile(t, good)[hl:]

	cases := []struct {
		name   string
		image  string
		want   error
		phrase string
	}{
		{"unsigned", k.unsigned("2.0.0", "sim", 500_000), ErrUnsigned, "not signed"},
		{"unknown key", k.signed("2.0.1", "sim", 1000, stranger), ErrUnknownKey, "does not trust"},
		{"altered manifest", mutate(t, k, good, "altered", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"version":"2.0.0"`), []byte(`"version":"9.0.0"`), 1)
		}), ErrBadSignature, "does not verify"},
		{"damaged signature", mutate(t, k, good, "badsig", func(b []byte) []byte { b[hl-1] ^= 1; return b }), ErrBadSignature, "does not verify"},
		{"empty", mutate(t, k, good, "empty", func(b []byte) []byte { return nil }), ErrTruncated, "truncated"},
		{"cut in fixed header", mutate(t, k, good, "cut1", func(b []byte) []byte { return b[:11] }), ErrTruncated, "fixed header"},
		{"cut in manifest", mutate(t, k, good, "cut2", func(b []byte) []byte { return b[:40] }), ErrTruncated, "manifest"},
		{"cut in signature", mutate(t, k, good, "cut3", func(b []byte) []byte { return b[:hl-5] }), ErrTruncated, "signature"},
		{"cut in payload", mutate(t, k, good, "cut4", func(b []byte) []byte { return b[:hl+250_000] }), ErrTruncated, "payload has 250000 of 500000"},
		{"last byte missing", mutate(t, k, good, "cut5", func(b []byte) []byte { return b[:len(b)-1] }), ErrTruncated, "truncated"},
		{"wrong board", k.signed("2.0.0", "other-board", 1000, nil), ErrWrongBoard, `board "other-board", this board is "sim"`},
		{"wrong product", craft(t, k, "product", bytes.Replace(okManifest, []byte(`"product":"cmcd"`), []byte(`"product":"toaster"`), 1), payload, k.priv), ErrWrongProduct, "another product"},
		{"corrupt payload", mutate(t, k, good, "corrupt", func(b []byte) []byte { b[hl+123_456] ^= 0x40; return b }), ErrCorrupt, "SHA-256"},
		{"not an image", mutate(t, k, good, "junk", func(b []byte) []byte { return []byte("#!/bin/sh\necho hello, this is not an image\n") }), ErrMalformed, "not a cmcd firmware image"},
		{"trailing bytes", mutate(t, k, good, "trailing", func(b []byte) []byte { return append(b, "extra"...) }), ErrMalformed, "follow the payload"},
		{"unknown manifest field", craft(t, k, "field", withField, payload, k.priv), ErrMalformed, `unknown field "evil"`},
		{"manifest not JSON", craft(t, k, "notjson", []byte(`{"format":1,`), payload, k.priv), ErrMalformed, "not valid JSON"},
		{"manifest missing version", craft(t, k, "nover", bytes.Replace(okManifest, []byte(`"version":"2.0.0"`), []byte(`"version":""`), 1), payload, k.priv), ErrMalformed, "version"},
		{"reserved field", mutate(t, k, good, "reserved", func(b []byte) []byte { binary.BigEndian.PutUint16(b[14:], 7); return b }), ErrMalformed, "reserved"},
		{"huge manifest length", mutate(t, k, good, "hugem", func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 1<<30); return b }), ErrMalformed, "manifest length"},
		{"too large for the slot", k.signed("3.0.0", "sim", int(testDevice.Size), nil), ErrTooLarge, "does not fit"},
	}
	s := k.open(data)
	defer s.Close()
	before := takeSnapshot(t, data)
	for _, c := range cases {
		for _, how := range []string{"stream", "file"} {
			var err error
			if how == "stream" {
				f, ferr := os.Open(c.image)
				if ferr != nil {
					t.Fatal(ferr)
				}
				_, err = s.Install(context.Background(), f, nil)
				f.Close()
			} else {
				_, err = s.InstallFile(context.Background(), c.image, nil)
			}
			var re *RefusedError
			switch {
			case err == nil:
				t.Errorf("%s (%s): accepted", c.name, how)
			case !errors.Is(err, c.want) || !errors.As(err, &re):
				t.Errorf("%s (%s): got %v, want %v", c.name, how, err, c.want)
			case !strings.Contains(err.Error(), c.phrase):
				t.Errorf("%s (%s): message %q does not say %q", c.name, how, err, c.phrase)
			}
			before.same(t, data, c.name+" ("+how+")")
		}
		// inspect reports the same failure
		f, _ := os.Open(c.image)
		rep := Inspect(f, k.ring, Product, "sim")
		f.Close()
		if rep.OK() && c.want != ErrTooLarge {
			t.Errorf("%s: Inspect says OK", c.name)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(data, "firmware-staging")); len(ents) != 0 {
		t.Errorf("staging area not cleaned: %v", ents)
	}
	// The good image still installs afterwards.
	if res, err := s.InstallFile(context.Background(), good, nil); err != nil || res.Slot != flash.Primary || res.Image.Version != "2.0.0" {
		t.Fatalf("good image after refusals: %+v %v", res, err)
	}
	if b := readFile(t, filepath.Join(data, "image-backup.bin")); !bytes.Equal(b, before[filepath.Join(data, "image-backup.bin")]) {
		t.Error("install changed the running (backup) slot")
	}
}

// TestBootCounter: an activated image boots on trial; without a health
// report it falls back after BootLimit boots and is marked bad; a healthy
// report makes it good and offers the S5 choice. Install refuses to touch
// the fallback image while a trial runs; a slot corrupted on flash is
// refused at activation and marked bad.
func TestBootCounter(t *testing.T) {
	k := newKit(t)
	data := t.TempDir()
	s := k.open(data)
	s.Boot()
	if r := s.Running(); r.Slot != flash.Primary || r.Version != "1.0.0" || r.Installed {
		t.Fatalf("fresh board runs %+v", r)
	}
	if err := s.Activate(flash.Backup); err == nil || !strings.Contains(err.Error(), "no bootable image (state empty") {
		t.Fatalf("activating an empty slot: %v", err)
	}
	if _, err := s.InstallFile(context.Background(), k.signed("2.0.0", "sim", 100_000, nil), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(flash.Backup); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for boot := 1; boot <= 2; boot++ {
		s = k.open(data)
		out, err := s.Boot()
		if err != nil || out.Slot != flash.Backup || out.Trial == nil || out.Trial.Boots != boot || out.FellBack {
			t.Fatalf("trial boot %d: %+v %v", boot, out, err)
		}
		if r := s.Running(); r.Version != "2.0.0" || !r.Installed {
			t.Fatalf("trial boot runs %+v", r)
		}
		if _, err := s.InstallFile(context.Background(), k.signed("2.0.1", "sim", 1000, nil), nil); !errors.Is(err, ErrOnTrial) {
			t.Fatalf("install during a trial: %v", err)
		}
		s.Close() // no health report: as if the image hung
	}
	s = k.open(data)
	out, err := s.Boot()
	if err != nil || !out.FellBack || out.Slot != flash.Primary {
		t.Fatalf("third boot did not fall back: %+v %v", out, err)
	}
	inv := s.Inventory()
	if inv[1].Image.State != flash.ImageBad || !strings.Contains(inv[1].Image.Reason, "did not report healthy within 2 boots") || !inv[0].Running {
		t.Fatalf("after fallback: %+v", inv)
	}
	if s.PendingChoice() != nil {
		t.Fatal("a failed upgrade offered the keep-or-restore choice")
	}
	if err := s.Activate(flash.Backup); err == nil {
		t.Fatal("activated a bad slot")
	}
	// A good upgrade: healthy report -> good, S5 pending.
	if _, err := s.InstallFile(context.Background(), k.signed("3.0.0", "sim", 100_000, nil), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(flash.Backup); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = k.open(data)
	if out, _ := s.Boot(); !out.Switched {
		t.Fatalf("activated slot not booted: %+v", out)
	}
	c, err := s.ReportHealthy()
	if err != nil || c == nil || c.State != flash.ChoicePending || c.Version != "3.0.0" || c.FromVersion != "1.0.0" {
		t.Fatalf("healthy report: %+v %v", c, err)
	}
	if inv := s.Inventory(); inv[1].Image.State != flash.ImageGood || inv[1].OnTrial {
		t.Fatalf("after healthy: %+v", inv)
	}
	// Corrupt the primary... it is empty; install 3.1.0 there, then flip a
	// byte on "flash": activation verifies and refuses.
	if _, err := s.InstallFile(context.Background(), k.signed("3.1.0", "sim", 100_000, nil), nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(data, "image-primary.bin")
	b := readFile(t, p)
	b[s.State().Images.Get(flash.Primary).Length-10] ^= 0xFF
	os.WriteFile(p, b, 0o600)
	if err := s.Activate(flash.Primary); err == nil || !strings.Contains(err.Error(), "marked bad") {
		t.Fatalf("activating a corrupted slot: %v", err)
	}
	if st := s.State(); st.NextBoot != nil || st.Images.Get(flash.Primary).State != flash.ImageBad {
		t.Fatalf("after refused activation: %+v", st)
	}
	s.Close()
}

// TestBusy: a second install while one runs gets ErrBusy; progress is
// reported in order and reaches 100.
func TestBusy(t *testing.T) {
	k := newKit(t)
	data := t.TempDir()
	s := k.open(data)
	defer s.Close()
	img := k.signed("2.0.0", "sim", 2_000_000, nil)
	f, _ := os.Open(img)
	defer f.Close()
	pr, pw := ioPipe()
	done := make(chan error, 1)
	var last Progress
	go func() {
		_, err := s.Install(context.Background(), pr, func(p Progress) {
			if p.Overall < last.Overall {
				t.Errorf("progress went back: %+v after %+v", p, last)
			}
			last = p
		})
		done <- err
	}()
	// Feed the header only, so the first install is in flight.
	buf := make([]byte, 4096)
	n, _ := f.Read(buf)
	pw.Write(buf[:n])
	deadline := time.Now().Add(10 * time.Second)
	for busy, _ := s.Busy(); !busy && time.Now().Before(deadline); busy, _ = s.Busy() {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.InstallFile(context.Background(), img, nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("second install: %v", err)
	}
	if err := s.Activate(flash.Backup); !errors.Is(err, ErrBusy) {
		t.Fatalf("activate during install: %v", err)
	}
	go func() { ioCopy(pw, f); pw.Close() }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if last.Phase != "done" || last.Overall != 100 {
		t.Fatalf("last progress %+v", last)
	}
}
