package pair

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestFastTakeoverAfterCrash: with a 3 s heartbeat timeout raft itself
// cannot start an election before 3 s have passed without a heartbeat (and
// in two-node mode the watchdog waits two heartbeat timeouts before it
// fences); when the active's process dies (its listeners close, its
// connections reset), the standby proves it gone and takes over at once
// (fast.go): it is active, holding the address, with every acknowledged
// write, well before raft's own timer could have fired — with the witness
// through an immediate election, in two-node mode after fencing the dead
// module.
func TestFastTakeoverAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ids     []string
		witness string
	}{{"witness", []string{"A", "B", "W"}, "W"}, {"two-node", []string{"A", "B"}, ""}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, tc.ids, tc.witness)
			c.preset = "A"
			c.timing = Timing{Heartbeat: 3 * time.Second, Election: 3 * time.Second, Lease: 2 * time.Second,
				Commit: 5 * time.Millisecond, Transport: time.Second}
			for _, id := range tc.ids {
				c.start(id)
			}
			waitFor(t, "A active", 60*time.Second, func() bool { return c.active(60*time.Second).cfg.ID == "A" })
			act := c.active(time.Second)
			if _, err := act.Put(context.Background(), "kv/before", []byte("1")); err != nil {
				t.Fatal(err)
			}
			c.agree(tc.ids...)
			t0 := time.Now()
			c.kill("A")
			nb := c.active(2500 * time.Millisecond) // < the 3 s raft needs at the earliest
			took := time.Since(t0)
			if nb.cfg.ID != "B" {
				t.Fatalf("active after the crash: %s", nb.cfg.ID)
			}
			st := nb.Status()
			if !st.HoldsAddress || (tc.witness != "" && st.FastElections != 1) || (tc.witness == "" && st.Fences != 1) {
				t.Fatalf("B's status after the takeover: %+v (want the address, and one fast election or one fence)", st)
			}
			if v, _ := c.sinks["B"].get("kv/before"); v != "1" {
				t.Fatal("acknowledged write lost")
			}
			if _, err := nb.Put(context.Background(), "kv/after", []byte("2")); err != nil {
				t.Fatalf("new active cannot commit: %v", err)
			}
			if c.net.Peak != 1 {
				t.Fatalf("%d holders at once", c.net.Peak)
			}
			t.Logf("takeover after the crash with a 3 s heartbeat timeout: %v", took)
		})
	}
}

// TestTransportRefusesStrangers: the raft transport is TLS 1.3 with mutual
// authentication by the pair's transport credential. A peer with another
// key, or plain TCP speaking raft's protocol, gets no RPC through — not
// even TimeoutNow, the entry point of the fast election — while the same
// RPC with the right credential is served (it makes the standby leader).
func TestTransportRefusesStrangers(t *testing.T) {
	c := newCluster(t, []string{"A", "B", "W"}, "W")
	c.preset = "A"
	for _, id := range []string{"A", "B", "W"} {
		c.start(id)
	}
	waitFor(t, "A active", 60*time.Second, func() bool { return c.active(60*time.Second).cfg.ID == "A" })
	c.agree("A", "B", "W")
	b := c.nodes["B"]
	target := raft.ServerAddress(multiAddr(b.self.Addrs).String())
	term := b.Status().Term
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	timeoutNow := func(key []byte) error {
		cred, err := transportTLS(key)
		if err != nil {
			t.Fatal(err)
		}
		tr, _, err := newTransport([]string{"127.0.0.1:0"}, cred, time.Second, log, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("X"), Addr: []byte("127.0.0.1:1")}}
		return tr.TimeoutNow("B", target, req, &raft.TimeoutNowResponse{})
	}
	other := bytes.Repeat([]byte{0x5a}, TransportKeySize)
	if err := timeoutNow(other); err == nil {
		t.Fatal("a peer with another transport key got a TimeoutNow through")
	} else {
		t.Logf("other key: %v", err)
	}
	// The pair key itself is not the transport credential either.
	if err := timeoutNow(c.key); err == nil {
		t.Fatal("the raw pair key was accepted as transport credential")
	}
	// Plain TCP: the listener wants a TLS ClientHello; raft's wire
	// protocol (a TimeoutNow: type byte 3, then msgpack) is dropped unread.
	conn, err := net.Dial("tcp", b.self.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte{3, 0x81, 0xa9, 'R', 'P', 'C', 'H', 'e', 'a', 'd', 'e', 'r', 0x80})
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	conn.Close()
	if bytes.Contains(got, []byte("RPCHeader")) || (err != nil && !isClosed(err)) {
		t.Fatalf("plain TCP: read %q, %v; want the connection closed without a raft answer", got, err)
	}
	time.Sleep(500 * time.Millisecond)
	if st := b.Status(); st.RaftState != "Follower" || st.Term != term || c.active(time.Second).cfg.ID != "A" {
		t.Fatalf("B after the strangers: %s term %s (was %s), active %s", st.RaftState, st.Term, term, c.active(time.Second).cfg.ID)
	}
	// Control: the same RPC with the pair's credential is served.
	good, _ := TransportKey(c.key)
	if err := timeoutNow(good); err != nil {
		t.Fatalf("TimeoutNow with the credential: %v", err)
	}
	waitFor(t, "B active after the authenticated TimeoutNow", 20*time.Second, func() bool { return c.active(20*time.Second).cfg.ID == "B" })
}

// isClosed: the server closed or reset the connection (not: kept it open
// until our read deadline).
func isClosed(err error) bool {
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}
