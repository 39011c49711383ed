package store

import (
	"hash/maphash"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// onlineCache keeps recently read online rows in memory, as the plaintext
// the store holds (event time, sequence, values), so that a read of a hot
// entity skips the read transaction, three B+tree searches and the
// codec: under load those were a fifth of the server's CPU per
// get-online-features request.
//
// Correctness rests on a generation per feature view (plus one for all
// views) and a count of writes in progress, used like a sequence lock. A
// write to a view's online rows marks itself in progress and bumps the
// generation before it is queued, and bumps it again after its commit,
// before it is answered. A reader loads the generation before its read
// transaction begins and uses the cache, for lookups and for what it
// caches, only if no write is in progress; an entry counts only while its
// tag is the current generation. So a row read before a commit is never
// served after it, a reader never sees a value go back, and once a write
// is answered every read sees it. Between the two bumps reads go to the
// store. A read of several keys may mix cached rows with rows read in its
// transaction, so it is not one snapshot across keys (nor is Feast's read
// of Redis).
//
// Memory is bounded by a byte budget over all views (keys, values and a
// fixed overhead per entry); an insert over budget evicts random entries
// of its shard first.
type onlineCache struct {
	budget     int64
	used       atomic.Int64
	seed       maphash.Seed
	views      atomic.Pointer[map[string]*viewCache]
	mu         sync.Mutex // adds and drops views
	global     atomic.Uint64
	writingAll atomic.Int32

	hits, misses, evictions *metrics.Counter
}

type viewCache struct {
	gen     atomic.Uint64
	writing atomic.Int32
	shards  [32]cacheShard
}

type cacheShard struct {
	mu   sync.RWMutex
	rows map[string]cachedRow
}

// cachedRow is an online row as read; plain is nil for a key the view
// does not hold (absent keys are cached too). plain is never modified.
type cachedRow struct {
	gen   uint64
	plain []byte
}

// cacheEntryOverhead approximates a map entry's cost besides its bytes.
const cacheEntryOverhead = 64

func newOnlineCache(budget int64, set *metrics.Set) *onlineCache {
	if budget <= 0 {
		return nil
	}
	c := &onlineCache{budget: budget, seed: maphash.MakeSeed(),
		hits:      set.NewCounter("mlnode_online_cache_hits_total"),
		misses:    set.NewCounter("mlnode_online_cache_misses_total"),
		evictions: set.NewCounter("mlnode_online_cache_evictions_total"),
	}
	set.NewGauge("mlnode_online_cache_bytes", func() float64 { return float64(c.used.Load()) })
	empty := map[string]*viewCache{}
	c.views.Store(&empty)
	return c
}

// view returns a view's cache, creating it; viewKey is the view's
// name@version.
func (c *onlineCache) view(viewKey []byte) *viewCache {
	if vc := (*c.views.Load())[string(viewKey)]; vc != nil {
		return vc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := *c.views.Load()
	if vc := cur[string(viewKey)]; vc != nil {
		return vc
	}
	next := maps.Clone(cur)
	vc := &viewCache{}
	next[string(viewKey)] = vc
	c.views.Store(&next)
	return vc
}

// generation returns the generation a reader of the view tags and checks
// with, and false while a write to the view is in progress: the reader
// then neither uses nor fills the cache.
func (c *onlineCache) generation(vc *viewCache) (uint64, bool) {
	gen := c.global.Load() + vc.gen.Load() // both only grow: the sum changes when either does
	if c.writingAll.Load() > 0 || vc.writing.Load() > 0 {
		return 0, false
	}
	return gen, true
}

// writeView marks a write to a view's online rows; the function it returns
// ends it. Writers call it before queueing the write and call the end
// after the commit, before answering.
func (c *onlineCache) writeView(viewKey string) func() {
	if c == nil {
		return func() {}
	}
	vc := c.view([]byte(viewKey))
	vc.writing.Add(1)
	vc.gen.Add(1)
	return func() {
		vc.gen.Add(1)
		vc.writing.Add(-1)
	}
}

// writeAll marks a write that may touch any view (an erasure).
func (c *onlineCache) writeAll() func() {
	if c == nil {
		return func() {}
	}
	c.writingAll.Add(1)
	c.global.Add(1)
	return func() {
		c.global.Add(1)
		c.writingAll.Add(-1)
	}
}

// dropView forgets every version of a deleted view and frees its memory;
// it ends a writeAll that covered the deletion.
func (c *onlineCache) dropView(name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := maps.Clone(*c.views.Load())
	for key, vc := range next {
		if strings.HasPrefix(key, name+"@") {
			delete(next, key)
			c.release(vc)
		}
	}
	c.views.Store(&next)
}

func (c *onlineCache) release(vc *viewCache) {
	vc.gen.Add(1)
	for i := range vc.shards {
		sh := &vc.shards[i]
		sh.mu.Lock()
		for k, row := range sh.rows {
			c.used.Add(-entryBytes(k, row.plain))
		}
		sh.rows = nil
		sh.mu.Unlock()
	}
}

func entryBytes(key string, plain []byte) int64 {
	return int64(len(key) + len(plain) + cacheEntryOverhead)
}

func (c *onlineCache) shard(vc *viewCache, key []byte) *cacheShard {
	return &vc.shards[maphash.Bytes(c.seed, key)%uint64(len(vc.shards))]
}

// lookup returns a row cached under generation gen; vc nil: no cache.
func (c *onlineCache) lookup(vc *viewCache, gen uint64, key []byte) (cachedRow, bool) {
	if vc == nil {
		return cachedRow{}, false
	}
	sh := c.shard(vc, key)
	sh.mu.RLock()
	row, ok := sh.rows[string(key)]
	sh.mu.RUnlock()
	if !ok || row.gen != gen {
		c.misses.Inc()
		return cachedRow{}, false
	}
	c.hits.Inc()
	return row, true
}

// put caches a row read under generation gen; plain must not change
// afterwards.
func (c *onlineCache) put(vc *viewCache, gen uint64, key []byte, plain []byte) {
	size := entryBytes(string(key), plain)
	if size > c.budget/64 {
		return // one row must not evict a large part of the cache
	}
	sh := c.shard(vc, key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.rows[string(key)]; ok {
		if old.gen > gen {
			return // a newer reader got there first
		}
		c.used.Add(-entryBytes(string(key), old.plain))
		delete(sh.rows, string(key))
	}
	for c.used.Load()+size > c.budget && len(sh.rows) > 0 {
		for k, row := range sh.rows { // map order is random: a random victim
			delete(sh.rows, k)
			c.used.Add(-entryBytes(k, row.plain))
			c.evictions.Inc()
			break
		}
	}
	if c.used.Load()+size > c.budget {
		return // the other shards hold the budget; this row is not kept
	}
	if sh.rows == nil {
		sh.rows = map[string]cachedRow{}
	}
	sh.rows[string(key)] = cachedRow{gen: gen, plain: plain}
	c.used.Add(size)
}
