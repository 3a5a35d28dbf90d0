package pair

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// Slot names of the replicated state. Values of the sync configuration and
// account slots are whole states (the latest value is the state); "kv/..."
// slots are the generic acknowledged writes.
const (
	SlotConfig   = "config"
	SlotAccounts = "accounts"
	SlotSessions = "sessions" // Redfish sessions: token hashes, users, last use (daemon/pairslots.go)
	SlotFirmware = "firmware" // pair-wide firmware state: the S5 answer, activation requests (daemon/pairfw.go)
	SlotKVPrefix = "kv/"
)

// command is one raft log entry: a slot and its new sealed value.
type command struct {
	Slot   string `json:"slot"`
	Sealed []byte `json:"sealed"`
}

// Sink is where a module applies replicated values: the sync engine and
// the account store. The witness has none.
type Sink interface {
	// ApplySlot makes the module's local state hold plain for slot.
	ApplySlot(slot string, plain []byte) error
}

// applied is what FSM.Apply returns through the ApplyFuture.
type applied struct {
	index uint64
	err   error // the local Sink's error (the entry is committed regardless)
}

// FSM is the replicated state machine: a map from slot to sealed value,
// identical on all three voters (the witness keeps the sealed bytes it
// cannot open, so its snapshots can bring a module back too). On a module
// every applied value is opened and handed to the Sink.
type FSM struct {
	sealer *Sealer // nil on the witness
	sink   Sink    // nil on the witness
	log    *slog.Logger

	mu         sync.Mutex
	slots      map[string][]byte
	index      uint64 // last applied log index
	term       uint64 // term of that entry: the fencing token of the last write
	sinkErrors int
}

// NewFSM returns an FSM; sealer and sink are nil on the witness.
func NewFSM(sealer *Sealer, sink Sink, log *slog.Logger) *FSM {
	return &FSM{sealer: sealer, sink: sink, log: log, slots: map[string][]byte{}}
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil || c.Slot == "" {
		// Refused before it was proposed; nothing to apply.
		return applied{index: l.Index, err: fmt.Errorf("pair: bad command at index %d", l.Index)}
	}
	f.mu.Lock()
	f.slots[c.Slot] = c.Sealed
	f.mu.Unlock()
	err := f.deliver(c.Slot, c.Sealed)
	// The index moves on only once the Sink has the value: a module whose
	// LastApplied reached an index holds everything up to it locally (the
	// read index of routed reads, daemon/pairload.go). raft's own
	// AppliedIndex moves on when the entry is handed to the FSM, earlier.
	f.mu.Lock()
	f.index, f.term = l.Index, l.Term
	f.mu.Unlock()
	return applied{index: l.Index, err: err}
}

func (f *FSM) deliver(slot string, sealed []byte) error {
	if f.sink == nil {
		return nil
	}
	plain, err := f.sealer.Open(slot, sealed)
	if err == nil {
		err = f.sink.ApplySlot(slot, plain)
	}
	if err != nil {
		f.mu.Lock()
		f.sinkErrors++
		f.mu.Unlock()
		f.log.Error("pair: replicated value not applied locally", "slot", slot, "err", err)
	}
	return err
}

// Get returns the plain value of slot (ok false when the slot is empty).
// Only modules can open values.
func (f *FSM) Get(slot string) (plain []byte, ok bool, err error) {
	f.mu.Lock()
	sealed, ok := f.slots[slot]
	f.mu.Unlock()
	if !ok || f.sealer == nil {
		return nil, ok, nil
	}
	plain, err = f.sealer.Open(slot, sealed)
	return plain, true, err
}

// Slots returns the slot names, sorted.
func (f *FSM) Slots() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.slots))
	for k := range f.slots {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Fingerprint is a SHA-256 over every slot and its sealed value in slot
// order: equal on two voters exactly when they hold the same replicated
// state. Applied is the last applied index.
func (f *FSM) Fingerprint() (fp string, applied uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]string, 0, len(f.slots))
	for k := range f.slots {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s%d:", len(k), k, len(f.slots[k]))
		h.Write(f.slots[k])
	}
	return hex.EncodeToString(h.Sum(nil)), f.index
}

// LastApplied returns the index and term of the last applied entry.
func (f *FSM) LastApplied() (index, term uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index, f.term
}

// SinkErrors counts values that were committed but could not be applied locally.
func (f *FSM) SinkErrors() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sinkErrors
}

type snapshotData struct {
	Format int               `json:"format"`
	Index  uint64            `json:"index"`
	Term   uint64            `json:"term"`
	Slots  map[string][]byte `json:"slots"`
}

// Snapshot implements raft.FSM: the whole slot map (config, accounts,
// acknowledged writes), sealed as stored.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := snapshotData{Format: 1, Index: f.index, Term: f.term, Slots: make(map[string][]byte, len(f.slots))}
	for k, v := range f.slots {
		d.Slots[k] = v // values are never modified in place
	}
	return &fsmSnapshot{d: d}, nil
}

// Restore implements raft.FSM: a module that rejoins after a long absence
// gets the whole state in one batch (D6) and applies every slot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return fmt.Errorf("pair: snapshot: %w", err)
	}
	if d.Format != 1 {
		return fmt.Errorf("pair: snapshot format %d, this firmware reads 1", d.Format)
	}
	if d.Slots == nil {
		d.Slots = map[string][]byte{}
	}
	f.mu.Lock()
	f.slots, f.index, f.term = d.Slots, d.Index, d.Term
	f.mu.Unlock()
	keys := make([]string, 0, len(d.Slots))
	for k := range d.Slots {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f.deliver(k, d.Slots[k])
	}
	return nil
}

type fsmSnapshot struct{ d snapshotData }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.d); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
