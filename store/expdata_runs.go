package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

// Raw outcomes are kept in sorted runs, a small log-structured merge tree
// per metric:
//
//	outcome_rows  metric → bucket { u64(run) | str(unit) | i64(event µs) | u64(n) → f64 value }
//	outcome_runs  metric → run list (encodeRuns)
//
// Keyed by unit alone, every fold inserted its events at random into one
// tree of all events ever seen: at 1M units a 50,000-event fold dirtied
// some 40,000 pages of it. A fold now writes its events as a new run, in
// key order behind every other run (a few hundred pages), and merges runs
// of one level into one of the next, a bounded number of rows per fold.
// "The events of unit U" is a seek per run. Rows move from a merge's
// sources to its target in the same transaction, so each row is in exactly
// one run at every commit and readers need not know about merges.
var (
	bucketOutcomeRows = []byte("outcome_rows")
	bucketOutcomeRuns = []byte("outcome_runs")
)

const (
	// runFanIn runs of a level are merged into one of the next: about
	// log8(rows/fold) rewrites of each row, at most 7 idle runs per level
	// to seek when a unit is exposed. Fan-in 4 rewrote more (16% slower
	// folds at 100k units) for fewer seeks that exposures did not need.
	runFanIn = 8
	// A fold moves mergeRowsPerRow rows per row it writes: each level
	// needs about one on average (a level's runFanIn runs are merged once
	// per runFanIn of its own), so merges keep up with this many levels,
	// far beyond any store's size at 50,000-event folds. mergeRowsMin lets small
	// folds finish merges; mergeRowsMax bounds a transaction's memory.
	mergeRowsPerRow = 8
	mergeRowsMin    = 20_000
	mergeRowsMax    = 400_000
)

// outcomeRun is one sorted run of a metric's outcomes.
type outcomeRun struct {
	id    uint64
	level uint64
	rows  uint64
	into  uint64 // the run a merge is moving this run's rows to; 0: none
}

// metricRuns is a metric's outcome rows and run list within a transaction.
type metricRuns struct {
	metric string
	rows   *bolt.Bucket
	next   uint64 // the last run id handed out
	runs   []outcomeRun
	fresh  map[uint64]bool // runs written in this transaction
}

func encodeRuns(next uint64, runs []outcomeRun) []byte {
	b := binary.AppendUvarint(nil, next)
	b = binary.AppendUvarint(b, uint64(len(runs)))
	for _, r := range runs {
		for _, v := range []uint64{r.id, r.level, r.rows, r.into} {
			b = binary.AppendUvarint(b, v)
		}
	}
	return b
}

func decodeRuns(b []byte) (uint64, []outcomeRun, error) {
	var vals []uint64
	for len(b) > 0 {
		v, w := binary.Uvarint(b)
		if w <= 0 {
			return 0, nil, errCorruptRecord
		}
		vals = append(vals, v)
		b = b[w:]
	}
	if len(vals) < 2 || uint64(len(vals)-2) != vals[1]*4 {
		return 0, nil, errCorruptRecord
	}
	runs := make([]outcomeRun, vals[1])
	for i := range runs {
		v := vals[2+4*i:]
		runs[i] = outcomeRun{id: v[0], level: v[1], rows: v[2], into: v[3]}
	}
	return vals[0], runs, nil
}

// openMetricRuns returns the metric's runs, or nil when it has none and
// create is false.
func openMetricRuns(tx *bolt.Tx, metric string, create bool) (*metricRuns, error) {
	m := &metricRuns{metric: metric}
	if !create {
		root := tx.Bucket(bucketOutcomeRows)
		if root == nil {
			return nil, nil
		}
		if m.rows = root.Bucket([]byte(metric)); m.rows == nil {
			return nil, nil
		}
	} else {
		var err error
		if m.rows, err = subBucket(tx, bucketOutcomeRows, metric); err != nil {
			return nil, err
		}
		// Rows are only ever inserted in key order behind a run's last row.
		m.rows.FillPercent = 1
	}
	if root := tx.Bucket(bucketOutcomeRuns); root != nil {
		if v := root.Get([]byte(metric)); v != nil {
			var err error
			if m.next, m.runs, err = decodeRuns(v); err != nil {
				return nil, fmt.Errorf("outcome runs of %s: %w", metric, err)
			}
		}
	}
	return m, nil
}

func (m *metricRuns) save(tx *bolt.Tx) error {
	root, err := tx.CreateBucketIfNotExists(bucketOutcomeRuns)
	if err != nil {
		return err
	}
	return root.Put([]byte(m.metric), encodeRuns(m.next, m.runs))
}

func (m *metricRuns) run(id uint64) *outcomeRun {
	for i := range m.runs {
		if m.runs[i].id == id {
			return &m.runs[i]
		}
	}
	return nil
}

// newRun starts an empty run; its rows must be put in key order.
func (m *metricRuns) newRun(level uint64) *outcomeRun {
	m.next++
	m.runs = append(m.runs, outcomeRun{id: m.next, level: level})
	if m.fresh == nil {
		m.fresh = map[uint64]bool{}
	}
	m.fresh[m.next] = true
	return &m.runs[len(m.runs)-1]
}

// rowKey appends a row's key: run | str(unit) | i64(µs) | u64(n).
func rowKey(dst []byte, run uint64, unit string, micros int64, n uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, run)
	dst = appendStr(dst, unit)
	dst = appendTime(dst, micros)
	return binary.BigEndian.AppendUint64(dst, n)
}

