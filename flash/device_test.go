package flash

import (
	"bytes"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFileDeviceFlashSemantics: unwritten bytes read erased, writes only
// clear bits (so a missing erase corrupts data as on a chip), alignment
// and bounds are enforced, a read-only device refuses writes.
func TestFileDeviceFlashSemantics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slot.bin")
	geo := DeviceInfo{Size: 1 << 20, EraseSize: 128 << 10, WriteSize: 2048} // NAND-like
	if d, err := OpenFileDevice(path, geo, false); err != nil {
		t.Fatal(err)
	} else {
		b := make([]byte, 16)
		d.ReadAt(b, 4096)
		if !bytes.Equal(b, bytes.Repeat([]byte{0xFF}, 16)) {
			t.Fatalf("missing device does not read erased: %x", b)
		}
		if _, err := d.WriteAt(make([]byte, 2048), 0); err == nil {
			t.Fatal("read-only device accepted a write")
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatal("read-only open created the file")
		}
	}
	d, err := OpenFileDevice(path, geo, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, bad := range []struct{ off, n int64 }{{1, 2048}, {0, 100}, {geo.Size, 2048}} {
		if _, err := d.WriteAt(make([]byte, bad.n), bad.off); err == nil {
			t.Errorf("write [%d,+%d) accepted", bad.off, bad.n)
		}
	}
	if err := d.Erase(4096, geo.EraseSize); err == nil || !strings.Contains(err.Error(), "aligned") {
		t.Errorf("unaligned erase: %v", err)
	}
	img := make([]byte, 300_001)
	rand.New(rand.NewSource(1)).Read(img)
	if err := WriteImage(d, bytes.NewReader(img), int64(len(img)), nil); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(img)+100)
	d.ReadAt(got, 0)
	if !bytes.Equal(got[:len(img)], img) || !bytes.Equal(got[len(img):], bytes.Repeat([]byte{0xFF}, 100)) {
		t.Fatal("image read back differs or padding is not erased")
	}
	// Writing other data without an erase ANDs the bits: the read-back differs.
	other := make([]byte, 4096)
	rand.New(rand.NewSource(2)).Read(other)
	d.WriteAt(other, 0)
	back := make([]byte, 4096)
	d.ReadAt(back, 0)
	for i := range back {
		if back[i] != img[i]&other[i] {
			t.Fatalf("byte %d: %02x, want %02x (old AND new)", i, back[i], img[i]&other[i])
		}
	}
	if bytes.Equal(back, other) {
		t.Fatal("write without erase went through as if erased")
	}
	if err := WriteImage(d, bytes.NewReader(img), geo.Size+1, nil); err == nil {
		t.Fatal("oversized image accepted")
	}
	if err := WriteImage(d, io.LimitReader(bytes.NewReader(img), 10), 1000, nil); err == nil {
		t.Fatal("short source accepted")
	}
}

// TestBootStateCompat: a boot-state.json of the earlier format (active
// slot and switches only) loads; Update is all-or-nothing.
func TestBootStateCompat(t *testing.T) {
	a := Areas{Root: t.TempDir()}
	old := `{"active":"backup","switches":[{"time":"2025-01-01T00:00:00Z","from":"primary","to":"backup","reason":"x"}]}`
	if err := os.WriteFile(a.BootStatePath(), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSimImages(a, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Active() != Backup || s.State().Images.Get(Primary).State != ImageEmpty {
		t.Fatalf("old state: %+v", s.State())
	}
	if err := s.Update(func(b *BootState) error { b.Boots = 99; return os.ErrInvalid }); err == nil || s.State().Boots != 0 {
		t.Fatal("failed update changed the state")
	}
	if b, _ := os.ReadFile(a.BootStatePath()); string(b) != old {
		t.Fatal("failed update rewrote the file")
	}
	// A failover of an image on trial ends the trial with the image bad.
	s.Update(func(b *BootState) error {
		b.Trial = &Trial{Slot: Backup, From: Primary, Boots: 1, Limit: 3}
		return nil
	})
	if err := s.StartBackup(t.Context(), "primary dead"); err != nil {
		t.Fatal(err)
	}
	st := s.State()
	if st.Active != Primary || st.Trial != nil || st.Images.Get(Backup).State != ImageBad {
		t.Fatalf("failover during trial: %+v", st)
	}
}
