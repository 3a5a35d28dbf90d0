package syncsel

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"cmcd/flash"
	"cmcd/internal/durable"
)

// Bucket names besides the six category buckets.
var (
	bucketMeta    = []byte("meta")    // per-category fingerprint sums and counts
	bucketJournal = []byte("journal") // round records, intent, rollbacks
	bucketConfig  = []byte("config")  // the configuration in force
	bucketCMCLog  = []byte("cmclog")  // the CMC's own event log (not synced)
)

var (
	keyLast    = []byte("last")
	keyIntent  = []byte("intent")
	keyCurrent = []byte("current")
)

// ErrCorrupt marks a store whose file or records fail their checks.
var ErrCorrupt = errors.New("store corrupt")

// FPSize is the size of a record fingerprint.
const FPSize = 16

// FP is a 128-bit fingerprint: of a record, a truncated SHA-256 of its
// category, key and payload; of a category, the sum (mod 2^128) of its
// records' fingerprints, which can be updated per record.
type FP [FPSize]byte

func (f FP) String() string { return hex.EncodeToString(f[:]) }

// MarshalText implements encoding.TextMarshaler.
func (f FP) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *FP) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != FPSize {
		return fmt.Errorf("fingerprint %q: want %d hex digits", b, 2*FPSize)
	}
	_, err := hex.Decode(f[:], b)
	return err
}

func (f FP) add(g FP) FP {
	hi, lo := binary.BigEndian.Uint64(f[:8]), binary.BigEndian.Uint64(f[8:])
	ghi, glo := binary.BigEndian.Uint64(g[:8]), binary.BigEndian.Uint64(g[8:])
	lo2 := lo + glo
	carry := uint64(0)
	if lo2 < lo {
		carry = 1
	}
	var out FP
	binary.BigEndian.PutUint64(out[:8], hi+ghi+carry)
	binary.BigEndian.PutUint64(out[8:], lo2)
	return out
}

func (f FP) sub(g FP) FP {
	hi, lo := binary.BigEndian.Uint64(f[:8]), binary.BigEndian.Uint64(f[8:])
	ghi, glo := binary.BigEndian.Uint64(g[:8]), binary.BigEndian.Uint64(g[8:])
	borrow := uint64(0)
	if lo < glo {
		borrow = 1
	}
	var out FP
	binary.BigEndian.PutUint64(out[:8], hi-ghi-borrow)
	binary.BigEndian.PutUint64(out[8:], lo-glo)
	return out
}

// recordFP is the fingerprint of one record.
func recordFP(cat Category, key, payload []byte) FP {
	h := sha256.New()
	h.Write([]byte(cat))
	h.Write([]byte{0})
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(key)))
	h.Write(n[:])
	h.Write(key)
	h.Write(payload)
	var sum [sha256.Size]byte
	var out FP
	copy(out[:], h.Sum(sum[:0]))
	return out
}

// CatFP is a category's fingerprint and record count (one row of the
// fingerprint matrix, V2).
type CatFP struct {
	FP      FP     `json:"fp"`
	Records uint64 `json:"records"`
}

func (c CatFP) encode() []byte {
	b := make([]byte, FPSize+8)
	copy(b, c.FP[:])
	binary.BigEndian.PutUint64(b[FPSize:], c.Records)
	return b
}

func decodeCatFP(b []byte) CatFP {
	var c CatFP
	if len(b) == FPSize+8 {
		copy(c.FP[:], b)
		c.Records = binary.BigEndian.Uint64(b[FPSize:])
	}
	return c
}

// Matrix is the fingerprint matrix of a store: one row per category.
type Matrix map[Category]CatFP

// Equal reports whether two matrices agree on the given categories (all
// when cats is empty).
func (m Matrix) Equal(o Matrix, cats ...Category) bool {
	if len(cats) == 0 {
		cats = Categories
	}
	for _, c := range cats {
		if m[c] != o[c] {
			return false
		}
	}
	return true
}

// Store is one image's data store: a bbolt file in that image's data area.
type Store struct {
	db   *bolt.DB
	path string
	Slot flash.Slot
}

