package syncsel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"

	"cmcd/board"
)

// Record keys. Items (a PSU, a fan, a node, a FRU) are keyed by their
// 1-based number as two digits ("00" is the enclosure's FRU). The logs (SEL,
// fault log) are stored in blocks of logBlockSize entries keyed
// "slot/block": a new entry rewrites one block, so a round that carries k
// new entries writes O(k) pages, while a full log is ~60 records, not
// thousands.
const logBlockSize = 64

func itemKey(n int) []byte { return []byte(fmt.Sprintf("%02d", n)) }

func blockKey(slot int, block uint64) []byte { return []byte(fmt.Sprintf("%02d/%08x", slot, block)) }

func slotPrefix(slot int) []byte { return []byte(fmt.Sprintf("%02d/", slot)) }

// logItem is one log entry inside a block.
type logItem struct {
	Seq  uint64          `json:"s"`
	Key  string          `json:"k"`
	Data json.RawMessage `json:"d"`
}

// Logged is a log entry with the sequence number the CMC gave it; the
// sequence number is the entry's stable id (BMC record ids are reused).
type Logged[T any] struct {
	Seq   uint64
	Entry T
}

func decodeBlock(v []byte) ([]logItem, error) {
	if len(v) < FPSize {
		return nil, fmt.Errorf("%w: short record", ErrCorrupt)
	}
	var items []logItem
	if err := json.Unmarshal(v[FPSize:], &items); err != nil {
		return nil, fmt.Errorf("%w: log block: %v", ErrCorrupt, err)
	}
	return items, nil
}

func readItems[T any](s *Store, cat Category) ([]T, error) {
	var out []T
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(cat)).ForEach(func(k, v []byte) error {
			if len(v) < FPSize {
				return fmt.Errorf("%w: %s/%s: short record", ErrCorrupt, cat, k)
			}
			var x T
			if err := json.Unmarshal(v[FPSize:], &x); err != nil {
				return fmt.Errorf("%w: %s/%s: %v", ErrCorrupt, cat, k, err)
			}
			out = append(out, x)
			return nil
		})
	})
	return out, err
}

func readLog[T any](s *Store, cat Category, slot int) ([]Logged[T], error) {
	var out []Logged[T]
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(cat)).Cursor()
		p := slotPrefix(slot)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			items, err := decodeBlock(v)
			if err != nil {
				return err
			}
			for _, it := range items {
				var x T
				if err := json.Unmarshal(it.Data, &x); err != nil {
					return fmt.Errorf("%w: %s/%s: %v", ErrCorrupt, cat, k, err)
				}
				out = append(out, Logged[T]{Seq: it.Seq, Entry: x})
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, err
}

// PSUs returns the stored PSU records.
func (s *Store) PSUs() ([]board.PSU, error) { return readItems[board.PSU](s, CatPSU) }

// Fans returns the stored fan records.
func (s *Store) Fans() ([]board.Fan, error) { return readItems[board.Fan](s, CatFan) }

// Nodes returns the stored node records.
func (s *Store) Nodes() ([]board.Node, error) { return readItems[board.Node](s, CatNode) }

// AssetRecord is a stored FRU: Slot 0 is the enclosure.
type AssetRecord struct {
	Slot int       `json:"slot"`
	FRU  board.FRU `json:"fru"`
}

// Assets returns the stored FRU records (slot 0 = enclosure).
func (s *Store) Assets() ([]AssetRecord, error) { return readItems[AssetRecord](s, CatAsset) }

// SEL returns a node's stored SEL, oldest first.
func (s *Store) SEL(slot int) ([]Logged[board.SELEntry], error) {
	return readLog[board.SELEntry](s, CatSEL, slot)
}

// Faults returns a node's stored fault log, oldest first.
func (s *Store) Faults(slot int) ([]Logged[board.Fault], error) {
	return readLog[board.Fault](s, CatFault, slot)
}

// Count returns the number of records and entries of a category (for logs,
// entries across all blocks).
func (s *Store) Count(cat Category) (records, entries int, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(cat)).ForEach(func(k, v []byte) error {
			records++
			if cat == CatSEL || cat == CatFault {
				items, err := decodeBlock(v)
				if err != nil {
					return err
				}
				entries += len(items)
			} else {
				entries++
			}
			return nil
		})
	})
	return
}

