package redfish

import (
	"fmt"
	"sync"
)

// FakePair is a PairView for tests: a pair whose state the test sets. Its
// hand-over swaps the roles of the two modules, as a completed
// leadership transfer would.
type FakePair struct {
	mu        sync.Mutex
	st        PairState
	handovers []string // "by -> peer", in order
	done      chan struct{}
}

// NewFakePair returns a fake pair of module self (active) and peer
// (standby, in sync, heard).
func NewFakePair(self, peer string) *FakePair {
	f := &FakePair{done: make(chan struct{}, 16)}
	f.st = PairState{
		Self: PairModule{ID: self, Known: true, Role: "active", Term: 2, Leader: self, CommitIndex: 10, AppliedIndex: 10,
			InSync: true, HoldsAddress: true, Fingerprint: "fp10"},
		Peer: PairModule{ID: peer, Known: true, Role: "standby", Term: 2, Leader: self, CommitIndex: 10, AppliedIndex: 10,
			InSync: true, Fingerprint: "fp10"},
		Witness: "W",
	}
	return f
}

// Set changes the state under the fake's lock.
func (f *FakePair) Set(fn func(*PairState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.st)
}

// PairState implements PairView.
func (f *FakePair) PairState() PairState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// PrepareFailover implements PairView with the daemon's rules: this
// module active, peer the other module, heard and in sync.
func (f *FakePair) PrepareFailover(peer, by string) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.st.Self.Role != "active":
		return nil, fmt.Errorf("%w: module %s is %s", ErrPairNotActive, f.st.Self.ID, f.st.Self.Role)
	case peer != f.st.Peer.ID:
		return nil, fmt.Errorf("%w: %s is not the other module", ErrPairPeerNotReady, peer)
	case !f.st.Peer.Known || !f.st.Peer.InSync || f.st.Peer.AppliedIndex < f.st.Self.CommitIndex:
		return nil, fmt.Errorf("%w: module %s is not in sync", ErrPairPeerNotReady, peer)
	}
	return func() {
		f.mu.Lock()
		f.handovers = append(f.handovers, by+" -> "+peer)
		f.st.Self.Role, f.st.Peer.Role = "standby", "active"
		f.st.Self.HoldsAddress, f.st.Peer.HoldsAddress = false, true
		f.st.Self.Leader, f.st.Peer.Leader = peer, peer
		f.mu.Unlock()
		f.done <- struct{}{}
	}, nil
}

// Handovers returns the hand-overs run so far ("user -> module").
func (f *FakePair) Handovers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.handovers...)
}

// Done receives once per completed hand-over.
func (f *FakePair) Done() <-chan struct{} { return f.done }
