package pair

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"cmcd/pair/vip"
)

type memSink struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memSink) ApplySlot(slot string, plain []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[slot] = string(plain)
	return nil
}

func (s *memSink) get(slot string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[slot]
	return v, ok
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type cluster struct {
	t      *testing.T
	peers  []Peer
	dirs   map[string]string
	nodes  map[string]*Node
	sinks  map[string]*memSink
	net    *vip.FakeNet
	key    []byte
	fenced []string
	mu     sync.Mutex
	preset string
	timing Timing // zero: the default
}

// fakeFencer drops the fenced member's address and stops its node (the
// sim board's peer reset).
type fakeFencer struct{ c *cluster }

func (f fakeFencer) Fence(_ context.Context, peer string) error {
	f.c.mu.Lock()
	f.c.fenced = append(f.c.fenced, peer)
	n := f.c.nodes[peer]
	delete(f.c.nodes, peer)
	f.c.mu.Unlock()
	f.c.net.Drop(peer)
	if n != nil {
		n.crash()
	}
	return nil
}

func newCluster(t *testing.T, ids []string, witness string) *cluster {
	c := &cluster{t: t, dirs: map[string]string{}, nodes: map[string]*Node{}, sinks: map[string]*memSink{},
		net: vip.NewFakeNet(), key: make([]byte, 32)}
	for i := range c.key {
		c.key[i] = byte(i)
	}
	for _, id := range ids {
		c.peers = append(c.peers, Peer{ID: id, Addrs: []string{freeAddr(t), freeAddr(t)}, Witness: id == witness})
		c.dirs[id] = t.TempDir()
		c.sinks[id] = &memSink{m: map[string]string{}}
	}
	t.Cleanup(func() {
		// Take the nodes out first: a node closing looks like a crash to
		// the others (its raft port refuses), and a fence they run then
		// must not find it (or wait for c.mu).
		c.mu.Lock()
		nodes := c.nodes
		c.nodes = map[string]*Node{}
		c.mu.Unlock()
		for _, n := range nodes {
			n.Close()
		}
	})
	return c
}

func (c *cluster) start(id string) *Node {
	c.t.Helper()
	var p Peer
	for _, q := range c.peers {
		if q.ID == id {
			p = q
		}
	}
	cfg := Config{ID: id, Dir: c.dirs[id], Listen: p.Addrs, Peers: c.peers, Preset: c.preset,
		Fencer: fakeFencer{c}, Timing: c.timing, SnapshotThreshold: 64, TrailingLogs: 16, StartGrace: time.Second,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	cfg.TransportKey, _ = TransportKey(c.key)
	if !p.Witness {
		s, _ := NewSealer(c.key)
		cfg.Sealer, cfg.Sink, cfg.Address = s, c.sinks[id], c.net.Member(id)
	}
	n, err := Start(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

// crash stops a node as SIGKILL would: raft stops, the address stays.
func (n *Node) crash() {
	close(n.stop)
	n.wg.Wait()
	n.raft().Shutdown()
	n.close()
}

func (c *cluster) kill(id string) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	n.crash()
}

func (c *cluster) active(timeout time.Duration) *Node {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		var act []*Node
		for _, n := range c.nodes {
			if n.Role() == RoleActive {
				act = append(act, n)
			}
		}
		c.mu.Unlock()
		if len(act) > 1 {
			c.t.Fatalf("two active modules: %s and %s", act[0].cfg.ID, act[1].cfg.ID)
		}
		if len(act) == 1 {
			return act[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no active module after %v", timeout)
	return nil
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *cluster) agree(ids ...string) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("%v to agree", ids), 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		var fps []string
		for _, id := range ids {
			n := c.nodes[id]
			if n == nil {
				return false
			}
			fp, _ := n.fsm.Fingerprint()
			fps = append(fps, fp)
		}
		return len(slices.Compact(fps)) == 1
	})
}

// TestWitnessFailover (H1, H3, H4, D3, D5, D6, D7): three voters; the
// preset module becomes active; acknowledged writes reach all; the active
// crashes keeping its address; the standby fences it, takes the address,
// has every acknowledged write; the crashed module restarts from its own
// log and snapshot and agrees by fingerprint.
func TestWitnessFailover(t *testing.T) {
	c := newCluster(t, []string{"A", "B", "W"}, "W")
	c.preset = "B"
	for _, id := range []string{"A", "B", "W"} {
		c.start(id)
	}
	c.active(20 * time.Second)
	waitFor(t, "preset module B active (D7)", 20*time.Second, func() bool { return c.active(20*time.Second).cfg.ID == "B" })
	act := c.active(time.Second)
	var acked []string
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("kv/w%03d", i)
		if _, err := act.Put(context.Background(), k, []byte(k+"-v")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		acked = append(acked, k)
		// H3: the acknowledged write is applied on the active and committed on a quorum.
		if v, _ := c.sinks["B"].get(k); v != k+"-v" {
			t.Fatalf("acknowledged write %s not applied on the active", k)
		}
	}
	c.agree("A", "B", "W")
	if ok, lag := c.nodes["A"].CanServeReads(); !ok {
		t.Fatalf("standby in sync cannot serve reads: %+v", lag)
	}
	if _, err := c.nodes["A"].Put(context.Background(), "kv/x", []byte("x")); err != ErrNotActive {
		t.Fatalf("standby accepted a write: %v", err)
	}
	t0 := time.Now()
	c.kill("B")
	// The dead B keeps the address until A fences it (at once, when A
	// proves B's process gone: fast.go); A never holds it before that.
	if h := c.net.Holders(); len(h) > 1 || (len(h) == 1 && h[0] != "B") {
		t.Fatalf("holders after the crash = %v, want the dead B still holding it, or nobody once fenced", h)
	}
	act = c.active(10 * time.Second)
	took := time.Since(t0)
	if act.cfg.ID != "A" {
		t.Fatalf("active after kill = %s", act.cfg.ID)
	}
	if h := c.net.Holders(); len(h) != 1 || h[0] != "A" {
		t.Fatalf("address holders after takeover = %v", h)
	}
	if !slices.Contains(c.fenced, "B") {
		t.Fatal("the crashed active was not fenced before its address was taken")
	}
	t.Logf("takeover after crash: %v (fenced %v)", took, c.fenced)
	for _, k := range acked {
		if v, _ := c.sinks["A"].get(k); v != k+"-v" {
			t.Fatalf("acknowledged write %s lost on the new active", k)
		}
	}
	// More writes while B is away, enough for a snapshot, then B rejoins (D6).
	for i := 200; i < 400; i++ {
		k := fmt.Sprintf("kv/w%03d", i)
		if _, err := act.Put(context.Background(), k, []byte(k+"-v")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		acked = append(acked, k)
	}
	c.sinks["B"] = &memSink{m: map[string]string{}} // its local state is gone too: it must come from the pair
	c.start("B")
	c.agree("A", "B", "W")
	for _, k := range acked {
		if v, _ := c.sinks["B"].get(k); v != k+"-v" {
			t.Fatalf("rejoined module lacks %s", k)
		}
	}
	waitFor(t, "rejoined standby serves reads", 10*time.Second, func() bool { ok, _ := c.nodes["B"].CanServeReads(); return ok })
	if c.net.Peak != 1 {
		t.Fatalf("at some point %d modules held the address", c.net.Peak)
	}
}

// TestTwoNodeFencing: without a witness the survivor takes over only after
// fencing its peer, and the fenced peer comes back as a voter.
func TestTwoNodeFencing(t *testing.T) {
	c := newCluster(t, []string{"A", "B"}, "")
	c.preset = "A"
	c.start("A")
	c.start("B")
	act := c.active(30 * time.Second)
	if _, err := act.Put(context.Background(), "kv/one", []byte("1")); err != nil {
		t.Fatal(err)
	}
	other := "B"
	if act.cfg.ID == "B" {
		other = "A"
	}
	c.kill(act.cfg.ID)
	surv := c.active(20 * time.Second)
	if surv.cfg.ID != other {
		t.Fatalf("survivor %s", surv.cfg.ID)
	}
	if !slices.Contains(c.fenced, act.cfg.ID) {
		t.Fatalf("survivor took over without fencing; fenced = %v", c.fenced)
	}
	if v, _ := c.sinks[other].get("kv/one"); v != "1" {
		t.Fatal("acknowledged write lost")
	}
	if _, err := surv.Put(context.Background(), "kv/two", []byte("2")); err != nil {
		t.Fatalf("survivor alone cannot write: %v", err)
	}
	c.start(act.cfg.ID)
	c.agree("A", "B")
	if _, err := surv.Put(context.Background(), "kv/three", []byte("3")); err != nil {
		t.Fatal(err)
	}
	c.agree("A", "B")
}

// TestGracefulStopHandsOver (H4, D5): stopping the active module (SIGTERM,
// a planned restart) hands the role to the standby: no fence, one address
// holder at a time, every acknowledged write on the new active.
func TestGracefulStopHandsOver(t *testing.T) {
	c := newCluster(t, []string{"A", "B", "W"}, "W")
	for _, id := range []string{"A", "B", "W"} {
		c.start(id)
	}
	waitFor(t, "preset module A active (D7)", 20*time.Second, func() bool { return c.active(20*time.Second).cfg.ID == "A" })
	act := c.active(time.Second)
	for i := 0; i < 20; i++ {
		if _, err := act.Put(context.Background(), fmt.Sprintf("kv/g%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	c.agree("A", "B", "W")
	c.mu.Lock()
	delete(c.nodes, "A")
	c.mu.Unlock()
	t0 := time.Now()
	if err := act.Close(); err != nil {
		t.Fatal(err)
	}
	b := c.active(10 * time.Second)
	t.Logf("graceful stop: B active %v after A's Close began", time.Since(t0))
	if b.cfg.ID != "B" {
		t.Fatalf("active after A stopped: %s", b.cfg.ID)
	}
	waitFor(t, "B holds the address", 5*time.Second, func() bool { h := c.net.Holders(); return len(h) == 1 && h[0] == "B" })
	if len(c.fenced) != 0 {
		t.Fatalf("a planned stop led to a fence of %v", c.fenced)
	}
	for i := 0; i < 20; i++ {
		if v, _ := c.sinks["B"].get(fmt.Sprintf("kv/g%02d", i)); v != "v" {
			t.Fatalf("acknowledged write %d missing on B", i)
		}
	}
	if c.net.Peak != 1 {
		t.Fatalf("at some point %d modules held the address", c.net.Peak)
	}
}
