package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	bolt "go.etcd.io/bbolt"
)

// Telemetry is the bounded asynchronous buffer for high-rate logs
// (predictions, exposures). Append never blocks: a full buffer drops the
// record and counts it. A flusher writes what is buffered at least every
// flush interval, in one transaction per flush, off the request path.
type Telemetry struct {
	s       *Store
	buf     chan telemetryRecord
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	set     *metrics.Set
	mu      sync.Mutex
	dropped map[string]*metrics.Counter
	written *metrics.Counter
	flushes *metrics.Counter
	failed  *metrics.Counter
	closed  atomic.Bool // after the last flush: appends are dropped, counted
}

// kindExposure is the telemetry kind of experiment exposures.
const kindExposure = "exposure"

type telemetryRecord struct {
	kind string
	data []byte
}

func newTelemetry(s *Store, set *metrics.Set) *Telemetry {
	t := &Telemetry{
		s: s, buf: make(chan telemetryRecord, s.opts.TelemetryBuffer),
		stop: make(chan struct{}), done: make(chan struct{}), set: set,
		dropped: map[string]*metrics.Counter{},
		written: set.NewCounter("mlnode_telemetry_written_total"),
		flushes: set.NewCounter("mlnode_telemetry_flushes_total"),
		failed:  set.NewCounter("mlnode_telemetry_write_errors_total"),
	}
	set.NewGauge("mlnode_telemetry_buffered", func() float64 { return float64(len(t.buf)) })
	t.droppedCounter("prediction")
	t.droppedCounter(kindExposure)
	go t.run()
	return t
}

// Telemetry returns the store's telemetry buffer.
func (s *Store) Telemetry() *Telemetry { return s.telemetry }

func (t *Telemetry) droppedCounter(kind string) *metrics.Counter {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.dropped[kind]
	if !ok {
		c = t.set.NewCounter(`mlnode_telemetry_dropped_total{kind="` + kind + `"}`)
		t.dropped[kind] = c
	}
	return c
}

// Append queues a record of a kind (a short constant such as "prediction")
// and reports whether it was kept. data is owned by the buffer afterwards.
//
// The last eighth of the buffer is kept for exposures: under a load that
// fills it, prediction and shadow logs are dropped first, since a dropped
// exposure leaves a unit out of its experiment's results (until its next
// request logs it again) while a dropped prediction log only thins a sample.
func (t *Telemetry) Append(kind string, data []byte) bool {
	if (kind != kindExposure && len(t.buf) >= cap(t.buf)-cap(t.buf)/8) || t.closed.Load() {
		t.droppedCounter(kind).Inc()
		return false
	}
	select {
	case t.buf <- telemetryRecord{kind, data}:
		return true
	default:
		t.droppedCounter(kind).Inc()
		return false
	}
}

// Dropped returns how many records of a kind were dropped.
func (t *Telemetry) Dropped(kind string) uint64 { return t.droppedCounter(kind).Get() }

func (t *Telemetry) run() {
	defer close(t.done)
	tick := time.NewTicker(t.s.opts.TelemetryFlush)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.flush()
		case <-t.stop:
			t.flush()
			return
		}
	}
}

