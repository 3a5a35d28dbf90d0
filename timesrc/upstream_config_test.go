package timesrc

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cmcd/timesrc/events"
	"cmcd/timesrc/upstream"
)

// TestUpstreamSurvivesRestart: a run-time change of the core servers is
// saved and wins over the configured set at the next start; a bad entry
// or a failed save changes nothing; an unreadable saved file falls back to
// the configured set with a warning and is left for the operator.
func TestUpstreamSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ntp-upstream.json")
	var got []events.Event
	cfg := Config{Listen: []string{"127.0.0.1:0"}, Upstream: []string{"127.0.0.1:1123"}, UpstreamFile: file,
		Events: func(e events.Event) { got = append(got, e) }}
	start := func() *Service {
		t.Helper()
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := start()
	if up := s.Upstream(); !slices.Equal(up, []string{"127.0.0.1:1123"}) {
		t.Fatalf("first start: %v", up)
	}
	want := []string{"127.0.0.2:123", "127.0.0.3:1124"}
	if _, err := s.SetUpstream([]string{"127.0.0.2", "127.0.0.3:1124"}, "test"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v %v", fi, err)
	}
	var ee *upstream.EntryError
	if _, err := s.SetUpstream([]string{"127.0.0.4", "bad host:x"}, "test"); !errors.As(err, &ee) {
		t.Fatalf("bad entry: %v", err)
	}
	if up := start().Upstream(); !slices.Equal(up, want) {
		t.Fatalf("after restart: %v, want the saved %v", up, want)
	}
	// A failed save (its directory is gone) changes nothing in memory.
	lost := cfg
	lost.UpstreamFile = filepath.Join(dir, "gone", "ntp-upstream.json")
	s2, err := New(lost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.SetUpstream([]string{"127.0.0.9"}, "test"); err == nil || !strings.Contains(err.Error(), "saving") {
		t.Fatalf("save into a missing directory: %v", err)
	}
	if up := s2.Upstream(); !slices.Equal(up, cfg.Upstream) {
		t.Fatalf("after a failed save: %v", up)
	}
	// An unreadable saved file: the configured set, a warning, the file kept.
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	got = nil
	if up := start().Upstream(); !slices.Equal(up, cfg.Upstream) {
		t.Fatalf("with a garbled saved file: %v, want the configured %v", up, cfg.Upstream)
	}
	if len(got) == 0 || got[0].Severity != events.Warning || !strings.Contains(got[0].Message, "unreadable") {
		t.Fatalf("no warning about the garbled file: %+v", got)
	}
	if b, _ := os.ReadFile(file); string(b) != "{not json" {
		t.Fatalf("the garbled file was touched: %q", b)
	}
}
