package pair

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// Two-node mode (no witness). Raft cannot elect a leader with one of two
// voters, so the survivor of a failure takes over only after it has fenced
// its peer: once the peer is known to be off (the Fencer returned nil) the
// survivor rewrites its raft configuration to itself alone
// (raft.RecoverCluster) and elects itself. Safety: a configuration change
// without consensus is only safe when the removed voter can never act
// again, which is exactly what the fence guarantees; the non-preset module
// waits FenceDelay before fencing so that a split (both alive, link cut)
// ends with one fence, not two. When the fenced peer comes back and
// answers, the leader adds it back as a voter; until then it runs alone.
// When the peer's process was proven gone (fast.go: its raft port refuses
// connections), the survivor fences it at once, without the silence wait
// or FenceDelay — a dead process cannot fence back — and elects itself at
// once.

// watchdog runs on each module in two-node mode.
func (n *Node) watchdog() {
	defer n.wg.Done()
	after := 2 * n.cfg.Timing.Heartbeat
	tick := time.NewTicker(n.cfg.Timing.Heartbeat / 4)
	defer tick.Stop()
	silent := func() bool {
		r := n.raft()
		if r.State() == raft.Leader || !n.peerIsVoter(r) {
			return false // leading, or already alone (fenced peer removed): nothing to fence
		}
		if n.goneRecently(n.peerModule().ID) {
			return true // its process was proven gone (fast.go): no need to wait
		}
		last := r.LastContact()
		if s := n.started.Add(n.cfg.StartGrace); last.Before(s) {
			last = s
		}
		return time.Since(last) > after
	}
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		case <-n.kick:
		}
		if !silent() {
			continue
		}
		peer := n.peerModule().ID
		proven := n.goneRecently(peer) // a dead process cannot fence us back: no delay
		if n.preset() != n.cfg.ID && !proven {
			select {
			case <-n.stop:
				return
			case <-time.After(n.cfg.FenceDelay):
			}
			if !silent() {
				continue
			}
		}
		n.log.Warn("pair: two-node mode: peer silent; fencing it before taking over", "peer", peer)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := n.cfg.Fencer.Fence(ctx, peer)
		cancel()
		if err != nil {
			n.log.Error("pair: fence failed; not taking over", "peer", peer, "err", err)
			continue
		}
		n.mu.Lock()
		n.fences++
		n.mu.Unlock()
		if err := n.recoverAlone(); err != nil {
			n.log.Error("pair: recover as single voter", "err", err)
			continue
		}
		if proven {
			// Elect the lone voter at once instead of after raft's
			// heartbeat timeout; the takeover's probe knows the fence
			// is done.
			n.fencedBefore(peer)
			n.electNow()
		}
	}
}

// peerIsVoter reports whether the other module is a voter in r's current
// configuration. After recoverAlone it is not, and a new fence would only
// restart raft again before it could elect itself.
func (n *Node) peerIsVoter(r *raft.Raft) bool {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return true
	}
	peer := n.peerModule().ID
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == peer && s.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}

// recoverAlone restarts raft with this module as the only voter.
func (n *Node) recoverAlone() error {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	if err := n.r.Shutdown().Error(); err != nil {
		return err
	}
	// Shutdown closed the transport (and its listeners): open it again,
	// or the peer could never reach this module when it comes back.
	trans, stream, err := newTransport(n.cfg.Listen, n.stream.tls, n.cfg.Timing.Transport, n.log, n.remoteClosed)
	if err != nil {
		return err
	}
	n.trans, n.stream = trans, stream
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.ID),
		Address: raft.ServerAddress(multiAddr(n.self.Addrs).String())}}}
	if err := raft.RecoverCluster(n.rconf, NewFSM(n.cfg.Sealer, nil, n.log), n.logs, n.logs, n.snaps, n.trans, conf); err != nil {
		return err
	}
	r, err := raft.NewRaft(n.rconf, n.fsm, n.logs, n.logs, n.snaps, n.trans)
	if err != nil {
		return err
	}
	n.r = r
	n.log.Warn("pair: two-node mode: peer fenced; running as the only voter")
	return nil
}

// maybeReadd adds the other module back as a voter once it answers again.
func (n *Node) maybeReadd(r *raft.Raft) {
	if time.Since(n.lastTransfer) < 500*time.Millisecond {
		return
	}
	n.lastTransfer = time.Now()
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	peer := n.peerModule()
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == peer.ID {
			return
		}
	}
	addr := raft.ServerAddress(multiAddr(peer.Addrs).String())
	_, stream := n.transport()
	c, err := stream.Dial(addr, n.cfg.Timing.Transport)
	if err != nil {
		return
	}
	c.Close()
	n.log.Info("pair: two-node mode: peer answers again; adding it back as a voter", "peer", peer.ID)
	if err := r.AddVoter(raft.ServerID(peer.ID), addr, 0, 5*time.Second).Error(); err != nil {
		n.log.Warn("pair: add peer back", "err", err)
	}
}
