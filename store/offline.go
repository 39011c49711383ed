package store

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// The offline log of a view version is a small log-structured merge tree on
// bbolt (docs/RATIONALE.md, "The offline log is log-structured"):
//
//	events/<view@N>/tail         u64(seq) → entity key | time | values, in ingest order
//	events/<view@N>/runs/<id>    entity key | time | seq → values, sorted runs
//	events/<view@N>/meta         the run list, the tail's row count
//
// Ingest appends to the tail, which is sequential and so cheap whatever the
// store's size. A compactor flushes the oldest tail rows into a new sorted
// run, and merges runs of one level into one of the next, so that readers
// that need entity order (point-in-time joins, erasure, exports) merge a
// handful of sorted runs and a short tail.

var (
	bucketEvents = []byte("events")
	keyTail      = []byte("tail")
	keyRuns      = []byte("runs")
	keyEventMeta = []byte("meta")
)

// runInfo describes one sorted run.
type runInfo struct {
	ID       uint64 `json:"id"`
	Level    int    `json:"level"`
	Rows     uint64 `json:"rows"`
	MinSeq   uint64 `json:"min_seq"`
	MaxSeq   uint64 `json:"max_seq"`
	Building bool   `json:"building,omitempty"` // a merge in progress: not yet part of the data
}

// eventsMeta is events/<view>/meta.
type eventsMeta struct {
	Runs     []runInfo `json:"runs"`
	NextRun  uint64    `json:"next_run"`
	TailRows uint64    `json:"tail_rows"`
}

func runKey(id uint64) []byte { return u64(id) }

// flushDue says whether the tail holds a flush's worth of rows (any rows,
// when forced).
func (m *eventsMeta) flushDue(limit int, force bool) bool {
	return m.TailRows > 0 && (force || m.TailRows >= uint64(limit))
}

// mergeDue returns the oldest fanIn runs of the lowest level that has as
// many, or nil: also nil while a merge is building, since merges go one at
// a time (recovery drops stale ones at open).
func (m *eventsMeta) mergeDue(fanIn int) []runInfo {
	byLevel := map[int][]runInfo{}
	for _, r := range m.Runs {
		if r.Building {
			return nil
		}
		byLevel[r.Level] = append(byLevel[r.Level], r)
	}
	level := -1
	for l, rs := range byLevel {
		if len(rs) >= fanIn && (level < 0 || l < level) {
			level = l
		}
	}
	if level < 0 {
		return nil
	}
	return byLevel[level][:fanIn]
}

// compactionDue reads, in a read transaction, whether a view version's
// offline log has a flush or a merge to do. The compactor asks every second
// for every view; answering in a write transaction would commit and fsync
// an unchanged file each time.
func (s *Store) compactionDue(viewKey []byte, force bool) (flush, merge bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		b, meta, err := s.eventsOf(tx, viewKey)
		if err != nil || b == nil {
			return err // nil when the version was deleted meanwhile
		}
		flush = meta.flushDue(s.opts.Compaction.FlushRows, force)
		merge = meta.mergeDue(s.opts.Compaction.MergeFanIn) != nil
		return nil
	})
	return flush, merge, err
}

// createEvents makes the offline buckets of a new view version.
func (s *Store) createEvents(tx *bolt.Tx, viewKey []byte) error {
	b, err := tx.Bucket(bucketEvents).CreateBucket(viewKey)
	if err != nil {
		return fmt.Errorf("create events of %s: %w", viewKey, err)
	}
	if _, err := b.CreateBucket(keyTail); err != nil {
		return err
	}
	if _, err := b.CreateBucket(keyRuns); err != nil {
		return err
	}
	return s.putJSON(b, keyEventMeta, &eventsMeta{NextRun: 1})
}

// eventsOf returns a view version's offline bucket and its meta, both nil
// when the version was deleted meanwhile.
func (s *Store) eventsOf(tx *bolt.Tx, viewKey []byte) (*bolt.Bucket, *eventsMeta, error) {
	b := tx.Bucket(bucketEvents).Bucket(viewKey)
	if b == nil {
		return nil, nil, nil
	}
	meta, err := s.readEventsMeta(b)
	return b, meta, err
}

