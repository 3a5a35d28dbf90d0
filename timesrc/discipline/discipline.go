package discipline

import (
	"sync"
	"sync/atomic"
	"time"

	"cmcd/clock"
)

// Estimate says how far the raw clock is from true time: at raw time At the
// true time is At+Offset, and the raw clock gains Freq seconds per second
// relative to true time (true = raw + Offset - Freq*(raw-At)).
type Estimate struct {
	At     time.Time
	Offset time.Duration
	Freq   float64
}

// TrueAt returns the true time for a raw reading under the estimate.
func (e Estimate) TrueAt(raw time.Time) time.Time {
	if e.At.IsZero() {
		return raw.Add(e.Offset)
	}
	dt := raw.Sub(e.At).Seconds()
	return raw.Add(e.Offset - time.Duration(e.Freq*dt*1e9))
}

// Clock is the time cmcd serves.
type Clock interface {
	// Now is the corrected time.
	Now() time.Time
	// FromRaw converts a raw reading of the machine clock (e.g. a kernel
	// receive timestamp) to the corrected time scale.
	FromRaw(raw time.Time) time.Time
	// Apply installs a new estimate of the raw clock's error.
	Apply(e Estimate) error
	// Name names the backend ("virtual", "adjtimex").
	Name() string
}

// StepThreshold is the phase change beyond which Virtual steps instead of
// slewing (ntpd's and chrony's customary 128 ms).
const StepThreshold = 128 * time.Millisecond

// Virtual is a corrected clock kept inside the daemon: raw time from a
// clock.Clock plus the last estimate. It never changes the machine's clock.
// Readers (the NTP server converts every receive timestamp) take no lock:
// the state is an immutable snapshot swapped by Apply and SetSlew.
type Virtual struct {
	raw clock.Clock
	mu  sync.Mutex // serialises writers
	cur atomic.Pointer[vstate]
}

type vstate struct {
	est Estimate
	// slew limits how fast a phase correction is taken in (s/s); 0 = step.
	slew float64
	// phase correction in progress: served = TrueAt(raw) - pending(raw)
	pendAt  time.Time
	pending time.Duration
}

// NewVirtual returns a virtual clock over raw (clock.Real() in the daemon,
// a fake in tests) with an initial offset (a test's "wrong" core uses it).
func NewVirtual(raw clock.Clock, initial time.Duration) *Virtual {
	v := &Virtual{raw: raw}
	v.cur.Store(&vstate{est: Estimate{Offset: initial}})
	return v
}

// SetSlew sets the largest rate (seconds per second, e.g. 500e-6) at which a
// new estimate's phase change is taken in; 0 (default) applies it at once.
// A change beyond StepThreshold is always stepped.
func (v *Virtual) SetSlew(rate float64) {
	v.mu.Lock()
	st := *v.cur.Load()
	st.slew = rate
	v.cur.Store(&st)
	v.mu.Unlock()
}

// Name implements Clock.
func (v *Virtual) Name() string { return "virtual" }

// Now implements Clock.
func (v *Virtual) Now() time.Time { return v.FromRaw(v.raw.Now()) }

// FromRaw implements Clock.
func (v *Virtual) FromRaw(raw time.Time) time.Time {
	st := v.cur.Load()
	return st.est.TrueAt(raw).Add(-st.pendingAt(raw))
}

func (v *vstate) pendingAt(raw time.Time) time.Duration {
	if v.pending == 0 || v.slew <= 0 {
		return 0
	}
	done := time.Duration(raw.Sub(v.pendAt).Seconds() * v.slew * 1e9)
	if done < 0 {
		done = 0
	}
	if v.pending > 0 {
		if done >= v.pending {
			return 0
		}
		return v.pending - done
	}
	if done >= -v.pending {
		return 0
	}
	return v.pending + done
}

// Apply implements Clock.
func (v *Virtual) Apply(e Estimate) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.raw.Now()
	if e.At.IsZero() {
		e.At = now
	}
	old := v.cur.Load()
	before := old.est.TrueAt(now).Add(-old.pendingAt(now))
	st := &vstate{est: e, slew: old.slew}
	after := e.TrueAt(now)
	jump := after.Sub(before)
	if st.slew > 0 && jump < StepThreshold && jump > -StepThreshold {
		st.pending, st.pendAt = jump, now
	}
	v.cur.Store(st)
	return nil
}

// Current returns the estimate in force.
func (v *Virtual) Current() Estimate { return v.cur.Load().est }
