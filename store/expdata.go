package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// Experiment data (created by the first write; no migration):
//
//	outcome_rows    metric → bucket { u64(run) | str(unit) | i64(event µs) | u64(n) → f64 value }
//	outcome_runs    metric → the metric's sorted runs (expdata_runs.go)
//	event_ids       event id → i64(first seen µs); event_ids_t: i64(µs) | id → nil (for purging)
//	exp_units       experiment → bucket { unit → unit state (expUnit, binary) }
//	exp_aggs        experiment → bucket { arm 0 metric 0 group → u64 N | 5 × f64 sums }
//
// Results read only exp_aggs: a handful of keys, whatever the traffic.
// Before the runs, raw outcomes were one tree per metric keyed by unit, in
// a root bucket "outcomes"; no released build wrote it, so nothing reads it.
var (
	bucketEventIDs    = []byte("event_ids")
	bucketEventIDsT   = []byte("event_ids_t")
	bucketExpUnits    = []byte("exp_units")
	bucketExpAggs     = []byte("exp_aggs")
	bucketExpMeta     = []byte("exp_meta") // "exposure_cursor" → u64 telemetry sequence
	keyExposureCursor = []byte("exposure_cursor")
	errCorruptRecord  = errors.New("corrupt experiment record")
)

// expUnit is a unit's state in one experiment: its arm from its first
// exposure, the breakdown attributes it came with, and per metric the sums
// of its events after (y) and before (x) that exposure.
type expUnit struct {
	arm      string
	exposure int64
	attrs    [][2]string
	metrics  []unitMetric
}

type unitMetric struct {
	name   string
	sumY   float64
	nY     uint64
	sumX   float64
	nX     uint64
	exists bool
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (u *expUnit) encode() []byte {
	b := appendStr(nil, u.arm)
	b = binary.BigEndian.AppendUint64(b, uint64(u.exposure))
	b = binary.AppendUvarint(b, uint64(len(u.attrs)))
	for _, a := range u.attrs {
		b = appendStr(appendStr(b, a[0]), a[1])
	}
	b = binary.AppendUvarint(b, uint64(len(u.metrics)))
	for _, m := range u.metrics {
		b = appendStr(b, m.name)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.sumY))
		b = binary.AppendUvarint(b, m.nY)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.sumX))
		b = binary.AppendUvarint(b, m.nX)
	}
	return b
}

func decodeExpUnit(b []byte) (*expUnit, error) {
	u := &expUnit{}
	var err error
	str := func() string {
		if err != nil {
			return ""
		}
		var s string
		s, b, err = appliance.ReadBinaryString(b)
		return s
	}
	uv := func() uint64 {
		if err != nil {
			return 0
		}
		n, w := binary.Uvarint(b)
		if w <= 0 {
			err = errCorruptRecord
			return 0
		}
		b = b[w:]
		return n
	}
	u64 := func() uint64 {
		if err != nil || len(b) < 8 {
			err = errCorruptRecord
			return 0
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v
	}
	u.arm = str()
	u.exposure = int64(u64())
	for n := uv(); n > 0 && err == nil; n-- {
		u.attrs = append(u.attrs, [2]string{str(), str()})
	}
	for n := uv(); n > 0 && err == nil; n-- {
		m := unitMetric{name: str(), exists: true}
		m.sumY = math.Float64frombits(u64())
		m.nY = uv()
		m.sumX = math.Float64frombits(u64())
		m.nX = uv()
		u.metrics = append(u.metrics, m)
	}
	return u, err
}

func (u *expUnit) metric(name string) *unitMetric {
	for i := range u.metrics {
		if u.metrics[i].name == name {
			return &u.metrics[i]
		}
	}
	u.metrics = append(u.metrics, unitMetric{name: name})
	return &u.metrics[len(u.metrics)-1]
}

// values are the unit's metric value and covariate as the analysis counts
// them.
func (m *unitMetric) values(spec *appliance.Metric) (y, x float64) {
	return spec.UnitValue(m.sumY, int(m.nY)), spec.UnitValue(m.sumX, int(m.nX))
}

// groups are the aggregate groups a unit belongs to: all units, and one
// per breakdown attribute it has.
func (u *expUnit) groups() []string {
	g := []string{""}
	for _, a := range u.attrs {
		g = append(g, a[0]+"="+a[1])
	}
	return g
}

func aggKey(arm, metric, group string) []byte {
	k := append([]byte(arm), 0)
	k = append(append(k, metric...), 0)
	return append(k, group...)
}

type aggValue struct {
	n                             uint64
	sum, sumSq, sumX, sumXSq, sXY float64
}

func readAgg(b *bolt.Bucket, key []byte) aggValue {
	v := b.Get(key)
	if len(v) != 48 {
		return aggValue{}
	}
	f := func(i int) float64 { return math.Float64frombits(binary.BigEndian.Uint64(v[i*8:])) }
	return aggValue{binary.BigEndian.Uint64(v), f(1), f(2), f(3), f(4), f(5)}
}

func (a aggValue) bytes() []byte {
	b := binary.BigEndian.AppendUint64(nil, a.n)
	for _, f := range []float64{a.sum, a.sumSq, a.sumX, a.sumXSq, a.sXY} {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(f))
	}
	return b
}