func (s *Store) readEventsMeta(b *bolt.Bucket) (*eventsMeta, error) {
	var m eventsMeta
	if _, err := s.getJSON(b, keyEventMeta, &m); err != nil {
		return nil, fmt.Errorf("events meta: %w", err)
	}
	return &m, nil
}

// appendTailValue encodes a tail row: entity key (length-prefixed), event
// time, values. The sequence is the bbolt key.
func appendTailValue(dst, entityKey []byte, eventMicros int64, values []appliance.Value) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(entityKey)))
	dst = append(dst, entityKey...)
	dst = appendTime(dst, eventMicros)
	return encodeValues(dst, values)
}

// tailRow is a decoded tail value; its slices alias the opened value.
type tailRow struct {
	key    []byte
	micros int64
	values []byte // encoded values
}

func decodeTailValue(plain []byte) (tailRow, error) {
	n, w := binary.Uvarint(plain)
	if w <= 0 || uint64(len(plain)-w) < n+8 {
		return tailRow{}, fmt.Errorf("corrupt tail row")
	}
	key := plain[w : w+int(n)]
	rest := plain[w+int(n):]
	return tailRow{key: key, micros: readTime(rest), values: rest[8:]}, nil
}

// offlineSource is one sorted source of a view's events: a run's cursor.
type offlineSource struct {
	run *bolt.Bucket
	id  uint64
}

// runs returns the published runs of a view's events bucket (and, when
// building is true, runs being built too: erasure must reach them).
func (s *Store) runs(b *bolt.Bucket, building bool) ([]offlineSource, *eventsMeta, error) {
	meta, err := s.readEventsMeta(b)
	if err != nil {
		return nil, nil, err
	}
	rb := b.Bucket(keyRuns)
	var out []offlineSource
	for _, r := range meta.Runs {
		if r.Building && !building {
			continue
		}
		if run := rb.Bucket(runKey(r.ID)); run != nil {
			out = append(out, offlineSource{run: run, id: r.ID})
		}
	}
	return out, meta, nil
}

// CompactionOptions tune the offline log. Zero values take the defaults.
type CompactionOptions struct {
	FlushRows      int           // tail rows that make a run, default 262144
	MergeFanIn     int           // runs of one level merged at once, default 4
	MergeChunkRows int           // rows copied per merge transaction, default 262144
	Interval       time.Duration // how often the compactor looks, default 1s
}

func (o *CompactionOptions) defaults() {
	if o.FlushRows <= 0 {
		o.FlushRows = 262144
	}
	if o.MergeFanIn < 2 {
		o.MergeFanIn = 4
	}
	if o.MergeChunkRows <= 0 {
		o.MergeChunkRows = 262144
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
}

// runCompactor flushes and merges until ctx ends. It is nudged after
// ingest and also wakes on a timer.
func (s *Store) runCompactor(ctx context.Context) {
	defer s.compactorWG.Done()
	tick := time.NewTicker(s.opts.Compaction.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.compactNudge:
		}
		if err := s.Compact(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("compact offline log", "err", err)
		}
	}
}

// nudgeCompactor wakes the compactor without blocking.
func (s *Store) nudgeCompactor() {
	select {
	case s.compactNudge <- struct{}{}:
	default:
	}
}

// Compact flushes full tails and merges full levels of every view version
// until nothing is left to do or ctx ends. The compactor calls it; tests and
// the offline jobs may call it to settle the store.
func (s *Store) Compact(ctx context.Context) error {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	for {
		did := false
		for _, views := range s.registry.Load().views {
			for _, v := range views {
				if err := ctx.Err(); err != nil {
					return err
				}
				key := []byte(v.Key())
				flushed, err := s.flushTail(ctx, key, false)
				if err != nil {
					return fmt.Errorf("flush %s: %w", key, err)
				}
				merged, err := s.mergeLevel(ctx, key)
				if err != nil {
					return fmt.Errorf("merge %s: %w", key, err)
				}
				did = did || flushed || merged
			}
		}
		if !did {
			return nil
		}
	}
}

