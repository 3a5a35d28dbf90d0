package syncsel

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"

	"cmcd/flash"
)

// StoreReport is what Verify found in one store.
type StoreReport struct {
	Slot     flash.Slot
	Role     string // "source" or "destination"
	Path     string
	Err      error // the store could not be opened or read
	Missing  bool  // no store file: never created, so nothing was ever committed to it
	Last     *RoundRecord
	Intent   *Intent
	Checks   map[Category]CategoryCheck
	Problems []string
}

// VerifyReport is the result of the offline check of both data areas.
type VerifyReport struct {
	Running flash.Slot
	Source  flash.Slot
	Stores  [2]StoreReport
}

// OnlyNeedsRecovery reports whether the one problem is an unfinished
// round in the destination's journal while its data is exactly the last
// committed round (the state a kill leaves; the next start rolls it back).
func (r VerifyReport) OnlyNeedsRecovery() bool {
	d := r.Stores[r.Source.Other()]
	return len(r.Stores[r.Source].Problems) == 0 && d.Intent != nil && len(d.Problems) == 1
}

// Consistent reports whether no problem was found.
func (r VerifyReport) Consistent() bool {
	return len(r.Stores[0].Problems) == 0 && len(r.Stores[1].Problems) == 0
}

// Verify opens both stores read-only and checks them: each store's pages
// (bbolt's check), every record's fingerprint and every category's sum;
// the destination must, in addition, hold exactly its last committed
// round and no unfinished round.
func Verify(a flash.Areas, timeout time.Duration) VerifyReport {
	var r VerifyReport
	images, err := flash.OpenSimImages(a, time.Now)
	if err == nil {
		r.Running = images.Active()
	}
	r.Source = r.Running
	stores := [2]*Store{}
	for _, slot := range []flash.Slot{flash.Primary, flash.Backup} {
		sr := &r.Stores[slot]
		sr.Slot, sr.Path = slot, a.StorePath(slot)
		s, err := OpenStore(sr.Path, slot, StoreOptions{ReadOnly: true, Timeout: timeout})
		if errors.Is(err, fs.ErrNotExist) {
			// cmcd creates each store before it writes anything to it;
			// a store that does not exist holds no committed state (a
			// kill or cut at the first start lands here).
			sr.Missing = true
			continue
		}
		if err != nil {
			sr.Err = err
			sr.Problems = append(sr.Problems, "cannot open: "+err.Error())
			continue
		}
		defer s.Close()
		stores[slot] = s
	}
	if err != nil {
		r.Stores[0].Problems = append(r.Stores[0].Problems, "boot state unreadable: "+err.Error())
	}
	if s := stores[r.Running]; s != nil {
		if cfg, ok, err := s.LoadConfig(); err == nil && ok && cfg.Source == SourcePrimary {
			r.Source = flash.Primary
		}
	}
	for _, slot := range []flash.Slot{flash.Primary, flash.Backup} {
		sr, s := &r.Stores[slot], stores[slot]
		sr.Role = "source"
		if slot != r.Source {
			sr.Role = "destination"
		}
		if s == nil {
			continue
		}
		if err := s.StructureCheck(); err != nil {
			sr.Problems = append(sr.Problems, "page structure: "+err.Error())
			continue
		}
		if s.uninitialised() {
			// Created, but its first transaction never became durable
			// (a power cut at first start): empty, and cmcd run sets it up.
			continue
		}
		js, err := s.Journal()
		if err != nil {
			sr.Problems = append(sr.Problems, "journal: "+err.Error())
		}
		sr.Last, sr.Intent = js.Last, js.Intent
		if sr.Checks, err = s.Check(); err != nil {
			sr.Problems = append(sr.Problems, "records: "+err.Error())
			continue
		}
		for _, cat := range Categories {
			if c := sr.Checks[cat]; !c.OK() {
				sr.Problems = append(sr.Problems, fmt.Sprintf("category %s: %d corrupt records %v, stored sum %s != computed %s",
					cat, len(c.BadKeys), head(c.BadKeys, 5), c.Stored.FP, c.Computed.FP))
			}
		}
		if sr.Role == "destination" {
			if js.Intent != nil {
				sr.Problems = append(sr.Problems, fmt.Sprintf("round %d started and did not commit: the journal needs recovery (cmcd run recovers it)", js.Intent.Round))
			}
			if err := matchesRound(sr.Checks, js.Last); err != nil {
				sr.Problems = append(sr.Problems, "not a committed round: "+err.Error())
			}
		}
	}
	return r
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Print writes the report for people.
func (r VerifyReport) Print(w io.Writer) {
	fmt.Fprintf(w, "running image: %s; rounds copy %s -> %s\n", r.Running, r.Source, r.Source.Other())
	for _, sr := range r.Stores {
		fmt.Fprintf(w, "\n%s store (%s): %s\n", sr.Slot, sr.Role, sr.Path)
		if sr.Err != nil {
			fmt.Fprintf(w, "  error: %v\n", sr.Err)
			continue
		}
		if sr.Missing {
			fmt.Fprintf(w, "  no store yet: nothing was ever committed here\n")
			continue
		}
		if sr.Last != nil {
			fmt.Fprintf(w, "  last committed round: %d at %s (group %d, categories %v)\n", sr.Last.ID, sr.Last.Ended.Format(time.RFC3339Nano), sr.Last.Group+1, sr.Last.Categories)
		} else {
			fmt.Fprintf(w, "  last committed round: none\n")
		}
		if sr.Intent != nil {
			fmt.Fprintf(w, "  unfinished round: %d (started %s)\n", sr.Intent.Round, sr.Intent.Started.Format(time.RFC3339Nano))
		}
		fmt.Fprintf(w, "  %-6s %-32s %8s %s\n", "cat", "fingerprint", "records", "")
		for _, cat := range Categories {
			c, ok := sr.Checks[cat]
			if !ok {
				continue
			}
			mark := "ok"
			if !c.OK() {
				mark = "CORRUPT"
			} else if sr.Role == "destination" && sr.Last != nil && sr.Last.Matrix[cat] != c.Computed {
				mark = "differs from round"
			}
			fmt.Fprintf(w, "  %-6s %-32s %8d %s\n", cat, c.Computed.FP, c.Computed.Records, mark)
		}
	}
	fmt.Fprintln(w)
	if r.Consistent() {
		fmt.Fprintln(w, "verdict: consistent")
		return
	}
	var all []string
	for _, sr := range r.Stores {
		for _, p := range sr.Problems {
			all = append(all, fmt.Sprintf("%s: %s", sr.Slot, p))
		}
	}
	sort.Strings(all)
	fmt.Fprintf(w, "verdict: INCONSISTENT\n  %s\n", strings.Join(all, "\n  "))
}

// ErrInconsistent is returned by callers that turn a report into an exit code.
var ErrInconsistent = errors.New("data areas inconsistent")
