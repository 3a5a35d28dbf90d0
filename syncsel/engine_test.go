package syncsel

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"cmcd/board"
	"cmcd/board/sim"
	"cmcd/flash"
	"cmcd/flash/flashtest"
)

type rig struct {
	t      *testing.T
	areas  flash.Areas
	sim    *sim.Chassis
	probe  *flashtest.Probe
	images *flash.SimImages
	eng    *Engine
	patch  map[string]json.RawMessage
}

func newRig(t *testing.T, nodes, fill int, kv ...string) *rig {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: 7, Nodes: nodes, SELRate: 0, FaultRate: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range s.Slots() {
		if err := s.FillSEL(slot, fill); err != nil {
			t.Fatal(err)
		}
	}
	r := &rig{t: t, areas: flash.Areas{Root: t.TempDir()}, sim: s, probe: &flashtest.Probe{}}
	r.patch = patch(append([]string{"probeInterval", `"20ms"`, "probeTimeout", `"100ms"`, "responseThreshold", `"300ms"`}, kv...)...)
	r.open()
	t.Cleanup(func() { r.eng.Close() })
	return r
}

func (r *rig) open() {
	r.t.Helper()
	if r.eng != nil {
		r.eng.Close()
	}
	if err := r.areas.Ensure(); err != nil {
		r.t.Fatal(err)
	}
	images, err := flash.OpenSimImages(r.areas, time.Now)
	if err != nil {
		r.t.Fatal(err)
	}
	r.images = images
	r.eng, err = Open(Options{Areas: r.areas, Images: images, Board: r.sim.Board(), Override: r.patch,
		Probers: map[flash.Slot]flash.Prober{flash.Primary: r.probe}})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) collect() CollectStats {
	r.t.Helper()
	st, err := r.eng.Collector().Collect(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

func (r *rig) round() RoundResult {
	r.t.Helper()
	res, err := r.eng.Round(context.Background(), "test")
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *rig) verify() VerifyReport {
	r.t.Helper()
	r.eng.Close()
	rep := Verify(r.areas, time.Second)
	r.eng = nil
	r.open()
	return rep
}

// S3: a round syncs exactly the chosen categories of the current group.
func TestRoundSyncsSelectedCategories(t *testing.T) {
	r := newRig(t, 4, 100, "category.asset", "false", "groups", `[["psu","fan","node","asset","sel","fault"]]`)
	r.collect()
	res := r.round()
	if res.Record == nil || res.Record.ID != 1 {
		t.Fatalf("first round: %+v", res)
	}
	dst := r.eng.StoreOf(flash.Backup)
	if psus, _ := dst.PSUs(); len(psus) != 2 {
		t.Fatalf("backup has %d PSUs, want 2", len(psus))
	}
	if sel, _ := dst.SEL(2); len(sel) != 100 {
		t.Fatalf("backup SEL of node 2 has %d entries, want 100", len(sel))
	}
	if a, _ := dst.Assets(); len(a) != 0 {
		t.Fatalf("unselected category copied: %d asset records", len(a))
	}
	if src, _ := r.eng.StoreOf(flash.Primary).Assets(); len(src) != 5 {
		t.Fatalf("primary has %d asset records, want 5", len(src))
	}
	if rep := r.verify(); !rep.Consistent() {
		t.Fatalf("verify: %+v", rep.Stores)
	}
}

// A round with no change writes nothing; k new entries write O(k) records.
func TestRoundWritesOnlyChanges(t *testing.T) {
	r := newRig(t, 2, 500, "groups", `[["psu","fan","node","asset","sel","fault"]]`)
	r.collect()
	r.round()
	dst := r.eng.StoreOf(flash.Backup)
	before := dst.bytesAllocated()
	res := r.round()
	if !res.Unchanged || dst.bytesAllocated() != before {
		t.Fatalf("unchanged round wrote: %+v, %d bytes", res, dst.bytesAllocated()-before)
	}
	if err := r.sim.InjectSEL(1, selEntry("one new event")); err != nil {
		t.Fatal(err)
	}
	st := r.collect()
	if st.Written < 1 {
		t.Fatal("collector did not store the new event")
	}
	res = r.round()
	// one SEL block, plus readings that drifted (the sim clock is real).
	if res.Record == nil || res.Record.Written > 1+2+6+2 {
		t.Fatalf("one new SEL entry wrote %+v", res.Record)
	}
	sel, _ := dst.SEL(1)
	if len(sel) != 501 || sel[500].Entry.Message != "one new event" {
		t.Fatalf("backup SEL: %d entries, last %+v", len(sel), sel[len(sel)-1])
	}
}

// S6: groups are synced in turn.
func TestGroupsRoundRobin(t *testing.T) {
	r := newRig(t, 2, 10, "groups", `[["psu","fan"],["node","asset"],["sel","fault"]]`)
	r.collect()
	var got []string
	for i := 0; i < 4; i++ {
		// Change every category's data so no round is empty.
		r.sim.InjectSEL(1, selEntry("x"))
		r.sim.SetPSUFailed(1, i%2 == 0)
		r.sim.SetFanFailed(1, i%2 == 0)
		r.sim.SetPower(context.Background(), 1, map[bool]board.PowerAction{true: board.ActionOff, false: board.ActionOn}[i%2 == 0])
		r.collect()
		res := r.round()
		got = append(got, strings.Trim(strings.Join(catNames(res.Record.Categories), ","), " "))
	}
	want := "psu,fan|node,asset|sel,fault|psu,fan"
	if strings.Join(got, "|") != want {
		t.Fatalf("rounds carried %q, want %q", strings.Join(got, "|"), want)
	}
}

func catNames(c []Category) []string {
	out := make([]string, len(c))
	for i, x := range c {
		out[i] = string(x)
	}
	return out
}

// S4: the primary turns abnormal mid-round: the round is rolled back, the
// backup stays at the last committed round, the wait is recorded, and the
// primary answering within the threshold means no take-over.
func TestAbnormalPrimaryMidRoundRollsBack(t *testing.T) {
	r := newRig(t, 8, 3000, "groups", `[["psu","fan","node","asset","sel","fault"]]`)
	r.collect()
	first := r.round().Record
	// Replace every SEL so that the next round is large.
	for _, slot := range r.sim.Slots() {
		r.sim.ClearSEL(context.Background(), slot)
		r.sim.FillSEL(slot, 3000)
	}
	r.collect()
	r.eng.afterBatch = func(cat Category, n int) {
		if n == batchSize {
			r.probe.Set(flashtest.Failing, 0)
			go func() { time.Sleep(60 * time.Millisecond); r.probe.Set(flashtest.Healthy, 0) }()
			time.Sleep(50 * time.Millisecond) // let the monitor see it
		}
	}
	res, err := r.eng.Round(context.Background(), "test")
	if !errors.Is(err, ErrPrimaryAbnormal) {
		t.Fatalf("want ErrPrimaryAbnormal, got %v", err)
	}
	if res.Rollback == nil || !res.Rollback.Verified || res.Rollback.Base != first.ID || res.Rollback.BackupStarted {
		t.Fatalf("rollback: %+v", res.Rollback)
	}
	if res.Rollback.ResponseWait <= 0 {
		t.Fatal("response wait not recorded")
	}
	if r.images.Active() != flash.Primary {
		t.Fatal("backup image started although the primary answered within the threshold")
	}
	js, _ := r.eng.StoreOf(flash.Backup).Journal()
	if js.Intent != nil || js.Last.ID != first.ID {
		t.Fatalf("journal after rollback: intent %+v, last %d", js.Intent, js.Last.ID)
	}
	m, _ := r.eng.StoreOf(flash.Backup).Matrix()
	if !m.Equal(first.Matrix) {
		t.Fatal("backup is not at the last committed round")
	}
	rbs, _ := r.eng.StoreOf(flash.Backup).Rollbacks(10)
	if len(rbs) != 1 || rbs[0].Where != "abort" {
		t.Fatalf("rollback records: %+v", rbs)
	}
	// The next round succeeds.
	r.eng.afterBatch = nil
	if res := r.round(); res.Record == nil {
		t.Fatal("round after rollback did not commit")
	}
	if rep := r.verify(); !rep.Consistent() {
		t.Fatalf("verify: %+v", rep.Stores)
	}
}

// S4: the primary stays dead past the threshold: the backup image is
// started, becomes the running image and the source of later rounds.
func TestThresholdStartsBackupImage(t *testing.T) {
	r := newRig(t, 4, 2000, "groups", `[["psu","fan","node","asset","sel","fault"]]`)
	r.collect()
	first := r.round().Record
	events, cancel := r.eng.Subscribe()
	defer cancel()
	for _, slot := range r.sim.Slots() {
		r.sim.InjectSEL(slot, selEntry("before the fault"))
	}
	r.collect()
	r.probe.OnProbe = nil
	r.eng.afterBatch = func(Category, int) {}
	// Dead before the copy starts: the pre-round probe succeeds, the
	// monitor's next probe never answers.
	base := r.probe.Calls()
	r.probe.OnProbe = func(n int64) {
		if n >= base+2 {
			r.probe.Set(flashtest.Dead, 0)
		}
	}
	// Hold the copy until the monitor has seen the dead primary (however
	// slow the machine), so the round is cut rather than committed.
	r.eng.afterBatch = func(Category, int) {
		for deadline := time.Now().Add(10 * time.Second); !r.eng.sourceAbnormal() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	start := time.Now()
	res, err := r.eng.Round(context.Background(), "test")
	if !errors.Is(err, ErrPrimaryAbnormal) || res.Rollback == nil || !res.Rollback.BackupStarted {
		t.Fatalf("want a take-over, got err=%v rollback=%+v", err, res.Rollback)
	}
	if w := res.Rollback.ResponseWait.D(); w < 300*time.Millisecond || time.Since(start) > 15*time.Second {
		t.Fatalf("waited %s (threshold 300ms)", w)
	}
	if r.images.Active() != flash.Backup {
		t.Fatal("backup image not started")
	}
	st := r.eng.State()
	if st.Running != flash.Backup || st.Source != flash.Backup || st.Dest != flash.Primary || st.Stale != flash.Primary {
		t.Fatalf("state after take-over: %+v", st)
	}
	m, _ := r.eng.StoreOf(flash.Backup).Matrix()
	if !m.Equal(first.Matrix) {
		t.Fatal("backup not at the last committed round after take-over")
	}
	kinds := map[string]bool{}
	for len(events) > 0 {
		kinds[(<-events).Kind] = true
	}
	if !kinds["RoundRolledBack"] || !kinds["BackupStarted"] {
		t.Fatalf("events: %v", kinds)
	}
	// The sync direction follows the running image.
	r.probe.OnProbe = nil
	r.probe.Set(flashtest.Healthy, 0)
	r.eng.afterBatch = nil
	for _, slot := range r.sim.Slots() {
		r.sim.InjectSEL(slot, selEntry("after the take-over"))
	}
	r.collect()
	res = r.round()
	if res.Record == nil || res.Record.Source != flash.Backup || res.Record.Dest != flash.Primary {
		t.Fatalf("round after take-over: %+v", res.Record)
	}
	sel, _ := r.eng.StoreOf(flash.Primary).SEL(1)
	if sel[len(sel)-1].Entry.Message != "after the take-over" {
		t.Fatal("primary did not catch up from the running backup image")
	}
	if rep := r.verify(); !rep.Consistent() || rep.Running != flash.Backup {
		t.Fatalf("verify after take-over: %+v", rep)
	}
}

// S4: after a rollback the configuration is that of the last committed round.
func TestRollbackReinitialisesConfiguration(t *testing.T) {
	r := newRig(t, 4, 2000, "groups", `[["psu","fan","node","asset","sel","fault"]]`)
	r.collect()
	r.round()
	if _, err := r.eng.UpdateConfig(patch("interval", `"7s"`, "category.fault", "false")); err != nil {
		t.Fatal(err)
	}
	for _, slot := range r.sim.Slots() {
		r.sim.ClearSEL(context.Background(), slot)
		r.sim.FillSEL(slot, 2000)
	}
	r.collect()
	r.eng.afterBatch = func(Category, int) { r.probe.Set(flashtest.Failing, 0); time.Sleep(40 * time.Millisecond) }
	go func() { time.Sleep(150 * time.Millisecond); r.probe.Set(flashtest.Healthy, 0) }()
	if _, err := r.eng.Round(context.Background(), "test"); !errors.Is(err, ErrPrimaryAbnormal) {
		t.Fatalf("want abort, got %v", err)
	}
	cfg := r.eng.Config()
	if cfg.Interval.D() == 7*time.Second || !cfg.IsSelected(CatFault) {
		t.Fatalf("configuration not re-initialised from the last round: %+v", cfg)
	}
	saved, _, _ := r.eng.Store().LoadConfig()
	if len(saved.Diff(cfg)) != 0 {
		t.Fatal("re-initialised configuration not saved")
	}
}

// S4 at start-up: a round cut by a crash (its intent still in the journal)
// is rolled back and verified when the engine opens.
func TestRecoveryAtStart(t *testing.T) {
	r := newRig(t, 2, 50)
	r.collect()
	r.round()
	r.eng.Close()
	dst, err := OpenStore(r.areas.StorePath(flash.Backup), flash.Backup, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := dst.Journal()
	in, _ := json.Marshal(Intent{Round: js.Last.ID + 1, Base: js.Last.ID})
	dst.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketJournal).Put(keyIntent, in) })
	dst.Close()
	if rep := Verify(r.areas, time.Second); rep.Consistent() {
		t.Fatal("verify accepted a journal that needs recovery")
	}
	r.eng = nil
	r.open()
	rb := r.eng.State().RecoveredAtRun
	if rb == nil || !rb.Verified || rb.Where != "start-up" || rb.Base != js.Last.ID {
		t.Fatalf("recovery: %+v", rb)
	}
	if rep := r.verify(); !rep.Consistent() {
		t.Fatalf("verify after recovery: %+v", rep.Stores)
	}
}

// A corrupt backup record is detected by verify and repaired by the next round.
func TestCorruptBackupRepaired(t *testing.T) {
	r := newRig(t, 2, 200, "groups", `[["psu","fan","node","asset","sel","fault"]]`)
	r.collect()
	r.round()
	r.eng.Close()
	corruptRecord(t, r.areas.StorePath(flash.Backup), CatSEL)
	rep := Verify(r.areas, time.Second)
	if rep.Consistent() || len(rep.Stores[flash.Backup].Problems) == 0 {
		t.Fatal("verify missed a corrupt backup record")
	}
	r.eng = nil
	r.open()
	if !r.eng.State().RepairPending {
		t.Fatal("engine did not notice the corrupt backup")
	}
	if res := r.round(); res.Record == nil || res.Record.Reason != "repair" {
		t.Fatalf("repair round: %+v", res)
	}
	if rep := r.verify(); !rep.Consistent() {
		t.Fatalf("after repair: %+v", rep.Stores)
	}
	sel, _ := r.eng.StoreOf(flash.Backup).SEL(1)
	if len(sel) != 200 {
		t.Fatalf("repaired backup SEL has %d entries", len(sel))
	}
}

// A truncated backup store is detected and rebuilt.
func TestTruncatedBackupRebuilt(t *testing.T) {
	r := newRig(t, 4, 3000, "groups", `[["psu","fan","node","asset","sel","fault"]]`)
	r.collect()
	r.round()
	r.eng.Close()
	p := r.areas.StorePath(flash.Backup)
	fi, _ := os.Stat(p)
	if err := os.Truncate(p, fi.Size()/3); err != nil {
		t.Fatal(err)
	}
	if rep := Verify(r.areas, time.Second); rep.Consistent() {
		t.Fatal("verify accepted a truncated backup")
	}
	r.eng = nil
	r.open()
	if res := r.round(); res.Record == nil {
		t.Fatal("no repair round")
	}
	if rep := r.verify(); !rep.Consistent() {
		t.Fatalf("after rebuild: %+v", rep.Stores)
	}
}

// A corrupt primary record is reported and never copied over the backup.
func TestCorruptPrimaryNotCopied(t *testing.T) {
	r := newRig(t, 2, 100, "groups", `[["psu","fan","node","asset","sel","fault"]]`)
	r.collect()
	first := r.round().Record
	r.sim.InjectSEL(1, selEntry("new"))
	r.collect()
	// Corrupt the changed block in the running primary store.
	src := r.eng.StoreOf(flash.Primary)
	src.update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(CatSEL))
		k, v := b.Cursor().Seek(blockKey(1, 1))
		bad := append([]byte(nil), v...)
		bad[len(bad)-3] ^= 0x55
		return b.Put(append([]byte(nil), k...), bad)
	})
	before, _ := r.eng.StoreOf(flash.Backup).Matrix()
	_, err := r.eng.Round(context.Background(), "test")
	if !errors.Is(err, ErrSourceCorrupt) {
		t.Fatalf("want ErrSourceCorrupt, got %v", err)
	}
	after, _ := r.eng.StoreOf(flash.Backup).Matrix()
	if !after.Equal(before) || !after.Equal(first.Matrix) {
		t.Fatal("corrupt primary data reached the backup")
	}
	if !strings.Contains(r.eng.State().LastError, "corrupt") {
		t.Fatalf("last error: %q", r.eng.State().LastError)
	}
	// The corrupt records were restored from the backup; a later round works.
	checks, _ := src.Check()
	for cat, c := range checks {
		if !c.OK() {
			t.Fatalf("primary %s still corrupt", cat)
		}
	}
	r.collect()
	r.round()
	if rep := r.verify(); !rep.Consistent() {
		t.Fatalf("verify: %+v", rep.Stores)
	}
}

