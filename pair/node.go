package pair

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Role is a voter's role in the pair.
type Role string

const (
	RoleActive  Role = "active"  // raft leader holding the floating address: serves writes
	RoleStandby Role = "standby" // follower module: applies the log, may serve reads when in sync
	RoleWitness Role = "witness" // the third voter: stores the log, applies nothing
)

// ErrNotActive is returned by Put on a module that is not the active one.
var ErrNotActive = errors.New("pair: this module is not the active one; send writes to the floating address")

// Peer is one voter.
type Peer struct {
	ID      string   `json:"id"`
	Addrs   []string `json:"addrs"` // every path to it: management address first, then the sync link
	Witness bool     `json:"witness,omitempty"`
}

// Timing holds the failure-detection settings. Raft's follower starts an
// election after Heartbeat..2*Heartbeat without contact; a leader steps
// down after Lease without hearing a quorum (Lease < Heartbeat, so an
// isolated active gives up its role before a new one can be elected).
type Timing struct {
	Heartbeat time.Duration
	Election  time.Duration
	Lease     time.Duration
	Commit    time.Duration
	Transport time.Duration // per-RPC network timeout
}

// DefaultTiming is tuned for a takeover well under a second on a loaded
// 2-core CMC.
func DefaultTiming() Timing {
	return Timing{Heartbeat: 200 * time.Millisecond, Election: 200 * time.Millisecond,
		Lease: 150 * time.Millisecond, Commit: 5 * time.Millisecond, Transport: 150 * time.Millisecond}
}

// Config configures a Node.
type Config struct {
	ID     string
	Dir    string   // raft log (raft.db) and snapshots
	Listen []string // local addresses raft listens on (one per path)
	Peers  []Peer   // every voter, this one included
	// Preset is the module that takes the active role at power-up when
	// both modules are up within PresetWindow of this node's start (D7);
	// empty: the first module of Peers.
	Preset       string
	PresetWindow time.Duration // default 60s
	Sealer       *Sealer       // modules: the pair key; nil on the witness
	// TransportKey authenticates the raft transport (TLS 1.3, mutual;
	// creds.go): TransportKey(pair key) on the modules, the same value
	// given to the witness as its own secret.
	TransportKey []byte
	Sink         Sink          // modules: where replicated values are applied
	Fencer       Fencer        // fences a peer module (required in two-node mode)
	Address      AddressHolder // the floating address; nil: none
	Timing       Timing        // zero: DefaultTiming
	// NoFastTakeover turns the fast path after a crash of the active off
	// (fast.go): raft's timers alone detect it (the benchmark's
	// comparison run).
	NoFastTakeover bool
	// FenceDelay: in two-node mode the non-preset module waits this long
	// before fencing, so that in a split both modules do not fence each
	// other at once (Pacemaker's priority-fencing-delay). Default 1s.
	FenceDelay time.Duration
	// StartGrace: in two-node mode, no fencing in the first StartGrace
	// after start, so a restarted module rejoins instead of fencing the
	// survivor. Default 5s.
	StartGrace        time.Duration
	SnapshotThreshold uint64 // log entries between snapshots (default 1024)
	TrailingLogs      uint64 // entries kept after a snapshot (default 256)
	Log               *slog.Logger
	// OnRole is called after every role change (after the address is
	// held, or after it was released).
	OnRole func(Role)
}

// Node is one voter of the pair.
type Node struct {
	cfg     Config
	self    Peer
	twoNode bool
	fsm     *FSM
	logs    *boltStore
	snaps   raft.SnapshotStore
	trans   *raft.NetworkTransport
	stream  *pathStream
	rconf   *raft.Config
	notify  chan bool     // raft's leadership changes: reconcile at once
	kick    chan struct{} // two-node mode: the peer's process was proven gone (fast.go)
	log     *slog.Logger
	started time.Time

	rmu sync.RWMutex
	r   *raft.Raft

	mu             sync.Mutex
	role           Role
	since          time.Time // when the current role began
	lastTakeover   time.Duration
	transferred    bool // the D7 transfer was tried
	fences         int
	takeovers      int       // times this node became active
	sawOtherLeader bool      // another module was active before: not a power-up formation
	otherLeader    string    // the last other module raft named leader
	otherLeaderAt  time.Time // when this module last saw it as leader
	lastTransfer   time.Time
	handingOver    atomic.Bool // TransferLeadership is under way: no takeover meanwhile
	gone           goneProof   // the other module's process was proven gone (fast.go)
	proving        bool
	pre            *prefence
	fastElections  int

	stop chan struct{}
	wg   sync.WaitGroup
}