// expContext is what a write needs to know of the experiments, read once
// per transaction.
type expContext struct {
	byMetric map[string][]*appliance.Experiment // experiments still collecting, by metric
	byName   map[string]*appliance.Experiment
}

func (s *Store) experimentsForData(tx *bolt.Tx) (*expContext, error) {
	ec := &expContext{byMetric: map[string][]*appliance.Experiment{}, byName: map[string]*appliance.Experiment{}}
	b := tx.Bucket(bucketExperiments)
	if b == nil {
		return ec, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		e := new(appliance.Experiment)
		if err := s.decodeJSON(v, e); err != nil {
			return fmt.Errorf("experiment %s: %w", k, err)
		}
		ec.byName[e.Name] = e
		if e.State != appliance.ExperimentRunning && e.State != appliance.ExperimentStopped {
			return nil
		}
		for _, m := range e.Metrics {
			ec.byMetric[m.Name] = append(ec.byMetric[m.Name], e)
		}
		return nil
	})
	return ec, err
}

func metricSpec(e *appliance.Experiment, name string) *appliance.Metric {
	for i := range e.Metrics {
		if e.Metrics[i].Name == name {
			return &e.Metrics[i]
		}
	}
	return nil
}

// subBucket returns root/name, creating both.
func subBucket(tx *bolt.Tx, root []byte, name string) (*bolt.Bucket, error) {
	r, err := tx.CreateBucketIfNotExists(root)
	if err != nil {
		return nil, err
	}
	return r.CreateBucketIfNotExists([]byte(name))
}

// outcome_log: u64(n) → one event as received, appended in order: the
// durable path of POST /events. FoldEvents moves logged events into the
// per-unit outcomes, unit states and aggregates in large batches, so that
// random updates keyed by unit are paid once per fold, not per request.
var (
	bucketOutcomeLog = []byte("outcome_log")
	keyFoldCursor    = []byte("fold_cursor")
)

func encodeLogEvent(ev *appliance.OutcomeEvent) []byte {
	b := appendStr(nil, ev.Metric)
	b = appendStr(b, ev.Unit)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Time))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(ev.Value))
	return appendStr(b, ev.EventID)
}

func decodeLogEvent(b []byte) (appliance.OutcomeEvent, error) {
	var ev appliance.OutcomeEvent
	var err error
	if ev.Metric, b, err = appliance.ReadBinaryString(b); err != nil {
		return ev, err
	}
	if ev.Unit, b, err = appliance.ReadBinaryString(b); err != nil {
		return ev, err
	}
	if len(b) < 16 {
		return ev, errCorruptRecord
	}
	ev.Time = int64(binary.BigEndian.Uint64(b))
	ev.Value = math.Float64frombits(binary.BigEndian.Uint64(b[8:]))
	ev.EventID, _, err = appliance.ReadBinaryString(b[16:])
	return ev, err
}

