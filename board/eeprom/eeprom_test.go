package eeprom

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// busy NACKs the first polls after each write, like a chip in its write
// cycle, then hands the transaction to the playback.
type busy struct {
	*i2ctest.Playback
	polls, left int
}

var errNACK = errors.New("i2c: NACK")

func (b *busy) Tx(addr uint16, w, r []byte) error {
	if len(r) == 0 && (len(w) == 1 || len(w) == 2) && b.left > 0 { // a poll
		b.left--
		return errNACK
	}
	if len(w) > 2 {
		b.left = b.polls
	}
	return b.Playback.Tx(addr, w, r)
}

func TestAT24WritePagesAndPoll(t *testing.T) {
	data := []byte("0123456789")
	pb := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x50, W: append([]byte{4}, "0123"...)}, // to the end of page 0 (8-byte pages)
		{Addr: 0x50, W: []byte{4}},                    // poll answered after 2 NACKs
		{Addr: 0x50, W: append([]byte{8}, "456789"...)},
		{Addr: 0x50, W: []byte{8}},
	}}
	var slept time.Duration
	a, err := NewAT24(&busy{Playback: pb, polls: 2}, 0x50, 256)
	if err != nil {
		t.Fatal(err)
	}
	a.Sleep = func(d time.Duration) { slept += d }
	if n, err := a.WriteAt(data, 4); err != nil || n != 10 {
		t.Fatalf("write: %d %v", n, err)
	}
	if err := pb.Close(); err != nil {
		t.Error(err)
	}
	if slept != 4*time.Millisecond {
		t.Errorf("slept %v polling, want 4ms", slept)
	}
	// A chip that never answers: the write stops with an error.
	pb = &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{{Addr: 0x50, W: []byte{0, 'x', 'y'}}}}
	a, _ = NewAT24(&busy{Playback: pb, polls: 1000}, 0x50, 256)
	a.Sleep = func(time.Duration) {}
	if _, err := a.WriteAt([]byte("xy"), 0); !errors.Is(err, errNACK) {
		t.Errorf("dead chip: %v", err)
	}
	if _, err := a.WriteAt([]byte("xy"), 255); err == nil {
		t.Error("write past the end accepted")
	}
}

func TestAT24Read(t *testing.T) {
	// 24c04 (512 bytes, one address byte): the second 256-byte block is at
	// device address 0x51.
	pb := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x50, W: []byte{0xfe}, R: []byte{1, 2}},
		{Addr: 0x51, W: []byte{0x00}, R: []byte{3, 4, 5}},
	}}
	a, _ := NewAT24(pb, 0x50, 512)
	b := make([]byte, 5)
	if _, err := a.ReadAt(b, 254); err != nil || !bytes.Equal(b, []byte{1, 2, 3, 4, 5}) {
		t.Errorf("24c04 read % x %v", b, err)
	}
	if err := pb.Close(); err != nil {
		t.Error(err)
	}
	// 24c64 (8 KiB): two address bytes, high first.
	pb = &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{{Addr: 0x54, W: []byte{0x12, 0x34}, R: []byte{9, 8}}}}
	a, _ = NewAT24(pb, 0x54, 8192)
	if _, err := a.ReadAt(b[:2], 0x1234); err != nil || b[0] != 9 || b[1] != 8 {
		t.Errorf("24c64 read % x %v", b[:2], err)
	}
	if _, err := NewAT24(pb, 0x54, 1000); err == nil {
		t.Error("size 1000 accepted")
	}
	var _ i2c.Bus = pb
}

func TestSysfsFile(t *testing.T) {
	src, err := os.ReadFile("testdata/eeprom")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "eeprom")
	os.WriteFile(p, src, 0o600)
	f := File{Path: p, N: len(src)}
	all, err := ReadAll(f)
	if err != nil || !bytes.Equal(all, src) {
		t.Fatalf("ReadAll: %v", err)
	}
	if _, err := f.WriteAt([]byte("AB"), 16); err != nil {
		t.Fatal(err)
	}
	all, _ = ReadAll(f)
	if string(all[16:18]) != "AB" || len(all) != len(src) {
		t.Errorf("after write: %q", all[16:18])
	}
	if _, err := f.WriteAt([]byte("AB"), int64(len(src)-1)); err == nil {
		t.Error("write past the end accepted")
	}
	if _, err := ReadAll(File{Path: "testdata/missing", N: 256}); err == nil {
		t.Error("missing file read")
	}
}
