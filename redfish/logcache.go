package redfish

import (
	"encoding/binary"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"sync"

	"cmcd/syncsel"
)

// The node log Entries collections are the service's big payloads (a full
// SEL is thousands of entries). Building one decodes every stored entry and
// marshals a map per entry: ~20 ms of CPU per GET for 1,000 entries; a
// Chassis GET decodes the node and asset records (~150 us). logCache keeps
// such a serialized answer with its ETag, valid while the running store and
// the fingerprint sums of the categories the answer is built from (the V2
// matrix, read in O(1)) are unchanged: any collection pass or ClearLog that
// changes a record changes its category's sum. The sums are read before the
// answer is built, so an answer is never stored under newer sums than its
// own. At most logCacheBytes of answers are kept (least recently used go
// first). CMCD_REDFISH_LOG_CACHE=0 turns the cache off (the benchmark's
// comparison run).

const logCacheBytes = 2 << 20

type cachedLog struct {
	store *syncsel.Store
	fp    string // the fingerprint sums of the categories the answer depends on
	body  []byte
	etag  string
	used  uint64
}

type logCache struct {
	mu    sync.Mutex
	off   bool
	tick  uint64
	bytes int
	m     map[string]*cachedLog // route pattern and parameters
	// building holds a channel per key being built, closed when done.
	building map[string]chan struct{}
}

func newLogCache() *logCache {
	return &logCache{off: os.Getenv("CMCD_REDFISH_LOG_CACHE") == "0", m: map[string]*cachedLog{},
		building: map[string]chan struct{}{}}
}

// get returns the entry of key if it is still valid for st and fp. When
// another request is building that answer it waits for it, so that a burst
// of requests after a change builds the answer once (building a large log
// allocates tens of MB).
func (lc *logCache) get(key string, st *syncsel.Store, fp string) (e *cachedLog, build func(*cachedLog)) {
	for {
		lc.mu.Lock()
		e := lc.m[key]
		if e != nil && e.store == st && e.fp == fp {
			lc.tick++
			e.used = lc.tick
			lc.mu.Unlock()
			return e, nil
		}
		if ch, ok := lc.building[key]; ok {
			lc.mu.Unlock()
			<-ch
			continue
		}
		ch := make(chan struct{})
		lc.building[key] = ch
		lc.mu.Unlock()
		return nil, func(e *cachedLog) {
			if e != nil {
				lc.put(key, e)
			}
			lc.mu.Lock()
			delete(lc.building, key)
			lc.mu.Unlock()
			close(ch)
		}
	}
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

// storeCached wraps a GET handler whose answer is a function of the
// running store's categories cats(c) only (no clock, no session): its
// serialized answer is kept while those categories' fingerprint sums are
// unchanged. Only successful answers are kept, under the route pattern
// and its parameters.
func (s *Server) storeCached(fn func(*ctx) (any, error), cats func(*ctx) []syncsel.Category) func(*ctx) (any, error) {
	return func(c *ctx) (any, error) {
		if s.logs.off {
			return fn(c)
		}
		st := s.eng.Store()
		m, err := st.Matrix()
		if err != nil {
			return nil, err
		}
		var fp []byte
		for _, cat := range cats(c) {
			row := m[cat]
			fp = append(fp, row.FP[:]...)
			fp = binary.BigEndian.AppendUint64(fp, row.Records)
		}
		key := c.route.pattern
		for _, k := range slices.Sorted(maps.Keys(c.params)) {
			key += "|" + k + "=" + c.params[k]
		}
		e, done := s.logs.get(key, st, string(fp))
		if e != nil {
			return rawDoc{contentType: jsonType, body: e.body, etag: e.etag}, nil
		}
		defer func() { done(e) }() // also when fn panics: the waiters go on
		v, err := fn(c)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		e = &cachedLog{store: st, fp: string(fp), body: b, etag: etagOf(b)}
		return rawDoc{contentType: jsonType, body: e.body, etag: e.etag}, nil
	}
}

// getNodeLogEntriesCached serves a node's log collection from the cache,
// keyed on the log's category only: whether the node and log exist is
// checked first (a small read), so that the node records, whose readings
// change at every collection pass, do not invalidate a large log.
func (s *Server) getNodeLogEntriesCached() func(*ctx) (any, error) {
	cached := s.storeCached(s.getNodeLogEntries, func(c *ctx) []syncsel.Category {
		if c.param("log") == "SEL" {
			return []syncsel.Category{syncsel.CatSEL}
		}
		return []syncsel.Category{syncsel.CatFault}
	})
	return func(c *ctx) (any, error) {
		if _, _, err := c.nodeLog(); err != nil {
			return nil, err
		}
		return cached(c)
	}
}

// chassisCats: a Chassis is built from the node and asset records.
func chassisCats(*ctx) []syncsel.Category {
	return []syncsel.Category{syncsel.CatNode, syncsel.CatAsset}
}

const jsonType = "application/json; charset=utf-8"