// FlushAll flushes every tail into runs, however short: after it, every
// event is in entity order. For tests and exports.
func (s *Store) FlushAll(ctx context.Context) error {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	for _, views := range s.registry.Load().views {
		for _, v := range views {
			for {
				flushed, err := s.flushTail(ctx, []byte(v.Key()), true)
				if err != nil {
					return err
				}
				if !flushed {
					break
				}
			}
		}
	}
	return nil
}

// flushTail moves the oldest FlushRows tail rows (all of them, however few,
// when force is set) into a new level-0 run, in one transaction: the rows
// are never in both places or in neither.
func (s *Store) flushTail(ctx context.Context, viewKey []byte, force bool) (bool, error) {
	if due, _, err := s.compactionDue(viewKey, force); err != nil || !due {
		return false, err
	}
	limit := s.opts.Compaction.FlushRows
	flushed := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		flushed = false
		b, meta, err := s.eventsOf(tx, viewKey)
		if err != nil || b == nil {
			return err // nil when the version was deleted meanwhile
		}
		if !meta.flushDue(limit, force) {
			return nil
		}
		tail := b.Bucket(keyTail)
		type entry struct {
			key   []byte // entity | time | seq
			value []byte // sealed values
			tail  []byte
		}
		entries := make([]entry, 0, min(int(meta.TailRows), limit))
		run := runInfo{ID: meta.NextRun}
		c := tail.Cursor()
		for k, v := c.First(); k != nil && len(entries) < limit; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			plain, err := s.codec.Open(nil, v)
			if err != nil {
				return err
			}
			row, err := decodeTailValue(plain)
			if err != nil {
				return fmt.Errorf("tail seq %d: %w", seq, err)
			}
			entries = append(entries, entry{
				key:   appendOfflineKey(nil, row.key, row.micros, seq),
				value: s.codec.Seal(nil, row.values),
				tail:  slices.Clone(k),
			})
			if run.MinSeq == 0 {
				run.MinSeq = seq
			}
			run.MaxSeq = seq
		}
		if len(entries) == 0 {
			return nil
		}
		slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
		rb, err := b.Bucket(keyRuns).CreateBucket(runKey(run.ID))
		if err != nil {
			return err
		}
		rb.FillPercent = 1 // written once, in key order
		for _, e := range entries {
			if err := rb.Put(e.key, e.value); err != nil {
				return err
			}
		}
		for _, e := range entries {
			if err := tail.Delete(e.tail); err != nil {
				return err
			}
		}
		run.Rows = uint64(len(entries))
		meta.Runs = append(meta.Runs, run)
		meta.NextRun++
		meta.TailRows -= run.Rows
		flushed = true
		return s.putJSON(b, keyEventMeta, meta)
	}, nil)
	if err == nil && flushed {
		s.flushes.Inc() // after the commit: the function may run twice
	}
	return flushed, err
}

