package discipline

import (
	"testing"
	"time"

	"cmcd/clock/clocktest"
)

func TestVirtualAppliesOffsetAndFrequency(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	raw := clocktest.New(t0)
	v := NewVirtual(raw, 0)
	if got := v.Now(); !got.Equal(t0) {
		t.Fatalf("initial Now = %v, want raw %v", got, t0)
	}
	// raw clock is 5 ms behind and gains 100 ppm
	if err := v.Apply(Estimate{At: t0, Offset: 5 * time.Millisecond, Freq: 100e-6}); err != nil {
		t.Fatal(err)
	}
	if d := v.Now().Sub(t0); d != 5*time.Millisecond {
		t.Fatalf("offset applied: %v", d)
	}
	raw.Advance(10 * time.Second)
	// after 10 s the raw clock has gained 1 ms: served = raw + 5ms - 1ms
	want := t0.Add(10*time.Second + 4*time.Millisecond)
	if got := v.Now(); got.Sub(want).Abs() > time.Microsecond {
		t.Fatalf("Now after 10s = %v, want %v", got, want)
	}
	// FromRaw of an earlier kernel timestamp uses the same mapping
	if got := v.FromRaw(t0); got.Sub(t0.Add(5*time.Millisecond)).Abs() > time.Microsecond {
		t.Fatalf("FromRaw(t0) = %v", got)
	}
}

func TestVirtualSlewsSmallCorrections(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	raw := clocktest.New(t0)
	v := NewVirtual(raw, 0)
	v.SetSlew(500e-6)
	v.Apply(Estimate{At: t0, Offset: 10 * time.Millisecond})
	if d := v.Now().Sub(t0); d != 0 {
		t.Fatalf("slewed correction must start at 0, got %v", d)
	}
	raw.Advance(10 * time.Second) // 5 ms taken in
	if d := v.Now().Sub(raw.Now()); (d - 5*time.Millisecond).Abs() > time.Microsecond {
		t.Fatalf("after 10s: %v, want 5ms", d)
	}
	raw.Advance(20 * time.Second)
	if d := v.Now().Sub(raw.Now()); d != 10*time.Millisecond {
		t.Fatalf("after 30s: %v, want 10ms", d)
	}
	// a correction over a second is stepped
	v.Apply(Estimate{Offset: 3 * time.Second})
	if d := v.Now().Sub(raw.Now()); d != 3*time.Second {
		t.Fatalf("large correction: %v, want a 3s step", d)
	}
}
