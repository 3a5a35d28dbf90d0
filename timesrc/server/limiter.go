package server

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// limiter is a per-source token bucket table, split into shards by a hash
// of the address so readers on different cores rarely share a lock. Each
// shard holds at most shardMax sources; buckets are values, so a known
// source costs no allocation.
type limiter struct {
	rate     float64
	burst    float64
	kodEvery time.Duration
	seed     maphash.Seed
	shards   [limShards]limShard
}

const (
	limShards = 16
	shardMax  = 4096 // 65536 sources in all
)

type limShard struct {
	mu sync.Mutex
	m  map[netip.Addr]bucket
	_  [40]byte // keep shards on separate cache lines
}

type bucket struct {
	tokens  float64
	last    time.Time
	lastKoD time.Time
}

func newLimiter(rate, burst float64, kodEvery time.Duration) *limiter {
	l := &limiter{rate: rate, burst: burst, kodEvery: kodEvery, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = make(map[netip.Addr]bucket, 64)
	}
	return l
}

// allow reports whether a request from a at now passes, and if not whether
// it earns a KoD.
func (l *limiter) allow(a netip.Addr, now time.Time) (ok, kod bool) {
	ab := a.As16()
	sh := &l.shards[maphash.Bytes(l.seed, ab[:])%limShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, known := sh.m[a]
	if !known {
		if len(sh.m) >= shardMax {
			l.prune(sh, now)
		}
		b = bucket{tokens: l.burst, last: now}
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		sh.m[a] = b
		return true, false
	}
	if now.Sub(b.lastKoD) >= l.kodEvery {
		b.lastKoD = now
		kod = true
	}
	sh.m[a] = b
	return false, kod
}

// prune forgets the sources whose buckets are full again (they would start
// afresh anyway); if every source is busy it forgets the shard rather than
// grow without bound.
func (l *limiter) prune(sh *limShard, now time.Time) {
	for a, b := range sh.m {
		if now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(sh.m, a)
		}
	}
	if len(sh.m) >= shardMax {
		clear(sh.m)
	}
}
