package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cmcd/pair"
	"cmcd/redfish"
)

// The Redfish face of the pair (issue 8): pairRF is the redfish.PairView
// over the pair member. It never waits on the network when Redfish asks:
// a loop reads the other module's GET /cmcd/pair/status (signed, over
// PeerHTTP) every peerPoll and checks the witness's raft paths (TCP
// connect) every witnessPoll. Role changes (OnRole), fences (the node's
// fence count) and hand-overs go to the CMC event log as the Cmcd
// registry's pair messages (redfish.PairEventText), whence they reach the
// event stream. A module that took over asks the other one why
// (GET /cmcd/pair/handover: the hand-over it started, if any) to give
// its takeover a reason.

const (
	peerPoll      = 500 * time.Millisecond
	peerStale     = 2 * time.Second // a peer state older than this is not known
	witnessPoll   = 2 * time.Second
	handoverKeep  = time.Minute // a hand-over explains a takeover this long
	handoverRoute = "/cmcd/pair/handover"
)

// handover is a hand-over of the active role this module started.
type handover struct {
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

type pairRF struct {
	m       *pairModule
	self    string
	peer    string
	witness *pair.Peer
	vip     string
	roles   chan pair.Role

	mu           sync.Mutex
	peerSt       *pairStatus
	peerAt       time.Time
	peerFenced   bool
	fencesSeen   int
	lastOther    string    // the other module, once seen active
	standbyAt    time.Time // when this module last became standby (zero: never active)
	witnessOK    *bool
	lastTakeover *redfish.PairTakeoverInfo
	lastVote     *redfish.PairVoteInfo
	started      *handover // the last hand-over this module started
	takeBack     string    // a hand-over to this module failed: the next active role is this module's own again
	handing      time.Time // a ForceFailover was accepted and its hand-over has not ended
}

func newPairRF(m *pairModule, pc PairConfig) *pairRF {
	rf := &pairRF{m: m, self: pc.ID, vip: pc.VIP, roles: make(chan pair.Role, 16)}
	for _, p := range pc.Peers {
		switch {
		case p.Witness:
			w := p
			rf.witness = &w
		case p.ID != pc.ID:
			rf.peer = p.ID
		}
	}
	return rf
}

// onRole is the node's OnRole: queued, never blocking the node.
func (rf *pairRF) onRole(r pair.Role) {
	select {
	case rf.roles <- r:
	default:
		rf.m.log.Warn("pair: role event queue full; a role event is not logged", "role", r)
	}
}

func (rf *pairRF) event(kind, sev string, args ...string) {
	rf.m.eng.LogEvent(kind, sev, redfish.PairEventText(kind, args...))
}

// loop runs until ctx ends.
func (rf *pairRF) loop(ctx context.Context) {
	go rf.voteWatch(ctx)
	poll := time.NewTicker(peerPoll)
	defer poll.Stop()
	var lastWitness time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-rf.roles:
			rf.roleChanged(ctx, r)
			continue
		case <-poll.C:
		}
		rf.checkFences()
		rf.readPeer(ctx)
		if rf.witness != nil && time.Since(lastWitness) >= witnessPoll {
			lastWitness = time.Now()
			ok := dialAny(ctx, rf.witness.Addrs, 500*time.Millisecond)
			rf.mu.Lock()
			rf.witnessOK = &ok
			rf.mu.Unlock()
		}
	}
}

// voteWatch copies the fingerprint vote's last report every second: the
// arbiter's Last waits while a vote runs, which can be a minute when the
// other module hangs, and Redfish must not.
func (rf *pairRF) voteWatch(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep := rf.m.arb.Last()
		if rep == nil {
			continue
		}
		v := &redfish.PairVoteInfo{Time: rep.End, Reason: rep.Reason, Converged: rep.Converged, NoMajority: rep.NoMajority}
		for _, o := range rep.Outcomes {
			for _, d := range o.Disagree {
				if !slices.Contains(v.Disagreed, d) {
					v.Disagreed = append(v.Disagreed, d)
				}
			}
		}
		rf.mu.Lock()
		rf.lastVote = v
		rf.mu.Unlock()
	}
}

