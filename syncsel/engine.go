package syncsel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"cmcd/board"
	"cmcd/clock"
	"cmcd/flash"
	"cmcd/internal/durable"
)

// Errors of a round.
var (
	ErrPrimaryAbnormal = errors.New("source image abnormal during the round")
	ErrSourceCorrupt   = errors.New("source store corrupt")
	ErrVerify          = errors.New("round verification failed")
	ErrPaused          = errors.New("rounds paused")
)

const journalKeep = 1000

// Options configure an Engine.
type Options struct {
	Areas  flash.Areas
	Images flash.Images
	// Probers probe each image's health; a missing one counts as healthy.
	Probers map[flash.Slot]flash.Prober
	Board   *board.Chassis
	Clock   clock.Clock
	Log     *slog.Logger
	// Initial is the configuration used when the store holds none.
	Initial Config
	// Override is applied on top of the saved configuration at start
	// (options given on the command line); may be nil.
	Override map[string]json.RawMessage
	// MaxSize caps each store file (bbolt MaxSize); 0 = no cap.
	MaxSize int
}

// State is the sync state the API and the page show (R6).
type State struct {
	Running        flash.Slot   `json:"running"`
	Source         flash.Slot   `json:"source"`
	Dest           flash.Slot   `json:"dest"`
	Stale          flash.Slot   `json:"stale"` // the image not running
	InRound        bool         `json:"inRound"`
	Paused         string       `json:"paused,omitempty"`
	LastRound      *RoundRecord `json:"lastRound,omitempty"`
	LastRoundEnd   time.Time    `json:"lastRoundEnd"`
	NextRound      time.Time    `json:"nextRound"`
	NextGroup      int          `json:"nextGroup"`
	LastError      string       `json:"lastError,omitempty"`
	LastErrorTime  time.Time    `json:"lastErrorTime"`
	Committed      uint64       `json:"roundsCommitted"`
	RolledBack     uint64       `json:"roundsRolledBack"`
	Unchanged      uint64       `json:"roundsUnchanged"`
	RepairPending  bool         `json:"repairPending"`
	RecoveredAtRun *Rollback    `json:"recoveredAtStart,omitempty"`
}

// RoundResult is what one call of a round did.
type RoundResult struct {
	Record    *RoundRecord // nil when nothing changed or the round was cut
	Unchanged bool
	Rollback  *Rollback
}

// Engine runs the collector and the rounds between the two data stores.
type Engine struct {
	o   Options
	log *slog.Logger

	roundMu sync.Mutex // one round (or recovery) at a time

	mu        sync.Mutex
	stores    [2]*Store
	cfg       Config
	st        State
	collector *Collector
	subs      map[int]chan Event
	nextSub   int

	trigger   chan chan roundReply
	cfgChange chan struct{}

	pending *pendingRound // the round being staged (guarded by roundMu)

	// afterBatch, when set (tests), runs after every batch of copied records.
	afterBatch func(cat Category, done int)
	// sourceAbnormal, set for the hooks above during a round (tests),
	// reports whether the round's monitor has marked the source abnormal.
	sourceAbnormal func() bool
}

type roundReply struct {
	res RoundResult
	err error
}

