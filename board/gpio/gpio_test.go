package gpio

import (
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

func TestPolarity(t *testing.T) {
	pin := &gpiotest.Pin{N: "PSU1_PRSNT_N", L: pgpio.Low}
	l := &Line{Name: "psu1-present", Pin: pin, ActiveLow: true}
	if on, err := l.Asserted(); err != nil || !on {
		t.Errorf("active-low line at Low: asserted %v %v", on, err)
	}
	pin.L = pgpio.High
	if on, _ := l.Asserted(); on {
		t.Error("active-low line at High reads asserted")
	}
	hi := &Line{Name: "pgood", Pin: &gpiotest.Pin{N: "PGOOD", L: pgpio.High}}
	if on, _ := hi.Asserted(); !on {
		t.Error("active-high line at High not asserted")
	}
}

// TestPulse records the levels an active-low reset line is driven to.
func TestPulse(t *testing.T) {
	pin := &gpiotest.Pin{N: "PEER_RST_N", L: pgpio.High}
	var seen []pgpio.Level
	var slept time.Duration
	l := &Line{Name: "peer-reset", Pin: pin, ActiveLow: true, Sleep: func(d time.Duration) {
		seen = append(seen, pin.L)
		slept = d
	}}
	if err := l.Pulse(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != pgpio.Low || pin.L != pgpio.High || slept != 200*time.Millisecond {
		t.Errorf("during the pulse %v, after %v, held %v", seen, pin.L, slept)
	}
}

func TestByNameMissing(t *testing.T) {
	if _, err := ByName("no-such-line-cmcd-test", false); err == nil {
		t.Error("a missing line was found")
	}
}
