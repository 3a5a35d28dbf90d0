package syncsel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"cmcd/board"
	"cmcd/clock"
)

// Collector keeps the running image's data store current from the board.
// One pass reads every source (nodes in parallel, each bounded by a
// timeout), then applies all changes in one write transaction; a record is
// rewritten only when its content changed.
type Collector struct {
	board   *board.Chassis
	clock   clock.Clock
	log     *slog.Logger
	timeout time.Duration

	// pass serialises whole passes (read and apply), so that a pass
	// started after a board change (a cleared SEL) is never overtaken by
	// an older pass applying what it read before the change.
	pass sync.Mutex

	mu    sync.Mutex
	store *Store
	idx   map[string]*logIndex // "cat/slot"
}

// CollectStats describes one collection pass.
type CollectStats struct {
	Written     int
	Removed     int
	Unreachable []int
	Duration    time.Duration
}

// NewCollector makes a collector writing into store.
func NewCollector(b *board.Chassis, store *Store, clk clock.Clock, log *slog.Logger) *Collector {
	return &Collector{board: b, clock: clk, log: log, timeout: 5 * time.Second, store: store, idx: map[string]*logIndex{}}
}

// SetStore points the collector at another store (after the backup image
// has been started it is the running one).
func (c *Collector) SetStore(s *Store) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.store = s
	c.idx = map[string]*logIndex{}
}

type nodeRead struct {
	slot   int
	node   board.Node
	nodeOK bool
	sel    []board.SELEntry
	selOK  bool
	faults []board.Fault
	fltOK  bool
	fru    board.FRU
	fruOK  bool
	err    error
}

// Collect runs one pass.
func (c *Collector) Collect(ctx context.Context) (CollectStats, error) {
	c.pass.Lock()
	defer c.pass.Unlock()
	start := c.clock.Now()
	var st CollectStats
	psus, perr := c.board.Power.PSUs(ctx)
	fans, ferr := c.board.Fans.Fans(ctx)
	slots := c.board.Nodes.Slots()
	reads := make([]nodeRead, len(slots))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, slot := range slots {
		wg.Add(1)
		go func(i, slot int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			reads[i] = c.readNode(ctx, slot)
		}(i, slot)
	}
	wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.store.update(func(tx *bolt.Tx) error {
		if perr == nil {
			w := newCatWriter(tx, CatPSU)
			for _, p := range psus {
				if err := putJSON(w, itemKey(p.ID), p, &st); err != nil {
					return err
				}
			}
			if err := w.flush(); err != nil {
				return err
			}
		}
		if ferr == nil {
			w := newCatWriter(tx, CatFan)
			for _, f := range fans {
				if err := putJSON(w, itemKey(f.ID), f, &st); err != nil {
					return err
				}
			}
			if err := w.flush(); err != nil {
				return err
			}
		}
		nodes, sels, flts, assets := newCatWriter(tx, CatNode), newCatWriter(tx, CatSEL), newCatWriter(tx, CatFault), newCatWriter(tx, CatAsset)
		if err := putJSON(assets, itemKey(0), AssetRecord{Slot: 0, FRU: c.board.FRU}, &st); err != nil {
			return err
		}
		for _, r := range reads {
			node := r.node
			if !r.nodeOK {
				// Keep the last known record, marked unreachable.
				if v := nodes.b.Get(itemKey(r.slot)); len(v) > FPSize {
					_ = json.Unmarshal(v[FPSize:], &node)
				}
				node.Slot, node.Reachable = r.slot, false
				if node.Name == "" {
					node.Name = fmt.Sprintf("Node%d", r.slot)
				}
				node.Present = !errors.Is(r.err, board.ErrNoSuchNode)
				st.Unreachable = append(st.Unreachable, r.slot)
			}
			if err := putJSON(nodes, itemKey(r.slot), node, &st); err != nil {
				return err
			}
			if r.fruOK {
				if err := putJSON(assets, itemKey(r.slot), AssetRecord{Slot: r.slot, FRU: r.fru}, &st); err != nil {
					return err
				}
			}
			if r.selOK {
				if err := c.applyLog(tx, sels, r.slot, logInputs(r.sel), &st); err != nil {
					return err
				}
			}
			if r.fltOK {
				if err := c.applyLog(tx, flts, r.slot, logInputs(r.faults), &st); err != nil {
					return err
				}
			}
		}
		for _, w := range []*catWriter{nodes, sels, flts, assets} {
			if err := w.flush(); err != nil {
				return err
			}
		}
		return nil
	})
	st.Duration = c.clock.Now().Sub(start)
	if err != nil {
		c.idx = map[string]*logIndex{} // the indexes ran ahead of the store
		return st, fmt.Errorf("collect: %w", err)
	}
	if perr != nil || ferr != nil {
		return st, fmt.Errorf("collect: %w", errors.Join(perr, ferr))
	}
	return st, nil
}

// logInputs encodes log entries for applyLog.
func logInputs[T interface{ Key() string }](entries []T) []logInput {
	in := make([]logInput, len(entries))
	for i, e := range entries {
		b, _ := json.Marshal(e)
		in[i] = logInput{key: e.Key(), data: b}
	}
	return in
}

func (c *Collector) applyLog(tx *bolt.Tx, w *catWriter, slot int, in []logInput, st *CollectStats) error {
	k := fmt.Sprintf("%s/%d", w.cat, slot)
	idx := c.idx[k]
	if idx == nil {
		var err error
		if idx, err = loadLogIndex(tx, w.cat, slot); err != nil {
			return err
		}
	}
	added, changed, removed, err := applyLog(w, idx, slot, in)
	if err != nil {
		delete(c.idx, k) // reload from the store next time
		return err
	}
	c.idx[k] = idx
	st.Written += added + changed
	st.Removed += removed
	return nil
}

func (c *Collector) readNode(ctx context.Context, slot int) nodeRead {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r := nodeRead{slot: slot}
	r.node, r.err = c.board.Nodes.Node(ctx, slot)
	if r.err != nil {
		return r
	}
	r.nodeOK = true
	var err error
	if r.sel, err = c.board.Nodes.SEL(ctx, slot); err == nil {
		r.selOK = true
	}
	if r.faults, err = c.board.Nodes.Faults(ctx, slot); err == nil {
		r.fltOK = true
	}
	if r.fru, err = c.board.Nodes.FRU(ctx, slot); err == nil {
		r.fruOK = true
	}
	return r
}

func putJSON(w *catWriter, key []byte, v any, st *CollectStats) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	wrote, err := w.put(key, b)
	if wrote {
		st.Written++
	}
	return err
}

// Run collects every interval() until ctx ends.
func (c *Collector) Run(ctx context.Context, interval func() time.Duration) {
	for {
		st, err := c.Collect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("collection failed", "err", err)
		} else if len(st.Unreachable) > 0 {
			c.log.Debug("collected", "written", st.Written, "unreachable", st.Unreachable)
		}
		t := c.clock.NewTimer(interval())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}
