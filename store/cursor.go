package store

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// A cursor renews its read transaction this often. A bbolt read transaction
// pins the pages it sees, and one held for minutes (an export streamed to a
// slow client) would let the file grow without bound and stall writers
// that need to remap it. Renewing is cheap: a seek per run.
var (
	cursorRenewEvery = 50 * time.Millisecond
	cursorCheckEvery = 4096 // events between looks at the clock and ctx
)

// tailEvent is a tail row copied out at open, in (key, time, seq) order:
// slices of one arena, so that a tail of 262,144 rows is three allocations
// rather than half a million.
type tailEvent struct {
	full   []byte // entity key | time | seq, as a run key
	values []byte // encoded values, unsealed
}

// eventCursor implements appliance.EventCursor.
//
// Its snapshot is the runs and tail as they were at open. The tail is in
// ingest order, so it is copied out and sorted once (it is bounded by the
// compactor's flush size); runs are read in place. Every row in a run has a
// sequence below the tail's first at open, and rows flushed from the tail
// after open carry sequences at or above it: skipping those in runs keeps
// each event exactly once however the compactor moves rows meanwhile.
type eventCursor struct {
	s       *Store
	ctx     context.Context
	view    *appliance.FeatureView
	viewKey []byte
	nvals   int

	tx       *bolt.Tx
	txStart  time.Time
	runs     mergeHeap
	tail     []tailEvent
	ti       int
	tailMin  uint64 // runs' rows at or above this sequence are in tail
	afterSeq uint64 // rows at or below it are left out

	// The current event.
	full     []byte // key | time | seq
	sealed   []byte // run value, valid while tx is open
	plain    []byte // tail value
	fromTail bool
	valid    bool

	kept       []byte // Keep's copy of encoded values
	keptSealed bool

	steps    int
	done     bool // Next has returned false at the end
	released bool // Release ended the transaction; the next use takes a new one
	err      error
	last     []byte // copy of full, to resume after renewing the transaction
}

// Events implements appliance.OfflineStore.
func (s *Store) Events(ctx context.Context, view *appliance.FeatureView) (appliance.EventCursor, error) {
	return s.EventsAfter(ctx, view, 0)
}

// EventsAfter implements appliance.OfflineStore: runs whose every row is at
// or below afterSeq are left out altogether, so an incremental pass costs
// what was ingested since, not the size of the log.
func (s *Store) EventsAfter(ctx context.Context, view *appliance.FeatureView, afterSeq uint64) (appliance.EventCursor, error) {
	c := &eventCursor{s: s, ctx: ctx, view: view, viewKey: []byte(view.Key()), nvals: len(view.Features), afterSeq: afterSeq}
	if err := c.begin(); err != nil {
		return nil, err
	}
	events := c.tx.Bucket(bucketEvents).Bucket(c.viewKey)
	tailBucket := events.Bucket(keyTail)
	tail := tailBucket.Cursor()
	c.tailMin = ^uint64(0)
	type span struct{ full, vals, end int }
	var arena []byte
	var spans []span
	var plainBuf []byte
	// Runs hold only rows below the tail's first sequence. With an empty
	// tail, every row ingested from now on is above the last sequence
	// handed out: later flushes must not leak into this snapshot.
	if k, _ := tail.First(); k != nil {
		c.tailMin = binary.BigEndian.Uint64(k)
	} else if v := c.tx.Bucket(bucketMeta).Get(keyIngestSeq); len(v) == 8 {
		c.tailMin = binary.BigEndian.Uint64(v) + 1
	} else {
		c.tailMin = 1
	}
	for k, v := tail.Seek(u64(afterSeq + 1)); k != nil; k, v = tail.Next() {
		seq := binary.BigEndian.Uint64(k)
		if spans == nil {
			// Sized from the meta's count (Stats() walks every page), but
			// capped: rows above afterSeq may be few, and rows vary in size.
			n := 1024
			if meta, err := s.readEventsMeta(events); err == nil && meta.TailRows > 0 {
				n = int(min(meta.TailRows, 1<<16))
			}
			spans = make([]span, 0, n)
			arena = make([]byte, 0, min(n*(len(v)+16), 16<<20))
		}
		plain, err := s.codec.Open(plainBuf[:0], v)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("tail of %s seq %d: %w", view.Key(), seq, err)
		}
		row, err := decodeTailValue(plain)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("tail of %s seq %d: %w", view.Key(), seq, err)
		}
		// Copied: an opened value may alias the map of this transaction.
		start := len(arena)
		arena = appendOfflineKey(arena, row.key, row.micros, seq)
		mid := len(arena)
		arena = append(arena, row.values...)
		spans = append(spans, span{start, mid, len(arena)})
		if len(plain) > 0 && &plain[0] != &v[0] {
			plainBuf = plain
		}
	}
	c.tail = make([]tailEvent, len(spans))
	for i, sp := range spans {
		c.tail[i] = tailEvent{full: arena[sp.full:sp.vals:sp.vals], values: arena[sp.vals:sp.end:sp.end]}
	}
	slices.SortFunc(c.tail, func(a, b tailEvent) int { return bytes.Compare(a.full, b.full) })
	if err := c.position(nil, false); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *eventCursor) begin() error {
	tx, err := c.s.db.Begin(false)
	if err != nil {
		return fmt.Errorf("read events of %s: %w", c.view.Key(), err)
	}
	if tx.Bucket(bucketEvents).Bucket(c.viewKey) == nil {
		_ = tx.Rollback()
		return appliance.NotFound("feature view", c.view.Key())
	}
	c.tx, c.txStart = tx, time.Now()
	return nil
}

