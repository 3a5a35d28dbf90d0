package discipline

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Adjtimex disciplines the machine's clock through the kernel (adjtimex(2)
// with the PLL in nanosecond mode): the offset goes to ADJ_OFFSET, the
// frequency to ADJ_FREQUENCY. It is for real boards only: tests never use
// it, and cmcd picks it only when --ntp-clock adjtimex is given.
type Adjtimex struct {
	sys func(*unix.Timex) (int, error)
}

// NewAdjtimex returns the kernel discipline backend.
func NewAdjtimex() *Adjtimex { return &Adjtimex{sys: unix.Adjtimex} }

// Name implements Clock.
func (a *Adjtimex) Name() string { return "adjtimex" }

// Now implements Clock: the kernel clock is the corrected clock.
func (a *Adjtimex) Now() time.Time { return time.Now() }

// FromRaw implements Clock: raw readings are already corrected.
func (a *Adjtimex) FromRaw(raw time.Time) time.Time { return raw }

func set[T ~int32 | ~int64](p *T, v int64) { *p = T(v) }

// Apply implements Clock. Offsets beyond the kernel PLL's ±0.5 s are
// refused: a board steps its clock at boot, not while serving.
func (a *Adjtimex) Apply(e Estimate) error {
	if e.Offset > 500*time.Millisecond || e.Offset < -500*time.Millisecond {
		return fmt.Errorf("adjtimex: offset %v beyond the kernel PLL's ±0.5s; step the clock first", e.Offset)
	}
	var tx unix.Timex
	tx.Modes = unix.ADJ_OFFSET | unix.ADJ_FREQUENCY | unix.ADJ_STATUS | unix.ADJ_NANO
	set(&tx.Offset, int64(e.Offset))
	// frequency in ppm with a 16-bit fraction; the raw clock gains Freq,
	// so slow it down by that much.
	set(&tx.Freq, int64(-e.Freq*1e6*65536))
	set(&tx.Status, int64(unix.STA_PLL|unix.STA_NANO))
	if _, err := a.sys(&tx); err != nil {
		return fmt.Errorf("adjtimex: %w", err)
	}
	return nil
}