// RecordEvents implements appliance.ExperimentData: the events are
// appended to the outcome log, durable when it returns, and folded into
// the aggregates within about a second. Duplicates already folded (or
// repeated within the request) are reported and not logged; a retry racing
// its original is logged twice and counted once, at fold time.
func (s *Store) RecordEvents(ctx context.Context, events []appliance.OutcomeEvent) (*appliance.EventsResult, error) {
	res := &appliance.EventsResult{}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		*res = appliance.EventsResult{Duplicates: []string{}, UnknownMetrics: []string{}}
		ec, err := s.experimentsForData(tx)
		if err != nil {
			return err
		}
		ids := tx.Bucket(bucketEventIDs)
		lb, err := tx.CreateBucketIfNotExists(bucketOutcomeLog)
		if err != nil {
			return err
		}
		lb.FillPercent = 1 // appends only
		now := s.now().UnixMicro()
		seen := map[string]bool{}
		unknown := map[string]bool{}
		for i := range events {
			ev := &events[i]
			if ev.EventID != "" {
				if seen[ev.EventID] {
					res.Duplicates = append(res.Duplicates, ev.EventID)
					continue
				}
				if ids != nil {
					if v := ids.Get([]byte(ev.EventID)); len(v) == 8 && now-int64(binary.BigEndian.Uint64(v)) < appliance.EventIDWindow.Microseconds() {
						res.Duplicates = append(res.Duplicates, ev.EventID)
						continue
					}
				}
				seen[ev.EventID] = true
			}
			n, err := lb.NextSequence()
			if err != nil {
				return err
			}
			if err := lb.Put(u64(n), encodeLogEvent(ev)); err != nil {
				return err
			}
			res.Accepted++
			if len(ec.byMetric[ev.Metric]) == 0 && !unknown[ev.Metric] {
				unknown[ev.Metric] = true
				res.UnknownMetrics = append(res.UnknownMetrics, ev.Metric)
			}
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// FoldEvents implements appliance.ExperimentData.
func (s *Store) FoldEvents(ctx context.Context, limit int) (int, error) {
	// The monitor asks every second: an idle node must not commit (and
	// fsync) an empty transaction each time. The log holds only what is
	// pending, so a first key means work.
	pending := false
	if err := s.view(func(tx *bolt.Tx) error {
		if lb := tx.Bucket(bucketOutcomeLog); lb != nil {
			k, _ := lb.Cursor().First()
			pending = k != nil
		}
		return nil
	}); err != nil || !pending {
		return 0, err
	}
	if c := int(s.foldCap.Load()); c > 0 && c < limit {
		limit = c
	}
	folded, nodes := 0, 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		folded, nodes = 0, 0
		lb := tx.Bucket(bucketOutcomeLog)
		if lb == nil {
			return nil
		}
		mb, err := tx.CreateBucketIfNotExists(bucketExpMeta)
		if err != nil {
			return err
		}
		var after uint64
		if v := mb.Get(keyFoldCursor); len(v) == 8 {
			after = binary.BigEndian.Uint64(v)
		}
		var events []appliance.OutcomeEvent
		var seqs []uint64
		c := lb.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(events) < limit; k, v = c.Next() {
			ev, err := decodeLogEvent(v)
			if err != nil {
				return fmt.Errorf("outcome log %d: %w", binary.BigEndian.Uint64(k), err)
			}
			events = append(events, ev)
			seqs = append(seqs, binary.BigEndian.Uint64(k))
		}
		if len(events) == 0 {
			return nil
		}
		if err := s.foldTx(tx, events); err != nil {
			return err
		}
		// Folded entries leave the log: it holds only what is pending. Each
		// by its key: a cursor seeking past leaves emptied in this
		// transaction walks all of them, which made this loop quadratic.
		for _, n := range seqs {
			if err := lb.Delete(u64(n)); err != nil {
				return err
			}
		}
		folded = len(events)
		stats := tx.Stats()
		nodes = int(stats.GetNodeCount())
		return mb.Put(keyFoldCursor, u64(seqs[len(seqs)-1]))
	}, nil)
	if err == nil && folded > 0 {
		s.adaptFoldCap(folded, limit, nodes)
	}
	return folded, err
}

// adaptFoldCap bounds the next fold by what this one cost. bbolt keeps
// every page a transaction changes in memory until its commit, and a fold
// into big trees keyed by unit or event id changes about a page per event:
// at 1M units with random event ids a 50,000-event fold wrote 306 MiB and
// the heap peaked at 1.36 GiB. Past the store's FoldMaxPages the next fold
// takes half as many events, and below a quarter of it twice as many
// again, up to what the caller asks. There, capped folds wrote 105 MiB
// each and the heap peaked at 604 MiB, for 21 % fewer events folded per
// second (20,300 against 25,700): in big trees each event costs about a
// page whatever the batch.
// foldCapFloor is the fewest events a fold is cut to: below it, commits
// would cost more than the memory they save.
var foldCapFloor = 1000