// Start opens (or creates and bootstraps) the node's raft state and joins
// the pair.
func Start(cfg Config) (*Node, error) {
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming()
	}
	if cfg.PresetWindow == 0 {
		cfg.PresetWindow = time.Minute
	}
	if cfg.FenceDelay == 0 {
		cfg.FenceDelay = time.Second
	}
	if cfg.StartGrace == 0 {
		cfg.StartGrace = 5 * time.Second
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 1024
	}
	if cfg.TrailingLogs == 0 {
		cfg.TrailingLogs = 256
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	n := &Node{cfg: cfg, log: cfg.Log.With("pair", cfg.ID), started: time.Now(), stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	if err := n.check(); err != nil {
		return nil, err
	}
	if n.self.Witness {
		n.role = RoleWitness
	} else {
		n.role = RoleStandby
	}
	n.since = time.Now()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("pair: %w", err)
	}
	var err error
	if n.logs, err = openBoltStore(filepath.Join(cfg.Dir, "raft.db")); err != nil {
		return nil, err
	}
	if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 3, hclogFor(n.log, "raft-snap")); err != nil {
		n.logs.Close()
		return nil, fmt.Errorf("pair: snapshots: %w", err)
	}
	cred, err := transportTLS(cfg.TransportKey)
	if err != nil {
		n.logs.Close()
		return nil, err
	}
	if n.trans, n.stream, err = newTransport(cfg.Listen, cred, cfg.Timing.Transport, n.log, n.remoteClosed); err != nil {
		n.logs.Close()
		return nil, err
	}
	n.fsm = NewFSM(cfg.Sealer, cfg.Sink, n.log)
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.Timing.Heartbeat
	rc.ElectionTimeout = cfg.Timing.Election
	rc.LeaderLeaseTimeout = cfg.Timing.Lease
	rc.CommitTimeout = cfg.Timing.Commit
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.SnapshotInterval = 5 * time.Second
	rc.Logger = hclogFor(n.log, "raft")
	n.notify = make(chan bool, 16)
	rc.NotifyCh = n.notify
	n.rconf = rc
	has, err := raft.HasExistingState(n.logs, n.logs, n.snaps)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("pair: %w", err)
	}
	if !has {
		var conf raft.Configuration
		for _, p := range cfg.Peers {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID),
				Address: raft.ServerAddress(multiAddr(p.Addrs).String())})
		}
		if err := raft.BootstrapCluster(rc, n.logs, n.logs, n.snaps, n.trans, conf); err != nil {
			n.close()
			return nil, fmt.Errorf("pair: bootstrap: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, n.fsm, n.logs, n.logs, n.snaps, n.trans)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("pair: %w", err)
	}
	n.rmu.Lock()
	n.r = r
	n.rmu.Unlock()
	n.wg.Add(1)
	go n.roleLoop()
	if n.twoNode && !n.self.Witness {
		n.wg.Add(1)
		go n.watchdog()
	}
	n.log.Info("pair: started", "id", cfg.ID, "listen", cfg.Listen, "witness", n.self.Witness, "twoNode", n.twoNode,
		"existingState", has)
	return n, nil
}

func (n *Node) check() error {
	c := n.cfg
	if c.ID == "" || c.Dir == "" || len(c.Listen) == 0 {
		return errors.New("pair: node ID, directory and listen address are required")
	}
	found, witnesses, modules := false, 0, 0
	ids := map[string]bool{}
	for _, p := range c.Peers {
		if p.ID == "" || len(p.Addrs) == 0 || ids[p.ID] {
			return fmt.Errorf("pair: peer %q: empty or duplicate ID, or no address", p.ID)
		}
		ids[p.ID] = true
		if p.ID == c.ID {
			found, n.self = true, p
		}
		if p.Witness {
			witnesses++
		} else {
			modules++
		}
	}
	switch {
	case !found:
		return fmt.Errorf("pair: this node %q is not among the peers", c.ID)
	case modules != 2 || witnesses > 1:
		return fmt.Errorf("pair: want two modules and at most one witness, got %d and %d", modules, witnesses)
	case !n.self.Witness && c.Sealer == nil:
		return errors.New("pair: a module needs the pair key")
	case len(c.TransportKey) != TransportKeySize:
		return errors.New("pair: the raft transport key is required (modules: TransportKey(pair key); the witness: its witness key)")
	}
	n.twoNode = witnesses == 0
	if n.twoNode && !n.self.Witness && c.Fencer == nil {
		return errors.New("pair: two-node mode (no witness) needs a fencer: a survivor takes over only after fencing its peer")
	}
	if c.Preset != "" && !slices.ContainsFunc(c.Peers, func(p Peer) bool { return p.ID == c.Preset && !p.Witness }) {
		return fmt.Errorf("pair: preset module %q is not a module of the pair", c.Preset)
	}
	return nil
}

