package pair

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// The fast path of a takeover after the active's process died (fast.go).
//
// Raft notices a dead leader only when its heartbeat timer runs out
// (HeartbeatTimeout..2×HeartbeatTimeout), and a voter that still knows a
// leader refuses to vote for anyone else until its own timer ran out too;
// with the witness that is the larger of two random timers. A process that
// dies, however, is visible at once: its kernel closes its connections
// (FIN or RST on every connection it had opened to us, on both paths) and
// refuses new ones on its raft port. So:
//
//  1. When a connection the current leader had opened to this module is
//     closed or reset by the remote side, the standby dials the leader's
//     raft port on every path. A "connection refused" on a path is proof
//     that nothing listens there any more: the leader's process is gone
//     (it listens on all paths, and its listeners close together). A path
//     that connects, or only times out, is no proof: nothing happens, and
//     raft's own timers decide as before (a frozen or cut-off active).
//  2. With the proof, the standby starts an election at once, through
//     raft's own leadership-transfer entry point: it sends itself a
//     TimeoutNow RPC over the (authenticated) transport. The vote request
//     of such an election carries raft's leadership-transfer flag, so the
//     witness grants it although its own timer has not run out yet. Term
//     and log checks are unchanged: raft's safety does not depend on the
//     leader stickiness this skips, only its liveness does, and the leader
//     it skips is dead.
//  3. While the election runs, the standby probes the floating address;
//     if it is still answered (the dead process's kernel still holds it),
//     it fences the dead module (the peer reset H5 asks of a failed
//     active anyway) — so the fence, the slowest step, overlaps the
//     election instead of following it.
//  4. The takeover then runs as always (Barrier, probe, fence if the
//     address still answers, address), using the pre-fence's result: the
//     probe after a successful fence of the proven-dead module, or after a
//     probe nobody answered, waits quickProbeWait instead of the full
//     probe wait, since the only host that could still answer is the one
//     proven gone and fenced. Any answer still means: fence, or no
//     address.
//
// A false trigger (a connection closed for another reason) costs one dial.

// goneProof records that a module's process was proven gone.
type goneProof struct {
	peer string
	at   time.Time
}

// goneWindow is how long a proof counts for the takeover that follows.
const goneWindow = 5 * time.Second

func (n *Node) goneRecently(peer string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gone.peer == peer && time.Since(n.gone.at) < goneWindow
}

// remoteClosed is the stream layer's report of a connection the remote
// side closed.
func (n *Node) remoteClosed(remote net.Addr) {
	if n.self.Witness || n.cfg.NoFastTakeover {
		return
	}
	n.rmu.RLock()
	r := n.r
	n.rmu.RUnlock()
	if r == nil || r.State() != raft.Follower {
		return
	}
	_, lid := r.LeaderWithID()
	leader := n.peerModule()
	if string(lid) != leader.ID || !leader.hasHost(remote) {
		return
	}
	n.mu.Lock()
	if n.proving {
		n.mu.Unlock()
		return
	}
	n.proving = true
	n.mu.Unlock()
	go func() {
		defer func() {
			n.mu.Lock()
			n.proving = false
			n.mu.Unlock()
		}()
		t0 := time.Now()
		if !n.proveGone(leader) {
			return
		}
		n.mu.Lock()
		n.gone = goneProof{peer: leader.ID, at: time.Now()}
		n.mu.Unlock()
		if n.twoNode {
			// One voter of two cannot be elected: the watchdog fences
			// the dead module and takes over alone, now at once
			// (twonode.go).
			n.log.Warn("pair: two-node mode: the active module's process is gone (its raft port refuses connections); fencing it now",
				"peer", leader.ID, "proof", time.Since(t0).Round(100*time.Microsecond).String())
			select {
			case n.kick <- struct{}{}:
			default:
			}
			return
		}
		if _, lid := r.LeaderWithID(); r.State() != raft.Follower || (lid != "" && string(lid) != leader.ID) {
			return
		}
		n.log.Warn("pair: the active module's process is gone (its raft port refuses connections); electing now",
			"peer", leader.ID, "proof", time.Since(t0).Round(100*time.Microsecond).String())
		n.startPrefence(leader.ID)
		n.electNow()
	}()
}