func (s *Store) adaptFoldCap(folded, limit, pages int) {
	next := int(s.foldCap.Load())
	if next <= 0 {
		next = limit
	}
	switch {
	case pages > s.opts.FoldMaxPages:
		next = max(folded/2, foldCapFloor)
	case pages < s.opts.FoldMaxPages/4 && folded >= next:
		next = min(2*next, 1<<30)
	default:
		return
	}
	s.foldCap.Store(int64(next))
}

// foldTx applies events to the per-unit outcomes, unit states and
// aggregates: each touched unit is decoded once and written once, each
// aggregate key read once and written once, outcomes inserted in key order.
func (s *Store) foldTx(tx *bolt.Tx, events []appliance.OutcomeEvent) error {
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int {
		ex, ey := &events[x], &events[y]
		if c := strings.Compare(ex.Metric, ey.Metric); c != 0 {
			return c
		}
		if len(ex.Unit) != len(ey.Unit) { // keys start with the unit's length
			return len(ex.Unit) - len(ey.Unit)
		}
		if c := strings.Compare(ex.Unit, ey.Unit); c != 0 {
			return c
		}
		return cmp.Compare(ex.Time, ey.Time)
	})
	ec, err := s.experimentsForData(tx)
	if err != nil {
		return err
	}
	ids, err := tx.CreateBucketIfNotExists(bucketEventIDs)
	if err != nil {
		return err
	}
	idsT, err := tx.CreateBucketIfNotExists(bucketEventIDsT)
	if err != nil {
		return err
	}
	w := &eventWriter{tx: tx, units: map[string]*batchUnit{}, aggs: map[string]map[string]*aggDelta{}}
	now := s.now().UnixMicro()
	dup := make([]bool, len(events))
	fresh := map[string]bool{}
	for i := range events { // in arrival order: the first of two copies counts
		ev := &events[i]
		if ev.EventID == "" {
			continue
		}
		if fresh[ev.EventID] {
			dup[i] = true
			continue
		}
		if v := ids.Get([]byte(ev.EventID)); len(v) == 8 && now-int64(binary.BigEndian.Uint64(v)) < appliance.EventIDWindow.Microseconds() {
			dup[i] = true
			continue
		}
		fresh[ev.EventID] = true
	}
	perMetric := map[string]int{}
	for i := range events {
		if !dup[i] {
			perMetric[events[i].Metric]++
		}
	}
	// Inserted in key order: bbolt splits nodes only at commit, so keys
	// inserted at random into one growing node cost a copy of it each.
	newIDs := slices.Sorted(maps.Keys(fresh))
	stamp := binary.BigEndian.AppendUint64(nil, uint64(now))
	for _, id := range newIDs {
		if err := ids.Put([]byte(id), stamp); err != nil {
			return err
		}
		if err := idsT.Put(append(appendTime(nil, now), id...), nil); err != nil {
			return err
		}
	}
	var key []byte
	var mr *metricRuns
	var run *outcomeRun
	values := make([]byte, 0, 8*len(events)) // bbolt keeps put values until commit
	for _, i := range order {
		if dup[i] {
			continue
		}
		ev := &events[i]
		if mr == nil || mr.metric != ev.Metric {
			if mr != nil {
				if err := mr.save(tx); err != nil {
					return err
				}
			}
			if mr, err = openMetricRuns(tx, ev.Metric, true); err != nil {
				return err
			}
			// Merges first: a run written in this transaction is one node
			// until commit, and a merge target's rows sort before it, so
			// each of them would shift all of its rows.
			if err := mr.compact(min(max(mergeRowsPerRow*perMetric[ev.Metric], mergeRowsMin), mergeRowsMax)); err != nil {
				return fmt.Errorf("merge outcome runs of %s: %w", mr.metric, err)
			}
			run = mr.newRun(0)
		}
		n, err := mr.rows.NextSequence()
		if err != nil {
			return err
		}
		key = rowKey(key[:0], run.id, ev.Unit, ev.Time, n)
		values = binary.BigEndian.AppendUint64(values, math.Float64bits(ev.Value))
		if err := mr.rows.Put(key, values[len(values)-8:]); err != nil {
			return err
		}
		run.rows++
		for _, e := range ec.byMetric[ev.Metric] {
			if _, err := w.attribute(e, ev); err != nil {
				return err
			}
		}
	}
	if mr != nil {
		if err := mr.save(tx); err != nil {
			return err
		}
	}
	return w.flush()
}