// dialAny reports whether any of addrs accepts a TCP connection.
func dialAny(ctx context.Context, addrs []string, timeout time.Duration) bool {
	for _, a := range addrs {
		d := net.Dialer{Timeout: timeout}
		if c, err := d.DialContext(ctx, "tcp", a); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// readPeer refreshes the other module's state.
func (rf *pairRF) readPeer(ctx context.Context) {
	var ps pairStatus
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	err := rf.m.peerDo(pctx, http.MethodGet, "/cmcd/pair/status", &ps)
	cancel()
	st := rf.m.node.Status()
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if st.Leader == rf.peer {
		rf.lastOther = rf.peer
	}
	if err != nil {
		return
	}
	rf.peerSt, rf.peerAt, rf.peerFenced = &ps, time.Now(), false
	if ps.Role == pair.RoleActive {
		rf.lastOther = rf.peer
	}
}

// checkFences logs each fence the node carried out since the last check.
func (rf *pairRF) checkFences() {
	st := rf.m.node.Status()
	rf.mu.Lock()
	n := st.Fences - rf.fencesSeen
	rf.fencesSeen = st.Fences
	if n > 0 {
		rf.peerFenced = true
	}
	rf.mu.Unlock()
	why := "another host still answered for the floating address when this module took over"
	if st.TwoNode {
		why = "two-node mode: it was silent, and a module takes over only after fencing the other"
	}
	for ; n > 0; n-- {
		rf.event(redfish.PairPeerFenced, "Critical", rf.self, rf.peer, why)
	}
}

func (rf *pairRF) roleChanged(ctx context.Context, r pair.Role) {
	rf.checkFences()
	switch r {
	case pair.RoleActive:
		st := rf.m.node.Status()
		rf.mu.Lock()
		prev, fenced, back, before := rf.lastOther, rf.peerFenced, rf.takeBack, rf.lastTakeover != nil
		if id, at := rf.m.node.LastOtherLeader(); prev == "" && id != "" && at.After(rf.standbyAt) {
			// raft named the other module leader since this module was
			// last active, before the 0.5 s peer poll saw it active.
			prev = id
		}
		rf.lastOther, rf.takeBack = "", "" // the other module counts as previous active only once seen active again
		rf.mu.Unlock()
		t := &redfish.PairTakeoverInfo{Time: time.Now().UTC(), Previous: prev, Work: st.TakeoverWork}
		switch {
		case back != "":
			t.Previous = ""
			t.Reason = "the hand-over to module " + back + " failed; this module took the role back"
			rf.event(redfish.PairBecameActive, "Warning", rf.self, t.Reason)
		case prev == "" && before:
			t.Reason = "elected again; no other module was active in between"
			rf.event(redfish.PairBecameActive, "OK", rf.self, t.Reason)
		case prev == "":
			t.Reason = "the pair formed: this module was elected first"
			rf.event(redfish.PairBecameActive, "OK", rf.self, t.Reason)
		default:
			t.Reason = rf.takeoverReason(ctx, prev, fenced)
			rf.event(redfish.PairTakeover, "Warning", rf.self, prev, t.Reason)
		}
		rf.mu.Lock()
		rf.lastTakeover = t
		rf.mu.Unlock()
	case pair.RoleStandby:
		rf.mu.Lock()
		rf.standbyAt = time.Now()
		h := rf.started
		rf.mu.Unlock()
		if h != nil && time.Since(h.Time) < handoverKeep {
			rf.event(redfish.PairBecameStandby, "OK", rf.self, "gives the active role to module "+h.To+" ("+h.Reason+")")
		} else {
			rf.event(redfish.PairBecameStandby, "Warning", rf.self, "lost the active role (lost its quorum or leadership)")
		}
	}
}

// takeoverReason asks the previous active why it gave the role up.
func (rf *pairRF) takeoverReason(ctx context.Context, prev string, fenced bool) string {
	if fenced {
		return "module " + prev + " was fenced: it did not give the floating address up"
	}
	var h handover
	qctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	err := rf.m.peerDo(qctx, http.MethodGet, handoverRoute, &h)
	cancel()
	switch {
	case err != nil:
		return "module " + prev + " did not answer (silent, killed or cut off)"
	case h.To == rf.self && time.Since(h.Time) < handoverKeep:
		return "module " + prev + " handed the role over (" + h.Reason + ")"
	}
	return "module " + prev + " gave the role up and still answers (it lost its quorum or its leadership)"
}

// handoverHandler is GET /cmcd/pair/handover for the other module: the
// last hand-over this module started (recent ones only; else {}), or the
// management-link hand-over of daemon/pairlink.go found in the event log.
func (rf *pairRF) handoverHandler(w http.ResponseWriter, r *http.Request) {
	if !rf.m.peerAuthorized(w, r) {
		return
	}
	rf.mu.Lock()
	h := rf.started
	rf.mu.Unlock()
	if h != nil && time.Since(h.Time) < handoverKeep {
		writeJSON(w, http.StatusOK, h)
		return
	}
	if evs, err := rf.m.eng.Store().Events(); err == nil {
		for i := len(evs) - 1; i >= 0; i-- {
			ev := evs[i]
			if time.Since(ev.Time) > handoverKeep {
				break
			}
			if ev.Kind == "PairFailover" {
				writeJSON(w, http.StatusOK, handover{To: rf.peer, Reason: ev.Message, Time: ev.Time})
				return
			}
		}
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// PairState implements redfish.PairView.
func (rf *pairRF) PairState() redfish.PairState {
	st := rf.m.node.Status()
	term, _ := strconv.ParseUint(st.Term, 10, 64)
	out := redfish.PairState{
		Self: redfish.PairModule{ID: rf.self, Known: true, Role: string(st.Role), RoleSince: st.RoleSince, Term: term,
			Leader: st.Leader, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, InSync: st.CanServeReads,
			HoldsAddress: st.HoldsAddress, Fingerprint: st.Fingerprint, Fences: st.Fences},
		TwoNode:         st.TwoNode,
		FloatingAddress: rf.vip,
	}
	if rf.m.uplink != nil {
		up := rf.m.uplink()
		out.Self.Uplink = &up
	}
	rf.mu.Lock()
	out.Peer = redfish.PairModule{ID: rf.peer, LastHeard: rf.peerAt, Fenced: rf.peerFenced}
	if p := rf.peerSt; p != nil && time.Since(rf.peerAt) < peerStale && !rf.peerFenced {
		pt, _ := strconv.ParseUint(p.Term, 10, 64)
		out.Peer = redfish.PairModule{ID: rf.peer, Known: true, LastHeard: rf.peerAt, Role: string(p.Role), RoleSince: p.RoleSince,
			Term: pt, Leader: p.Leader, CommitIndex: p.CommitIndex, AppliedIndex: p.AppliedIndex, InSync: p.CanServeReads,
			HoldsAddress: p.HoldsAddress, Fingerprint: p.Fingerprint, Fences: p.Fences, Uplink: p.Uplink}
	}
	if rf.witness != nil {
		out.Witness = rf.witness.ID
		out.WitnessReachable = rf.witnessOK
	}
	if t := rf.lastTakeover; t != nil {
		c := *t
		out.LastTakeover = &c
	}
	out.LastVote = rf.lastVote // replaced, never changed in place
	rf.mu.Unlock()
	if rf.m.load != nil {
		out.Reads = rf.m.load.redfishReads()
	}
	return out
}

// PrepareFailover implements redfish.PairView: this module must be the
// active one, peer the other module, and the other module — asked now,
// not from the cache — standby, in sync (applied at least this module's
// commit index, hearing this module), with its management link up.
func (rf *pairRF) PrepareFailover(peer, by string) (func(), error) {
	if rf.m.node.Role() != pair.RoleActive {
		return nil, fmt.Errorf("%w: module %s is %s", redfish.ErrPairNotActive, rf.self, rf.m.node.Role())
	}
	if peer != rf.peer {
		return nil, fmt.Errorf("%w: %s is not the other module (%s)", redfish.ErrPairPeerNotReady, peer, rf.peer)
	}
	local := rf.m.node.Status()
	var ps pairStatus
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := rf.m.peerDo(ctx, http.MethodGet, "/cmcd/pair/status", &ps)
	cancel()
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: module %s does not answer: %v", redfish.ErrPairPeerNotReady, peer, err)
	case ps.Role != pair.RoleStandby:
		return nil, fmt.Errorf("%w: module %s is %s, not standby", redfish.ErrPairPeerNotReady, peer, ps.Role)
	case !ps.CanServeReads || ps.AppliedIndex < local.CommitIndex:
		return nil, fmt.Errorf("%w: module %s is not in sync (applied %d, this module committed %d)",
			redfish.ErrPairPeerNotReady, peer, ps.AppliedIndex, local.CommitIndex)
	case ps.Uplink != nil && !*ps.Uplink:
		return nil, fmt.Errorf("%w: module %s has lost its management link", redfish.ErrPairPeerNotReady, peer)
	}
	rf.mu.Lock()
	busy := !rf.handing.IsZero() && time.Since(rf.handing) < 30*time.Second
	if !busy {
		rf.handing = time.Now()
	}
	rf.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("%w: a hand-over to module %s is under way", redfish.ErrPairNotActive, peer)
	}
	reason := "ForceFailover by Redfish user " + by
	return func() {
		defer func() {
			rf.mu.Lock()
			rf.handing = time.Time{}
			rf.mu.Unlock()
		}()
		if rf.m.node.Role() != pair.RoleActive {
			rf.m.log.Warn("pair: ForceFailover: no longer the active module; nothing to hand over", "to", peer)
			return
		}
		rf.mu.Lock()
		// takeBack before the transfer: when it fails, the node takes
		// the role back (it is still the leader) as soon as it can.
		rf.started, rf.takeBack = &handover{To: peer, Reason: reason, Time: time.Now()}, peer
		rf.mu.Unlock()
		rf.event(redfish.PairHandover, "OK", rf.self, peer, reason)
		err := rf.m.node.TransferLeadership()
		rf.mu.Lock()
		if err == nil {
			rf.takeBack = ""
		} else {
			rf.started = nil
		}
		rf.mu.Unlock()
		if err != nil {
			rf.m.log.Warn("pair: ForceFailover", "to", peer, "err", err)
			rf.event(redfish.PairHandoverFailed, "Warning", rf.self, peer, strings.TrimSpace(err.Error()))
		}
	}, nil
}

// redfishView is the pair for redfish.Options.Pair (nil without a pair).
func (m *pairModule) redfishView() redfish.PairView {
	if m == nil || m.rf == nil {
		return nil
	}
	return m.rf
}

// RedfishHandler wraps the pair's handler (Handler): the hand-over route
// for the other module, and redfish.AfterResponse so that a ForceFailover
// hands over only once its answer left through the floating address.
func (m *pairModule) RedfishHandler(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+handoverRoute, m.rf.handoverHandler)
	mux.Handle("/", h)
	return redfish.AfterResponse(mux)
}