// position points the run cursors at the first key >= from (or > from when
// after is set); nil means the start.
func (c *eventCursor) position(from []byte, after bool) error {
	events := c.tx.Bucket(bucketEvents).Bucket(c.viewKey)
	if events == nil {
		return appliance.NotFound("feature view", c.view.Key())
	}
	runs, meta, err := c.s.runs(events, false)
	if err != nil {
		return err
	}
	c.runs = c.runs[:0]
	for _, r := range runs {
		if c.afterSeq > 0 && meta.Runs[runIndex(meta, r.id)].MaxSeq <= c.afterSeq {
			continue
		}
		cur := r.run.Cursor()
		var k, v []byte
		if from == nil {
			k, v = cur.First()
		} else {
			k, v = cur.Seek(from)
			if after && k != nil && bytes.Equal(k, from) {
				k, v = cur.Next()
			}
		}
		k, v = c.skipFlushed(cur, k, v)
		if k != nil {
			c.runs = append(c.runs, &mergeItem{c: cur, k: k, v: v})
		}
	}
	heap.Init(&c.runs)
	return nil
}

// skipFlushed passes over run rows that this cursor reads from its tail copy.
func (c *eventCursor) skipFlushed(cur *bolt.Cursor, k, v []byte) ([]byte, []byte) {
	for n := 0; k != nil; n++ {
		if seq := binary.BigEndian.Uint64(k[len(k)-8:]); seq < c.tailMin && seq > c.afterSeq {
			break
		}
		// A long stretch of old rows (EventsAfter over a merged run) still
		// answers to cancellation.
		if n%cursorCheckEvery == cursorCheckEvery-1 && c.ctx.Err() != nil {
			c.err = c.ctx.Err()
			return nil, nil
		}
		k, v = cur.Next()
	}
	return k, v
}

// renew swaps the read transaction for a fresh one at the same position.
func (c *eventCursor) renew() error {
	if c.valid {
		c.last = append(c.last[:0], c.full...)
	}
	_ = c.tx.Rollback()
	c.tx = nil
	if err := c.begin(); err != nil {
		return err
	}
	if c.valid {
		return c.position(c.last, true)
	}
	// Nothing read yet: from the start, or at the end already.
	return c.position(nil, false)
}

// Release implements appliance.EventCursor: the read transaction ends now
// and the next use of the cursor takes a new one at the same place. A
// caller that writes to the store while holding a cursor must release it
// first: a write that grows the file waits for every read transaction.
func (c *eventCursor) Release() {
	if c.tx == nil {
		return
	}
	if c.valid {
		c.last = append(c.last[:0], c.full...)
		c.full = c.last
		c.sealed = nil
	}
	_ = c.tx.Rollback()
	c.tx, c.released = nil, true
}

// reacquire takes a new transaction after Release and restores the
// position exactly: the current event is current again.
func (c *eventCursor) reacquire() error {
	if err := c.begin(); err != nil {
		return err
	}
	c.released = false
	if !c.valid {
		if c.steps == 0 {
			return c.position(nil, false)
		}
		return nil
	}
	if err := c.position(c.last, false); err != nil {
		return err
	}
	if !c.fromTail {
		if len(c.runs) == 0 || !bytes.Equal(c.runs[0].k, c.last) {
			// The event went meanwhile (erased): nothing to move past.
			c.valid = false
			return nil
		}
		c.full, c.sealed = c.runs[0].k, c.runs[0].v
	}
	return nil
}

