package vote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
)

// memSource holds replicas as real record sets; a fingerprint is the
// SHA-256 of a category's sorted records, so it changes with the data.
type memSource struct {
	mu      sync.Mutex
	data    map[string]map[string]map[string]string // replica -> category -> key -> value
	weights map[string]int
	// lossy: the first N syncs into this replica drop a record.
	lossy map[string]int
	// broken: every sync into this replica fails.
	broken map[string]bool
	syncs  []string
}

func fp(recs map[string]string) string {
	keys := make([]string, 0, len(recs))
	for k := range recs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q;", k, recs[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func (s *memSource) Matrices(context.Context) ([]Replica, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.data))
	for id := range s.data {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []Replica
	for _, id := range ids {
		m := map[string]string{}
		for c, recs := range s.data[id] {
			m[c] = fp(recs)
		}
		out = append(out, Replica{ID: id, Weight: s.weights[id], Matrix: m})
	}
	return out, nil
}

func (s *memSource) Sync(_ context.Context, from, to string, cats []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs = append(s.syncs, fmt.Sprintf("%s->%s %v", from, to, cats))
	if s.broken[to] {
		return errors.New("flash write failed")
	}
	for _, c := range cats {
		cp := map[string]string{}
		for k, v := range s.data[from][c] {
			cp[k] = v
		}
		if s.lossy[to] > 0 {
			for k := range cp {
				delete(cp, k)
				break
			}
		}
		s.data[to][c] = cp
	}
	if s.lossy[to] > 0 {
		s.lossy[to]--
	}
	return nil
}

func newMem() *memSource {
	base := func() map[string]map[string]string {
		return map[string]map[string]string{
			"sel": {"1": "power on", "2": "fan fail"},
			"fan": {"Fan1": "9000", "Fan2": "9100"},
		}
	}
	return &memSource{
		data: map[string]map[string]map[string]string{
			"A/primary": base(), "A/backup": base(), "B/primary": base(), "B/backup": base(),
		},
		weights: map[string]int{"A/primary": 3, "A/backup": 2, "B/primary": 2, "B/backup": 2},
		lossy:   map[string]int{}, broken: map[string]bool{},
	}
}

func collect(evs *[]Event) func(Event) { return func(e Event) { *evs = append(*evs, e) } }

// TestArbiterSyncsAndVerifies (V4): the disagreeing replica is synced from
// the sample; a sync that loses a record is caught by the fingerprint and
// repeated until the fingerprints match.
func TestArbiterSyncsAndVerifies(t *testing.T) {
	s := newMem()
	s.data["B/backup"]["sel"]["3"] = "stale record" // B's backup differs in sel
	delete(s.data["B/primary"]["fan"], "Fan2")      // B's primary differs in fan
	s.lossy["B/backup"] = 1                         // its first sync loses a record
	var evs []Event
	a := &Arbiter{Source: s, Categories: []string{"sel", "fan"}, Event: collect(&evs)}
	rep, err := a.Run(context.Background(), "failover")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Converged || len(rep.Syncs) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, sr := range rep.Syncs {
		if sr.From != "A/primary" || !sr.Verified {
			t.Fatalf("sync %+v: want from the sample A/primary, verified", sr)
		}
		if sr.To == "B/backup" && sr.Attempts != 2 {
			t.Fatalf("B/backup synced in %d attempts, want 2 (the first lost a record)", sr.Attempts)
		}
	}
	after, _ := s.Matrices(context.Background())
	for _, r := range after[1:] {
		if fmt.Sprint(r.Matrix) != fmt.Sprint(after[0].Matrix) {
			t.Fatalf("%s %v differs from %s %v", r.ID, r.Matrix, after[0].ID, after[0].Matrix)
		}
	}
	var text []string
	for _, e := range evs {
		text = append(text, e.Severity+": "+e.Message)
	}
	all := strings.Join(text, "\n")
	if !strings.Contains(all, "B/backup still differs") || !strings.Contains(all, "B/backup synced from A/primary [sel], verified by fingerprint after 2") {
		t.Fatalf("events:\n%s", all)
	}
	if a.Last() != rep {
		t.Fatal("Last is not the run's report")
	}
	// A second run finds everything equal and syncs nothing.
	s.syncs = nil
	rep, _ = a.Run(context.Background(), "schedule")
	if !rep.Converged || len(rep.Syncs) != 0 || len(s.syncs) != 0 {
		t.Fatalf("second run: %+v syncs %v", rep, s.syncs)
	}
}

// TestArbiterNoMajority (V3): a 2:2 split without the operator's replica
// in it syncs nothing and says so.
func TestArbiterNoMajority(t *testing.T) {
	s := newMem()
	for id := range s.weights {
		s.weights[id] = 2
	}
	s.data["B/primary"]["sel"]["9"] = "x"
	s.data["B/backup"]["sel"]["9"] = "x"
	var evs []Event
	a := &Arbiter{Source: s, Categories: []string{"sel", "fan"}, Event: collect(&evs)}
	rep, err := a.Run(context.Background(), "schedule")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rep.NoMajority) != "[sel]" || len(s.syncs) != 0 || rep.Outcomes[0].Majority {
		t.Fatalf("report %+v syncs %v", rep, s.syncs)
	}
	if len(evs) == 0 || evs[0].Severity != "Critical" || !strings.Contains(evs[0].Message, "no majority for sel") {
		t.Fatalf("events %+v", evs)
	}
}

// TestArbiterGivesUp: a replica that cannot be written is tried
// MaxAttempts times, then reported as not converged.
func TestArbiterGivesUp(t *testing.T) {
	s := newMem()
	s.data["A/backup"]["fan"]["Fan3"] = "1"
	s.broken["A/backup"] = true
	var evs []Event
	a := &Arbiter{Source: s, Categories: []string{"sel", "fan"}, MaxAttempts: 2, Event: collect(&evs)}
	rep, err := a.Run(context.Background(), "schedule")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Converged || len(rep.Syncs) != 1 || rep.Syncs[0].Attempts != 2 || rep.Syncs[0].Verified || len(s.syncs) != 2 {
		t.Fatalf("report %+v syncs %v", rep, s.syncs)
	}
	if last := evs[len(evs)-1]; last.Severity != "Critical" || !strings.Contains(last.Message, "flash write failed") {
		t.Fatalf("last event %+v", last)
	}
}

// routed prefers a replica on the destination's module.
type routed struct{ *memSource }

func (r routed) Route(to string, agree []string) string {
	if to == "B/backup" {
		return "B/primary"
	}
	return "nobody" // not among the agreeing: ignored
}

// TestArbiterRouter: a Router picks another agreeing replica as the copy
// source; an answer outside the agreeing replicas is ignored.
func TestArbiterRouter(t *testing.T) {
	s := newMem()
	s.data["B/backup"]["sel"]["3"] = "stale"
	s.data["A/backup"]["fan"]["Fan9"] = "1"
	a := &Arbiter{Source: routed{s}, Categories: []string{"sel", "fan"}}
	rep, err := a.Run(context.Background(), "schedule")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Converged || strings.Join(s.syncs, "; ") != "A/primary->A/backup [fan]; B/primary->B/backup [sel]" {
		t.Fatalf("syncs %v, report %+v", s.syncs, rep)
	}
}