func (n *Node) preset() string {
	if n.cfg.Preset != "" {
		return n.cfg.Preset
	}
	for _, p := range n.cfg.Peers {
		if !p.Witness {
			return p.ID
		}
	}
	return ""
}

// peerModule returns the other module.
func (n *Node) peerModule() Peer {
	for _, p := range n.cfg.Peers {
		if !p.Witness && p.ID != n.cfg.ID {
			return p
		}
	}
	return Peer{}
}

// transport returns the current raft transport and its stream layer
// (two-node recovery replaces them).
func (n *Node) transport() (*raft.NetworkTransport, *pathStream) {
	n.rmu.RLock()
	defer n.rmu.RUnlock()
	return n.trans, n.stream
}

func (n *Node) raft() *raft.Raft {
	n.rmu.RLock()
	defer n.rmu.RUnlock()
	return n.r
}

// Role returns the node's current role.
func (n *Node) Role() Role {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.role
}

// FSM returns the replicated state machine.
func (n *Node) FSM() *FSM { return n.fsm }

func (n *Node) setRole(r Role) {
	n.mu.Lock()
	changed := n.role != r
	n.role, n.since = r, time.Now()
	n.mu.Unlock()
	if changed {
		n.log.Info("pair: role", "role", r)
		if n.cfg.OnRole != nil {
			n.cfg.OnRole(r)
		}
	}
}

func (n *Node) roleLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		case <-n.notify:
		}
		n.reconcile()
	}
}

// reconcile moves the role toward raft's state: a module that became
// leader takes the address and becomes active; one that lost leadership
// releases the address first, then becomes standby.
func (n *Node) reconcile() {
	r := n.raft()
	leader := r.State() == raft.Leader
	role := n.Role()
	// Only another module counts: the witness leads for a moment at
	// power-up (it hands leadership on at once), and that is still the
	// pair's formation (D7).
	if _, id := r.LeaderWithID(); id != "" && string(id) != n.cfg.ID && !n.isWitness(string(id)) {
		n.mu.Lock()
		n.sawOtherLeader = true
		n.otherLeader, n.otherLeaderAt = string(id), time.Now()
		n.mu.Unlock()
	}
	if n.self.Witness {
		// The witness only breaks ties: when it wins an election (its
		// timer fired first), it hands leadership to a module at once.
		// (A slower witness timer would not help: a voter refuses votes
		// while it still hears a leader, so the module's election would
		// wait for the witness's timer anyway.)
		if leader && time.Since(n.lastTransfer) > 4*n.cfg.Timing.Election {
			n.lastTransfer = time.Now()
			n.log.Info("pair: witness is leader; handing leadership to a module")
			go r.LeadershipTransfer()
		}
		return
	}
	switch {
	case leader && role != RoleActive && n.handingOver.Load():
		// Still leader while the hand-over runs: the address stays
		// released (taking it back now could make the new active find it
		// answered, and fence this module).
	case leader && role != RoleActive:
		n.takeover(r)
	case !leader && role == RoleActive:
		n.stepDown("lost leadership")
	case leader && role == RoleActive:
		n.maybeTransferToPreset(r)
		if n.twoNode {
			n.maybeReadd(r)
		}
	}
}

// LastOtherLeader returns the other module this module last saw as raft
// leader, and when (zero: never).
func (n *Node) LastOtherLeader() (id string, at time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.otherLeader, n.otherLeaderAt
}

