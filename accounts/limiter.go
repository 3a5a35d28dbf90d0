package accounts

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Defaults of the store's own Limiter.
const (
	DefaultSourceFailures = 10
	DefaultSourceWindow   = time.Minute
	DefaultSourceBlock    = time.Minute
	// limiterMaxSources bounds the Limiter's memory: IPMI runs over UDP, so
	// source addresses can be forged at will.
	limiterMaxSources = 1024
)

// Limiter rate-limits failed logins per source address, whatever the
// account: after max failures within window a source is refused for block.
// Redfish and IPMI share the store's (Store.Limiter). Safe for concurrent use.
type Limiter struct {
	max           int
	window, block time.Duration
	clock         Clock

	mu      sync.Mutex
	sources map[string]*sourceState
}

type sourceState struct {
	n            int
	first, last  time.Time
	blockedUntil time.Time
}

// NewLimiter returns a Limiter; max 0 disables it. A nil clock means the system clock.
func NewLimiter(max int, window, block time.Duration, clock Clock) *Limiter {
	if clock == nil {
		clock = systemClock{}
	}
	return &Limiter{max: max, window: window, block: block, clock: clock, sources: map[string]*sourceState{}}
}

// sourceKey drops a port, so "192.0.2.1:5123" and "192.0.2.1:5124" are one source.
func sourceKey(source string) string {
	if host, _, err := net.SplitHostPort(source); err == nil {
		return host
	}
	return source
}

// Allow returns ErrRateLimited while source is blocked. The empty source
// (an in-process caller) is never limited.
func (l *Limiter) Allow(source string) error {
	if source == "" || l.max <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	key := sourceKey(source)
	if st := l.sources[key]; st != nil && l.clock.Now().Before(st.blockedUntil) {
		return fmt.Errorf("%w: %s, retry after %s", ErrRateLimited, key, st.blockedUntil.Format(time.RFC3339))
	}
	return nil
}

// Failure counts a failed login from source.
func (l *Limiter) Failure(source string) {
	if source == "" || l.max <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now, key := l.clock.Now(), sourceKey(source)
	st := l.sources[key]
	if st == nil {
		if len(l.sources) >= limiterMaxSources {
			l.evict(now)
		}
		st = &sourceState{}
		l.sources[key] = st
	}
	if st.n == 0 || now.Sub(st.first) >= l.window {
		st.n, st.first = 0, now
	}
	st.n++
	st.last = now
	if st.n >= l.max {
		st.n, st.blockedUntil = 0, now.Add(l.block)
	}
}

// evict makes room: it drops every source with nothing left to remember,
// and if none, the one least recently seen. Callers hold l.mu.
func (l *Limiter) evict(now time.Time) {
	var oldest string
	for k, st := range l.sources {
		if !now.Before(st.blockedUntil) && now.Sub(st.first) >= l.window {
			delete(l.sources, k)
		} else if oldest == "" || st.last.Before(l.sources[oldest].last) {
			oldest = k
		}
	}
	if len(l.sources) >= limiterMaxSources {
		delete(l.sources, oldest)
	}
}