// mergeLevel merges the MergeFanIn oldest runs of the lowest full level
// into one run of the next level. The new run is written in chunks, each
// its own transaction, so that a merge of millions of rows never holds the
// writer or memory for long; it is invisible to readers (Building) until a
// last transaction publishes it and drops its sources.
func (s *Store) mergeLevel(ctx context.Context, viewKey []byte) (bool, error) {
	if _, due, err := s.compactionDue(viewKey, false); err != nil || !due {
		return false, err
	}
	fanIn := s.opts.Compaction.MergeFanIn
	var sources []uint64
	var target runInfo
	err := s.update(ctx, func(tx *bolt.Tx) error {
		sources = nil
		b, meta, err := s.eventsOf(tx, viewKey)
		if err != nil || b == nil {
			return err // nil when the version was deleted meanwhile
		}
		picked := meta.mergeDue(fanIn)
		if picked == nil {
			return nil
		}
		target = runInfo{ID: meta.NextRun, Level: picked[0].Level + 1, Building: true}
		for _, r := range picked {
			sources = append(sources, r.ID)
			target.Rows += r.Rows
			if target.MinSeq == 0 || r.MinSeq < target.MinSeq {
				target.MinSeq = r.MinSeq
			}
			target.MaxSeq = max(target.MaxSeq, r.MaxSeq)
		}
		if _, err := b.Bucket(keyRuns).CreateBucket(runKey(target.ID)); err != nil {
			return err
		}
		meta.Runs = append(meta.Runs, target)
		meta.NextRun++
		return s.putJSON(b, keyEventMeta, meta)
	}, nil)
	if err != nil || len(sources) == 0 {
		return false, err
	}
	var after []byte  // last key copied
	var copied uint64 // rows copied into the target, by committed chunks
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return false, err // the building run is dropped at the next open
		}
		// The chunk may run more than once (group commit re-runs it when a
		// write sharing its transaction fails): it works on copies and the
		// loop takes its results only once the transaction has committed.
		var chunkAfter []byte
		var chunkDone bool
		var chunkRows int
		err := s.update(ctx, func(tx *bolt.Tx) error {
			chunkAfter, chunkDone, chunkRows = after, false, 0
			b := tx.Bucket(bucketEvents).Bucket(viewKey)
			if b == nil {
				chunkDone = true
				return nil
			}
			rb := b.Bucket(keyRuns)
			dst := rb.Bucket(runKey(target.ID))
			if dst == nil {
				chunkDone = true
				return nil
			}
			dst.FillPercent = 1
			var runs []*bolt.Bucket
			for _, id := range sources {
				if r := rb.Bucket(runKey(id)); r != nil {
					runs = append(runs, r)
				}
			}
			m := newMerger(runs, after)
			n := 0
			for ; n < s.opts.Compaction.MergeChunkRows; n++ {
				k, v, ok := m.next()
				if !ok {
					chunkDone = true
					break
				}
				// v is still sealed: a merge never needs the values.
				if err := dst.Put(k, slices.Clone(v)); err != nil {
					return err
				}
				chunkAfter = slices.Clone(k)
			}
			chunkRows = n
			return nil
		}, nil)
		if err != nil {
			if ctx.Err() == nil {
				// A half-built run would block every later merge of this
				// view until a restart: drop it now (the sources are intact).
				if cerr := s.update(ctx, s.dropBuildingRuns, nil); cerr != nil {
					s.log.Warn("drop a half-built run", "view", string(viewKey), "err", cerr)
				}
			}
			return false, err
		}
		after, done = chunkAfter, chunkDone
		copied += uint64(chunkRows)
	}
	published := false
	err = s.update(ctx, func(tx *bolt.Tx) error {
		published = false
		b, meta, err := s.eventsOf(tx, viewKey)
		if err != nil || b == nil {
			return err // nil when the version was deleted meanwhile
		}
		rb := b.Bucket(keyRuns)
		kept := meta.Runs[:0]
		for _, r := range meta.Runs {
			switch {
			case slices.Contains(sources, r.ID):
				if err := rb.DeleteBucket(runKey(r.ID)); err != nil {
					return err
				}
			case r.ID == target.ID:
				// What the chunks copied, less what erasure and retention
				// have deleted from it since (they count those off the
				// building run's rows). Not Stats().KeyN: that sees
				// committed pages only, not deletions earlier in this batch.
				r.Building = false
				r.Rows = copied - min(copied, target.Rows-min(target.Rows, r.Rows))
				kept = append(kept, r)
			default:
				kept = append(kept, r)
			}
		}
		meta.Runs = kept
		published = true
		return s.putJSON(b, keyEventMeta, meta)
	}, nil)
	if err == nil && published {
		s.merges.Inc()
	}
	return err == nil, err
}