// StoreOptions tune OpenStore.
type StoreOptions struct {
	ReadOnly bool
	// Timeout bounds the wait for the file lock (another process has it open).
	Timeout time.Duration
	// MaxSize caps the file size (bbolt MaxSize) on small flash areas; 0 = no cap.
	MaxSize int
}

// OpenStore opens (or, unless read-only, creates) the store at path. A file
// that bbolt cannot open, or whose structure fails a quick check, yields an
// error wrapping ErrCorrupt.
func OpenStore(path string, slot flash.Slot, o StoreOptions) (s *Store, err error) {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	info, statErr := os.Stat(path)
	creating := errors.Is(statErr, os.ErrNotExist)
	if statErr == nil && cutShortAtCreation(info) {
		// Nothing was ever committed to it: as good as absent.
		if o.ReadOnly {
			return nil, fmt.Errorf("store %s: %w (%d bytes: its creation was cut short)", path, os.ErrNotExist, info.Size())
		}
		if err := os.Truncate(path, 0); err != nil {
			return nil, fmt.Errorf("store %s: %w", path, err)
		}
		creating = true
	}
	if creating && o.ReadOnly {
		return nil, fmt.Errorf("store %s: %w", path, os.ErrNotExist)
	}
	// A truncated or garbled file makes bbolt touch unmapped memory: turn
	// that fault into a panic, and the panic into ErrCorrupt.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store %s: %w: %v", path, ErrCorrupt, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      o.Timeout,
		ReadOnly:     o.ReadOnly,
		FreelistType: bolt.FreelistMapType,
		MaxSize:      o.MaxSize,
		// Address space only: avoids re-mapping the file as it grows
		// during a large round.
		InitialMmapSize: 256 << 20,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("store %s is in use by another process (is cmcd running?): %w", path, err)
		}
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("store %s: %w", path, err)
		}
		return nil, fmt.Errorf("store %s: %w: %v", path, ErrCorrupt, err)
	}
	// Grow the file 1 MiB at a time: flash data areas are small.
	db.AllocSize = 1 << 20
	s = &Store{db: db, path: path, Slot: slot}
	if err := checkSize(db, path); err != nil {
		db.Close()
		return nil, err
	}
	if !o.ReadOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, name := range allBuckets() {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil && creating {
			err = durable.SyncDir(filepath.Dir(path))
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("store %s: initialise: %w", path, err)
		}
	}
	return s, nil
}

// checkSize refuses a file shorter than its committed high-water mark
// (a truncated copy or a short write that lost pages).
func checkSize(db *bolt.DB, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			return fmt.Errorf("store %s: %w: file is %d bytes, its pages reach %d (truncated)", path, ErrCorrupt, fi.Size(), tx.Size())
		}
		return nil
	})
}

func allBuckets() [][]byte {
	out := [][]byte{bucketMeta, bucketJournal, bucketConfig, bucketCMCLog}
	for _, c := range Categories {
		out = append(out, []byte(c))
	}
	return out
}

// cutShortAtCreation reports whether a store file is shorter than the four
// pages bbolt writes (and fsyncs) when it creates a database, before any
// transaction: a kill or power cut at the first start left it so. bbolt
// never shrinks a file, so such a file never held a committed transaction.
func cutShortAtCreation(info os.FileInfo) bool {
	return info.Size() < 4*int64(os.Getpagesize())
}

// uninitialised reports whether the store holds no bucket at all (a file
// whose first transaction was lost).
func (s *Store) uninitialised() bool {
	empty := true
	s.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
	})
	return empty
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// bytesAllocated is the total of page bytes this store's write transactions
// allocated so far (what they wrote, meta pages excepted).
func (s *Store) bytesAllocated() int64 {
	st := s.db.Stats()
	return st.TxStats.GetPageAlloc()
}

func (s *Store) pageSize() int { return s.db.Info().PageSize }

// catWriter applies record changes to one category bucket inside a write
// transaction and keeps the category fingerprint current.
type catWriter struct {
	cat  Category
	b    *bolt.Bucket
	meta *bolt.Bucket
	sum  CatFP
}

