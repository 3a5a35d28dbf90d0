package syncsel

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"cmcd/flash"
)

// Copying categories between stores of different modules (the redundant
// pair's fingerprint vote, SPEC V4): ExportCategories reads the whole
// content of some categories, each record with its stored fingerprint;
// ImportCategories makes a store's categories exactly that content.
//
// An import checks every record's fingerprint and each category's sum
// before it writes, then changes only the records that differ (puts and
// deletes) and keeps the category sums current, in ONE bbolt write
// transaction: a crash, kill or power cut leaves the store at the old or
// the new content, never in between, and the recorded sum is verified
// against the export's inside that transaction. A bad export is refused
// whole and changes nothing.

// ExportRecord is one stored record: Value is fingerprint || payload.
type ExportRecord struct {
	Key   []byte `json:"k"`
	Value []byte `json:"v"`
}

// CategoryExport is the content of one category of a store.
type CategoryExport struct {
	Category Category       `json:"category"`
	Sum      CatFP          `json:"sum"`
	Records  []ExportRecord `json:"records"`
}

// ErrBadExport marks an export that fails its checks.
var ErrBadExport = errors.New("bad category export")

// ExportCategories reads the content of cats in one read transaction.
func (s *Store) ExportCategories(cats []Category) ([]CategoryExport, error) {
	out := make([]CategoryExport, 0, len(cats))
	err := s.view(func(tx *bolt.Tx) error {
		m := matrixTx(tx)
		for _, c := range cats {
			if !c.Valid() {
				return fmt.Errorf("%w: unknown category %q", ErrBadExport, c)
			}
			ex := CategoryExport{Category: c, Sum: m[c]}
			err := tx.Bucket([]byte(c)).ForEach(func(k, v []byte) error {
				ex.Records = append(ex.Records, ExportRecord{Key: bytes.Clone(k), Value: bytes.Clone(v)})
				return nil
			})
			if err != nil {
				return err
			}
			out = append(out, ex)
		}
		return nil
	})
	return out, err
}

// check verifies every record's fingerprint and the category sum.
func (ex CategoryExport) check() error {
	if !ex.Category.Valid() {
		return fmt.Errorf("%w: unknown category %q", ErrBadExport, ex.Category)
	}
	var sum CatFP
	seen := make(map[string]bool, len(ex.Records))
	for _, r := range ex.Records {
		if len(r.Key) == 0 || len(r.Value) < FPSize || seen[string(r.Key)] {
			return fmt.Errorf("%w: %s/%q: empty, short or repeated record", ErrBadExport, ex.Category, r.Key)
		}
		seen[string(r.Key)] = true
		fp := recordFP(ex.Category, r.Key, r.Value[FPSize:])
		if !bytes.Equal(fp[:], r.Value[:FPSize]) {
			return fmt.Errorf("%w: %s/%s: fingerprint does not match the record", ErrBadExport, ex.Category, r.Key)
		}
		sum.FP = sum.FP.add(fp)
		sum.Records++
	}
	if sum != ex.Sum {
		return fmt.Errorf("%w: %s: the records sum to %s/%d, the export says %s/%d",
			ErrBadExport, ex.Category, sum.FP, sum.Records, ex.Sum.FP, ex.Sum.Records)
	}
	return nil
}

// ImportStats says what an import changed.
type ImportStats struct {
	Written int `json:"written"`
	Deleted int `json:"deleted"`
}

// importTx makes the categories of the store exactly the exports'.
func importTx(tx *bolt.Tx, exs []CategoryExport) (ImportStats, error) {
	var st ImportStats
	for _, ex := range exs {
		w := newCatWriter(tx, ex.Category)
		want := make(map[string]bool, len(ex.Records))
		for _, r := range ex.Records {
			want[string(r.Key)] = true
		}
		var drop [][]byte
		if err := w.b.ForEach(func(k, _ []byte) error {
			if !want[string(k)] {
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return st, err
		}
		for _, k := range drop {
			if err := w.delete(k); err != nil {
				return st, err
			}
			st.Deleted++
		}
		for _, r := range ex.Records {
			old := w.b.Get(r.Key)
			if old != nil && bytes.Equal(old[:min(len(old), FPSize)], r.Value[:FPSize]) {
				continue
			}
			if old != nil {
				old = bytes.Clone(old)
			}
			if err := w.putValue(r.Key, bytes.Clone(r.Value), old); err != nil {
				return st, err
			}
			st.Written++
		}
		if err := w.flush(); err != nil {
			return st, err
		}
		if got := decodeCatFP(tx.Bucket(bucketMeta).Get([]byte(ex.Category))); got != ex.Sum {
			return st, fmt.Errorf("%w: %s: after the import the store sums to %s/%d, want %s/%d",
				ErrCorrupt, ex.Category, got.FP, got.Records, ex.Sum.FP, ex.Sum.Records)
		}
	}
	return st, nil
}

// ImportCategories makes the store's categories exactly the exports' in
// one write transaction (see above). Use Engine.ImportCategories for a
// store the engine runs.
func (s *Store) ImportCategories(exs []CategoryExport) (ImportStats, error) {
	for _, ex := range exs {
		if err := ex.check(); err != nil {
			return ImportStats{}, err
		}
	}
	var st ImportStats
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		st, err = importTx(tx, exs)
		return err
	})
	if err != nil {
		return ImportStats{}, err
	}
	return st, nil
}

// ImportCategories imports into the store of slot, which must be the
// rounds' source area (the running one): the destination area only ever
// changes by journaled rounds, so that recovery and `cmcd verify` can
// check it against the last committed round. The import waits for a
// round in progress; when the collector writes the store, it is held off
// for the import and re-reads its log indexes from the store afterwards.
// The next round carries the imported content to the destination.
func (e *Engine) ImportCategories(slot flash.Slot, exs []CategoryExport) (ImportStats, error) {
	e.roundMu.Lock()
	defer e.roundMu.Unlock()
	e.mu.Lock()
	st := e.st
	store := e.stores[slot]
	e.mu.Unlock()
	if store == nil {
		return ImportStats{}, errors.New("engine closed")
	}
	if slot != st.Source {
		return ImportStats{}, fmt.Errorf("import into the %s area refused: it is the rounds' destination (rounds run %s -> %s)",
			slot, st.Source, st.Dest)
	}
	c := e.collector
	c.mu.Lock()
	defer c.mu.Unlock()
	res, err := store.ImportCategories(exs)
	if c.store == store {
		c.idx = map[string]*logIndex{}
	}
	if err == nil && (res.Written > 0 || res.Deleted > 0) {
		cats := make([]string, len(exs))
		for i, ex := range exs {
			cats[i] = string(ex.Category)
		}
		e.LogEvent("DataImported", "OK", fmt.Sprintf("the %s area took %v from the other module: %d records written, %d deleted",
			slot, cats, res.Written, res.Deleted))
	}
	return res, err
}