// logIndex is the collector's in-memory view of one node's log: the keys
// of the stored entries with their sequence numbers and content hashes.
type logIndex struct {
	next uint64
	pos  map[string]logPos
}

type logPos struct {
	seq  uint64
	hash FP
}

func loadLogIndex(tx *bolt.Tx, cat Category, slot int) (*logIndex, error) {
	idx := &logIndex{next: 1, pos: map[string]logPos{}}
	c := tx.Bucket([]byte(cat)).Cursor()
	p := slotPrefix(slot)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		items, err := decodeBlock(v)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", cat, k, err)
		}
		for _, it := range items {
			idx.pos[it.Key] = logPos{seq: it.Seq, hash: recordFP(cat, []byte(it.Key), it.Data)}
			if it.Seq >= idx.next {
				idx.next = it.Seq + 1
			}
		}
	}
	return idx, nil
}

// logInput is an entry offered by the board.
type logInput struct {
	key  string
	data []byte
}

// applyLog makes the stored log of one node equal to entries (oldest
// first): new keys are appended with new sequence numbers, changed ones
// rewritten in place, vanished ones (cleared or overwritten on the BMC)
// removed. Only the touched blocks are rewritten. It returns the number of
// entries added, changed and removed.
func applyLog(w *catWriter, idx *logIndex, slot int, entries []logInput) (added, changed, removed int, err error) {
	type op struct {
		item   *logItem // new content, nil = remove
		seq    uint64
		remove bool
	}
	ops := map[uint64][]op{} // block -> ops
	present := make(map[string]struct{}, len(entries))
	for i := range entries {
		e := entries[i]
		present[e.key] = struct{}{}
		h := recordFP(w.cat, []byte(e.key), e.data)
		if p, ok := idx.pos[e.key]; ok {
			if p.hash == h {
				continue
			}
			ops[p.seq/logBlockSize] = append(ops[p.seq/logBlockSize], op{item: &logItem{Seq: p.seq, Key: e.key, Data: e.data}, seq: p.seq})
			idx.pos[e.key] = logPos{seq: p.seq, hash: h}
			changed++
			continue
		}
		seq := idx.next
		idx.next++
		ops[seq/logBlockSize] = append(ops[seq/logBlockSize], op{item: &logItem{Seq: seq, Key: e.key, Data: e.data}, seq: seq})
		idx.pos[e.key] = logPos{seq: seq, hash: h}
		added++
	}
	for k, p := range idx.pos {
		if _, ok := present[k]; !ok {
			ops[p.seq/logBlockSize] = append(ops[p.seq/logBlockSize], op{seq: p.seq, remove: true})
			delete(idx.pos, k)
			removed++
		}
	}
	blocks := make([]uint64, 0, len(ops))
	for b := range ops {
		blocks = append(blocks, b)
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i] < blocks[j] })
	for _, b := range blocks {
		key := blockKey(slot, b)
		var items []logItem
		if v := w.b.Get(key); v != nil {
			if items, err = decodeBlock(v); err != nil {
				return 0, 0, 0, err
			}
		}
		bySeq := make(map[uint64]int, len(items))
		for i, it := range items {
			bySeq[it.Seq] = i
		}
		drop := map[uint64]bool{}
		for _, o := range ops[b] {
			switch i, ok := bySeq[o.seq]; {
			case o.remove:
				drop[o.seq] = true
			case ok:
				items[i] = *o.item
			default:
				items = append(items, *o.item)
				bySeq[o.seq] = len(items) - 1
			}
		}
		kept := items[:0]
		for _, it := range items {
			if !drop[it.Seq] {
				kept = append(kept, it)
			}
		}
		sort.Slice(kept, func(i, j int) bool { return kept[i].Seq < kept[j].Seq })
		if len(kept) == 0 {
			err = w.delete(key)
		} else {
			var payload []byte
			if payload, err = json.Marshal(kept); err == nil {
				_, err = w.put(key, payload)
			}
		}
		if err != nil {
			return 0, 0, 0, err
		}
	}
	return added, changed, removed, nil
}