// Bad configuration changes leave the configuration in force and stored.
func TestUpdateConfigRefusal(t *testing.T) {
	r := newRig(t, 2, 10)
	before := r.eng.Config()
	_, err := r.eng.UpdateConfig(patch("interval", `"10ms"`))
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Option != "interval" {
		t.Fatalf("want OptionError naming interval, got %v", err)
	}
	if len(r.eng.Config().Diff(before)) != 0 {
		t.Fatal("configuration changed")
	}
	saved, _, _ := r.eng.Store().LoadConfig()
	if len(saved.Diff(before)) != 0 {
		t.Fatal("saved configuration changed")
	}
}

func corruptRecord(t *testing.T, path string, cat Category) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(cat))
		k, v := b.Cursor().First()
		bad := append([]byte(nil), v...)
		bad[len(bad)/2] ^= 0xff
		return b.Put(append([]byte(nil), k...), bad)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVerifyBeforeFirstStore: a kill at the very first start can land
// before either store file exists; that state holds nothing committed and
// verify says so instead of calling it corrupt.
func TestVerifyBeforeFirstStore(t *testing.T) {
	a := flash.Areas{Root: t.TempDir()}
	if err := a.Ensure(); err != nil {
		t.Fatal(err)
	}
	r := Verify(a, time.Second)
	if !r.Consistent() || !r.Stores[0].Missing || !r.Stores[1].Missing {
		t.Fatalf("verify of areas without stores: consistent=%v missing=%v/%v %+v", r.Consistent(), r.Stores[0].Missing, r.Stores[1].Missing, r)
	}
	var b strings.Builder
	r.Print(&b)
	if !strings.Contains(b.String(), "no store yet") {
		t.Fatalf("report does not say the stores are absent:\n%s", b.String())
	}
}

