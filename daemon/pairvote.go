package daemon

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cmcd/flash"
	"cmcd/pair"
	"cmcd/pair/vote"
)

// The fingerprint vote of the pair (SPEC V2-V4, package pair/vote). The
// replicas are both data areas of both modules ("A/primary", "A/backup",
// "B/primary", "B/backup"); a replica's matrix is its store's
// per-category fingerprint matrix over the selected categories. The
// active module is the arbiter: it votes after every takeover and every
// VoteInterval. The operator reaches the chassis through the floating
// address, so the running data area of the active weighs 3, every other
// replica 2. The peer's matrices come from its GET /cmcd/pair/matrix over
// PeerHTTP (management network first, then the sync link), authenticated
// with an HMAC under the pair key.
//
// Sync paths: inside a module the sample can be the round's source (a
// round, syncsel SyncNow, brings the destination to it); any other sync —
// between modules, or against the rounds' direction — copies the
// sample's records (daemon/pairdata.go).

const (
	pairAuthHeader = "X-Cmcd-Pair-Auth"
	weightOperator = 3
	weightOther    = 2
)

// pairMAC authenticates a module-to-module request: HMAC-SHA256 under the
// pair key of method, path with query, and the time.
func pairMAC(key []byte, method, uri string, t int64) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "cmcd-pair\n%s\n%s\n%d", method, uri, t)
	return hex.EncodeToString(m.Sum(nil))
}

func (m *pairModule) signPeer(r *http.Request) {
	t := time.Now().Unix()
	r.Header.Set(pairAuthHeader, strconv.FormatInt(t, 10)+":"+pairMAC(m.key, r.Method, r.URL.RequestURI(), t))
}

// peerAuthorized accepts a request signed by the other module (within a
// minute) or an Administrator.
func (m *pairModule) peerAuthorized(w http.ResponseWriter, r *http.Request) bool {
	if h := r.Header.Get(pairAuthHeader); h != "" {
		ts, mac, _ := strings.Cut(h, ":")
		t, err := strconv.ParseInt(ts, 10, 64)
		if err == nil && time.Since(time.Unix(t, 0)).Abs() < time.Minute &&
			hmac.Equal([]byte(mac), []byte(pairMAC(m.key, r.Method, r.URL.RequestURI(), t))) {
			return true
		}
		http.Error(w, "bad pair signature", http.StatusUnauthorized)
		return false
	}
	return m.authorized(w, r)
}

// replicaID names a data area of a module.
func replicaID(module string, s flash.Slot) string { return module + "/" + s.String() }