// flush writes everything buffered now. A failed write is counted and its
// records lost: telemetry must never back up into requests.
func (t *Telemetry) flush() {
	n := len(t.buf)
	if n == 0 {
		return
	}
	batch := make([]telemetryRecord, 0, n)
	for range n {
		batch = append(batch, <-t.buf)
	}
	err := t.s.update(context.Background(), func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketTelemetry)
		last := map[string]uint64{}
		for _, r := range batch {
			b, err := root.CreateBucketIfNotExists([]byte(r.kind))
			if err != nil {
				return err
			}
			b.FillPercent = 1
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(u64(seq), t.s.codec.Seal(nil, r.data)); err != nil {
				return err
			}
			last[r.kind] = seq
		}
		// A mark per flush and kind: time → last sequence, so that
		// retention drops whole flushes without decoding records.
		now := uint64(t.s.now().UnixNano())
		for kind, seq := range last {
			marks, err := root.CreateBucketIfNotExists([]byte(kind + marksSuffix))
			if err != nil {
				return err
			}
			marks.FillPercent = 1
			if err := marks.Put(u64(now), u64(seq)); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	t.flushes.Inc()
	if err != nil {
		t.failed.Add(len(batch))
		t.s.log.Error("telemetry flush", "records", len(batch), "err", err)
		return
	}
	t.written.Add(len(batch))
}

// FlushedBefore returns the last sequence of a kind flushed before t (0:
// none). Every record after it was flushed at or after t, and a record is
// flushed after it was taken, so a reader of records taken since t can
// start there instead of at the beginning of the retention.
func (t *Telemetry) FlushedBefore(kind string, at time.Time) (uint64, error) {
	var seq uint64
	err := t.s.view(func(tx *bolt.Tx) error {
		marks := tx.Bucket(bucketTelemetry).Bucket([]byte(kind + marksSuffix))
		if marks == nil {
			return nil
		}
		c := marks.Cursor()
		// The last mark before at: seek to the first at or after, step back.
		var k, v []byte
		if k, _ = c.Seek(u64(uint64(max(at.UnixNano(), 0)))); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		if k != nil && len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return seq, err
}

// marksSuffix names the bucket of a kind's flush marks (kinds are plain
// identifiers, so no kind can collide with it).
const marksSuffix = "#marks"

// purge deletes the records of flushes older than the retention, at most
// limit records per call, and reports how many it deleted.
func (t *Telemetry) purge(ctx context.Context, retention time.Duration, limit int) (int, error) {
	cutoff := uint64(t.s.now().Add(-retention).UnixNano())
	deleted := 0
	err := t.s.update(ctx, func(tx *bolt.Tx) error {
		deleted = 0
		root := tx.Bucket(bucketTelemetry)
		var kinds []string
		_ = root.ForEachBucket(func(k []byte) error {
			if name, ok := strings.CutSuffix(string(k), marksSuffix); ok {
				kinds = append(kinds, name)
			}
			return nil
		})
		for _, kind := range kinds {
			marks, records := root.Bucket([]byte(kind+marksSuffix)), root.Bucket([]byte(kind))
			if records == nil {
				continue
			}
			var upTo uint64
			var oldMarks [][]byte
			c := marks.Cursor()
			for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) < cutoff; k, v = c.Next() {
				upTo = binary.BigEndian.Uint64(v)
				oldMarks = append(oldMarks, bytes.Clone(k))
			}
			var keys [][]byte
			rc := records.Cursor()
			for k, _ := rc.First(); k != nil && binary.BigEndian.Uint64(k) <= upTo && deleted+len(keys) < limit; k, _ = rc.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := records.Delete(k); err != nil {
					return err
				}
			}
			deleted += len(keys)
			if k, _ := records.Cursor().First(); k == nil || binary.BigEndian.Uint64(k) > upTo {
				for _, m := range oldMarks {
					if err := marks.Delete(m); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}, nil)
	return deleted, err
}

// Read calls fn for each stored record of a kind after sequence after, in
// order, until fn returns false. data is only valid during the call.
func (t *Telemetry) Read(kind string, after uint64, fn func(seq uint64, data []byte) bool) error {
	return t.s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTelemetry).Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
			plain, err := t.s.codec.Open(nil, v)
			if err != nil {
				return err
			}
			if !fn(readU64(k), plain) {
				return nil
			}
		}
		return nil
	})
}

// close flushes what is buffered and stops the flusher. A record appended
// after that (by a request that outlived the HTTP shutdown) is dropped and
// counted, not left in a buffer nobody writes.
func (t *Telemetry) close() {
	t.once.Do(func() {
		t.closed.Store(true)
		close(t.stop)
		<-t.done
		for {
			select {
			case r := <-t.buf:
				t.droppedCounter(r.kind).Inc()
			default:
				return
			}
		}
	})
}

func readU64(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}
