package redfish

import (
	"encoding/json"
	"os"
	"sync"

	"cmcd/syncsel"
)

// The node log Entries collections are the service's big payloads (a full
// SEL is thousands of entries; 1,000 entries are ~330 KB of JSON). Building
// one decodes every stored entry and marshals a map per entry, which took
// ~20 ms of CPU per GET. logCache keeps the serialized collection with its
// ETag, keyed on the node and log and valid while the store and that
// category's fingerprint sum (the V2 matrix, read in O(1)) are unchanged:
// any collection pass or ClearLog that changes a SEL or fault log changes
// the sum. The fingerprint is read before the payload is built, so a
// payload is never stored under a newer sum than its own. At most
// logCacheBytes of payloads are kept (least recently used go first).
// CMCD_REDFISH_LOG_CACHE=0 turns the cache off (the benchmark's
// comparison run).

const logCacheBytes = 2 << 20

type cachedLog struct {
	store *syncsel.Store
	fp    syncsel.CatFP
	body  []byte
	etag  string
	used  uint64
}

type logCache struct {
	mu    sync.Mutex
	off   bool
	tick  uint64
	bytes int
	m     map[string]*cachedLog // "Node1/SEL"
}

func newLogCache() *logCache {
	return &logCache{off: os.Getenv("CMCD_REDFISH_LOG_CACHE") == "0", m: map[string]*cachedLog{}}
}

func (lc *logCache) get(key string, st *syncsel.Store, fp syncsel.CatFP) *cachedLog {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	e := lc.m[key]
	if e == nil || e.store != st || e.fp != fp {
		return nil
	}
	lc.tick++
	e.used = lc.tick
	return e
}

func (lc *logCache) put(key string, e *cachedLog) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if old := lc.m[key]; old != nil {
		lc.bytes -= len(old.body)
	}
	lc.tick++
	e.used = lc.tick
	lc.m[key] = e
	lc.bytes += len(e.body)
	for lc.bytes > logCacheBytes && len(lc.m) > 1 {
		var lruKey string
		var lru *cachedLog
		for k, v := range lc.m {
			if lru == nil || v.used < lru.used {
				lruKey, lru = k, v
			}
		}
		delete(lc.m, lruKey)
		lc.bytes -= len(lru.body)
	}
}

// getNodeLogEntriesCached serves getNodeLogEntries from the cache.
func (s *Server) getNodeLogEntriesCached(c *ctx) (any, error) {
	if s.logs.off {
		return s.getNodeLogEntries(c)
	}
	if _, _, err := c.nodeLog(); err != nil {
		return nil, err
	}
	cat := syncsel.CatSEL
	if c.param("log") != "SEL" {
		cat = syncsel.CatFault
	}
	st := s.eng.Store()
	m, err := st.Matrix()
	if err != nil {
		return nil, err
	}
	key := c.param("ch") + "/" + c.param("log")
	if e := s.logs.get(key, st, m[cat]); e != nil {
		return rawDoc{contentType: jsonType, body: e.body, etag: e.etag}, nil
	}
	v, err := s.getNodeLogEntries(c)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	e := &cachedLog{store: st, fp: m[cat], body: b, etag: etagOf(b)}
	s.logs.put(key, e)
	return rawDoc{contentType: jsonType, body: e.body, etag: e.etag}, nil
}

const jsonType = "application/json; charset=utf-8"
