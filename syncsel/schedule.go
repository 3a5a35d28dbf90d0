package syncsel

import (
	"context"
	"errors"
	"time"

	"cmcd/clock"
)

// nextRound is when the next scheduled round is due: the end of the last
// round plus the interval (S6).
func nextRound(lastEnd time.Time, cfg Config) time.Time { return lastEnd.Add(cfg.Interval.D()) }

// SyncNow runs a round on demand and waits for it.
func (e *Engine) SyncNow(ctx context.Context) (RoundResult, error) {
	reply := make(chan roundReply, 1)
	select {
	case e.trigger <- reply:
	case <-ctx.Done():
		return RoundResult{}, ctx.Err()
	}
	select {
	case r := <-reply:
		return r.res, r.err
	case <-ctx.Done():
		return RoundResult{}, ctx.Err()
	}
}

// Run collects and runs rounds on the schedule (and on demand) until ctx
// ends.
func (e *Engine) Run(ctx context.Context) error {
	collectDone := make(chan struct{})
	go func() {
		defer close(collectDone)
		e.collector.Run(ctx, func() time.Duration { return e.Config().CollectInterval.D() })
	}()
	defer func() { <-collectDone }()
	e.mu.Lock()
	if e.st.LastRoundEnd.IsZero() || e.st.LastRoundEnd.After(e.o.Clock.Now()) {
		e.st.LastRoundEnd = e.o.Clock.Now()
	}
	e.mu.Unlock()
	for {
		e.mu.Lock()
		cfg := e.cfg
		due := nextRound(e.st.LastRoundEnd, cfg)
		if cfg.AutoSync {
			e.st.NextRound = due
		} else {
			e.st.NextRound = time.Time{}
		}
		e.mu.Unlock()
		var timerC <-chan time.Time
		var t clock.Timer
		if cfg.AutoSync {
			t = e.o.Clock.NewTimer(max(0, due.Sub(e.o.Clock.Now())))
			timerC = t.C()
		}
		var reply chan roundReply
		reason := "schedule"
		replan := false
		select {
		case <-ctx.Done():
		case <-e.cfgChange:
			replan = true // with the new interval
		case reply = <-e.trigger:
			reason = "demand"
		case <-timerC:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
		if replan {
			continue
		}
		res, err := e.Round(ctx, reason)
		if reply != nil {
			reply <- roundReply{res, err}
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			e.log.Warn("round failed", "err", err)
		}
	}
}