// forUnit calls fn with every event of unit, run by run.
func (m *metricRuns) forUnit(unit string, fn func(micros int64, value float64)) {
	c := m.rows.Cursor()
	prefix := make([]byte, 8, 8+binary.MaxVarintLen64+len(unit))
	prefix = appendStr(prefix, unit)
	for _, r := range m.runs {
		binary.BigEndian.PutUint64(prefix, r.id)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+16 || len(v) != 8 {
				continue
			}
			fn(readTime(k[len(prefix):]), math.Float64frombits(binary.BigEndian.Uint64(v)))
		}
	}
}

// compact moves at most budget rows between runs: it continues the merges
// in progress, lowest level first, and starts one wherever a level has
// runFanIn idle runs.
func (m *metricRuns) compact(budget int) error {
	for budget > 0 {
		target, sources := m.pendingMerge()
		if target == nil {
			return nil
		}
		moved, err := m.mergeStep(target, sources, budget)
		if err != nil {
			return err
		}
		budget -= moved
	}
	return nil
}

// pendingMerge returns the lowest-level merge to work on, starting one if
// needed; nil when there is nothing to merge.
func (m *metricRuns) pendingMerge() (*outcomeRun, []uint64) {
	type level struct {
		target uint64
		idle   []uint64
	}
	levels := map[uint64]*level{}
	lowest := uint64(math.MaxUint64)
	for _, r := range m.runs {
		l := levels[r.level]
		if l == nil {
			l = &level{}
			levels[r.level] = l
		}
		switch {
		case r.into != 0:
			l.target = r.into
			lowest = min(lowest, r.level)
		case !m.isTarget(r.id) && !m.fresh[r.id]:
			// Not a run written in this transaction: bbolt splits nodes
			// only at commit, so its rows are one node, and deleting them
			// one by one from its front would copy the rest each time.
			l.idle = append(l.idle, r.id)
			if len(l.idle) >= runFanIn {
				lowest = min(lowest, r.level)
			}
		}
	}
	l, ok := levels[lowest]
	if !ok {
		return nil, nil
	}
	if l.target != 0 {
		var sources []uint64
		for _, r := range m.runs {
			if r.into == l.target {
				sources = append(sources, r.id)
			}
		}
		return m.run(l.target), sources
	}
	sources := l.idle[:runFanIn] // the oldest: runs are in id order
	target := m.newRun(lowest + 1)
	id := target.id
	for _, s := range sources {
		m.run(s).into = id
	}
	return m.run(id), sources
}

func (m *metricRuns) isTarget(id uint64) bool {
	for _, r := range m.runs {
		if r.into == id {
			return true
		}
	}
	return false
}

// mergeStep moves the smallest budget rows of sources to target, in key
// order, and drops the sources it empties.
func (m *metricRuns) mergeStep(target *outcomeRun, sources []uint64, budget int) (int, error) {
	type head struct {
		c    *bolt.Cursor
		k, v []byte
	}
	heads := make([]head, len(sources))
	for i, id := range sources {
		c := m.rows.Cursor()
		k, v := c.Seek(u64(id))
		if k != nil && !bytes.HasPrefix(k, u64(id)) {
			k = nil
		}
		heads[i] = head{c, k, v}
	}
	// Copied out before any write: cursors do not survive changes.
	type row struct{ src, keyLen, valLen int }
	var rows []row
	var arena []byte // the rows' key suffixes and values, back to back
	for len(rows) < budget {
		best := -1
		for i := range heads {
			if heads[i].k != nil && (best < 0 || bytes.Compare(heads[i].k[8:], heads[best].k[8:]) < 0) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		h := &heads[best]
		arena = append(append(arena, h.k[8:]...), h.v...)
		rows = append(rows, row{best, len(h.k) - 8, len(h.v)})
		if h.k, h.v = h.c.Next(); h.k != nil && !bytes.HasPrefix(h.k, u64(sources[best])) {
			h.k = nil
		}
	}
	key := make([]byte, 0, 64)
	for off, i := 0, 0; i < len(rows); i++ {
		r := rows[i]
		key = binary.BigEndian.AppendUint64(key[:0], target.id)
		if err := m.rows.Put(append(key, arena[off:off+r.keyLen]...), arena[off+r.keyLen:off+r.keyLen+r.valLen]); err != nil {
			return 0, err
		}
		off += r.keyLen + r.valLen
	}
	moved := make([]uint64, len(sources))
	for off, i := 0, 0; i < len(rows); i++ {
		r := rows[i]
		key = binary.BigEndian.AppendUint64(key[:0], sources[r.src])
		if err := m.rows.Delete(append(key, arena[off:off+r.keyLen]...)); err != nil {
			return 0, err
		}
		off += r.keyLen + r.valLen
		moved[r.src]++
	}
	target.rows += uint64(len(rows))
	for i, id := range sources {
		r := m.run(id)
		if moved[i] > r.rows {
			return 0, fmt.Errorf("outcome run %d of %s: moved %d of %d rows: %w", id, m.metric, moved[i], r.rows, errCorruptRecord)
		}
		r.rows -= moved[i]
		if heads[i].k == nil && r.rows != 0 {
			return 0, fmt.Errorf("outcome run %d of %s: %d rows counted, none left: %w", id, m.metric, r.rows, errCorruptRecord)
		}
	}
	kept := m.runs[:0]
	for _, r := range m.runs {
		if r.into == 0 || r.rows > 0 {
			kept = append(kept, r)
		}
	}
	m.runs = kept
	return len(rows), nil
}
