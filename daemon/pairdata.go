package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"cmcd/flash"
	"cmcd/syncsel"
)

// Collected data across modules (SPEC V4 for the module replicas). When
// the vote finds a module's data area differing from the sample on
// another module, the arbiter copies the sample's records of the
// disagreeing categories there: syncsel's ExportCategories on the
// sample's store (on the peer: signed GET /cmcd/pair/data/export), and on
// the disagreeing module one syncsel ImportCategories transaction into
// its rounds' source area (on the peer: signed POST /cmcd/pair/data/sync,
// the body authenticated too). A destination area (the backup) is never
// written outside a round, so that recovery and `cmcd verify` can check
// it against the last committed round: for it the import goes into its
// module's source area, then a round carries it over. The arbiter then
// re-reads every matrix and syncs again until the fingerprints match.
//
// The same path serves a sync inside a module that no round can do
// (backup to primary while rounds run primary to backup).

const (
	pairBodyHeader = "X-Cmcd-Pair-Body"
	maxDataBody    = 256 << 20 // a 16-node chassis' full data set is ~11 MB of records
)

// pairBodyMAC authenticates a request body: HMAC-SHA256 under the pair
// key of the request line, the time and the body's SHA-256.
func pairBodyMAC(key []byte, uri string, t int64, body []byte) string {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "cmcd-pair-body\n%s\n%d\n%x", uri, t, sum)
	return hex.EncodeToString(m.Sum(nil))
}

// peerData sends a signed request with an optional body (nil: none; the
// body, even an empty one, is signed too) to the other module, trying each of its addresses
// in turn, and decodes the answer.
func (m *pairModule) peerData(ctx context.Context, method, path string, body []byte, out any) error {
	if len(m.peerHTTP) == 0 {
		return fmt.Errorf("no --pair-peer-http configured")
	}
	var last error
	for _, base := range m.peerHTTP {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		m.signPeer(req)
		ts, _, _ := strings.Cut(req.Header.Get(pairAuthHeader), ":")
		t, _ := strconv.ParseInt(ts, 10, 64)
		req.Header.Set(pairBodyHeader, pairBodyMAC(m.key, req.URL.RequestURI(), t, body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := m.httpc.Do(req)
		if err != nil {
			last = err
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxDataBody))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s %s: %s: %s", method, base+path, resp.Status, strings.TrimSpace(string(b)))
		}
		if out != nil {
			return json.Unmarshal(b, out)
		}
		return nil
	}
	return last
}

