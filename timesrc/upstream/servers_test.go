package upstream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"cmcd/clock/clocktest"
	"cmcd/timesrc/discipline"
	"cmcd/timesrc/events"
)

func TestParseServers(t *testing.T) {
	good := map[string]string{
		"127.0.0.1:1123": "127.0.0.1:1123", "127.0.0.1": "127.0.0.1:123", "::1": "[::1]:123", "[::1]": "[::1]:123",
		"[::1]:4123": "[::1]:4123", "NTP1.Example.org": "ntp1.example.org:123", "core-a:123": "core-a:123",
	}
	for in, want := range good {
		if got, err := ParseServer(in); err != nil || got != want {
			t.Errorf("ParseServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "bad host", "host:0", "host:65536", "host:12a", "host:", ":123", "[::1:123",
		"-lead.example", "a..b", "0.0.0.0", "224.0.0.1:123", "host:123:4"} {
		if got, err := ParseServer(bad); err == nil {
			t.Errorf("ParseServer(%q) = %q, want an error", bad, got)
		}
	}
	_, err := ParseServers([]string{"a:1", "b", "a:1"})
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Index != 2 || ee.Entry != "a:1" {
		t.Fatalf("duplicate: %v", err)
	}
}

// TestSetServers: the set changes at run time, kept servers keep their
// state, the poller switches to a new server, a bad list changes nothing.
func TestSetServers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	raw := clocktest.New(t0)
	net := &fakeNet{raw: raw, t0: t0, err: map[string]time.Duration{}, down: map[string]bool{}}
	log := events.NewLog(100, nil)
	p := New(Config{Servers: []string{"127.0.0.1:123"}, Poll: 8 * time.Second}, net, raw, discipline.NewVirtual(raw, 0), log.Emit)
	ctx := context.Background()
	p.PollOnce(ctx)
	if st := p.Status(); !st.Synced || st.RefAddr != "127.0.0.1:123" {
		t.Fatalf("status %+v", st)
	}
	if _, err := p.SetServers([]string{"127.0.0.2", "bad host"}, "test"); err == nil {
		t.Fatal("bad list accepted")
	}
	if got := fmt.Sprint(p.Servers()); got != "[127.0.0.1:123]" {
		t.Fatalf("servers after refused change %s", got)
	}
	set, err := p.SetServers([]string{"127.0.0.2"}, "test")
	if err != nil || fmt.Sprint(set) != "[127.0.0.2:123]" {
		t.Fatal(set, err)
	}
	raw.Advance(time.Second)
	p.PollOnce(ctx)
	if st := p.Status(); !st.Synced || st.RefAddr != "127.0.0.2:123" || len(st.Peers) != 1 {
		t.Fatalf("after switch %+v", st)
	}
	kinds := ""
	for _, e := range log.Events() {
		kinds += e.Kind + " "
	}
	if want := "upstream.selected upstream.configured upstream.selected "; kinds != want {
		t.Fatalf("events %q, want %q", kinds, want)
	}
	// No servers: the region holds over rather than staying synced on a
	// server it no longer has.
	if _, err := p.SetServers(nil, "test"); err != nil {
		t.Fatal(err)
	}
	raw.Advance(time.Second)
	p.PollOnce(ctx)
	if st := p.Status(); !st.Holdover {
		t.Fatalf("without servers %+v", st)
	}
}