// Open opens both stores, recovers a cut round, checks both stores and
// loads the configuration.
func Open(o Options) (*Engine, error) {
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Initial.Interval == 0 {
		o.Initial = DefaultConfig()
	}
	if err := o.Initial.Validate(); err != nil {
		return nil, fmt.Errorf("initial configuration: %w", err)
	}
	if err := o.Areas.Ensure(); err != nil {
		return nil, err
	}
	e := &Engine{o: o, log: o.Log, subs: map[int]chan Event{}, trigger: make(chan chan roundReply), cfgChange: make(chan struct{}, 1)}
	running := o.Images.Active()
	var alarms []Event
	// The stale image's store first: it is the one a cut round touched.
	for _, slot := range []flash.Slot{running.Other(), running} {
		s, err := OpenStore(o.Areas.StorePath(slot), slot, StoreOptions{MaxSize: o.MaxSize})
		if errors.Is(err, ErrCorrupt) {
			moved, qerr := quarantine(o.Areas.StorePath(slot), o.Clock.Now())
			if qerr != nil {
				return nil, fmt.Errorf("%s store corrupt (%v) and could not be moved aside: %w", slot, err, qerr)
			}
			alarms = append(alarms, Event{Kind: "Alarm", Severity: "Critical",
				Message: fmt.Sprintf("%s data store was corrupt (%v); moved to %s", slot, err, moved)})
			if slot == running && e.stores[slot.Other()] != nil {
				if rerr := e.restoreFrom(slot.Other(), slot); rerr == nil {
					alarms = append(alarms, Event{Kind: "Alarm", Severity: "Warning",
						Message: fmt.Sprintf("%s data store restored from the %s store (last committed round)", slot, slot.Other())})
				}
			} else {
				e.st.RepairPending = true
			}
			s, err = OpenStore(o.Areas.StorePath(slot), slot, StoreOptions{MaxSize: o.MaxSize})
		}
		if err != nil {
			e.closeStores()
			return nil, err
		}
		e.stores[slot] = s
	}
	// Configuration: saved in the running store, else the initial one.
	cfg, ok, err := e.stores[running].LoadConfig()
	if err != nil {
		alarms = append(alarms, Event{Kind: "Alarm", Severity: "Warning",
			Message: fmt.Sprintf("saved configuration unusable (%v); using the defaults", err)})
		ok = false
	}
	if !ok {
		cfg = o.Initial.Clone()
	}
	if len(o.Override) > 0 {
		next, err := cfg.Apply(o.Override)
		if err != nil {
			e.closeStores()
			return nil, fmt.Errorf("command-line configuration: %w", err)
		}
		cfg = next
	}
	e.cfg = cfg
	if err := e.stores[running].SaveConfig(cfg); err != nil {
		e.closeStores()
		return nil, err
	}
	e.setRolesLocked()
	if err := e.recoverAtStart(); err != nil {
		e.closeStores()
		return nil, err
	}
	if err := e.checkSource(&alarms); err != nil {
		e.closeStores()
		return nil, err
	}
	e.collector = NewCollector(o.Board, e.stores[e.st.Source], o.Clock, o.Log)
	for _, a := range alarms {
		e.emit(a)
	}
	return e, nil
}

func (e *Engine) closeStores() {
	for i, s := range e.stores {
		if s != nil {
			s.Close()
			e.stores[i] = nil
		}
	}
}

// Close closes both stores.
func (e *Engine) Close() error {
	e.roundMu.Lock()
	defer e.roundMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closeStores()
	return nil
}

// setRolesLocked derives source and destination from the running image and
// the configuration.
func (e *Engine) setRolesLocked() {
	running := e.o.Images.Active()
	e.st.Running, e.st.Stale = running, running.Other()
	e.st.Paused = ""
	if e.cfg.Source == SourcePrimary {
		e.st.Source, e.st.Dest = flash.Primary, flash.Backup
		if running != flash.Primary {
			e.st.Paused = "source is \"primary\" but the backup image runs: the primary's data is stale; set source to \"running\" to sync backup -> primary"
		}
	} else {
		e.st.Source, e.st.Dest = running, running.Other()
	}
}

// quarantine moves a corrupt store aside and returns the new name.
func quarantine(path string, now time.Time) (string, error) {
	moved := fmt.Sprintf("%s.corrupt-%s", path, now.UTC().Format("20060102T150405.000"))
	if err := os.Rename(path, moved); err != nil {
		return "", err
	}
	return moved, durable.SyncDir(strings.TrimSuffix(path, "/"+flash.StoreFile))
}

