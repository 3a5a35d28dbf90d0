package syncsel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"cmcd/flash"
)

const batchSize = 256

// Round runs one round now (reason: "schedule", "demand") and returns what
// it did. A round that was cut returns the rollback and the cause.
func (e *Engine) Round(ctx context.Context, reason string) (RoundResult, error) {
	e.roundMu.Lock()
	defer e.roundMu.Unlock()
	e.mu.Lock()
	cfg := e.cfg.Clone()
	st := e.st
	src, dst := e.stores[st.Source], e.stores[st.Dest]
	e.st.InRound = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.st.InRound = false
		e.mu.Unlock()
	}()
	if src == nil || dst == nil {
		return RoundResult{}, errors.New("engine closed")
	}
	if st.Paused != "" {
		err := fmt.Errorf("%w: %s", ErrPaused, st.Paused)
		e.mu.Lock()
		e.setError(err)
		e.mu.Unlock()
		return RoundResult{}, err
	}
	res, err := e.round(ctx, reason, cfg, st, src, dst)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.LastRoundEnd = e.o.Clock.Now()
	if err != nil {
		e.setError(err)
	}
	return res, err
}

func (e *Engine) round(ctx context.Context, reason string, cfg Config, st State, src, dst *Store) (RoundResult, error) {
	started := e.o.Clock.Now()
	repair := st.RepairPending
	group := st.NextGroup
	cats := cfg.GroupCategories(group)
	for i := 1; len(cats) == 0 && i < len(cfg.Groups); i++ {
		group = st.NextGroup + i
		cats = cfg.GroupCategories(group)
	}
	if len(cfg.Groups) > 0 {
		group %= len(cfg.Groups)
	}
	if repair {
		reason, cats = "repair", cfg.Selected
	}
	// The source image must answer before a round starts.
	if t0 := e.o.Clock.Now(); e.probe(ctx, st.Source, cfg) != nil {
		if ctx.Err() != nil {
			return RoundResult{}, ctx.Err()
		}
		wait, started, err := e.handleAbnormal(ctx, cfg, st, t0, 0)
		err = fmt.Errorf("%w: %s image did not answer before the round (%v)", ErrPrimaryAbnormal, st.Source, err)
		if started {
			e.mu.Lock()
			e.switchedToBackupLocked(cfg, wait, 0)
			e.mu.Unlock()
		}
		return RoundResult{}, err
	}
	srcTx, err := src.db.Begin(false)
	if err != nil {
		return RoundResult{}, err
	}
	defer srcTx.Rollback()
	srcM := matrixTx(srcTx)
	cfgBytes, _ := json.Marshal(cfg)
	var dstM Matrix
	var dstCfg []byte
	var js JournalState
	if err := dst.view(func(tx *bolt.Tx) error {
		dstM = matrixTx(tx)
		dstCfg = append([]byte(nil), tx.Bucket(bucketConfig).Get(keyCurrent)...)
		js, err = journalTx(tx)
		return err
	}); err != nil {
		return RoundResult{}, err
	}
	var changed []Category
	for _, c := range cats {
		if repair || srcM[c] != dstM[c] {
			changed = append(changed, c)
		}
	}
	if len(changed) == 0 && bytes.Equal(cfgBytes, dstCfg) && !repair {
		e.mu.Lock()
		e.st.Unchanged++
		e.st.NextGroup = group + 1
		e.mu.Unlock()
		return RoundResult{Unchanged: true}, nil
	}

	// 1. The durable intent: "round N from base M has started".
	bytes0 := dst.bytesAllocated()
	in := &Intent{Base: 0, Started: started.UTC(), Group: group, Categories: cats, Source: st.Source, Dest: st.Dest, Before: dstM}
	if js.Last != nil {
		in.Base = js.Last.ID
	}
	if err := dst.update(func(tx *bolt.Tx) error {
		j := tx.Bucket(bucketJournal)
		in.Round = u64(j.Get([]byte("seq"))) + 1
		if in.Round <= in.Base {
			in.Round = in.Base + 1
		}
		b, _ := json.Marshal(in)
		if err := j.Put([]byte("seq"), putU64(in.Round)); err != nil {
			return err
		}
		return j.Put(keyIntent, b)
	}); err != nil {
		return RoundResult{}, fmt.Errorf("round journal: %w", err)
	}

	e.log.Debug("round started", "round", in.Round, "base", in.Base, "categories", changed)

	// 2. The round itself, in one write transaction, watched by the monitor.
	mon := e.startMonitor(st.Source, cfg)
	e.sourceAbnormal = mon.abnormal
	rec, err := e.copyRound(ctx, srcTx, dst, in, changed, repair, mon, srcM, cfgBytes)
	mon.stop()
	// Release the source snapshot before anything writes to the source
	// store (events): a bbolt writer that must grow its mmap waits for
	// every open reader.
	srcTx.Rollback()
	if err == nil {
		rec.Reason = reason
		rec.Started, rec.Ended = started.UTC(), e.o.Clock.Now().UTC()
		rec.Config = cfg
		rec.ResponseWait = Duration(mon.maxResponse())
		err = e.commitRound(dst, rec)
		// Page bytes the intent and the round wrote, plus their two meta pages.
		rec.Bytes = dst.bytesAllocated() - bytes0 + int64(2*dst.pageSize())
	}
	if err != nil {
		return e.abortRound(ctx, cfg, st, dst, in, err, mon)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.Committed++
	e.st.LastRound = rec
	e.st.NextGroup = group + 1
	if repair {
		e.st.RepairPending = false
	}
	e.emit(Event{Kind: "RoundCommitted", Round: rec.ID, Message: fmt.Sprintf(
		"round %d committed: %s -> %s, group %d %v, changed %v, %d records written, %d deleted, %d bytes, %s",
		rec.ID, rec.Source, rec.Dest, rec.Group+1, rec.Categories, rec.Changed, rec.Written, rec.Deleted, rec.Bytes,
		rec.Ended.Sub(rec.Started).Round(time.Microsecond))})
	return RoundResult{Record: rec}, nil
}

// pendingRound is a round whose records are staged in an open write
// transaction of the destination.
type pendingRound struct {
	tx  *bolt.Tx
	rec *RoundRecord
}

// copyRound stages the changed records of cats in a write transaction of
// dst and returns the round record; the transaction is kept on the record
// until commitRound.
func (e *Engine) copyRound(ctx context.Context, srcTx *bolt.Tx, dst *Store, in *Intent, cats []Category, deep bool,
	mon *monitor, srcM Matrix, cfgBytes []byte) (rec *RoundRecord, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	tx, err := dst.db.Begin(true)
	if err != nil {
		return nil, err
	}
	e.pending = &pendingRound{tx: tx}
	rec = &RoundRecord{ID: in.Round, Group: in.Group, Categories: in.Categories, Source: in.Source, Dest: in.Dest}
	check := func(cat Category, n int) error {
		if e.afterBatch != nil {
			e.afterBatch(cat, n)
		}
		if mon.abnormal() {
			return ErrPrimaryAbnormal
		}
		return ctx.Err()
	}
	for _, cat := range cats {
		w, d, pb, err := copyCategory(srcTx.Bucket([]byte(cat)), newCatWriter(tx, cat), deep, check)
		if err != nil {
			return nil, err
		}
		if w+d > 0 || deep {
			rec.Changed = append(rec.Changed, cat)
		}
		rec.Written += w
		rec.Deleted += d
		rec.PayloadBytes += pb
	}
	if err := tx.Bucket(bucketConfig).Put(keyCurrent, cfgBytes); err != nil {
		return nil, err
	}
	// Verify: every category the round carried now has the source's
	// fingerprint; the others are untouched.
	rec.Matrix = matrixTx(tx)
	for _, cat := range cats {
		if rec.Matrix[cat] != srcM[cat] {
			return nil, fmt.Errorf("%w: category %s: destination %s (%d records) != source %s (%d records)",
				ErrVerify, cat, rec.Matrix[cat].FP, rec.Matrix[cat].Records, srcM[cat].FP, srcM[cat].Records)
		}
	}
	if mon.abnormal() {
		return nil, ErrPrimaryAbnormal
	}
	e.pending.rec = rec
	return rec, nil
}

// commitRound writes the round record, removes the intent and commits: the
// atomic switch from round M to round N.
func (e *Engine) commitRound(dst *Store, rec *RoundRecord) (err error) {
	p := e.pending
	e.pending = nil
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
		if err != nil && p.tx.DB() != nil {
			p.tx.Rollback()
		}
	}()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	j := p.tx.Bucket(bucketJournal)
	for _, kv := range [][2][]byte{{roundKey(rec.ID), b}, {keyLast, putU64(rec.ID)}} {
		if err := j.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := j.Delete(keyIntent); err != nil {
		return err
	}
	if err := trimJournal(j, "r/", journalKeep); err != nil {
		return err
	}
	return p.tx.Commit()
}

// abortRound is the abort path of S4: roll the transaction back, wait for
// the source image while recording the wait, start the backup image when
// the wait passes the threshold, then verify the rollback and re-initialise
// the configuration.
func (e *Engine) abortRound(ctx context.Context, cfg Config, st State, dst *Store, in *Intent, cause error, mon *monitor) (RoundResult, error) {
	if p := e.pending; p != nil {
		p.tx.Rollback()
		e.pending = nil
	}
	var wait time.Duration
	backupStarted := false
	if errors.Is(cause, ErrPrimaryAbnormal) {
		var err error
		wait, backupStarted, err = e.handleAbnormal(ctx, cfg, st, mon.since(), in.Round)
		cause = fmt.Errorf("%w (%v)", cause, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rb, err := e.finishRollback(dst, in, "abort", cause.Error(), wait, backupStarted)
	if err != nil {
		// The destination does not match its last round: rebuild it.
		if rerr := e.rebuildDest(err); rerr != nil {
			return RoundResult{}, fmt.Errorf("%v; %w", cause, rerr)
		}
	}
	if errors.Is(cause, ErrSourceCorrupt) {
		if n, rerr := e.repairSource(); rerr == nil {
			e.emit(Event{Kind: "Alarm", Severity: "Critical", Message: fmt.Sprintf(
				"%s data store has corrupt records: not copied; %d records restored from the %s store", st.Source, n, st.Dest)})
		}
	}
	if backupStarted {
		e.switchedToBackupLocked(cfg, wait, in.Round)
	}
	return RoundResult{Rollback: rb}, cause
}

// handleAbnormal waits for the abnormal source image, recording how long
// the backup has waited, and starts the backup image when the wait passes
// the response-time threshold (S4). The error describes what happened.
func (e *Engine) handleAbnormal(ctx context.Context, cfg Config, st State, since time.Time, round uint64) (time.Duration, bool, error) {
	wait, recovered := e.awaitResponse(ctx, st.Source, cfg, since)
	if ctx.Err() != nil {
		return wait, false, fmt.Errorf("the CMC is shutting down; no take-over decided after %s", wait.Round(time.Millisecond))
	}
	if recovered {
		return wait, false, fmt.Errorf("it answered again after %s, within the threshold %s", wait.Round(time.Millisecond), cfg.ResponseThreshold)
	}
	if !cfg.Failover || st.Source != flash.Primary || st.Running != flash.Primary {
		return wait, false, fmt.Errorf("no answer for %s (threshold %s); the backup image is not started (failover off or already running)",
			wait.Round(time.Millisecond), cfg.ResponseThreshold)
	}
	reason := fmt.Sprintf("primary image unresponsive for %s (threshold %s), round %d", wait.Round(time.Millisecond), cfg.ResponseThreshold, round)
	if err := e.o.Images.StartBackup(ctx, reason); err != nil {
		return wait, false, fmt.Errorf("no answer for %s; starting the backup image failed: %v", wait.Round(time.Millisecond), err)
	}
	return wait, true, fmt.Errorf("no answer for %s (threshold %s): backup image started", wait.Round(time.Millisecond), cfg.ResponseThreshold)
}

// switchedToBackupLocked makes the started backup image the running one:
// it becomes the source of rounds and the target of the collector.
func (e *Engine) switchedToBackupLocked(cfg Config, wait time.Duration, round uint64) {
	e.setRolesLocked()
	e.collector.SetStore(e.stores[e.st.Source])
	e.emit(Event{Kind: "BackupStarted", Severity: "Critical", Round: round, Message: fmt.Sprintf(
		"backup image started: the primary image did not answer for %s (threshold %s); the backup image runs, the primary is stale",
		wait.Round(time.Millisecond), cfg.ResponseThreshold)})
}

// copyCategory makes dst's category equal to src's by merging the two key
// orders: records whose fingerprints differ are written, vanished ones
// deleted. Source records are verified against their fingerprints before
// they are copied. With deep, destination fingerprints are recomputed
// instead of trusted (repair).
func copyCategory(src *bolt.Bucket, w *catWriter, deep bool, check func(Category, int) error) (written, deleted int, payload int64, err error) {
	type put struct{ k, v, old []byte }
	var puts []put
	var dels [][]byte
	sc, dc := src.Cursor(), w.b.Cursor()
	sk, sv := sc.First()
	dk, dv := dc.First()
	for sk != nil || dk != nil {
		cmp := 0
		switch {
		case sk == nil:
			cmp = 1
		case dk == nil:
			cmp = -1
		default:
			cmp = bytes.Compare(sk, dk)
		}
		switch {
		case cmp < 0:
			puts = append(puts, put{sk, sv, nil})
			sk, sv = sc.Next()
		case cmp > 0:
			dels = append(dels, dk)
			dk, dv = dc.Next()
		default:
			same := len(dv) >= FPSize && len(sv) >= FPSize && bytes.Equal(sv[:FPSize], dv[:FPSize])
			if same && deep {
				fp := recordFP(w.cat, dk, dv[FPSize:])
				same = bytes.Equal(fp[:], dv[:FPSize])
			}
			if !same {
				puts = append(puts, put{sk, sv, dv})
			}
			sk, sv = sc.Next()
			dk, dv = dc.Next()
		}
	}
	n := 0
	for _, p := range puts {
		if len(p.v) < FPSize {
			return 0, 0, 0, fmt.Errorf("%w: %s/%s: short record", ErrSourceCorrupt, w.cat, p.k)
		}
		if fp := recordFP(w.cat, p.k, p.v[FPSize:]); !bytes.Equal(fp[:], p.v[:FPSize]) {
			return 0, 0, 0, fmt.Errorf("%w: %s/%s: fingerprint mismatch", ErrSourceCorrupt, w.cat, p.k)
		}
		if deep && p.old != nil {
			// Take the destination's sum from what its records really hold.
			var ofp FP
			copy(ofp[:], p.old)
			w.sum.FP = w.sum.FP.sub(ofp)
			w.sum.Records--
			p.old = nil
		}
		payload += int64(len(p.k) + len(p.v))
		if err := w.putValue(p.k, p.v, p.old); err != nil {
			return 0, 0, 0, err
		}
		if n++; n%batchSize == 0 {
			if err := check(w.cat, n); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	for _, k := range dels {
		if err := w.delete(k); err != nil {
			return 0, 0, 0, err
		}
	}
	if deep {
		// Rebuild the sum from the records as they now stand.
		var sum CatFP
		c := w.b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var fp FP
			copy(fp[:], v)
			sum.FP = sum.FP.add(fp)
			sum.Records++
		}
		w.sum = sum
	}
	if err := check(w.cat, n); err != nil {
		return 0, 0, 0, err
	}
	return len(puts), len(dels), payload, w.flush()
}

// ---- the monitor of the source image (S4) ----

type monitor struct {
	done     chan struct{}
	wg       sync.WaitGroup
	bad      atomic.Bool
	badSince atomic.Int64
	maxRT    atomic.Int64
}

func (m *monitor) abnormal() bool { return m.bad.Load() }

func (m *monitor) since() time.Time { return time.Unix(0, m.badSince.Load()) }

func (m *monitor) maxResponse() time.Duration { return time.Duration(m.maxRT.Load()) }

func (m *monitor) stop() {
	select {
	case <-m.done:
	default:
		close(m.done)
	}
	m.wg.Wait()
}

func (e *Engine) probe(ctx context.Context, slot flash.Slot, cfg Config) error {
	p := e.o.Probers[slot]
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ProbeTimeout.D())
	defer cancel()
	return p.Probe(ctx)
}

// startMonitor probes the source image every probeInterval while a round
// runs; a probe that fails or is not answered within probeTimeout marks it
// abnormal.
func (e *Engine) startMonitor(slot flash.Slot, cfg Config) *monitor {
	m := &monitor{done: make(chan struct{})}
	if e.o.Probers[slot] == nil {
		close(m.done)
		return m
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			t0 := e.o.Clock.Now()
			err := e.probe(context.Background(), slot, cfg)
			if rt := int64(e.o.Clock.Now().Sub(t0)); rt > m.maxRT.Load() {
				m.maxRT.Store(rt)
			}
			if err != nil {
				m.badSince.Store(t0.UnixNano())
				m.bad.Store(true)
				return
			}
			t := e.o.Clock.NewTimer(cfg.ProbeInterval.D())
			select {
			case <-m.done:
				t.Stop()
				return
			case <-t.C():
			}
		}
	}()
	return m
}

// awaitResponse keeps probing the abnormal image until it answers or the
// response-time threshold has passed since it stopped answering; it returns
// how long the backup has been waiting.
func (e *Engine) awaitResponse(ctx context.Context, slot flash.Slot, cfg Config, since time.Time) (time.Duration, bool) {
	for {
		waited := e.o.Clock.Now().Sub(since)
		if waited >= cfg.ResponseThreshold.D() {
			return waited, false
		}
		if e.probe(ctx, slot, cfg) == nil {
			return e.o.Clock.Now().Sub(since), true
		}
		if ctx.Err() != nil {
			return e.o.Clock.Now().Sub(since), false
		}
		t := e.o.Clock.NewTimer(min(cfg.ProbeInterval.D(), cfg.ResponseThreshold.D()-waited))
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C():
		}
	}
}
