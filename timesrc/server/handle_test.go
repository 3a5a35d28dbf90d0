package server_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/facebook/time/ntp/protocol"

	"cmcd/clock"
	"cmcd/timesrc/discipline"
	"cmcd/timesrc/policy"
	"cmcd/timesrc/server"
)

// handler builds a listening (not serving) server with the real policy
// engine and returns its per-packet path.
func handler(tb testing.TB, rate float64) (*server.Server, *server.Handler, *policy.Engine) {
	tb.Helper()
	clk := discipline.NewVirtual(clock.Real(), 0)
	pol := policy.New(policy.Config{Name: "bench"}, clk, nil)
	now := time.Now()
	st := &server.State{Synced: true, Stratum: 2, RefID: 0x7f000001, RefTime: now, RootDelay: time.Millisecond,
		RootDisp: time.Millisecond, LastUpdate: now}
	s, err := server.Listen(server.Config{Addr: "127.0.0.1:0", Clock: clk, State: func() server.State { return *st },
		Policy: pol, Rate: rate, Burst: rate})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, server.NewHandler(s), pol
}

// sources are n client addresses, each with a request carrying its clock.
func sources(n int) ([]netip.AddrPort, [][]byte) {
	addrs := make([]netip.AddrPort, n)
	reqs := make([][]byte, n)
	for i := range addrs {
		addrs[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), uint16(40000+i))
		reqs[i] = ntpRequest(3, 4, 48)
	}
	return addrs, reqs
}

func TestHandleDoesNotAllocate(t *testing.T) {
	for _, rate := range []float64{0, 1e9} {
		s, h, pol := handler(t, rate)
		addrs, reqs := sources(64)
		var out [protocol.PacketSizeBytes]byte
		i := 0
		step := func() {
			k := i % len(addrs)
			if !h.Handle(reqs[k], addrs[k], time.Now(), &out) {
				t.Fatal("a valid request was not answered")
			}
			i++
		}
		for range 2 * len(addrs) { // first sight of each client allocates its table row
			step()
		}
		if a := testing.AllocsPerRun(2000, step); a != 0 {
			t.Fatalf("rate limit %v: %v allocations per packet, want 0", rate, a)
		}
		// and the policy still saw every request
		var seen uint64
		for _, c := range pol.Clients() {
			seen += c.Requests
		}
		if seen != uint64(i) || s.Stats().Answered.Load() != uint64(i) {
			t.Fatalf("policy saw %d requests, server answered %d, handled %d", seen, s.Stats().Answered.Load(), i)
		}
	}
}

// The per-packet answer as a client reads it: origin echoes the request's
// transmit, receive is the given kernel time, transmit follows it.
func TestHandleAnswer(t *testing.T) {
	_, h, _ := handler(t, 0)
	req := ntpRequest(3, 3, 48)
	rx := time.Now()
	var out [protocol.PacketSizeBytes]byte
	if !h.Handle(req, netip.MustParseAddrPort("127.0.0.1:5000"), rx, &out) {
		t.Fatal("not answered")
	}
	var p protocol.Packet
	if err := p.UnmarshalBinary(out[:]); err != nil {
		t.Fatal(err)
	}
	if p.Settings != 3<<3|4 || p.Stratum != 2 || p.OrigTimeSec != binary.BigEndian.Uint32(req[40:]) ||
		p.OrigTimeFrac != binary.BigEndian.Uint32(req[44:]) {
		t.Fatalf("reply %+v", p)
	}
	r, x := protocol.Unix(p.RxTimeSec, p.RxTimeFrac), protocol.Unix(p.TxTimeSec, p.TxTimeFrac)
	if d := r.Sub(rx); d.Abs() > time.Microsecond {
		t.Fatalf("receive timestamp %v off the kernel's", d)
	}
	if x.Before(r) {
		t.Fatalf("transmit %v before receive %v", x, r)
	}
}

// putHeader is the maintained package's encoding, without the allocation.
func TestPutHeaderMatchesProtocol(t *testing.T) {
	for range 1000 {
		p := protocol.Packet{Settings: uint8(rand.Uint32()), Stratum: uint8(rand.Uint32()), Poll: int8(rand.Uint32()),
			Precision: int8(rand.Uint32()), RootDelay: rand.Uint32(), RootDispersion: rand.Uint32(), ReferenceID: rand.Uint32(),
			RefTimeSec: rand.Uint32(), RefTimeFrac: rand.Uint32(), OrigTimeSec: rand.Uint32(), OrigTimeFrac: rand.Uint32(),
			RxTimeSec: rand.Uint32(), RxTimeFrac: rand.Uint32(), TxTimeSec: rand.Uint32(), TxTimeFrac: rand.Uint32()}
		want, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		var got [protocol.PacketSizeBytes]byte
		server.PutHeader(&got, &p)
		if !bytes.Equal(got[:], want) {
			t.Fatalf("putHeader %x, protocol %x", got, want)
		}
	}
}

// BenchmarkHandle is the per-packet path of a reader (decode, rate limit,
// policy observation, state, encode, transmit stamp) without the syscalls,
// for 64 clients in turn; run it in parallel to see lock contention.
func BenchmarkHandle(b *testing.B) {
	for _, bc := range []struct {
		name string
		rate float64
	}{{"policy", 0}, {"policy+limit", 1e9}} {
		b.Run(bc.name, func(b *testing.B) {
			_, h, _ := handler(b, bc.rate)
			addrs, reqs := sources(64)
			var out [protocol.PacketSizeBytes]byte
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := i % len(addrs)
				h.Handle(reqs[k], addrs[k], time.Now(), &out)
				i++
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			s, _, _ := handler(b, bc.rate)
			addrs, reqs := sources(64)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				h := server.NewHandler(s)
				var out [protocol.PacketSizeBytes]byte
				i := rand.IntN(len(addrs))
				for pb.Next() {
					k := i % len(addrs)
					h.Handle(reqs[k], addrs[k], time.Now(), &out)
					i++
				}
			})
		})
	}
}

func ntpRequest(mode, vn byte, size int) []byte {
	b := make([]byte, size)
	b[0] = vn<<3 | mode
	sec, frac := protocol.Time(time.Now())
	binary.BigEndian.PutUint32(b[40:], sec)
	binary.BigEndian.PutUint32(b[44:], frac)
	return b
}