// dropBuildingRuns removes runs left half-built by a merge that a crash or
// a shutdown interrupted; their sources are intact.
func (s *Store) dropBuildingRuns(tx *bolt.Tx) error {
	root := tx.Bucket(bucketEvents)
	return root.ForEachBucket(func(name []byte) error {
		b := root.Bucket(name)
		meta, err := s.readEventsMeta(b)
		if err != nil {
			return err
		}
		kept := meta.Runs[:0]
		dropped := false
		for _, r := range meta.Runs {
			if r.Building {
				if err := b.Bucket(keyRuns).DeleteBucket(runKey(r.ID)); err != nil && b.Bucket(keyRuns).Bucket(runKey(r.ID)) != nil {
					return err
				}
				dropped = true
				continue
			}
			kept = append(kept, r)
		}
		if !dropped {
			return nil
		}
		meta.Runs = kept
		return s.putJSON(b, keyEventMeta, meta)
	})
}

// merger yields the keys of several sorted runs in order, starting after a
// key. Keys are unique across runs (they end in the ingest sequence).
type merger struct{ h mergeHeap }

type mergeItem struct {
	c    *bolt.Cursor
	k, v []byte
}

type mergeHeap []*mergeItem

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return bytes.Compare(h[i].k, h[j].k) < 0 }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.(*mergeItem)) }
func (h *mergeHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newMerger(runs []*bolt.Bucket, after []byte) *merger {
	m := &merger{}
	for _, r := range runs {
		c := r.Cursor()
		var k, v []byte
		if after == nil {
			k, v = c.First()
		} else {
			k, v = c.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		if k != nil {
			m.h = append(m.h, &mergeItem{c: c, k: k, v: v})
		}
	}
	heap.Init(&m.h)
	return m
}

func (m *merger) next() ([]byte, []byte, bool) {
	if len(m.h) == 0 {
		return nil, nil, false
	}
	it := m.h[0]
	k, v := it.k, it.v
	if it.k, it.v = it.c.Next(); it.k == nil {
		heap.Pop(&m.h)
	} else {
		heap.Fix(&m.h, 0)
	}
	return k, v, true
}

// migrateToEvents (schema 3) moves each view version's entity-ordered
// offline bucket into a first run of its events bucket, and drops the
// ingest index, which the tail replaces.
func migrateToEvents(tx *bolt.Tx) error {
	events, err := tx.CreateBucketIfNotExists(bucketEvents)
	if err != nil {
		return err
	}
	codec := PlainCodec{} // schema 3 predates any other codec
	if old := tx.Bucket([]byte("offline")); old != nil {
		err := old.ForEachBucket(func(name []byte) error {
			src := old.Bucket(name)
			b, err := events.CreateBucket(name)
			if err != nil {
				return err
			}
			if _, err := b.CreateBucket(keyTail); err != nil {
				return err
			}
			runs, err := b.CreateBucket(keyRuns)
			if err != nil {
				return err
			}
			meta := eventsMeta{NextRun: 1}
			run := runInfo{ID: 1}
			var dst *bolt.Bucket
			if err := src.ForEach(func(k, v []byte) error {
				if dst == nil {
					if dst, err = runs.CreateBucket(runKey(1)); err != nil {
						return err
					}
					dst.FillPercent = 1
				}
				seq := binary.BigEndian.Uint64(k[len(k)-8:])
				if run.MinSeq == 0 || seq < run.MinSeq {
					run.MinSeq = seq
				}
				run.MaxSeq = max(run.MaxSeq, seq)
				run.Rows++
				return dst.Put(k, slices.Clone(v))
			}); err != nil {
				return err
			}
			if dst != nil {
				meta.Runs, meta.NextRun = []runInfo{run}, 2
			}
			raw, err := json.Marshal(&meta)
			if err != nil {
				return err
			}
			return b.Put(keyEventMeta, codec.Seal(nil, raw))
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket([]byte("offline")); err != nil {
			return err
		}
	}
	if tx.Bucket([]byte("ingest_index")) != nil {
		return tx.DeleteBucket([]byte("ingest_index"))
	}
	return nil
}