// signedBody checks a request signed by the other module (never an
// operator: only the pair writes collected data) and returns its body.
func (m *pairModule) signedBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	ts, _, _ := strings.Cut(r.Header.Get(pairAuthHeader), ":")
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		http.Error(w, "only the other module of the pair may do this", http.StatusUnauthorized)
		return nil, false
	}
	if !m.peerAuthorized(w, r) { // checks the signature of the request line
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDataBody+1))
	if err != nil || len(body) > maxDataBody {
		http.Error(w, "body unreadable or too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	if !hmac.Equal([]byte(r.Header.Get(pairBodyHeader)), []byte(pairBodyMAC(m.key, r.URL.RequestURI(), t, body))) {
		http.Error(w, "bad pair body signature", http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

func parseCats(vals []string) ([]syncsel.Category, error) {
	if len(vals) == 0 {
		return nil, fmt.Errorf("no category given")
	}
	out := make([]syncsel.Category, 0, len(vals))
	for _, v := range vals {
		c, err := syncsel.ParseCategory(v)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// exportLocal exports categories of one of this module's data areas.
func (m *pairModule) exportLocal(slot flash.Slot, cats []syncsel.Category) ([]syncsel.CategoryExport, error) {
	st := m.eng.StoreOf(slot)
	if st == nil {
		return nil, fmt.Errorf("the %s data area is not open", slot)
	}
	return st.ExportCategories(cats)
}

// syncLocal brings this module's data area to a sample: exs (from the
// other module), or nil for this module's own area from. See above.
func (m *pairModule) syncLocal(ctx context.Context, to, from flash.Slot, cats []syncsel.Category, exs []syncsel.CategoryExport) error {
	st := m.eng.State()
	if exs == nil {
		if from == to {
			return fmt.Errorf("sync of the %s area from itself", to)
		}
		if from == st.Source && to == st.Dest {
			_, err := m.eng.SyncNow(ctx) // the normal path: a round
			return err
		}
		var err error
		if exs, err = m.exportLocal(from, cats); err != nil {
			return err
		}
	}
	res, err := m.eng.ImportCategories(st.Source, exs)
	if err != nil {
		return err
	}
	m.log.Info("pair vote: data imported", "area", st.Source.String(), "written", res.Written, "deleted", res.Deleted)
	if to == st.Dest {
		_, err = m.eng.SyncNow(ctx) // carries the import to the destination area
	}
	return err
}

// dataExportHandler: GET /cmcd/pair/data/export?slot=S&cat=C..., signed.
func (m *pairModule) dataExportHandler(w http.ResponseWriter, r *http.Request) {
	if _, ok := m.signedBody(w, r); !ok {
		return
	}
	slot, err := flash.ParseSlot(r.URL.Query().Get("slot"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cats, err := parseCats(r.URL.Query()["cat"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	exs, err := m.exportLocal(slot, cats)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, exs)
}

// dataSyncHandler: POST /cmcd/pair/data/sync?to=S&cat=C...[&from=S],
// signed, with the sample's export as body (empty with from: an area of
// this module is the sample).
func (m *pairModule) dataSyncHandler(w http.ResponseWriter, r *http.Request) {
	body, ok := m.signedBody(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	to, err := flash.ParseSlot(q.Get("to"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cats, err := parseCats(q["cat"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var exs []syncsel.CategoryExport
	var from flash.Slot
	if q.Has("from") {
		if from, err = flash.ParseSlot(q.Get("from")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	} else if err := json.Unmarshal(body, &exs); err != nil || exs == nil {
		http.Error(w, fmt.Sprintf("body: want the sample's category export: %v", err), http.StatusBadRequest)
		return
	}
	if err := m.syncLocal(r.Context(), to, from, cats, exs); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"to": to.String(), "categories": cats})
}

// syncReplica is the vote's sync: replica from to replica to, both named
// MODULE/AREA, over the categories cats.
func (m *pairModule) syncReplica(ctx context.Context, from, to string, cats []string) error {
	fm, fsName, _ := strings.Cut(from, "/")
	tm, tsName, _ := strings.Cut(to, "/")
	fs, err := flash.ParseSlot(fsName)
	if err != nil {
		return err
	}
	ts, err := flash.ParseSlot(tsName)
	if err != nil {
		return err
	}
	cs, err := parseCats(cats)
	if err != nil {
		return err
	}
	q := url.Values{"to": {ts.String()}, "cat": cats}
	if fm == tm {
		if tm == m.id {
			return m.syncLocal(ctx, ts, fs, cs, nil)
		}
		q.Set("from", fs.String())
		return m.peerData(ctx, http.MethodPost, "/cmcd/pair/data/sync?"+q.Encode(), nil, nil)
	}
	// Between modules: the sample's records travel.
	var exs []syncsel.CategoryExport
	if fm == m.id {
		if exs, err = m.exportLocal(fs, cs); err != nil {
			return err
		}
	} else {
		eq := url.Values{"slot": {fs.String()}, "cat": cats}
		if err := m.peerData(ctx, http.MethodGet, "/cmcd/pair/data/export?"+eq.Encode(), nil, &exs); err != nil {
			return err
		}
	}
	if tm == m.id {
		return m.syncLocal(ctx, ts, fs, cs, exs)
	}
	body, err := json.Marshal(exs)
	if err != nil {
		return err
	}
	return m.peerData(ctx, http.MethodPost, "/cmcd/pair/data/sync?"+q.Encode(), body, nil)
}
