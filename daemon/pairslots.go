package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"cmcd/ipmisrv"
	"cmcd/pair"
	"cmcd/redfish"
)

// Replicated slots beyond the sync configuration and the accounts (H3,
// D3): the Redfish sessions (slot "sessions") and the pair-wide firmware
// state (slot "firmware", daemon/pairfw.go). Their owners (the Redfish
// server, the firmware service) exist only after the pair has started and
// may already have been handed replicated values (log replay, snapshot):
// such a value is kept and applied when the owner attaches.
//
// Publishing: a Redfish write is answered only after every slot's new
// value is committed (Handler, as for config and accounts); changes made
// elsewhere — an IPMI account command, a session expiring or its last use
// moving on, the accounts hook — kick the publisher, which replicates them
// on the active (IPMI account commands also wait for it, through the
// ipmisrv write gate).

// extSlot is one replicated slot with its local owner.
type extSlot struct {
	export func() ([]byte, error) // the local state to replicate
	apply  func([]byte) error     // make the local state the replicated one
}

// slotExt holds the extra slots.
type slotExt struct {
	mu      sync.Mutex
	slots   map[string]*extSlot
	pending map[string][]byte
}

func newSlotExt() *slotExt {
	return &slotExt{slots: map[string]*extSlot{}, pending: map[string][]byte{}}
}

// known lists the slots this daemon understands.
var extSlotNames = []string{pair.SlotSessions, pair.SlotFirmware}

// apply hands a replicated value to its owner, or keeps it until the
// owner attaches; handled is false for a slot name it does not know.
func (x *slotExt) apply(slot string, plain []byte) (handled bool, err error) {
	if x == nil {
		return false, nil
	}
	known := false
	for _, n := range extSlotNames {
		known = known || n == slot
	}
	if !known {
		return false, nil
	}
	x.mu.Lock()
	s := x.slots[slot]
	if s == nil {
		x.pending[slot] = bytes.Clone(plain)
		x.mu.Unlock()
		return true, nil
	}
	x.mu.Unlock()
	return true, s.apply(plain)
}

// attach registers a slot's owner and applies a value that came first.
func (x *slotExt) attach(slot string, s *extSlot) error {
	x.mu.Lock()
	x.slots[slot] = s
	p, ok := x.pending[slot]
	delete(x.pending, slot)
	x.mu.Unlock()
	if ok {
		return s.apply(p)
	}
	return nil
}

func (x *slotExt) each(fn func(name string, s *extSlot) error) error {
	x.mu.Lock()
	names := make([]string, 0, len(x.slots))
	for n := range x.slots {
		names = append(names, n)
	}
	x.mu.Unlock()
	for _, n := range extSlotNames {
		for _, have := range names {
			if have == n {
				x.mu.Lock()
				s := x.slots[n]
				x.mu.Unlock()
				if err := fn(n, s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// publishExt replicates every attached slot whose local state differs
// from the replicated one. Callers hold wmu.
func (m *pairModule) publishExt() error {
	return m.ext.each(func(name string, s *extSlot) error {
		want, err := s.export()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if cur, ok, _ := m.node.FSM().Get(name); ok && bytes.Equal(cur, want) {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = m.node.Put(ctx, name, want)
		return err
	})
}

// revertExt re-applies the replicated value of every attached slot.
func (m *pairModule) revertExt() {
	_ = m.ext.each(func(name string, s *extSlot) error {
		if cur, ok, err := m.node.FSM().Get(name); ok && err == nil {
			if err := s.apply(cur); err != nil {
				m.log.Error("pair: revert", "slot", name, "err", err)
			}
		}
		return nil
	})
}

// kickPublish asks the publisher for a run (non-blocking: safe from hooks
// that run under their owner's lock).
func (m *pairModule) kickPublish() {
	if m == nil {
		return
	}
	select {
	case m.pubKick <- struct{}{}:
	default:
	}
}

// publishAll replicates accounts and the extra slots now, on the active;
// on failure the local state is reverted to the replicated one.
func (m *pairModule) publishAll() error {
	if m.node.Role() != pair.RoleActive {
		return nil // a standby's changes are imports of the active's
	}
	return m.publishNow()
}

// publishNow is publishAll for a change this module just made and must
// not acknowledge unreplicated (an IPMI account command): a module that
// lost the active role meanwhile reverts it and fails.
func (m *pairModule) publishNow() error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	err := m.publishAccounts()
	if err == nil {
		err = m.publishExt()
	}
	if err != nil {
		m.revert()
	}
	return err
}

// publishLoop runs publishAll whenever kicked, until ctx ends.
func (m *pairModule) publishLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.pubKick:
		}
		if err := m.publishAll(); err != nil {
			m.log.Warn("pair: change not replicated; reverted", "err", err)
		}
	}
}

// startExtras starts what the extra slots need (called by startPair).
func (m *pairModule) startExtras(ctx context.Context) {
	m.acct.SetChangeHook(m.kickPublish)
	go m.publishLoop(ctx)
}

// attachRedfish replicates the Redfish sessions through the pair.
func (m *pairModule) attachRedfish(rf *redfish.Server) error {
	if m == nil {
		return nil
	}
	err := m.ext.attach(pair.SlotSessions, &extSlot{
		export: func() ([]byte, error) { return json.Marshal(rf.ExportSessions()) },
		apply: func(b []byte) error {
			var st redfish.SessionState
			if err := json.Unmarshal(b, &st); err != nil {
				return err
			}
			return rf.ImportSessions(st)
		},
	})
	rf.SetSessionsHook(m.kickPublish)
	m.load.touch = rf.TouchSession // routed reads keep a session's idle timer here (daemon/pairload.go)
	return err
}

// ipmiGate is the IPMI write gate: writes only on the active, account
// changes replicated before the answer.
func (m *pairModule) ipmiGate() ipmisrv.WriteGate {
	return ipmisrv.WriteGate{
		Writable:  func() bool { return m.node.Role() == pair.RoleActive },
		Replicate: func(context.Context) error { return m.publishNow() },
	}
}

// ipmiGateOrNil is ipmiGate for a module in a pair, nil without one.
func (m *pairModule) ipmiGateOrNil() *ipmisrv.WriteGate {
	if m == nil {
		return nil
	}
	g := m.ipmiGate()
	return &g
}