// hasHost reports whether addr's IP is one of the peer's path addresses.
func (p Peer) hasHost(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	for _, a := range p.Addrs {
		if h, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(h); ip != nil && ip.Equal(ta.IP) {
				return true
			}
		}
	}
	return false
}

// proveGone dials every path of peer's raft port (plain TCP: the question
// is only whether anything listens). A refusal on any path is the proof;
// a path that connects disproves it for now — tried again every 15 ms for
// proveWindow, since the kernel of a dying process (many threads, a
// loaded CMC) can close its connections before its listeners; timeouts
// prove nothing.
func (n *Node) proveGone(peer Peer) bool {
	deadline := time.Now().Add(proveWindow)
	for try := 0; ; try++ {
		if try > 0 {
			if time.Now().After(deadline) {
				n.log.Debug("pair: the active's raft port still accepts; no proof of a crash", "peer", peer.ID)
				return false
			}
			time.Sleep(15 * time.Millisecond)
		}
		type res struct{ refused, connected bool }
		out := make(chan res, len(peer.Addrs))
		for _, a := range peer.Addrs {
			go func(a string) {
				c, err := net.DialTimeout("tcp", a, n.cfg.Timing.Transport)
				if err == nil {
					c.Close()
				}
				out <- res{refused: errors.Is(err, syscall.ECONNREFUSED), connected: err == nil}
			}(a)
		}
		connected := false
		for range peer.Addrs {
			r := <-out
			if r.connected {
				connected = true
			}
			if r.refused && !connected {
				// One process holds every listener: a refusal on one
				// path is enough, no need to wait for a slow path.
				return true
			}
		}
		if !connected {
			return false
		}
	}
}

// proveWindow is how long proveGone keeps trying while the port accepts.
const proveWindow = 150 * time.Millisecond

// electNow starts an election on this module at once (raft's
// leadership-transfer entry point, see above).
func (n *Node) electNow() {
	self := raft.ServerAddress(multiAddr(n.self.Addrs).String())
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax,
		ID: []byte(n.cfg.ID), Addr: []byte(self)}}
	var resp raft.TimeoutNowResponse
	trans, _ := n.transport()
	if err := trans.TimeoutNow(raft.ServerID(n.cfg.ID), self, req, &resp); err != nil {
		n.log.Warn("pair: immediate election", "err", err)
		return
	}
	n.mu.Lock()
	n.fastElections++
	n.mu.Unlock()
}

// prefence is the probe-and-fence a standby runs when it proved the
// active's process gone (step 3 above).
type prefence struct {
	peer   string
	done   chan struct{}
	fenced bool
	err    error
}

// fencedBefore records a fence of a proven-dead peer that already
// happened (two-node mode: the watchdog's), for the takeover that follows.
func (n *Node) fencedBefore(peer string) {
	p := &prefence{peer: peer, done: make(chan struct{}), fenced: true}
	close(p.done)
	n.mu.Lock()
	n.pre = p
	n.mu.Unlock()
}

func (n *Node) startPrefence(peer string) {
	a := n.cfg.Address
	if a == nil {
		return
	}
	p := &prefence{peer: peer, done: make(chan struct{})}
	n.mu.Lock()
	n.pre = p
	n.mu.Unlock()
	go func() {
		defer close(p.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		inUse, err := a.Probe(ctx)
		switch {
		case err != nil:
			p.err = err
		case inUse && n.cfg.Fencer == nil:
			p.err = errors.New("floating address still answered and no fencer")
		case inUse:
			n.log.Warn("pair: the dead active's address still answers; fencing it", "peer", peer)
			if p.err = n.cfg.Fencer.Fence(ctx, peer); p.err == nil {
				n.log.Info("pair: pre-fence done", "peer", peer)
				p.fenced = true
				n.mu.Lock()
				n.fences++
				n.mu.Unlock()
			}
		}
	}()
}

// takePrefence waits for a recent pre-fence of peer and returns it (nil:
// none).
func (n *Node) takePrefence(peer string) *prefence {
	n.mu.Lock()
	p := n.pre
	n.pre = nil
	n.mu.Unlock()
	if p == nil || p.peer != peer || !n.goneRecently(peer) {
		return nil
	}
	<-p.done
	return p
}
