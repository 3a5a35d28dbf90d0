package upstream

import (
	"testing"
	"time"
)

func TestSelectRejectsFalseticker(t *testing.T) {
	ms := time.Millisecond
	c := []Candidate{
		{Addr: "a", Offset: 1 * ms, Dist: 5 * ms, Stratum: 1},
		{Addr: "b", Offset: 3 * ms, Dist: 2 * ms, Stratum: 2},
		{Addr: "wrong", Offset: 2 * time.Second, Dist: 2 * ms, Stratum: 1},
	}
	s := Select(c)
	if !s.OK {
		t.Fatal("two of three agree: selection must succeed")
	}
	if len(s.Falsetickers) != 1 || c[s.Falsetickers[0]].Addr != "wrong" {
		t.Fatalf("falsetickers %v, want [wrong]", s.Falsetickers)
	}
	if c[s.Truechimers[0]].Addr != "b" {
		t.Fatalf("lowest root distance first: got %s", c[s.Truechimers[0]].Addr)
	}
	if s.Low != 1*ms || s.High != 5*ms {
		t.Fatalf("intersection [%v,%v], want [1ms,5ms]", s.Low, s.High)
	}
	if off := Combine(c, s.Truechimers); off < 1*ms || off > 3*ms {
		t.Fatalf("combined %v outside the truechimers' offsets", off)
	}
}

func TestSelectNoMajority(t *testing.T) {
	c := []Candidate{
		{Addr: "a", Offset: 0, Dist: time.Millisecond},
		{Addr: "b", Offset: time.Second, Dist: time.Millisecond},
	}
	if s := Select(c); s.OK || len(s.Falsetickers) != 2 {
		t.Fatalf("two disagreeing servers have no majority: %+v", s)
	}
	if s := Select(c[:1]); !s.OK || len(s.Truechimers) != 1 {
		t.Fatalf("a single server is its own majority: %+v", s)
	}
	if s := Select(nil); s.OK {
		t.Fatal("no candidates cannot select")
	}
}

func TestFitRecoversOffsetAndFrequency(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ps []point
	// the raw clock gains 50 ppm: its offset to true time falls by 50 µs/s
	for i := 0; i < 16; i++ {
		at := t0.Add(time.Duration(i) * 4 * time.Second)
		ps = append(ps, point{at, 3*time.Millisecond - time.Duration(50e-6*float64(i*4)*1e9)})
	}
	off, freq := fit(ps)
	wantOff := 3*time.Millisecond - time.Duration(50e-6*60*1e9)
	if (off - wantOff).Abs() > time.Microsecond {
		t.Fatalf("offset %v, want %v", off, wantOff)
	}
	if freq < 49.9e-6 || freq > 50.1e-6 {
		t.Fatalf("freq %g, want 50e-6", freq)
	}
}