// isWitness reports whether the voter id is the witness.
func (n *Node) isWitness(id string) bool {
	for _, p := range n.cfg.Peers {
		if p.ID == id {
			return p.Witness
		}
	}
	return false
}

func (n *Node) stepDown(why string) {
	if n.cfg.Address != nil {
		if err := n.cfg.Address.Release(); err != nil {
			n.log.Error("pair: release floating address", "err", err)
		}
	}
	n.log.Info("pair: stepping down", "why", why)
	n.setRole(RoleStandby)
}

// takeover runs when this module became raft leader: it waits until every
// committed entry is applied (Barrier), makes sure nobody else answers for
// the floating address (fencing the other module when something does),
// takes the address and becomes active. Each step's duration is logged
// ("pair: takeover", the phases the takeover benchmark prints).
func (n *Node) takeover(r *raft.Raft) {
	t0 := time.Now()
	ph := phases{t0: t0}
	defer func() { n.log.Info("pair: takeover", ph.attrs()...) }()
	if err := r.Barrier(5 * n.cfg.Timing.Election).Error(); err != nil {
		n.log.Warn("pair: leader barrier", "err", err)
		ph.mark("barrierFailed")
		return
	}
	ph.mark("barrier")
	if a := n.cfg.Address; a != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		peer := n.peerModule().ID
		// The pre-fence (fast.go) ran while this module was being
		// elected: the proven-dead module's address was fenced, or nobody
		// answered for it.
		pre := n.takePrefence(peer)
		if pre != nil {
			ph.mark("prefence")
			if pre.err != nil {
				n.log.Warn("pair: pre-fence", "err", pre.err)
			}
		}
		quick := pre != nil && pre.err == nil
		for attempt := 0; ; attempt++ {
			// After a fence of a module whose process was proven gone,
			// the only host that could still answer is the one just
			// fenced: a short probe suffices (it answers within
			// microseconds on the chassis segment when it still does).
			wait := time.Duration(0)
			if quick {
				wait = quickProbeWait
			}
			inUse, err := probe(ctx, a, wait)
			if err != nil {
				n.log.Error("pair: duplicate-address probe", "err", err)
				ph.mark("probeFailed")
				return
			}
			ph.mark("probe")
			if !inUse {
				break
			}
			if attempt > 0 || n.cfg.Fencer == nil {
				n.log.Error("pair: floating address still answered by another host; not taking it")
				return
			}
			n.log.Warn("pair: floating address answered by another host; fencing the other module", "peer", peer)
			if err := n.cfg.Fencer.Fence(ctx, peer); err != nil {
				n.log.Error("pair: fence failed; not taking the address", "err", err)
				ph.mark("fenceFailed")
				return
			}
			ph.mark("fence")
			quick = n.goneRecently(peer)
			n.mu.Lock()
			n.fences++
			n.mu.Unlock()
		}
		if r.State() != raft.Leader {
			return
		}
		if err := a.Acquire(ctx); err != nil {
			n.log.Error("pair: take floating address", "err", err)
			a.Release()
			return
		}
		ph.mark("address")
	}
	if r.State() != raft.Leader {
		n.stepDown("lost leadership during takeover")
		return
	}
	n.mu.Lock()
	n.lastTakeover = time.Since(t0)
	n.takeovers++
	n.mu.Unlock()
	n.log.Info("pair: active", "takeoverWork", time.Since(t0))
	n.setRole(RoleActive)
	ph.mark("active")
}

// quickProbeWait is the probe wait after fencing a module whose process
// was proven gone.
const quickProbeWait = 30 * time.Millisecond

// quickProber is an AddressHolder that can probe with a given wait
// (pair/vip.Netlink, vip.Fake).
type quickProber interface {
	ProbeWithin(ctx context.Context, wait time.Duration) (bool, error)
}

// probe runs a's duplicate-address probe, with wait when not zero and a
// supports it.
func probe(ctx context.Context, a AddressHolder, wait time.Duration) (bool, error) {
	if q, ok := a.(quickProber); ok && wait > 0 {
		return q.ProbeWithin(ctx, wait)
	}
	return a.Probe(ctx)
}

// phases records the steps of a takeover.
type phases struct {
	t0   time.Time
	last time.Time
	kv   []any
}