// eventWriter holds one batch's unit states and aggregate changes.
type eventWriter struct {
	tx    *bolt.Tx
	units map[string]*batchUnit           // experiment \x00 unit → state; nil: not exposed
	aggs  map[string]map[string]*aggDelta // experiment → aggregate key → change
}

type batchUnit struct {
	exp, unit string
	state     *expUnit
	dirty     bool
}

type aggDelta struct {
	n                               uint64
	sum, sumSq, sumX, sumXSq, sumXY float64
}

func (w *eventWriter) unit(e *appliance.Experiment, unit string) (*batchUnit, error) {
	k := e.Name + "\x00" + unit
	if bu, ok := w.units[k]; ok {
		return bu, nil
	}
	var bu *batchUnit
	if root := w.tx.Bucket(bucketExpUnits); root != nil {
		if ub := root.Bucket([]byte(e.Name)); ub != nil {
			if raw := ub.Get([]byte(unit)); raw != nil {
				u, err := decodeExpUnit(raw)
				if err != nil {
					return nil, fmt.Errorf("unit %q of experiment %s: %w", unit, e.Name, err)
				}
				bu = &batchUnit{exp: e.Name, unit: unit, state: u}
			}
		}
	}
	w.units[k] = bu
	return bu, nil
}

// attribute folds one event into an experiment that exposed its unit.
func (w *eventWriter) attribute(e *appliance.Experiment, ev *appliance.OutcomeEvent) (bool, error) {
	bu, err := w.unit(e, ev.Unit)
	if err != nil || bu == nil {
		return false, err // not exposed (yet): the event waits in outcomes
	}
	u := bu.state
	spec := metricSpec(e, ev.Metric)
	place := spec.Place(u.exposure, ev.Time, appliance.DefaultCovariateLookback)
	if place == "" {
		return false, nil
	}
	m := u.metric(ev.Metric)
	added := !m.exists
	m.exists = true
	y0, x0 := m.values(spec)
	if place == "post" {
		m.sumY += ev.Value
		m.nY++
	} else {
		m.sumX += ev.Value
		m.nX++
	}
	y1, x1 := m.values(spec)
	bu.dirty = true
	deltas := w.aggs[e.Name]
	if deltas == nil {
		deltas = map[string]*aggDelta{}
		w.aggs[e.Name] = deltas
	}
	for _, g := range u.groups() {
		k := string(aggKey(u.arm, ev.Metric, g))
		d := deltas[k]
		if d == nil {
			d = &aggDelta{}
			deltas[k] = d
		}
		if added {
			d.n++
		}
		d.sum += y1 - y0
		d.sumSq += y1*y1 - y0*y0
		d.sumX += x1 - x0
		d.sumXSq += x1*x1 - x0*x0
		d.sumXY += x1*y1 - x0*y0
	}
	return true, nil
}

// flush writes the changed unit states and aggregates.
func (w *eventWriter) flush() error {
	// In key order, for the same reason as the event ids.
	keys := slices.Sorted(maps.Keys(w.units))
	for _, k := range keys {
		bu := w.units[k]
		if bu == nil || !bu.dirty {
			continue
		}
		ub, err := subBucket(w.tx, bucketExpUnits, bu.exp)
		if err != nil {
			return err
		}
		if err := ub.Put([]byte(bu.unit), bu.state.encode()); err != nil {
			return err
		}
	}
	for exp, deltas := range w.aggs {
		ab, err := subBucket(w.tx, bucketExpAggs, exp)
		if err != nil {
			return err
		}
		if err := addAggregates(ab, deltas); err != nil {
			return err
		}
	}
	return nil
}

