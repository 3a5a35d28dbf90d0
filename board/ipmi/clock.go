package ipmi

import (
	"time"
)

// Clock tells the time. The node collector reads time only through it, so
// tests can drive reconnection backoff with ipmitest.FakeClock instead of
// sleeping.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Backoff is the exponential backoff used for an unreachable node: after
// the first failure the node is retried no sooner than Min later, and each
// further consecutive failure doubles the wait, up to Max.
type Backoff struct {
	Min time.Duration
	Max time.Duration
}

// DefaultBackoff retries an unreachable node after 1s, 2s, 4s, ... up to 1 minute.
var DefaultBackoff = Backoff{Min: time.Second, Max: time.Minute}

// delay returns the wait after the given number of consecutive failures (>= 1).
func (b Backoff) delay(failures int) time.Duration {
	if b.Min <= 0 {
		b.Min = DefaultBackoff.Min
	}
	if b.Max < b.Min {
		b.Max = b.Min
	}
	d := b.Min
	for i := 1; i < failures; i++ {
		d *= 2
		if d >= b.Max || d <= 0 {
			return b.Max
		}
	}
	return d
}