func newCatWriter(tx *bolt.Tx, cat Category) *catWriter {
	meta := tx.Bucket(bucketMeta)
	return &catWriter{cat: cat, b: tx.Bucket([]byte(cat)), meta: meta, sum: decodeCatFP(meta.Get([]byte(cat)))}
}

// put stores payload under key unless the stored record is identical; it
// reports whether it wrote.
func (w *catWriter) put(key, payload []byte) (bool, error) {
	fp := recordFP(w.cat, key, payload)
	old := w.b.Get(key)
	if len(old) >= FPSize && bytes.Equal(old[:FPSize], fp[:]) {
		return false, nil
	}
	v := make([]byte, FPSize+len(payload))
	copy(v, fp[:])
	copy(v[FPSize:], payload)
	return true, w.putValue(key, v, old)
}

// putValue stores an already fingerprinted value (fp || payload); old is
// the current value or nil.
func (w *catWriter) putValue(key, value, old []byte) error {
	var fp FP
	copy(fp[:], value)
	if old != nil {
		var ofp FP
		copy(ofp[:], old)
		w.sum.FP = w.sum.FP.sub(ofp)
	} else {
		w.sum.Records++
	}
	w.sum.FP = w.sum.FP.add(fp)
	return w.b.Put(key, value)
}

func (w *catWriter) delete(key []byte) error {
	old := w.b.Get(key)
	if old == nil {
		return nil
	}
	var ofp FP
	copy(ofp[:], old)
	w.sum.FP = w.sum.FP.sub(ofp)
	w.sum.Records--
	return w.b.Delete(key)
}

func (w *catWriter) flush() error { return w.meta.Put([]byte(w.cat), w.sum.encode()) }

// matrixTx reads the stored fingerprint matrix.
func matrixTx(tx *bolt.Tx) Matrix {
	m := Matrix{}
	meta := tx.Bucket(bucketMeta)
	for _, c := range Categories {
		m[c] = decodeCatFP(meta.Get([]byte(c)))
	}
	return m
}

// Matrix returns the store's fingerprint matrix as recorded.
func (s *Store) Matrix() (Matrix, error) {
	var m Matrix
	err := s.view(func(tx *bolt.Tx) error { m = matrixTx(tx); return nil })
	return m, err
}

// view runs fn in a read transaction, turning a bbolt panic on a corrupt
// page into an error.
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store %s: %w: %v", s.path, ErrCorrupt, r)
		}
	}()
	return s.db.View(fn)
}

// update runs fn in a write transaction, turning a bbolt panic into an error.
func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store %s: %w: %v", s.path, ErrCorrupt, r)
		}
	}()
	return s.db.Update(fn)
}

// CategoryCheck is the result of recomputing one category's fingerprints.
type CategoryCheck struct {
	Stored   CatFP    `json:"stored"`
	Computed CatFP    `json:"computed"`
	BadKeys  []string `json:"badKeys,omitempty"`
}

// OK reports whether every record and the category sum check out.
func (c CategoryCheck) OK() bool { return len(c.BadKeys) == 0 && c.Stored == c.Computed }

// recompute recomputes every record fingerprint and the category sums.
func recompute(tx *bolt.Tx) map[Category]CategoryCheck {
	out := map[Category]CategoryCheck{}
	meta := tx.Bucket(bucketMeta)
	for _, cat := range Categories {
		chk := CategoryCheck{Stored: decodeCatFP(meta.Get([]byte(cat)))}
		b := tx.Bucket([]byte(cat))
		if b == nil {
			chk.BadKeys = append(chk.BadKeys, "(bucket missing)")
			out[cat] = chk
			continue
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) < FPSize {
				chk.BadKeys = append(chk.BadKeys, string(k))
				continue
			}
			fp := recordFP(cat, k, v[FPSize:])
			if !bytes.Equal(fp[:], v[:FPSize]) {
				chk.BadKeys = append(chk.BadKeys, string(k))
			}
			var stored FP
			copy(stored[:], v)
			chk.Computed.FP = chk.Computed.FP.add(stored)
			chk.Computed.Records++
		}
		out[cat] = chk
	}
	return out
}