func (c *eventCursor) Next() bool {
	if c.err != nil || c.done {
		return false
	}
	if c.tx == nil {
		if !c.released {
			return false
		}
		if err := c.reacquire(); err != nil {
			c.err = err
			return false
		}
	}
	// Move past the current event first, so that a renewal below can
	// resume strictly after it.
	if c.valid {
		if c.fromTail {
			c.ti++
		} else {
			it := c.runs[0]
			k, v := it.c.Next()
			it.k, it.v = c.skipFlushed(it.c, k, v)
			if it.k == nil {
				heap.Pop(&c.runs)
			} else {
				heap.Fix(&c.runs, 0)
			}
		}
	}
	c.steps++
	if c.steps%cursorCheckEvery == 0 {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			return false
		}
		if time.Since(c.txStart) > cursorRenewEvery {
			if err := c.renew(); err != nil {
				c.err = err
				return false
			}
		}
	}
	if !c.pick() {
		c.done = true
		return false
	}
	return true
}

// pick makes the smaller of the runs' head and the tail's head current.
func (c *eventCursor) pick() bool {
	var rk []byte
	if len(c.runs) > 0 {
		rk = c.runs[0].k
	}
	var tk []byte
	if c.ti < len(c.tail) {
		tk = c.tail[c.ti].full
	}
	switch {
	case rk == nil && tk == nil:
		c.valid = false
		return false
	case tk == nil || rk != nil && bytes.Compare(rk, tk) < 0:
		c.full, c.sealed, c.fromTail = rk, c.runs[0].v, false
	default:
		c.full, c.plain, c.fromTail = tk, c.tail[c.ti].values, true
	}
	c.valid = true
	return true
}

func (c *eventCursor) SeekKey(key []byte) bool {
	if c.err != nil {
		return false
	}
	if c.tx == nil {
		if !c.released {
			return false
		}
		if err := c.begin(); err != nil {
			c.err = err
			return false
		}
		c.released = false
	}
	if time.Since(c.txStart) > cursorRenewEvery {
		_ = c.tx.Rollback()
		c.tx = nil
		if err := c.begin(); err != nil {
			c.err = err
			return false
		}
	}
	if err := c.position(key, false); err != nil {
		c.err = err
		return false
	}
	c.ti, _ = slices.BinarySearchFunc(c.tail, key, func(e tailEvent, k []byte) int { return bytes.Compare(e.full, k) })
	c.valid = c.pick()
	c.done = !c.valid
	return c.valid
}

func (c *eventCursor) Key() []byte      { return c.full[:len(c.full)-16] }
func (c *eventCursor) EventTime() int64 { return readTime(c.full[len(c.full)-16:]) }
func (c *eventCursor) Seq() uint64      { return binary.BigEndian.Uint64(c.full[len(c.full)-8:]) }

func (c *eventCursor) Values(dst []appliance.Value) ([]appliance.Value, error) {
	if c.tx == nil && c.released {
		if err := c.reacquire(); err != nil {
			return dst[:0], err
		}
	}
	if !c.valid {
		return dst[:0], fmt.Errorf("read event values of %s: no current event", c.view.Key())
	}
	enc := c.plain
	if !c.fromTail {
		var err error
		if enc, err = c.s.codec.Open(nil, c.sealed); err != nil {
			return dst[:0], fmt.Errorf("event of %s: %w", c.view.Key(), err)
		}
	}
	vals, err := decodeValues(dst[:0], enc, c.nvals)
	if err != nil {
		return dst[:0], fmt.Errorf("event of %s seq %d: %w", c.view.Key(), c.Seq(), err)
	}
	return vals, nil
}

func (c *eventCursor) Keep() {
	if !c.valid {
		return
	}
	if c.fromTail {
		c.kept, c.keptSealed = append(c.kept[:0], c.plain...), false
	} else {
		c.kept, c.keptSealed = append(c.kept[:0], c.sealed...), true
	}
}

func (c *eventCursor) KeptValues(dst []appliance.Value) ([]appliance.Value, error) {
	enc := c.kept
	if c.keptSealed {
		var err error
		if enc, err = c.s.codec.Open(nil, c.kept); err != nil {
			return dst[:0], fmt.Errorf("event of %s: %w", c.view.Key(), err)
		}
	}
	vals, err := decodeValues(dst[:0], enc, c.nvals)
	if err != nil {
		return dst[:0], fmt.Errorf("event of %s: %w", c.view.Key(), err)
	}
	return vals, nil
}

func (c *eventCursor) Err() error { return c.err }

func (c *eventCursor) Close() error {
	if c.tx != nil {
		_ = c.tx.Rollback()
		c.tx = nil
	}
	c.valid = false
	return nil
}

// LastSeq implements appliance.OfflineStore.
func (s *Store) LastSeq(context.Context) (uint64, error) {
	var seq uint64
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyIngestSeq); v != nil {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return seq, err
}