// localReplicas are this module's two data areas.
func (m *pairModule) localReplicas(active bool) []vote.Replica {
	st := m.eng.State()
	cfg := m.eng.Config()
	var out []vote.Replica
	for _, s := range []flash.Slot{flash.Primary, flash.Backup} {
		r := vote.Replica{ID: replicaID(m.id, s), Weight: weightOther, Matrix: map[string]string{}}
		if active && s == st.Running {
			r.Weight = weightOperator
		}
		if store := m.eng.StoreOf(s); store != nil {
			if mx, err := store.Matrix(); err == nil {
				for _, c := range cfg.Selected {
					r.Matrix[string(c)] = fmt.Sprintf("%s:%d", mx[c].FP, mx[c].Records)
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// peerDo sends a signed request without a body to the other module,
// trying each of its addresses in turn (daemon/pairdata.go: peerData).
func (m *pairModule) peerDo(ctx context.Context, method, path string, out any) error {
	return m.peerData(ctx, method, path, nil, out)
}

// pairVoteSource is the vote.Source over both modules.
type pairVoteSource struct{ m *pairModule }

func (s pairVoteSource) Matrices(ctx context.Context) ([]vote.Replica, error) {
	out := s.m.localReplicas(true)
	var peer []vote.Replica
	if err := s.m.peerDo(ctx, http.MethodGet, "/cmcd/pair/matrix", &peer); err != nil {
		s.m.log.Debug("pair vote: peer matrices unavailable", "err", err)
		return out, nil // the peer does not vote
	}
	for _, r := range peer {
		if !strings.HasPrefix(r.ID, s.m.id+"/") { // never let the peer speak for this module
			r.Weight = weightOther
			out = append(out, r)
		}
	}
	return out, nil
}

func (s pairVoteSource) Sync(ctx context.Context, from, to string, cats []string) error {
	return s.m.syncReplica(ctx, from, to, cats) // daemon/pairdata.go
}

// Route prefers a replica on the same module as the destination that
// agrees with the sample: a round on that module is a real sync path.
func (s pairVoteSource) Route(to string, agree []string) string {
	mod, _, _ := strings.Cut(to, "/")
	for _, id := range agree {
		if strings.HasPrefix(id, mod+"/") {
			return id
		}
	}
	return ""
}

// matrixHandler: GET /cmcd/pair/matrix, this module's replicas.
func (m *pairModule) matrixHandler(w http.ResponseWriter, r *http.Request) {
	if !m.peerAuthorized(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, m.localReplicas(false))
}

// voteSyncHandler: POST /cmcd/pair/vote/sync?from=SLOT&to=SLOT, a round
// on this module asked by the arbiter.
func (m *pairModule) voteSyncHandler(w http.ResponseWriter, r *http.Request) {
	if !m.peerAuthorized(w, r) {
		return
	}
	st := m.eng.State()
	q := r.URL.Query()
	if q.Get("from") != st.Source.String() || q.Get("to") != st.Dest.String() {
		http.Error(w, fmt.Sprintf("no sync path from %s to %s: rounds run %s -> %s", q.Get("from"), q.Get("to"), st.Source, st.Dest),
			http.StatusConflict)
		return
	}
	res, err := m.eng.SyncNow(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// voteReport: GET /cmcd/pair/vote (the last run) and POST (run now, on
// the active).
func (m *pairModule) voteReport(w http.ResponseWriter, r *http.Request) {
	if !m.authorized(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		return
	}
	if r.Method == http.MethodPost {
		if m.node.Role() != pair.RoleActive {
			redfishError(w, http.StatusServiceUnavailable, "ServiceTemporarilyUnavailable", "The fingerprint vote runs on the active module.")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		rep, err := m.runVote(ctx, "demand")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, http.StatusOK, rep)
		return
	}
	rep := m.arb.Last()
	if rep == nil {
		writeJSON(w, http.StatusOK, map[string]any{"reason": "none yet"})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (m *pairModule) runVote(ctx context.Context, reason string) (*vote.Report, error) {
	m.voteMu.Lock()
	defer m.voteMu.Unlock()
	cats := m.eng.Config().Selected
	m.arb.Categories = m.arb.Categories[:0]
	for _, c := range cats {
		m.arb.Categories = append(m.arb.Categories, string(c))
	}
	m.arb.MaxAttempts = len(m.eng.Config().Groups) + 2 // a round syncs one group
	return m.arb.Run(ctx, reason)
}

// newArbiter sets up the vote; its events go to the CMC event log.
func (m *pairModule) newArbiter() {
	m.arb = &vote.Arbiter{Source: pairVoteSource{m}, Event: func(e vote.Event) {
		m.eng.LogEvent("PairVote", e.Severity, e.Message)
	}}
	// A dead path must fail fast so the next one is tried; a round asked
	// of the peer may take a while.
	m.httpc = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: (&net.Dialer{Timeout: time.Second}).DialContext, DisableKeepAlives: true}}
	m.voteKick = make(chan string, 1)
}

// kickVote asks the vote loop for a run (non-blocking).
func (m *pairModule) kickVote(reason string) {
	select {
	case m.voteKick <- reason:
	default:
	}
}

// voteLoop runs the vote on the active after a takeover and every
// interval (0: only after takeovers and on demand).
func (m *pairModule) voteLoop(ctx context.Context, interval time.Duration) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		reason := "schedule"
		select {
		case <-ctx.Done():
			return
		case reason = <-m.voteKick:
		case <-tick:
		}
		if m.node.Role() != pair.RoleActive {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		if _, err := m.runVote(rctx, reason); err != nil {
			m.log.Warn("pair vote", "err", err)
		}
		cancel()
	}
}

// voteInterval parses the VoteInterval setting (default 5m; "0": off).
func voteInterval(s string) (time.Duration, error) {
	if s == "" {
		return 5 * time.Minute, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || (d > 0 && d < time.Second) {
		return 0, fmt.Errorf("pair vote interval %q: want 0 (off) or a duration of at least 1s", s)
	}
	return d, nil
}
