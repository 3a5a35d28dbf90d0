package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"cmcd/board"
	"cmcd/board/sim"
	"cmcd/flash"
	"cmcd/flash/flashtest"
	"cmcd/pair/vote"
	"cmcd/syncsel"
)

// voteModule is one module's engine (running, so rounds on demand work)
// and the vote side of its pairModule; no raft node is needed for the
// vote's Source.
type voteModule struct {
	m   *pairModule
	sim *sim.Chassis
	eng *syncsel.Engine
}

func newVoteModule(t *testing.T, id string, key []byte) *voteModule {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: 7, Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	areas := flash.Areas{Root: t.TempDir()}
	if err := areas.Ensure(); err != nil {
		t.Fatal(err)
	}
	images, err := flash.OpenSimImages(areas, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	eng, err := syncsel.Open(syncsel.Options{Areas: areas, Images: images, Board: s.Board(),
		Probers: map[flash.Slot]flash.Prober{flash.Primary: &flashtest.Probe{}},
		Override: map[string]json.RawMessage{"interval": raw(`"1h"`), "collectInterval": raw(`"1h"`),
			"probeInterval": raw(`"20ms"`), "probeTimeout": raw(`"100ms"`), "responseThreshold": raw(`"300ms"`)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; eng.Close() })
	m := &pairModule{eng: eng, log: slog.New(slog.DiscardHandler), id: id, key: key}
	m.newArbiter()
	v := &voteModule{m: m, sim: s, eng: eng}
	v.settle(t)
	return v
}

// settle collects and runs rounds until the backup equals the primary.
func (v *voteModule) settle(t *testing.T) {
	t.Helper()
	if _, err := v.eng.Collector().Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := v.eng.SyncNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := v.m.localReplicas(true)
		if r[0].Matrix["sel"] == r[1].Matrix["sel"] {
			return
		}
	}
	t.Fatal("backup never caught up with the primary")
}

// diverge puts a new SEL record into the module's primary data area only.
func (v *voteModule) diverge(t *testing.T, msg string) {
	t.Helper()
	if err := v.sim.InjectSEL(v.sim.Slots()[0], board.SELEntry{SensorType: 1, EventType: 1, Severity: board.SeverityWarning, Message: msg}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.eng.Collector().Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := v.m.localReplicas(true)
	if r[0].Matrix["sel"] == r[1].Matrix["sel"] {
		t.Fatal("primary and backup still agree on sel after a new record")
	}
}

func (v *voteModule) serve(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cmcd/pair/matrix", v.m.matrixHandler)
	mux.HandleFunc("POST /cmcd/pair/vote/sync", v.m.voteSyncHandler)
	mux.HandleFunc("GET /cmcd/pair/data/export", v.m.dataExportHandler)
	mux.HandleFunc("POST /cmcd/pair/data/sync", v.m.dataSyncHandler)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func pairVoteEvents(t *testing.T, eng *syncsel.Engine) string {
	t.Helper()
	evs, err := eng.Store().Events()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.Kind == "PairVote" {
			out = append(out, e.Severity+": "+e.Message)
		}
	}
	return strings.Join(out, "\n")
}

// TestPairVoteLocal (V2-V4 in cmcd): the running data area of the active
// outweighs the backup, so after a new record only in the primary the
// vote picks the primary as the sample, a round brings the backup to it,
// the fingerprints are verified equal, and the result is an event in the
// CMC event log.
func TestPairVoteLocal(t *testing.T) {
	a := newVoteModule(t, "A", []byte("0123456789abcdef0123456789abcdef"))
	a.diverge(t, "vote test record")
	rep, err := a.m.runVote(context.Background(), "takeover")
	if err != nil {
		t.Fatal(err)
	}
	var sel vote.Outcome
	for _, o := range rep.Outcomes {
		if o.Category == "sel" {
			sel = o
		}
	}
	if !sel.Majority || sel.Sample != "A/primary" || strings.Join(sel.Disagree, ",") != "A/backup" || sel.Support != 0.6 {
		t.Fatalf("sel outcome %+v", sel)
	}
	if !rep.Converged || len(rep.Syncs) != 1 || !rep.Syncs[0].Verified || rep.Syncs[0].To != "A/backup" {
		t.Fatalf("report %+v", rep)
	}
	r := a.m.localReplicas(true)
	if r[0].Matrix["sel"] != r[1].Matrix["sel"] {
		t.Fatalf("after the vote: primary %s, backup %s", r[0].Matrix["sel"], r[1].Matrix["sel"])
	}
	if ev := pairVoteEvents(t, a.eng); !strings.Contains(ev, "OK: fingerprint vote (takeover): A/backup synced from A/primary") {
		t.Fatalf("events:\n%s", ev)
	}
}

// TestPairVoteAcrossModules: the peer's two data areas take part through
// its signed GET /cmcd/pair/matrix (never with more than the normal
// weight, never speaking for this module; a bad signature is refused); a
// disagreement inside the peer is repaired by a round on the peer, asked
// by the arbiter over POST /cmcd/pair/vote/sync; a sync against the
// rounds' direction copies records; data that differs between the modules
// (V4 across modules) is copied from the majority's sample to the other
// module (signed export, one import transaction into its primary, a round
// to its backup), verified by fingerprint, converged, and said so in
// PairVote and DataImported events; unsigned or re-bodied peer requests
// are refused.
func TestPairVoteAcrossModules(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, b := newVoteModule(t, "A", key), newVoteModule(t, "B", key)
	srv := b.serve(t)
	a.m.peerHTTP = []string{"http://127.0.0.1:1", srv.URL} // first path dead: the second is used

	// A wrong key is refused.
	bad := &pairModule{key: []byte("another key, not the pair key..."), httpc: http.DefaultClient}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/cmcd/pair/matrix", nil)
	bad.signPeer(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong pair key: %s, want 401", resp.Status)
	}

	reps, err := pairVoteSource{a.m}.Matrices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, r := range reps {
		ids[r.ID] = r.Weight
	}
	if len(reps) != 4 || ids["A/primary"] != 3 || ids["A/backup"] != 2 || ids["B/primary"] != 2 || ids["B/backup"] != 2 {
		t.Fatalf("replicas %v", ids)
	}

	// Inside B: the arbiter's sync runs a round on B, verified by fingerprint.
	b.diverge(t, "only on B")
	if err := (pairVoteSource{a.m}).Sync(context.Background(), "B/primary", "B/backup", []string{"sel"}); err != nil {
		t.Fatal(err)
	}
	r := b.m.localReplicas(false)
	if r[0].Matrix["sel"] != r[1].Matrix["sel"] {
		t.Fatalf("B after the sync: primary %s, backup %s", r[0].Matrix["sel"], r[1].Matrix["sel"])
	}
	// Against the rounds' direction (backup -> primary) the records are
	// copied: B's primary takes its backup's sel, which it already equals.
	if err := (pairVoteSource{a.m}).Sync(context.Background(), "B/backup", "B/primary", []string{"sel"}); err != nil {
		t.Fatalf("backup -> primary on B: %v", err)
	}

	// A and B now hold different SEL data (B has a record A lacks): A's
	// side (5 of 9) wins; A's records are copied to B (one transaction
	// into B's primary, then a round on B), verified by fingerprint.
	rep, err := a.m.runVote(context.Background(), "schedule")
	if err != nil {
		t.Fatal(err)
	}
	var sel vote.Outcome
	for _, o := range rep.Outcomes {
		if o.Category == "sel" {
			sel = o
		}
	}
	if !sel.Majority || sel.Sample != "A/primary" || strings.Join(sel.Disagree, ",") != "B/primary,B/backup" {
		t.Fatalf("sel outcome %+v", sel)
	}
	if !rep.Converged {
		t.Fatalf("not converged: %+v", rep)
	}
	ra, rb := a.m.localReplicas(true), b.m.localReplicas(false)
	for _, r := range rb {
		if r.Matrix["sel"] != ra[0].Matrix["sel"] {
			t.Fatalf("%s sel %s, A/primary %s", r.ID, r.Matrix["sel"], ra[0].Matrix["sel"])
		}
	}
	if ev := pairVoteEvents(t, a.eng); !strings.Contains(ev, "OK: fingerprint vote (schedule): B/primary synced from A/primary [sel]") ||
		!strings.Contains(ev, "B/backup synced from A/primary") {
		t.Fatalf("events:\n%s", ev)
	}
	if !strings.Contains(eventsOf(t, b.eng, "DataImported"), "the primary area took [sel] from the other module") {
		t.Fatalf("no DataImported event on B:\n%s", eventsOf(t, b.eng, "DataImported"))
	}
	// B's own record is gone from B: the majority's content is there.
	for _, area := range []flash.Slot{flash.Primary, flash.Backup} {
		entries, err := b.eng.StoreOf(area).SEL(b.sim.Slots()[0])
		if err != nil {
			t.Fatalf("B %s SEL: %d entries, %v", area, len(entries), err)
		}
		for _, e := range entries {
			if e.Entry.Message == "only on B" {
				t.Fatalf("B's %s area kept the record the majority does not hold", area)
			}
		}
	}

	// A peer request without the pair key, or with a body changed after
	// signing, is refused.
	resp, err = http.Post(srv.URL+"/cmcd/pair/data/sync?to=primary&cat=sel", "application/json", strings.NewReader("[]"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned data sync: %s", resp.Status)
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/cmcd/pair/data/sync?to=primary&cat=sel", strings.NewReader(`[{"category":"sel"}]`))
	a.m.signPeer(req)
	ts, _, _ := strings.Cut(req.Header.Get(pairAuthHeader), ":")
	signed, _ := strconv.ParseInt(ts, 10, 64)
	req.Header.Set(pairBodyHeader, pairBodyMAC(key, req.URL.RequestURI(), signed, []byte("[]"))) // signed for another body
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("data sync with a changed body: %s", resp.Status)
	}
}

func eventsOf(t *testing.T, eng *syncsel.Engine, kind string) string {
	t.Helper()
	evs, err := eng.Store().Events()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.Kind == kind {
			out = append(out, e.Severity+": "+e.Message)
		}
	}
	return strings.Join(out, "\n")
}