// restoreFrom copies the store file of slot from onto slot to (which must be
// closed / quarantined), durably.
func (e *Engine) restoreFrom(from, to flash.Slot) error {
	src := e.stores[from]
	tmp := e.o.Areas.StorePath(to) + ".restore"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = src.view(func(tx *bolt.Tx) error { _, err := tx.WriteTo(f); return err })
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, e.o.Areas.StorePath(to))
	}
	if err == nil {
		err = durable.SyncDir(e.o.Areas.Dir(to))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// recoverAtStart rolls back a round that was cut (S4) and checks the
// destination; a destination that fails its checks is rebuilt.
func (e *Engine) recoverAtStart() error {
	dst := e.stores[e.st.Dest]
	js, err := dst.Journal()
	if err == nil && js.Intent != nil {
		var rb *Rollback
		rb, err = e.finishRollback(dst, js.Intent, "start-up", "the CMC stopped during the round (crash, kill or power cut)", 0, false)
		if err == nil {
			e.st.RecoveredAtRun = rb
			return nil
		}
	}
	if err == nil {
		var checks map[Category]CategoryCheck
		if checks, err = dst.Check(); err == nil {
			err = matchesRound(checks, js.Last)
		}
	}
	if err != nil {
		return e.rebuildDest(err)
	}
	if js.Last != nil {
		e.st.LastRound = js.Last
		e.st.LastRoundEnd = js.Last.Ended
		e.st.NextGroup = js.Last.Group + 1
	}
	return nil
}

// matchesRound checks that every record is intact and the store holds
// exactly the committed round's fingerprint matrix. A store that never
// received a round (a former source, stale after a take-over) is checked
// for intact records only.
func matchesRound(checks map[Category]CategoryCheck, last *RoundRecord) error {
	var want Matrix
	what := "no round"
	if last != nil {
		want, what = last.Matrix, fmt.Sprintf("committed round %d", last.ID)
	}
	return matchesMatrix(checks, want, what)
}

func matchesMatrix(checks map[Category]CategoryCheck, want Matrix, what string) error {
	for _, cat := range Categories {
		c := checks[cat]
		if !c.OK() {
			return fmt.Errorf("%w: category %s: %d bad records, stored sum %s, computed %s", ErrCorrupt, cat, len(c.BadKeys), c.Stored.FP, c.Computed.FP)
		}
		if want != nil && c.Computed != want[cat] {
			return fmt.Errorf("%w: category %s holds %s (%d records), %s has %s (%d records)", ErrCorrupt, cat, c.Computed.FP, c.Computed.Records, what, want[cat].FP, want[cat].Records)
		}
	}
	return nil
}

// rebuildDest moves a failed destination store aside and starts a fresh one
// that the next (repair) round fills from the source.
func (e *Engine) rebuildDest(cause error) error {
	slot := e.st.Dest
	e.stores[slot].Close()
	moved, err := quarantine(e.o.Areas.StorePath(slot), e.o.Clock.Now())
	if err != nil {
		return fmt.Errorf("%s store failed its check (%v) and could not be moved aside: %w", slot, cause, err)
	}
	s, err := OpenStore(e.o.Areas.StorePath(slot), slot, StoreOptions{MaxSize: e.o.MaxSize})
	if err != nil {
		return err
	}
	e.stores[slot] = s
	e.st.RepairPending = true
	e.emit(Event{Kind: "Alarm", Severity: "Critical", Message: fmt.Sprintf(
		"%s data store failed verification (%v); moved to %s, the next round rebuilds it from the %s store", slot, cause, moved, e.st.Source)})
	return nil
}

// checkSource verifies the source store; corrupt records are replaced from
// the destination (never the other way round).
func (e *Engine) checkSource(alarms *[]Event) error {
	checks, err := e.stores[e.st.Source].Check()
	if err != nil {
		return err
	}
	for _, cat := range Categories {
		if c := checks[cat]; !c.OK() {
			n, err := e.repairSource()
			if err != nil {
				return err
			}
			*alarms = append(*alarms, Event{Kind: "Alarm", Severity: "Critical", Message: fmt.Sprintf(
				"%s data store had corrupt records; %d records restored from the %s store", e.st.Source, n, e.st.Dest)})
			return nil
		}
	}
	return nil
}

// repairSource replaces every corrupt source record by the destination's
// copy (or drops it when the destination has none) and fixes the sums.
func (e *Engine) repairSource() (int, error) {
	src, dst := e.stores[e.st.Source], e.stores[e.st.Dest]
	fixed := 0
	err := src.update(func(tx *bolt.Tx) error {
		checks := recompute(tx)
		return dst.view(func(dtx *bolt.Tx) error {
			for _, cat := range Categories {
				b := tx.Bucket([]byte(cat))
				for _, k := range checks[cat].BadKeys {
					fixed++
					good := dtx.Bucket([]byte(cat)).Get([]byte(k))
					if len(good) >= FPSize {
						fp := recordFP(cat, []byte(k), good[FPSize:])
						if bytes.Equal(fp[:], good[:FPSize]) {
							if err := b.Put([]byte(k), append([]byte(nil), good...)); err != nil {
								return err
							}
							continue
						}
					}
					if err := b.Delete([]byte(k)); err != nil {
						return err
					}
				}
			}
			// Recompute the sums from the repaired records.
			meta := tx.Bucket(bucketMeta)
			for cat, c := range recompute(tx) {
				if err := meta.Put([]byte(cat), c.Computed.encode()); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err == nil && e.collector != nil {
		e.collector.SetStore(src)
	}
	return fixed, err
}

// finishRollback completes the rollback of a cut round: it verifies that the
// destination equals the last committed round (the cut round's writes are
// gone), removes the intent, journals the rollback and re-initialises the
// configuration from the last committed round.
func (e *Engine) finishRollback(dst *Store, in *Intent, where, reason string, wait time.Duration, backupStarted bool) (*Rollback, error) {
	js, err := dst.Journal()
	if err != nil {
		return nil, err
	}
	checks, err := dst.Check()
	if err != nil {
		return nil, err
	}
	// The cut round's writes must be gone: the destination holds exactly
	// what it held when the round started (= the last committed round).
	want, what := in.Before, fmt.Sprintf("the state before round %d", in.Round)
	if want == nil {
		if js.Last != nil {
			want = js.Last.Matrix
		}
		what = fmt.Sprintf("round %d", in.Base)
	}
	if err := matchesMatrix(checks, want, what); err != nil {
		return nil, fmt.Errorf("rollback of round %d: %w", in.Round, err)
	}
	rb := &Rollback{Round: in.Round, Base: in.Base, Time: e.o.Clock.Now().UTC(), Where: where, Reason: reason,
		Verified: true, ResponseWait: Duration(wait), BackupStarted: backupStarted}
	b, _ := json.Marshal(rb)
	err = dst.update(func(tx *bolt.Tx) error {
		j := tx.Bucket(bucketJournal)
		if err := j.Delete(keyIntent); err != nil {
			return err
		}
		if err := j.Put(rollbackKey(in.Round), b); err != nil {
			return err
		}
		return trimJournal(j, "x/", journalKeep)
	})
	if err != nil {
		return nil, err
	}
	e.st.RolledBack++
	msg := fmt.Sprintf("round %d rolled back (%s): %s; %s store verified at round %d", in.Round, where, reason, dst.Slot, in.Base)
	e.emit(Event{Kind: "RoundRolledBack", Severity: "Warning", Message: msg, Round: in.Round})
	if js.Last != nil {
		e.st.LastRound = js.Last
		e.st.LastRoundEnd = js.Last.Ended
		if diff := e.cfg.Diff(js.Last.Config); len(diff) > 0 {
			e.cfg = js.Last.Config.Clone()
			e.cfg.normalise()
			e.setRolesLocked()
			if err := e.stores[e.st.Running].SaveConfig(e.cfg); err != nil {
				return rb, err
			}
			e.emit(Event{Kind: "ConfigChanged", Severity: "Warning", Round: js.Last.ID, Message: fmt.Sprintf(
				"configuration re-initialised from round %d after the rollback (options reset: %s)", js.Last.ID, strings.Join(diff, ", "))})
		}
	}
	return rb, nil
}

// ---- events ----

func (e *Engine) emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = e.o.Clock.Now().UTC()
	}
	if ev.Severity == "" {
		ev.Severity = "OK"
	}
	if s := e.stores[e.st.Running]; s != nil {
		if stored, err := s.AppendEvent(ev); err == nil {
			ev = stored
		}
	}
	level := slog.LevelInfo
	if ev.Severity != "OK" {
		level = slog.LevelWarn
	}
	e.log.Log(context.Background(), level, ev.Message, "event", ev.Kind, "round", ev.Round)
	for _, ch := range e.subs {
		select {
		case ch <- ev:
		default: // a slow subscriber loses events rather than stalling rounds
		}
	}
}

// Subscribe returns a channel of events and a function to unsubscribe.
func (e *Engine) Subscribe() (<-chan Event, func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := make(chan Event, 64)
	id := e.nextSub
	e.nextSub++
	e.subs[id] = ch
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, ok := e.subs[id]; ok {
			delete(e.subs, id)
			close(ch)
		}
	}
}

// Alarm records an alarm raised by another part of the CMC.
func (e *Engine) Alarm(severity, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.emit(Event{Kind: "Alarm", Severity: severity, Message: msg})
}

// ---- accessors ----

// Config returns the configuration in force.
func (e *Engine) Config() Config {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg.Clone()
}

// UpdateConfig applies a change (option name -> JSON value). A refused
// change returns an *OptionError and leaves the configuration in force.
func (e *Engine) UpdateConfig(patch map[string]json.RawMessage) (Config, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	next, err := e.cfg.Apply(patch)
	if err != nil {
		return e.cfg.Clone(), err
	}
	diff := e.cfg.Diff(next)
	if len(diff) == 0 {
		return e.cfg.Clone(), nil
	}
	if err := e.stores[e.st.Running].SaveConfig(next); err != nil {
		return e.cfg.Clone(), fmt.Errorf("save configuration: %w", err)
	}
	e.cfg = next
	e.setRolesLocked()
	e.emit(Event{Kind: "ConfigChanged", Message: "sync configuration changed: " + strings.Join(diff, ", ")})
	select {
	case e.cfgChange <- struct{}{}:
	default:
	}
	return e.cfg.Clone(), nil
}

// State returns the sync state.
func (e *Engine) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}

// Store returns the running image's store, the one readers use.
func (e *Engine) Store() *Store {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stores[e.st.Running]
}

// StoreOf returns a slot's store.
func (e *Engine) StoreOf(s flash.Slot) *Store {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stores[s]
}

// Collector returns the collector (to force a refresh after a change on
// the board, e.g. a cleared SEL).
func (e *Engine) Collector() *Collector { return e.collector }

func (e *Engine) setError(err error) {
	if err == nil {
		return
	}
	e.st.LastError = err.Error()
	e.st.LastErrorTime = e.o.Clock.Now().UTC()
}