// Check recomputes every fingerprint of the store.
func (s *Store) Check() (map[Category]CategoryCheck, error) {
	var out map[Category]CategoryCheck
	err := s.view(func(tx *bolt.Tx) error { out = recompute(tx); return nil })
	return out, err
}

// StructureCheck runs bbolt's page-level consistency check.
func (s *Store) StructureCheck() error {
	return s.view(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
			if len(errs) > 10 {
				break
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w: %v", ErrCorrupt, errors.Join(errs...))
		}
		return nil
	})
}

// ---- journal ----

// RoundRecord is the journal entry of a committed round.
type RoundRecord struct {
	ID           uint64     `json:"id"`
	Started      time.Time  `json:"started"`
	Ended        time.Time  `json:"ended"`
	Reason       string     `json:"reason"` // schedule, demand, repair
	Group        int        `json:"group"`
	Categories   []Category `json:"categories"` // the group's selected categories
	Changed      []Category `json:"changed"`    // those that had changes
	Source       flash.Slot `json:"source"`
	Dest         flash.Slot `json:"dest"`
	Written      int        `json:"recordsWritten"`
	Deleted      int        `json:"recordsDeleted"`
	PayloadBytes int64      `json:"payloadBytes"` // keys and values the round wrote
	// Bytes is what the round wrote to the file (pages of the intent and
	// the round, and two meta pages); known only after the commit, so it
	// is not part of the journaled record.
	Bytes        int64    `json:"bytesWritten,omitempty"`
	ResponseWait Duration `json:"responseWait"` // longest primary probe answer seen
	Matrix       Matrix   `json:"fingerprints"` // the destination's whole matrix at commit
	Config       Config   `json:"config"`
}

// Intent is the durable "round N started" record.
type Intent struct {
	Round      uint64     `json:"round"`
	Base       uint64     `json:"base"` // last committed round when it started
	Started    time.Time  `json:"started"`
	Group      int        `json:"group"`
	Categories []Category `json:"categories"`
	Source     flash.Slot `json:"source"`
	Dest       flash.Slot `json:"dest"`
	// Before is the destination's fingerprint matrix when the round
	// started: what a rollback must restore.
	Before Matrix `json:"before"`
}

// Rollback is the journal entry of a round that was cut and rolled back.
type Rollback struct {
	Round         uint64    `json:"round"`
	Base          uint64    `json:"base"`
	Time          time.Time `json:"time"`
	Where         string    `json:"where"` // "abort" (in the running daemon) or "start-up"
	Reason        string    `json:"reason"`
	Verified      bool      `json:"verified"`
	ResponseWait  Duration  `json:"responseWait,omitempty"`
	BackupStarted bool      `json:"backupStarted,omitempty"`
}

func roundKey(id uint64) []byte    { return []byte(fmt.Sprintf("r/%016x", id)) }
func rollbackKey(id uint64) []byte { return []byte(fmt.Sprintf("x/%016x", id)) }

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putU64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// JournalState is what a store's journal says.
type JournalState struct {
	Last      *RoundRecord // last committed round (nil if none)
	Intent    *Intent      // a round that started and did not commit
	Rollbacks int
}

func journalTx(tx *bolt.Tx) (JournalState, error) {
	var st JournalState
	j := tx.Bucket(bucketJournal)
	if j == nil {
		return st, fmt.Errorf("%w: journal bucket missing", ErrCorrupt)
	}
	if last := u64(j.Get(keyLast)); last != 0 {
		var r RoundRecord
		if err := json.Unmarshal(j.Get(roundKey(last)), &r); err != nil {
			return st, fmt.Errorf("%w: round record %d: %v", ErrCorrupt, last, err)
		}
		st.Last = &r
	}
	if v := j.Get(keyIntent); v != nil {
		var in Intent
		if err := json.Unmarshal(v, &in); err != nil {
			return st, fmt.Errorf("%w: intent record: %v", ErrCorrupt, err)
		}
		st.Intent = &in
	}
	c := j.Cursor()
	for k, _ := c.Seek([]byte("x/")); k != nil && bytes.HasPrefix(k, []byte("x/")); k, _ = c.Next() {
		st.Rollbacks++
	}
	return st, nil
}