func (p *phases) mark(step string) {
	now := time.Now()
	from := p.last
	if from.IsZero() {
		from = p.t0
	}
	p.kv = append(p.kv, step, now.Sub(from).Round(100*time.Microsecond).String())
	p.last = now
}

func (p *phases) attrs() []any {
	return append([]any{"leaderAt", p.t0.Format("15:04:05.000000"), "total", time.Since(p.t0).Round(100 * time.Microsecond).String()}, p.kv...)
}

// maybeTransferToPreset implements D7: when both modules are up within
// the power-up window and this one is not the preset one, it hands the
// active role to the preset module once that one is caught up.
func (n *Node) maybeTransferToPreset(r *raft.Raft) {
	preset := n.preset()
	n.mu.Lock()
	formation := n.takeovers == 1 && n.fences == 0 && !n.sawOtherLeader
	n.mu.Unlock()
	if preset == n.cfg.ID || n.transferred || !formation || time.Since(n.started) > n.cfg.PresetWindow {
		return
	}
	var target Peer
	for _, p := range n.cfg.Peers {
		if p.ID == preset {
			target = p
		}
	}
	// Only a preset module that is up: it must answer on a path.
	_, stream := n.transport()
	c, err := stream.Dial(raft.ServerAddress(multiAddr(target.Addrs).String()), n.cfg.Timing.Transport)
	if err != nil {
		return
	}
	c.Close()
	n.transferred = true
	n.log.Info("pair: power-up: handing the active role to the preset module", "preset", preset)
	n.stepDown("leadership transfer to the preset module")
	if err := r.LeadershipTransferToServer(raft.ServerID(preset), raft.ServerAddress(multiAddr(target.Addrs).String())).Error(); err != nil {
		n.log.Warn("pair: leadership transfer failed; staying active", "err", err)
	}
}

// Put replicates value into slot and returns once the entry is committed
// on a quorum and applied on this module (H3). Only the active module
// takes writes (D3).
func (n *Node) Put(ctx context.Context, slot string, value []byte) (index uint64, err error) {
	if n.self.Witness || n.Role() != RoleActive {
		return 0, ErrNotActive
	}
	data, err := json.Marshal(command{Slot: slot, Sealed: n.cfg.Sealer.Seal(slot, value)})
	if err != nil {
		return 0, err
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := n.raft().Apply(data, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, fmt.Errorf("%w (%v)", ErrNotActive, err)
		}
		return 0, fmt.Errorf("pair: replicate %s: %w", slot, err)
	}
	res, _ := f.Response().(applied)
	return res.index, res.err
}

// ReadLag says how far a standby is behind.
type ReadLag struct {
	Entries     uint64        `json:"entries"`     // commit index known from the active - applied index
	LastContact time.Duration `json:"lastContact"` // since the active was last heard
}

// CanServeReads reports whether this module may answer reads from its
// local state (D1, D2): the active always; a standby only while it hears
// the active (within one heartbeat timeout, so the commit index it knows
// is fresh) and has applied everything the active committed.
func (n *Node) CanServeReads() (bool, ReadLag) {
	if n.self.Witness {
		return false, ReadLag{}
	}
	r := n.raft()
	if n.Role() == RoleActive {
		return r.State() == raft.Leader, ReadLag{}
	}
	commit, appliedIdx := r.CommitIndex(), r.AppliedIndex()
	lag := ReadLag{LastContact: time.Since(r.LastContact())}
	if commit > appliedIdx {
		lag.Entries = commit - appliedIdx
	}
	_, leader := r.LeaderWithID()
	ok := leader != "" && r.State() == raft.Follower && lag.LastContact < n.cfg.Timing.Heartbeat && lag.Entries == 0
	return ok, lag
}

// Status is a node's view of the pair.
type Status struct {
	ID            string        `json:"id"`
	Role          Role          `json:"role"`
	RoleSince     time.Time     `json:"roleSince"`
	RaftState     string        `json:"raftState"`
	Leader        string        `json:"leader"`
	Term          string        `json:"term"`
	CommitIndex   uint64        `json:"commitIndex"`
	AppliedIndex  uint64        `json:"appliedIndex"`
	Fingerprint   string        `json:"fingerprint"`
	Slots         int           `json:"slots"`
	CanServeReads bool          `json:"canServeReads"`
	Lag           ReadLag       `json:"lag"`
	HoldsAddress  bool          `json:"holdsAddress"`
	TwoNode       bool          `json:"twoNode"`
	Fences        int           `json:"fences"`
	FastElections int           `json:"fastElections"` // elections started at once after the active's process was proven gone (fast.go)
	TakeoverWork  time.Duration `json:"takeoverWork"`  // barrier + probe + fence + address, last takeover
	SinkErrors    int           `json:"sinkErrors"`
}

