package vip

import (
	"context"
	"sync"
	"time"
)

// FakeNet is an in-memory network segment: which members have the
// address configured. A member that "crashes" keeps it (as a dead process
// leaves the address on its interface) until Drop, the fake fence.
type FakeNet struct {
	mu      sync.Mutex
	holders map[string]bool
	Peak    int // the most members that ever held the address at once
}

// NewFakeNet returns an empty segment.
func NewFakeNet() *FakeNet { return &FakeNet{holders: map[string]bool{}} }

// Member returns the holder for member id.
func (n *FakeNet) Member(id string) *Fake { return &Fake{net: n, id: id} }

// Holders lists the members holding the address.
func (n *FakeNet) Holders() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for id, h := range n.holders {
		if h {
			out = append(out, id)
		}
	}
	return out
}

// Drop removes the address from member id (what a fence does to a board).
func (n *FakeNet) Drop(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.holders, id)
}

// Fake is one member's AddressHolder.
type Fake struct {
	net *FakeNet
	id  string
}

// Probe reports whether another member holds the address.
func (f *Fake) Probe(context.Context) (bool, error) {
	f.net.mu.Lock()
	defer f.net.mu.Unlock()
	for id, h := range f.net.holders {
		if h && id != f.id {
			return true, nil
		}
	}
	return false, nil
}

// ProbeWithin is Probe (the fake answers at once).
func (f *Fake) ProbeWithin(ctx context.Context, _ time.Duration) (bool, error) { return f.Probe(ctx) }

// Acquire takes the address.
func (f *Fake) Acquire(context.Context) error {
	f.net.mu.Lock()
	defer f.net.mu.Unlock()
	f.net.holders[f.id] = true
	n := 0
	for _, h := range f.net.holders {
		if h {
			n++
		}
	}
	f.net.Peak = max(f.net.Peak, n)
	return nil
}

// Release gives it up.
func (f *Fake) Release() error { f.net.Drop(f.id); return nil }

// Held reports whether this member holds it.
func (f *Fake) Held() bool {
	f.net.mu.Lock()
	defer f.net.mu.Unlock()
	return f.net.holders[f.id]
}
