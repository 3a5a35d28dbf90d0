package gpio

import (
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/driver/driverreg"
	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	_ "periph.io/x/host/v3/gpioioctl" // registers the /dev/gpiochip* lines
)

// Line is one GPIO line with its polarity.
type Line struct {
	Name      string
	Pin       pgpio.PinIO
	ActiveLow bool
	// Sleep waits during Pulse; nil = time.Sleep.
	Sleep func(time.Duration)
}

func (l *Line) level(asserted bool) pgpio.Level { return pgpio.Level(asserted != l.ActiveLow) }

// Asserted configures the line as an input (no pull) and reports whether
// it is at its active level.
func (l *Line) Asserted() (bool, error) {
	if err := l.Pin.In(pgpio.PullNoChange, pgpio.NoEdge); err != nil {
		return false, fmt.Errorf("gpio %s: input: %w", l.Name, err)
	}
	return l.Pin.Read() == l.level(true), nil
}

// Set drives the line to its active (true) or inactive level.
func (l *Line) Set(asserted bool) error {
	if err := l.Pin.Out(l.level(asserted)); err != nil {
		return fmt.Errorf("gpio %s: drive %v: %w", l.Name, asserted, err)
	}
	return nil
}

// Pulse asserts the line for d, then releases it (a reset).
func (l *Line) Pulse(d time.Duration) error {
	if err := l.Set(true); err != nil {
		return err
	}
	sleep := l.Sleep
	if sleep == nil {
		sleep = time.Sleep
	}
	sleep(d)
	return l.Set(false)
}

var initOnce sync.Once
var initErr error

// ByName finds a line in the periph.io registry, initialising the host
// drivers (gpioioctl) on first use.
func ByName(name string, activeLow bool) (*Line, error) {
	initOnce.Do(func() { _, initErr = driverreg.Init() })
	if initErr != nil {
		return nil, fmt.Errorf("gpio: host drivers: %w", initErr)
	}
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, fmt.Errorf("gpio: no line named %q (check gpio-line-names in the device tree, or `gpioinfo`)", name)
	}
	return &Line{Name: name, Pin: p, ActiveLow: activeLow}, nil
}