// Journal reads the store's journal state.
func (s *Store) Journal() (JournalState, error) {
	var st JournalState
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		st, err = journalTx(tx)
		return err
	})
	return st, err
}

// Rounds returns up to limit committed round records, newest first.
func (s *Store) Rounds(limit int) ([]RoundRecord, error) {
	return readJournal[RoundRecord](s, "r/", limit)
}

// Rollbacks returns up to limit rollback records, newest first.
func (s *Store) Rollbacks(limit int) ([]Rollback, error) {
	return readJournal[Rollback](s, "x/", limit)
}

// readJournal decodes up to limit journal records with a key prefix,
// newest first.
func readJournal[T any](s *Store, prefix string, limit int) ([]T, error) {
	var out []T
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJournal).Cursor()
		for k, v := lastWithPrefix(c, prefix); k != nil && bytes.HasPrefix(k, []byte(prefix)) && len(out) < limit; k, v = c.Prev() {
			var r T
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: journal record %s: %v", ErrCorrupt, k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// lastWithPrefix positions c on the last key with the given prefix (or on
// the key before where it would be).
func lastWithPrefix(c *bolt.Cursor, prefix string) ([]byte, []byte) {
	end := []byte(prefix)
	end[len(end)-1]++
	if k, _ := c.Seek(end); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// trimJournal keeps the newest keep records with the given prefix.
func trimJournal(j *bolt.Bucket, prefix string, keep int) error {
	c := j.Cursor()
	var keys [][]byte
	for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for len(keys) > keep {
		if err := j.Delete(keys[0]); err != nil {
			return err
		}
		keys = keys[1:]
	}
	return nil
}

// ---- configuration ----

// LoadConfig returns the configuration saved in the store, or ok=false.
func (s *Store) LoadConfig() (cfg Config, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketConfig).Get(keyCurrent)
		if v == nil {
			return nil
		}
		ok = true
		if err := json.Unmarshal(v, &cfg); err != nil {
			return fmt.Errorf("%w: saved configuration: %v", ErrCorrupt, err)
		}
		cfg.normalise()
		return cfg.Validate()
	})
	return cfg, ok, err
}

// SaveConfig saves the configuration (durably).
func (s *Store) SaveConfig(cfg Config) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketConfig).Put(keyCurrent, b) })
}

// ---- the CMC event log ----

// Event is one entry of the CMC's own event log, also published to
// subscribers (Redfish SSE).
type Event struct {
	ID       uint64    `json:"id"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`     // RoundCommitted, RoundRolledBack, BackupStarted, ConfigChanged, Alarm, ...
	Severity string    `json:"severity"` // OK, Warning, Critical
	Message  string    `json:"message"`
	Round    uint64    `json:"round,omitempty"`
}

const cmcLogKeep = 2000

// AppendEvent appends to the CMC event log and returns the stored event.
func (s *Store) AppendEvent(ev Event) (Event, error) {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCMCLog)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		ev.ID = id
		v, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if err := b.Put(putU64(id), v); err != nil {
			return err
		}
		if id > cmcLogKeep {
			c := b.Cursor()
			for k, _ := c.First(); k != nil && u64(k) <= id-cmcLogKeep; k, _ = c.First() {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return ev, err
}

// Events returns the CMC event log, oldest first.
func (s *Store) Events() ([]Event, error) {
	var out []Event
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCMCLog).ForEach(func(k, v []byte) error {
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("%w: event %d: %v", ErrCorrupt, u64(k), err)
			}
			out = append(out, ev)
			return nil
		})
	})
	return out, err
}

// ClearEvents empties the CMC event log.
func (s *Store) ClearEvents() error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCMCLog)
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.First() {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
