package syncsel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"cmcd/board"
	"cmcd/board/sim"
	"cmcd/flash"
)

// fullSetEngine is benchRig with a bbolt MaxSize, as on a board whose data
// areas are small UBI volumes.
func fullSetEngine(t *testing.T, dir string, maxSize int) *Engine {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: 11, Nodes: 16, PSUs: 4, Fans: 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range s.Slots() {
		if err := s.FillSEL(slot, sim.SELCapacity); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 64; i++ {
			s.InjectFault(slot, board.Fault{Component: "DIMM_B2", Code: fmt.Sprintf("0x%04X", i), Severity: board.SeverityWarning, Message: "correctable ECC threshold"})
		}
	}
	areas := flash.Areas{Root: dir}
	if err := areas.Ensure(); err != nil {
		t.Fatal(err)
	}
	images, err := flash.OpenSimImages(areas, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := Open(Options{Areas: areas, Images: images, Board: s.Board(), MaxSize: maxSize,
		Override: map[string]json.RawMessage{"groups": json.RawMessage(`[["psu","fan","node","asset","sel","fault"]]`)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// TestFullDataSetOnSmallArea: the largest data set (16 nodes with full
// SELs, ~11 MB) collected and synced in one round into stores capped at
// 64 MiB, while each store maps 256 MiB of address space up front. Under
// `make test-arm` this runs as a 32-bit ARM binary, where bbolt's mappings
// share a 4 GiB address space (and at most 2 GiB per map).
func TestFullDataSetOnSmallArea(t *testing.T) {
	dir := t.TempDir()
	eng := fullSetEngine(t, dir, 64<<20)
	if _, err := eng.Collector().Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := eng.Round(context.Background(), "test")
	if err != nil || res.Record == nil {
		t.Fatalf("round: %v", err)
	}
	if res.Record.PayloadBytes < 10<<20 {
		t.Errorf("payload %d bytes, want the full ~11 MB set", res.Record.PayloadBytes)
	}
	eng.Close()
	for _, slot := range []flash.Slot{flash.Primary, flash.Backup} {
		fi, err := os.Stat(flash.Areas{Root: dir}.StorePath(slot))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 64<<20 {
			t.Errorf("%v store is %d bytes, over its 64 MiB cap", slot, fi.Size())
		}
	}
	if r := Verify(flash.Areas{Root: dir}, 2*time.Second); !r.Consistent() {
		t.Errorf("verify after the full round: %+v", r)
	}
}

// TestAreaFullIsReported: a data area too small for the data set makes the
// collection fail with bbolt's ErrMaxSizeReached (not a crash, not a
// half-written store), and the stores still verify.
func TestAreaFullIsReported(t *testing.T) {
	dir := t.TempDir()
	eng := fullSetEngine(t, dir, 4<<20)
	_, err := eng.Collector().Collect(context.Background())
	if !errors.Is(err, berrors.ErrMaxSizeReached) {
		t.Fatalf("collect into a 4 MiB area: %v, want ErrMaxSizeReached", err)
	}
	if _, err := eng.Round(context.Background(), "test"); err != nil {
		t.Fatalf("round after a refused collection: %v", err)
	}
	eng.Close()
	if r := Verify(flash.Areas{Root: dir}, 2*time.Second); !r.Consistent() {
		t.Errorf("verify: %+v", r)
	}
}
