package store

import (
	"bytes"
	"hash/maphash"
	"maps"
	"math"
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
// Memory is bounded by a byte budget over all views, counting the arenas'
// capacity and an overhead per entry. Each shard keeps its
// rows in one append-only byte arena with a pointer-free index (key hash
// to slot), so that a full cache adds nothing for the garbage collector
// to scan: pointers in millions of small entries made its marking long
// enough to show in tail latency. An insert that would pass the budget
// empties its shard first; bytes handed to readers are never overwritten
// (a cleared shard starts a new arena).
type onlineCache struct {
	budget     int64
	used       atomic.Int64
	seed       maphash.Seed
	views      atomic.Pointer[map[string]*viewCache]
	mu         sync.Mutex // adds and drops views
	global     atomic.Uint64
	writingAll atomic.Int32
}

type viewCache struct {
	gen     atomic.Uint64
	writing atomic.Int32
	shards  [32]cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex
	index   map[uint64]uint32 // key hash → slot
	slots   []cacheSlot
	arena   []byte
	dropped bool // the view was deleted: bytes put here would never be freed
	// Counted per shard: one counter for all would be a cache line that
	// every read on every core writes.
	hits, misses, evictions atomic.Uint64
	_                       [32]byte // keeps neighbouring shards' counters apart
}

// cacheSlot locates a cached row: its key then its plaintext in the arena;
// vlen < 0 records a key the view does not hold (absent keys are cached
// too).
type cacheSlot struct {
	gen       uint64
	off, klen uint32
	vlen      int32
	_         uint32
}

// cacheEntryOverhead approximates an entry's cost besides its bytes.
const cacheEntryOverhead = 32

func newOnlineCache(budget int64, set *metrics.Set) *onlineCache {
	if budget <= 0 {
		return nil
	}
	c := &onlineCache{budget: budget, seed: maphash.MakeSeed()}
	empty := map[string]*viewCache{}
	c.views.Store(&empty)
	sum := func(field func(sh *cacheShard) *atomic.Uint64) func() float64 {
		return func() float64 {
			var n uint64
			for _, vc := range *c.views.Load() {
				for i := range vc.shards {
					n += field(&vc.shards[i]).Load()
				}
			}
			return float64(n)
		}
	}
	// Gauges over the live views (a dropped view's counts leave with it).
	set.NewGauge("mlnode_online_cache_hits", sum(func(sh *cacheShard) *atomic.Uint64 { return &sh.hits }))
	set.NewGauge("mlnode_online_cache_misses", sum(func(sh *cacheShard) *atomic.Uint64 { return &sh.misses }))
	set.NewGauge("mlnode_online_cache_evictions", sum(func(sh *cacheShard) *atomic.Uint64 { return &sh.evictions }))
	set.NewGauge("mlnode_online_cache_bytes", func() float64 { return float64(c.used.Load()) })
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
		c.clear(sh)
		sh.dropped = true // a reader still holding the view must not refill it
		sh.mu.Unlock()
	}
}

// clear empties a shard; its lock is held.
func (c *onlineCache) clear(sh *cacheShard) {
	c.used.Add(-int64(cap(sh.arena) + len(sh.slots)*cacheEntryOverhead))
	// A new arena, not the old one truncated: readers may still hold
	// slices of it.
	sh.index, sh.slots, sh.arena = nil, nil, nil
}

func (c *onlineCache) shard(vc *viewCache, key []byte) (*cacheShard, uint64) {
	h := maphash.Bytes(c.seed, key)
	return &vc.shards[h>>59], h // 32 shards: the top five bits
}

// lookup returns a row's plaintext (nil: the view does not hold the key)
// cached under generation gen; vc nil: no cache.
func (c *onlineCache) lookup(vc *viewCache, gen uint64, key []byte) ([]byte, bool) {
	if vc == nil {
		return nil, false
	}
	sh, h := c.shard(vc, key)
	sh.mu.RLock()
	i, ok := sh.index[h]
	var plain []byte
	if ok {
		sl := sh.slots[i]
		end := sl.off + sl.klen
		if ok = sl.gen == gen && bytes.Equal(sh.arena[sl.off:end], key); ok && sl.vlen >= 0 {
			plain = sh.arena[end : end+uint32(sl.vlen) : end+uint32(sl.vlen)]
		}
	}
	sh.mu.RUnlock()
	if !ok {
		sh.misses.Add(1)
		return nil, false
	}
	sh.hits.Add(1)
	return plain, true
}

// put caches a row read under generation gen (plain nil: absent).
func (c *onlineCache) put(vc *viewCache, gen uint64, key []byte, plain []byte) {
	need := len(key) + len(plain)
	if int64(need+cacheEntryOverhead) > c.budget/64 {
		return // one row must not empty a large part of the cache
	}
	sh, h := c.shard(vc, key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.dropped {
		return
	}
	i, exists := sh.index[h]
	if exists && sh.slots[i].gen > gen {
		return // a newer reader got there first
	}
	if c.used.Load()+c.cost(sh, need, exists) > c.budget || len(sh.arena)+need > math.MaxInt32 {
		if len(sh.slots) > 0 {
			sh.evictions.Add(uint64(len(sh.slots)))
		}
		c.clear(sh)
		exists = false
		if c.used.Load()+c.cost(sh, need, false) > c.budget {
			return // the other shards hold the budget; this row is not kept
		}
	}
	if len(sh.arena)+need > cap(sh.arena) {
		// Grown by a quarter, not doubled by append, and counted by its
		// capacity: what the budget bounds is the memory held.
		grown := make([]byte, len(sh.arena), len(sh.arena)+arenaGrowth(len(sh.arena), need))
		copy(grown, sh.arena)
		c.used.Add(int64(cap(grown) - cap(sh.arena)))
		sh.arena = grown
	}
	sl := cacheSlot{gen: gen, off: uint32(len(sh.arena)), klen: uint32(len(key)), vlen: int32(len(plain))}
	if plain == nil {
		sl.vlen = -1
	}
	sh.arena = append(append(sh.arena, key...), plain...)
	if exists {
		// The old bytes stay in the arena, counted, until the shard is
		// cleared.
		sh.slots[i] = sl
		return
	}
	if sh.index == nil {
		sh.index = map[uint64]uint32{}
	}
	sh.index[h] = uint32(len(sh.slots))
	sh.slots = append(sh.slots, sl)
	c.used.Add(cacheEntryOverhead)
}

// arenaGrowth is how many bytes an arena of n bytes grows by to take need
// more.
func arenaGrowth(n, need int) int { return max(need, n/4, 4096) }

// cost is what caching need more bytes adds to the shard's memory.
func (c *onlineCache) cost(sh *cacheShard, need int, exists bool) int64 {
	var n int64
	if len(sh.arena)+need > cap(sh.arena) {
		n = int64(len(sh.arena) + arenaGrowth(len(sh.arena), need) - cap(sh.arena))
	}
	if !exists {
		n += cacheEntryOverhead
	}
	return n
}