// addAggregates adds a batch's changes to the stored aggregates, each key
// read and written once.
func addAggregates(ab *bolt.Bucket, deltas map[string]*aggDelta) error {
	for k, d := range deltas {
		a := readAgg(ab, []byte(k))
		a.n += d.n
		a.sum += d.sum
		a.sumSq += d.sumSq
		a.sumX += d.sumX
		a.sumXSq += d.sumXSq
		a.sXY += d.sumXY
		if err := ab.Put([]byte(k), a.bytes()); err != nil {
			return err
		}
	}
	return nil
}

// RecordExposures implements appliance.ExperimentData.
func (s *Store) RecordExposures(ctx context.Context, exposures []appliance.ExposureLog, throughSeq uint64) (int, error) {
	added := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		added = 0
		if throughSeq != 0 {
			b, err := tx.CreateBucketIfNotExists(bucketExpMeta)
			if err != nil {
				return err
			}
			if err := b.Put(keyExposureCursor, u64(throughSeq)); err != nil {
				return err
			}
		}
		ec, err := s.experimentsForData(tx)
		if err != nil {
			return err
		}
		runs := map[string]*metricRuns{} // nil: the metric has no outcomes
		// Units in key order (bbolt copies a growing node per random
		// insert); stable, so that of two exposures of one unit in the
		// batch the earlier still decides. Aggregates are summed here and
		// written once per key.
		order := make([]int, len(exposures))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			xa, xb := &exposures[a], &exposures[b]
			if c := strings.Compare(xa.Experiment, xb.Experiment); c != 0 {
				return c
			}
			return strings.Compare(xa.Unit, xb.Unit)
		})
		deltas := map[string]map[string]*aggDelta{} // experiment → aggregate key → change
		for _, i := range order {
			x := &exposures[i]
			e := ec.byName[x.Experiment]
			if e == nil || e.State == appliance.ExperimentDraft || e.State == appliance.ExperimentConcluded || e.Arm(x.Arm) == nil ||
				e.PhaseStartedAt != nil && x.Time.Before(*e.PhaseStartedAt) || x.Seed != "" && x.Seed != e.HashSeed() {
				continue // deleted, redefined or reseeded since: nothing to attribute to
			}
			ub, err := subBucket(tx, bucketExpUnits, e.Name)
			if err != nil {
				return err
			}
			if ub.Get([]byte(x.Unit)) != nil {
				continue // sticky: the first exposure decides
			}
			u := &expUnit{arm: x.Arm, exposure: x.Time.UnixMicro()}
			for _, name := range e.Breakdowns {
				if v, ok := x.Attributes[name]; ok && v != "" {
					u.attrs = append(u.attrs, [2]string{name, v})
				}
			}
			// Every metric counts the unit, with the events it already has.
			for i := range e.Metrics {
				spec := &e.Metrics[i]
				m := u.metric(spec.Name)
				m.exists = true
				mr, ok := runs[spec.Name]
				if !ok {
					if mr, err = openMetricRuns(tx, spec.Name, false); err != nil {
						return err
					}
					runs[spec.Name] = mr
				}
				if mr == nil {
					continue
				}
				mr.forUnit(x.Unit, func(at int64, val float64) {
					switch spec.Place(u.exposure, at, appliance.DefaultCovariateLookback) {
					case "post":
						m.sumY += val
						m.nY++
					case "pre":
						m.sumX += val
						m.nX++
					}
				})
			}
			if err := ub.Put([]byte(x.Unit), u.encode()); err != nil {
				return err
			}
			ed := deltas[e.Name]
			if ed == nil {
				ed = map[string]*aggDelta{}
				deltas[e.Name] = ed
			}
			for i := range e.Metrics {
				spec := &e.Metrics[i]
				y, xv := u.metric(spec.Name).values(spec)
				for _, g := range u.groups() {
					k := string(aggKey(u.arm, spec.Name, g))
					d := ed[k]
					if d == nil {
						d = &aggDelta{}
						ed[k] = d
					}
					d.n++
					d.sum += y
					d.sumSq += y * y
					d.sumX += xv
					d.sumXSq += xv * xv
					d.sumXY += xv * y
				}
			}
			added++
		}
		for exp, ed := range deltas {
			ab, err := subBucket(tx, bucketExpAggs, exp)
			if err != nil {
				return err
			}
			if err := addAggregates(ab, ed); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	return added, err
}