// Status returns the node's state.
func (n *Node) Status() Status {
	r := n.raft()
	_, leader := r.LeaderWithID()
	fp, _ := n.fsm.Fingerprint()
	ok, lag := n.CanServeReads()
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{ID: n.cfg.ID, Role: n.role, RoleSince: n.since, RaftState: r.State().String(), Leader: string(leader),
		Term: r.Stats()["term"], CommitIndex: r.CommitIndex(), AppliedIndex: r.AppliedIndex(), Fingerprint: fp,
		Slots: len(n.fsm.Slots()), CanServeReads: ok, Lag: lag, TwoNode: n.twoNode, Fences: n.fences, FastElections: n.fastElections,
		TakeoverWork: n.lastTakeover, SinkErrors: n.fsm.SinkErrors()}
	if n.cfg.Address != nil {
		st.HoldsAddress = n.cfg.Address.Held()
	}
	return st
}

// TransferLeadership hands the active role to the other module (a
// ForceFailover): the address is released first.
//
// raft gives a transfer one election timeout for the other module to
// catch up and win; on a loaded board that can run out, so a transfer that
// timed out while this module is still leader is tried again (half an
// election timeout later), up to transferAttempts times, the address staying released in between. If
// every attempt fails, the module takes its role back.
func (n *Node) TransferLeadership() error {
	if n.Role() != RoleActive {
		return ErrNotActive
	}
	peer := n.peerModule()
	n.handingOver.Store(true)
	defer n.handingOver.Store(false)
	n.stepDown("forced failover")
	var err error
	for attempt := 1; attempt <= transferAttempts; attempt++ {
		if attempt > 1 {
			// raft clears a timed-out transfer a moment after it
			// reported it; an attempt before that is refused as "in
			// progress" at once.
			time.Sleep(n.cfg.Timing.Election / 2)
		}
		err = n.raft().LeadershipTransferToServer(raft.ServerID(peer.ID), raft.ServerAddress(multiAddr(peer.Addrs).String())).Error()
		if err == nil || n.raft().State() != raft.Leader {
			return nil
		}
		n.log.Warn("pair: leadership transfer failed", "attempt", attempt, "of", transferAttempts, "err", err)
	}
	return err
}

// transferAttempts bounds TransferLeadership's tries.
const transferAttempts = 4

// Close leaves the pair: an active module first hands the role to the
// other module (a planned stop is not a failure: releasing the address
// and transferring leadership spares the peer a fence and the 0.1-1 s of
// a takeover), then the address is released and raft stops.
func (n *Node) Close() error {
	select {
	case <-n.stop:
		return nil
	default:
	}
	if n.Role() == RoleActive {
		n.handOverOnClose()
	}
	close(n.stop)
	n.wg.Wait()
	if n.Role() == RoleActive && n.cfg.Address != nil {
		n.cfg.Address.Release()
	}
	err := n.raft().Shutdown().Error()
	n.close()
	return err
}

// handOverOnClose transfers leadership to the other module, waiting at
// most closeHandOver; a failure (the other module is away) only means the
// pair goes on as after a crash.
func (n *Node) handOverOnClose() {
	done := make(chan error, 1)
	go func() { done <- n.TransferLeadership() }()
	select {
	case err := <-done:
		if err != nil {
			n.log.Warn("pair: hand-over before stopping failed", "err", err)
			return
		}
		n.log.Info("pair: handed the active role over before stopping")
	case <-time.After(closeHandOver):
		n.log.Warn("pair: hand-over before stopping timed out", "after", closeHandOver)
	}
}

// closeHandOver bounds the hand-over of a stopping active module.
const closeHandOver = 2 * time.Second

func (n *Node) close() {
	if trans, _ := n.transport(); trans != nil {
		trans.Close()
		trans.CloseStreams() // the pooled connections it opened: as the kernel does for a process that exits
	}
	if n.logs != nil {
		n.logs.Close()
	}
}
