package syncsel

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"cmcd/board"
	"cmcd/board/sim"
	"cmcd/flash"
)

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// benchRig is a 16-node chassis with full SELs (3,639 entries each), fault
// logs, FRU data, 4 PSUs and 8 fans, collected into the primary store.
func benchRig(b testing.TB, dir string) (*Engine, *sim.Chassis) {
	b.Helper()
	s, err := sim.New(sim.Config{Seed: 11, Nodes: 16, PSUs: 4, Fans: 8})
	if err != nil {
		b.Fatal(err)
	}
	for _, slot := range s.Slots() {
		s.FillSEL(slot, sim.SELCapacity)
		for i := 0; i < 64; i++ {
			s.InjectFault(slot, board.Fault{Component: "DIMM_B2", Code: fmt.Sprintf("0x%04X", i), Severity: board.SeverityWarning, Message: "correctable ECC threshold", Active: i%2 == 0})
		}
	}
	areas := flash.Areas{Root: dir}
	areas.Ensure()
	images, _ := flash.OpenSimImages(areas, time.Now)
	eng, err := Open(Options{Areas: areas, Images: images, Board: s.Board(),
		Override: map[string]json.RawMessage{"groups": json.RawMessage(`[["psu","fan","node","asset","sel","fault"]]`)}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := eng.Collector().Collect(context.Background()); err != nil {
		b.Fatal(err)
	}
	return eng, s
}

// physicalLimit writes n bytes to a new file with one fsync.
func physicalLimit(b *testing.B, dir string, n int64) time.Duration {
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(i * 31)
	}
	p := filepath.Join(dir, "limit.bin")
	os.Remove(p)
	t0 := time.Now()
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write(buf); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	f.Close()
	os.Remove(p)
	return d
}

// BenchmarkFullRound: a full round of the 16-node data set into an empty
// backup, against writing the same bytes to a file with one fsync, in the
// same run; medians of 7 runs.
func BenchmarkFullRound(b *testing.B) {
	var rounds, limits []time.Duration
	var bytesW, payload int64
	var records int
	for i := 0; i < 7; i++ {
		dir := b.TempDir()
		eng, _ := benchRig(b, dir)
		t0 := time.Now()
		res, err := eng.Round(context.Background(), "bench")
		d := time.Since(t0)
		if err != nil || res.Record == nil {
			b.Fatal(err)
		}
		eng.Close()
		rounds = append(rounds, d)
		bytesW, payload, records = res.Record.Bytes, res.Record.PayloadBytes, res.Record.Written
		limits = append(limits, physicalLimit(b, dir, bytesW))
	}
	r, l := median(rounds), median(limits)
	b.ReportMetric(float64(r.Microseconds())/1000, "round-ms")
	b.ReportMetric(float64(l.Microseconds())/1000, "limit-ms")
	b.ReportMetric(float64(r)/float64(l), "x-limit")
	b.ReportMetric(float64(bytesW), "bytes/round")
	fmt.Printf("SUMMARY full round, 16 nodes x 3639 SEL: %d records, %d payload bytes, %d bytes written; round %s, same bytes + one fsync %s, ratio %.2fx (median of 7)\n",
		records, payload, bytesW, r, l, float64(r)/float64(l))
}

// BenchmarkChangedRecords: bytes a round writes when k SEL entries changed.
func BenchmarkChangedRecords(b *testing.B) {
	dir := b.TempDir()
	eng, s := benchRig(b, dir)
	defer eng.Close()
	if _, err := eng.Round(context.Background(), "bench"); err != nil {
		b.Fatal(err)
	}
	// Only the SEL is selected from here on; one round carries that change.
	if _, err := eng.UpdateConfig(map[string]json.RawMessage{"category.psu": json.RawMessage("false"), "category.fan": json.RawMessage("false"),
		"category.node": json.RawMessage("false"), "category.asset": json.RawMessage("false"), "category.fault": json.RawMessage("false")}); err != nil {
		b.Fatal(err)
	}
	if _, err := eng.Round(context.Background(), "bench"); err != nil {
		b.Fatal(err)
	}
	for _, k := range []int{0, 1, 100, 10000} {
		for i := 0; i < k; i++ {
			s.InjectSEL(1+i%16, board.SELEntry{SensorType: 1, EventType: 1, Severity: board.SeverityOK, Message: fmt.Sprintf("bench %d", i)})
		}
		if k > 0 {
			// Only the SEL changed: collect just the logs.
			if _, err := eng.Collector().Collect(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Now()
		res, err := eng.Round(context.Background(), "bench")
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		var written, recs int64
		if res.Record != nil {
			written, recs = res.Record.Bytes, int64(res.Record.Written)
		}
		b.ReportMetric(float64(written), fmt.Sprintf("bytes-k%d", k))
		fmt.Printf("SUMMARY changed SEL entries k=%-5d: %4d records written, %8d bytes written (%.1f pages), %s\n",
			k, recs, written, float64(written)/4096, d.Round(time.Microsecond))
	}
}

// BenchmarkRecovery: start-up recovery of a round cut by a kill (its
// intent in the journal) for the 16-node data set: open, roll back,
// verify every record; medians of 7.
func BenchmarkRecovery(b *testing.B) {
	dir := b.TempDir()
	eng, _ := benchRig(b, dir)
	if _, err := eng.Round(context.Background(), "bench"); err != nil {
		b.Fatal(err)
	}
	areas := eng.o.Areas
	board := eng.o.Board
	eng.Close()
	var ds []time.Duration
	for i := 0; i < 7; i++ {
		dst, err := OpenStore(areas.StorePath(flash.Backup), flash.Backup, StoreOptions{})
		if err != nil {
			b.Fatal(err)
		}
		js, _ := dst.Journal()
		m, _ := dst.Matrix()
		in, _ := json.Marshal(Intent{Round: js.Last.ID + 1, Base: js.Last.ID, Before: m})
		dst.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketJournal).Put(keyIntent, in) })
		dst.Close()
		images, _ := flash.OpenSimImages(areas, time.Now)
		t0 := time.Now()
		e2, err := Open(Options{Areas: areas, Images: images, Board: board})
		d := time.Since(t0)
		if err != nil || e2.State().RecoveredAtRun == nil {
			b.Fatalf("recovery did not run: %v", err)
		}
		e2.Close()
		ds = append(ds, d)
	}
	b.ReportMetric(float64(median(ds).Microseconds())/1000, "recovery-ms")
	fmt.Printf("SUMMARY start-up recovery of a cut round, 16-node data set: %s (median of 7; goal < 100ms, ratio %.2f of the goal)\n",
		median(ds).Round(time.Microsecond), float64(median(ds))/float64(100*time.Millisecond))
}
