package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/beevik/ntp"
	"github.com/facebook/time/ntp/protocol"

	"cmcd/clock"
	"cmcd/timesrc/discipline"
)

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Clock == nil {
		cfg.Clock = discipline.NewVirtual(clock.Real(), 0)
	}
	if cfg.State == nil {
		now := time.Now()
		cfg.State = func() State {
			return State{Synced: true, Stratum: 2, RefID: 0x7f000001, RefTime: now, RootDelay: time.Millisecond,
				RootDisp: time.Millisecond, LastUpdate: now}
		}
	}
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.Serve(ctx)
	return s
}

func dial(t *testing.T, s *Server) *net.UDPConn {
	c, err := net.DialUDP("udp", nil, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func request(mode, vn byte, size int) []byte {
	b := make([]byte, size)
	b[0] = vn<<3 | mode
	sec, frac := protocol.Time(time.Now())
	binary.BigEndian.PutUint32(b[40:], sec)
	binary.BigEndian.PutUint32(b[44:], frac)
	return b
}

// recv reads one reply or returns nil after wait.
func recv(c *net.UDPConn, wait time.Duration) []byte {
	c.SetReadDeadline(time.Now().Add(wait))
	b := make([]byte, 2048)
	n, err := c.Read(b)
	if err != nil {
		return nil
	}
	return b[:n]
}

func TestAnswersClientModeOnly(t *testing.T) {
	s := start(t, Config{})
	c := dial(t, s)
	// a valid request is answered, mode 4, same version, origin = our transmit
	req := request(3, 4, 48)
	c.Write(req)
	rep := recv(c, 5*time.Second)
	if len(rep) != 48 {
		t.Fatalf("reply of %d bytes, want 48", len(rep))
	}
	var p protocol.Packet
	if err := p.UnmarshalBinary(rep); err != nil {
		t.Fatal(err)
	}
	if p.Settings&7 != 4 || (p.Settings>>3)&7 != 4 || p.Settings>>6 != 0 || p.Stratum != 2 {
		t.Fatalf("reply header %08b stratum %d", p.Settings, p.Stratum)
	}
	if p.OrigTimeSec != binary.BigEndian.Uint32(req[40:]) || p.OrigTimeFrac != binary.BigEndian.Uint32(req[44:]) {
		t.Fatal("origin timestamp is not the request's transmit timestamp")
	}
	// a request with 20 octets of extension gets a 48-octet reply: never larger
	c.Write(request(3, 4, 68))
	if rep := recv(c, 5*time.Second); len(rep) != 48 {
		t.Fatalf("reply to a 68-byte request: %d bytes", len(rep))
	}
	// dropped: short, mode 6, mode 7, mode 1, mode 4, version 0 and 7, garbage
	bad := [][]byte{request(3, 4, 48)[:47], {0x16, 0x02, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, request(6, 2, 48), request(7, 2, 48),
		request(1, 4, 48), request(4, 4, 48), request(3, 0, 48), request(3, 7, 48), {0xff}}
	for _, b := range bad {
		c.Write(b)
	}
	// a valid one after them proves they were read (and dropped, not queued)
	c.Write(request(3, 3, 48))
	rep = recv(c, 5*time.Second)
	if len(rep) != 48 || (rep[0]>>3)&7 != 3 {
		t.Fatalf("expected the v3 reply only, got %d bytes %x", len(rep), rep)
	}
	if extra := recv(c, 300*time.Millisecond); extra != nil {
		t.Fatalf("a malformed or non-client packet was answered: %x", extra)
	}
	st := s.Stats()
	// the 12-byte mode 6 query counts as malformed (shorter than a header)
	if st.Control.Load() != 2 || st.Malformed.Load() != 5 || st.OtherMode.Load() != 2 {
		t.Fatalf("control %d malformed %d other %d, want 2, 5, 2", st.Control.Load(), st.Malformed.Load(), st.OtherMode.Load())
	}
}

func TestUnsynchronisedIsHonest(t *testing.T) {
	s := start(t, Config{State: func() State { return State{} }})
	r, err := ntp.Query(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if r.Leap != ntp.LeapNotInSync || r.Stratum != 16 || r.Validate() == nil {
		t.Fatalf("leap %d stratum %d validate %v: want 3/16/error", r.Leap, r.Stratum, r.Validate())
	}
}

func TestFloodGetsKoDWithoutAmplification(t *testing.T) {
	s := start(t, Config{Rate: 2, Burst: 4, KoDInterval: time.Second})
	c := dial(t, s)
	const n = 300
	for i := 0; i < n; i++ {
		c.Write(request(3, 4, 48))
	}
	var answered, kod int
	for {
		rep := recv(c, 500*time.Millisecond)
		if rep == nil {
			break
		}
		var p protocol.Packet
		p.UnmarshalBinary(rep)
		if p.Stratum == 0 {
			if p.Settings>>6 != 3 || p.ReferenceID != binary.BigEndian.Uint32([]byte("RATE")) {
				t.Fatalf("bad KoD: %+v", p)
			}
			kod++
		} else {
			answered++
		}
	}
	st := s.Stats()
	t.Logf("flood of %d: %d answered, %d KoD RATE, %d limited; bytes in %d out %d", n, answered, kod, st.Limited.Load(), st.BytesIn.Load(), st.BytesOut.Load())
	if answered < 4 || answered > 4+4 {
		t.Fatalf("answered %d, want the burst of 4 (plus the refill during the flood)", answered)
	}
	if kod < 1 || kod > 3 {
		t.Fatalf("%d KoDs, want about one per second", kod)
	}
	if st.BytesOut.Load() > st.BytesIn.Load() || st.BytesOut.Load() > uint64(answered+kod)*48 {
		t.Fatalf("amplification: %d bytes out for %d in", st.BytesOut.Load(), st.BytesIn.Load())
	}
	// another source is not affected
	c2, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write(request(3, 4, 48))
	if rep := recv(c2, 5*time.Second); len(rep) != 48 || rep[1] != 2 {
		t.Fatalf("a second source must be served normally: %x", rep)
	}
}

func TestKernelReceiveTimestamps(t *testing.T) {
	s := start(t, Config{})
	for i := 0; i < 5; i++ {
		if _, err := ntp.Query(s.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	if s.Stats().NoKernelTS.Load() != 0 {
		t.Fatal("requests without a kernel receive timestamp")
	}
}

func BenchmarkDecodeEncode(b *testing.B) {
	req := request(3, 4, 48)
	var p protocol.Packet
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.UnmarshalBinary(req)
		p.Settings = 4<<3 | 4
		p.Bytes()
	}
}

// Close wakes the readers sleeping in the kernel and Serve returns; a
// closed server no longer answers.
func TestCloseStopsServe(t *testing.T) {
	s, err := Listen(Config{Addr: "127.0.0.1:0", Clock: discipline.NewVirtual(clock.Real(), 0), State: func() State { return State{} }, Readers: 3})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	if _, err := ntp.Query(s.Addr().String()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if _, err := ntp.QueryWithOptions(s.Addr().String(), ntp.QueryOptions{Timeout: 300 * time.Millisecond}); err == nil {
		t.Fatal("a closed server answered")
	}
}

// An IPv6 listener answers over IPv6.
func TestIPv6(t *testing.T) {
	s, err := Listen(Config{Addr: "[::1]:0", Clock: discipline.NewVirtual(clock.Real(), 0), State: func() State { return State{} }})
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.Serve(ctx)
	r, err := ntp.Query(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if r.Stratum != 16 || s.Stats().NoKernelTS.Load() != 0 {
		t.Fatalf("stratum %d, %d without kernel timestamp", r.Stratum, s.Stats().NoKernelTS.Load())
	}
}

// A listener on the any address (as ":123" on a board) serves IPv4 too.
func TestAnyAddressServesIPv4(t *testing.T) {
	s2, err := Listen(Config{Addr: ":0", Clock: discipline.NewVirtual(clock.Real(), 0), State: func() State { return State{} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s2.Serve(ctx)
	if _, err := ntp.Query(net.JoinHostPort("127.0.0.1", fmt.Sprint(s2.Addr().Port))); err != nil {
		t.Fatal(err)
	}
}
