package vote

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Source gives the arbiter the replicas and a way to copy between them.
type Source interface {
	// Matrices reads every replica's fingerprint matrix. A replica that
	// cannot be read is left out (or given without the categories it
	// cannot report); it then does not vote.
	Matrices(ctx context.Context) ([]Replica, error)
	// Sync copies the given categories from replica from to replica to.
	Sync(ctx context.Context, from, to string, categories []string) error
}

// Router is an optional Source extension: it picks which replica a
// disagreeing replica is copied from, among those that agree with the
// sample (e.g. one on the same module, which has a local sync path). Any
// other answer is ignored and the sample is used.
type Router interface {
	Route(to string, agree []string) string
}

// Event is one step of a run, for the event log.
type Event struct {
	Time     time.Time `json:"time"`
	Severity string    `json:"severity"` // OK, Warning, Critical
	Message  string    `json:"message"`
}

// SyncResult is the sync of one disagreeing replica.
type SyncResult struct {
	From       string   `json:"from"`
	To         string   `json:"to"`
	Categories []string `json:"categories"`
	Attempts   int      `json:"attempts"`
	Verified   bool     `json:"verified"`
	Error      string   `json:"error,omitempty"`
}

// Report is the result of one run.
type Report struct {
	Reason     string       `json:"reason"`
	Start      time.Time    `json:"start"`
	End        time.Time    `json:"end"`
	Replicas   []Replica    `json:"replicas"`
	Outcomes   []Outcome    `json:"outcomes"`
	Syncs      []SyncResult `json:"syncs,omitempty"`
	NoMajority []string     `json:"noMajority,omitempty"`
	// Converged: every category with a majority is now equal on every
	// replica that voted on it.
	Converged bool `json:"converged"`
}

// Arbiter runs the vote and the sync-and-verify loop.
type Arbiter struct {
	Source      Source
	Categories  []string
	MaxAttempts int // syncs per disagreeing replica; default 3
	Event       func(Event)
	Now         func() time.Time

	mu   sync.Mutex // one run at a time
	last *Report
}

func (a *Arbiter) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Arbiter) emit(sev, format string, args ...any) {
	if a.Event != nil {
		a.Event(Event{Time: a.now().UTC(), Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
}

// Last returns the report of the last completed run (nil before the first).
func (a *Arbiter) Last() *Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

func byID(rs []Replica) map[string]Replica {
	m := make(map[string]Replica, len(rs))
	for _, r := range rs {
		m[r.ID] = r
	}
	return m
}

// Run reads the matrices, votes, syncs every disagreeing replica from the
// sample of each category, and verifies each sync by fingerprint, syncing
// again until it matches or MaxAttempts is reached.
func (a *Arbiter) Run(ctx context.Context, reason string) (*Report, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	max := a.MaxAttempts
	if max <= 0 {
		max = 3
	}
	rep := &Report{Reason: reason, Start: a.now().UTC()}
	reps, err := a.Source.Matrices(ctx)
	if err != nil {
		a.emit("Warning", "fingerprint vote (%s): reading the replicas failed: %v", reason, err)
		return nil, err
	}
	rep.Replicas = reps
	if rep.Outcomes, err = Vote(reps, a.Categories); err != nil {
		return nil, err
	}
	// Per disagreeing replica: the categories to copy, grouped by sample.
	type job struct{ from, to string }
	jobs := map[job][]string{}
	for _, o := range rep.Outcomes {
		if !o.Majority {
			if len(o.Disagree) > 1 {
				rep.NoMajority = append(rep.NoMajority, o.Category)
			}
			continue
		}
		for _, id := range o.Disagree {
			from := o.Sample
			if rt, ok := a.Source.(Router); ok {
				if f := rt.Route(id, o.Agree); slices.Contains(o.Agree, f) {
					from = f
				}
			}
			jobs[job{from, id}] = append(jobs[job{from, id}], o.Category)
		}
	}
	if len(rep.NoMajority) > 0 {
		a.emit("Critical", "fingerprint vote (%s): no majority for %s; nothing synced there",
			reason, strings.Join(rep.NoMajority, ", "))
	}
	keys := make([]job, 0, len(jobs))
	for k := range jobs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].to != keys[j].to {
			return keys[i].to < keys[j].to
		}
		return keys[i].from < keys[j].from
	})
	rep.Converged = true
	for _, k := range keys {
		sr := SyncResult{From: k.from, To: k.to, Categories: jobs[k]}
		for sr.Attempts < max && !sr.Verified {
			if err := ctx.Err(); err != nil {
				sr.Error = err.Error()
				break
			}
			sr.Attempts++
			if err := a.Source.Sync(ctx, k.from, k.to, sr.Categories); err != nil {
				sr.Error = err.Error()
				a.emit("Warning", "fingerprint vote (%s): sync %s -> %s [%s], attempt %d: %v",
					reason, k.from, k.to, strings.Join(sr.Categories, " "), sr.Attempts, err)
				continue
			}
			now, err := a.Source.Matrices(ctx)
			if err != nil {
				sr.Error = err.Error()
				continue
			}
			m := byID(now)
			from, to := m[k.from], m[k.to]
			var differ []string
			for _, c := range sr.Categories {
				fv, ok1 := from.Matrix[c]
				tv, ok2 := to.Matrix[c]
				if !ok1 || !ok2 || fv != tv {
					differ = append(differ, c)
				}
			}
			if len(differ) == 0 {
				sr.Verified, sr.Error = true, ""
			} else {
				sr.Error = "fingerprint still differs: " + strings.Join(differ, " ")
				a.emit("Warning", "fingerprint vote (%s): %s still differs from %s after sync attempt %d [%s]; syncing again",
					reason, k.to, k.from, sr.Attempts, strings.Join(differ, " "))
			}
		}
		if sr.Verified {
			a.emit("OK", "fingerprint vote (%s): %s synced from %s [%s], verified by fingerprint after %d attempt(s)",
				reason, k.to, k.from, strings.Join(sr.Categories, " "), sr.Attempts)
		} else {
			rep.Converged = false
			a.emit("Critical", "fingerprint vote (%s): %s could not be brought to %s [%s] in %d attempt(s): %s",
				reason, k.to, k.from, strings.Join(sr.Categories, " "), sr.Attempts, sr.Error)
		}
		rep.Syncs = append(rep.Syncs, sr)
	}
	if len(keys) == 0 && len(rep.NoMajority) == 0 {
		a.emit("OK", "fingerprint vote (%s): %d replicas agree on every category", reason, len(reps))
	}
	rep.End = a.now().UTC()
	a.last = rep
	return rep, nil
}
