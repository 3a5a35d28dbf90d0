package flashtest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is the behaviour of the fake probe.
type Mode int

// Probe behaviours.
const (
	Healthy Mode = iota // answers at once, healthy
	Slow                // answers healthy after Delay (or times out)
	Failing             // answers at once with an error
	Dead                // never answers; blocks until the context ends
)

// ErrInjected is the error a Failing probe returns.
var ErrInjected = errors.New("injected primary image fault")

// Probe is a flash.Prober whose behaviour tests control.
type Probe struct {
	mu    sync.Mutex
	mode  Mode
	delay time.Duration
	calls atomic.Int64
	// OnProbe, if set, runs at the start of every probe (outside the lock).
	OnProbe func(n int64)
}

// Set changes the behaviour; delay applies to Slow.
func (p *Probe) Set(m Mode, delay time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = m, delay
	p.mu.Unlock()
}

// Calls reports how many probes ran.
func (p *Probe) Calls() int64 { return p.calls.Load() }

// Probe implements flash.Prober.
func (p *Probe) Probe(ctx context.Context) error {
	n := p.calls.Add(1)
	if p.OnProbe != nil {
		p.OnProbe(n)
	}
	p.mu.Lock()
	m, d := p.mode, p.delay
	p.mu.Unlock()
	switch m {
	case Slow:
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case Failing:
		return ErrInjected
	case Dead:
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}
