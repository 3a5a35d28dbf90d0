package sim

import (
	"context"
	"testing"
	"time"

	"cmcd/board"
	"cmcd/clock/clocktest"
)

// TestTemperatures: the simulated enclosure has an inlet and an exhaust
// sensor on its board.Chassis, with thresholds; over a simulated day the
// readings stay plausible (inlet 18-34 °C, exhaust 30-55 °C, healthy) and
// move, and the same seed gives the same readings.
func TestTemperatures(t *testing.T) {
	read := func() [][]board.Temp {
		clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		c, err := New(Config{Seed: 7, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		if c.Board().Temps == nil {
			t.Fatal("the simulated board has no temperature source")
		}
		var out [][]board.Temp
		for range 24 {
			temps, err := c.Board().Temps.Temperatures(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, temps)
			clk.Advance(time.Hour)
		}
		return out
	}
	a, b := read(), read()
	moved := false
	for i, temps := range a {
		if len(temps) != 2 || temps[0].Name != "Inlet" || temps[0].Context != "Intake" || temps[1].Name != "Exhaust" || temps[1].Context != "Exhaust" {
			t.Fatalf("sensors %+v", temps)
		}
		in, ex := temps[0], temps[1]
		if in.C < 18 || in.C > 34 || ex.C < 30 || ex.C > 55 || !in.Present || in.Health != board.HealthOK || ex.Health != board.HealthOK {
			t.Errorf("hour %d: inlet %+v exhaust %+v", i, in, ex)
		}
		if in.Thresholds == nil || *in.Thresholds.UpperCritical != 45 || *ex.Thresholds.UpperCaution != 60 {
			t.Errorf("thresholds %+v %+v", in.Thresholds, ex.Thresholds)
		}
		if in.C != b[i][0].C || ex.C != b[i][1].C {
			t.Errorf("hour %d: seed 7 gave %v/%v then %v/%v", i, in.C, ex.C, b[i][0].C, b[i][1].C)
		}
		if in.C != a[0][0].C {
			moved = true
		}
	}
	if !moved {
		t.Error("the inlet temperature never changed in a day")
	}
}