// ExposureCursor implements appliance.ExperimentData.
func (s *Store) ExposureCursor(context.Context) (uint64, error) {
	var seq uint64
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketExpMeta); b != nil {
			if v := b.Get(keyExposureCursor); len(v) == 8 {
				seq = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return seq, err
}

// ExperimentAggregates implements appliance.ExperimentData.
func (s *Store) ExperimentAggregates(_ context.Context, name string) ([]appliance.Aggregate, error) {
	var out []appliance.Aggregate
	err := s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketExpAggs)
		if root == nil {
			return nil
		}
		b := root.Bucket([]byte(name))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			parts := bytes.SplitN(k, []byte{0}, 3)
			if len(parts) != 3 {
				return errCorruptRecord
			}
			a := readAgg(b, k)
			// Sums of squares are kept by adding differences; rounding can
			// leave a tiny negative where the true value is 0.
			a.sumSq, a.sumXSq = max(a.sumSq, 0), max(a.sumXSq, 0)
			out = append(out, appliance.Aggregate{Arm: string(parts[0]), Metric: string(parts[1]), Group: string(parts[2]),
				N: int64(a.n), Sum: a.sum, SumSq: a.sumSq, SumX: a.sumX, SumXSq: a.sumXSq, SumXY: a.sXY})
			return nil
		})
	})
	return out, err
}

// PurgeEventIDs implements appliance.ExperimentData: it forgets at most
// limit event ids first seen before cutoff, oldest first, so that the
// dedup index holds only the window it promises.
func (s *Store) PurgeEventIDs(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		idsT := tx.Bucket(bucketEventIDsT)
		ids := tx.Bucket(bucketEventIDs)
		if idsT == nil || ids == nil {
			return nil
		}
		c := idsT.Cursor()
		for k, _ := c.First(); k != nil && n < limit; k, _ = c.Next() {
			if len(k) < 8 || readTime(k) >= cutoff.UnixMicro() {
				break
			}
			id := k[8:]
			// A retry after the window re-registered the id later: keep it.
			if v := ids.Get(id); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < cutoff.UnixMicro() {
				if err := ids.Delete(id); err != nil {
					return err
				}
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	}, nil)
	return n, err
}

// CappedAggregates implements appliance.ExperimentData.
func (s *Store) CappedAggregates(_ context.Context, e *appliance.Experiment, metric string) (float64, []appliance.Aggregate, error) {
	spec := metricSpec(e, metric)
	if spec == nil || spec.CapPercentile <= 0 {
		return 0, nil, fmt.Errorf("metric %s of %s has no percentile cap", metric, e.Name)
	}
	type unitValue struct {
		arm    string
		groups []string
		y, x   float64
	}
	var units []unitValue
	err := s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketExpUnits)
		if root == nil {
			return nil
		}
		b := root.Bucket([]byte(e.Name))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			u, err := decodeExpUnit(v)
			if err != nil {
				return fmt.Errorf("unit %q of %s: %w", k, e.Name, err)
			}
			m := u.metric(metric)
			y, x := m.values(spec) // uncapped: the metric has no absolute cap
			units = append(units, unitValue{arm: u.arm, groups: u.groups(), y: y, x: x})
			return nil
		})
	})
	if err != nil || len(units) == 0 {
		return 0, nil, err
	}
	ys := make([]float64, len(units))
	for i, u := range units {
		ys[i] = u.y
	}
	slices.Sort(ys)
	// The value at the percentile's rank among all exposed units, as
	// GrowthBook computes percentile caps over the whole experiment.
	capAt := ys[min(len(ys)-1, int(math.Ceil(spec.CapPercentile*float64(len(ys))))-1)]
	type key struct{ arm, group string }
	acc := map[key]*appliance.Aggregate{}
	var order []key
	for _, u := range units {
		y, x := min(u.y, capAt), min(u.x, capAt)
		for _, g := range u.groups {
			k := key{u.arm, g}
			a := acc[k]
			if a == nil {
				a = &appliance.Aggregate{Arm: u.arm, Metric: metric, Group: g}
				acc[k] = a
				order = append(order, k)
			}
			a.N++
			a.Sum += y
			a.SumSq += y * y
			a.SumX += x
			a.SumXSq += x * x
			a.SumXY += x * y
		}
	}
	out := make([]appliance.Aggregate, 0, len(order))
	for _, k := range order {
		out = append(out, *acc[k])
	}
	return capAt, out, nil
}