// TestVerifyFirstStoreCutShort: a kill while bbolt writes a new store's
// first pages leaves a file of zero length or shorter than its four
// initial pages. Nothing was committed to it; verify must not call it
// corrupt, and cmcd run must set it up again.
func TestVerifyFirstStoreCutShort(t *testing.T) {
	for _, size := range []int{0, 100, 4096, 3 * 4096} {
		a := flash.Areas{Root: t.TempDir()}
		if err := a.Ensure(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(a.StorePath(flash.Primary), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		r := Verify(a, time.Second)
		if !r.Consistent() {
			var b strings.Builder
			r.Print(&b)
			t.Errorf("store cut at %d bytes: verify says\n%s", size, b.String())
		}
		if !r.Stores[flash.Primary].Missing {
			t.Errorf("store cut at %d bytes not reported as holding nothing", size)
		}
		// cmcd run sets it up again instead of quarantining it.
		s, err := OpenStore(a.StorePath(flash.Primary), flash.Primary, StoreOptions{})
		if err != nil {
			t.Fatalf("store cut at %d bytes: open for writing: %v", size, err)
		}
		s.Close()
		if m, _ := filepath.Glob(a.StorePath(flash.Primary) + ".*"); len(m) != 0 {
			t.Errorf("store cut at %d bytes was moved aside: %v", size, m)
		}
	}
	// A file of four pages or more is bbolt's: garbage there is corrupt.
	a := flash.Areas{Root: t.TempDir()}
	if err := a.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.StorePath(flash.Primary), make([]byte, 4*os.Getpagesize()), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := Verify(a, time.Second); r.Consistent() {
		t.Fatal("four zero pages called consistent")
	}
}
