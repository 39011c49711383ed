// Package pit builds training sets: point-in-time correct joins of entity
// rows against the offline log, with memory bounded whatever the input size.
//
// For each entity row and feature view the value is that of the latest
// event with event time <= the row's time and not older than the view's
// TTL, else null: Feast's semantics. Ties on event time go to the
// later-ingested event.
//
// The join is a merge: entity rows sorted by (entity key, time) meet the
// offline log, which the store yields in (entity key, time, sequence)
// order, so each event is passed over once. Sorts spill to disk beyond the
// memory budget. Results are re-sorted into input order, so the output has
// the entity rows' order.
package pit

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"github.com/mlnode/mlnode/appliance"
)

// Part is one view version's share of a request.
type Part struct {
	View     *appliance.FeatureView
	Features []int    // indexes into View.Features, in request order
	Names    []string // output column names
}

// Events opens cursors over the offline log.
type Events interface {
	Events(ctx context.Context, view *appliance.FeatureView) (appliance.EventCursor, error)
}

// Column is one output column.
type Column struct {
	Name  string
	Dtype appliance.DType
}

// Options bound a join.
type Options struct {
	TempDir string
	// MemoryBudget is the bytes of sort buffers a join may hold; beyond it
	// sorts spill to TempDir. Default 256 MiB.
	MemoryBudget int
}

// Join is a computed training set, ready to stream.
type Join struct {
	spool   *Spool
	events  Events
	tempDir string
	parts   []Part
	order   []int // spool columns in output order
	cols    []Column
	results []recordIter // per part: one record per entity row, in row order
	stats   Stats
}

// Stats describe the work a join did.
type Stats struct {
	Rows          int   `json:"rows"`
	EventsScanned int64 `json:"events_scanned"`
	Matched       int64 `json:"matched"`
	Spilled       bool  `json:"spilled"`
}

// Prepare joins the spooled entity rows with the parts' views. It does all
// the work that can fail on the caller's input before any output is
// written; Emit then streams the rows.
func Prepare(ctx context.Context, spool *Spool, parts []Part, ev Events, opts Options) (*Join, error) {
	if opts.MemoryBudget <= 0 {
		opts.MemoryBudget = 256 << 20
	}
	if err := spool.finish(); err != nil {
		return nil, err
	}
	j := &Join{spool: spool, events: ev, parts: parts, tempDir: opts.TempDir, stats: Stats{Rows: spool.rows}}
	if err := j.bindKeys(); err != nil {
		return nil, err
	}
	if err := j.schema(); err != nil {
		return nil, err
	}
	// Each part gets its share of the budget, split between its two sorts.
	share := opts.MemoryBudget / (2 * max(1, len(parts)))
	requests := make([]*sorter, len(parts))
	for i := range parts {
		requests[i] = newSorter(opts.TempDir, share)
	}
	defer func() {
		for _, s := range requests {
			s.close()
		}
	}()
	if err := j.sortRequests(ctx, requests); err != nil {
		return nil, err
	}
	for i := range parts {
		it, err := j.joinPart(ctx, &parts[i], requests[i], share)
		if err != nil {
			j.Close()
			return nil, fmt.Errorf("join %s: %w", parts[i].View.Key(), err)
		}
		j.results = append(j.results, it)
	}
	return j, nil
}

// bindKeys types the join key columns by their entities.
func (j *Join) bindKeys() error {
	for _, p := range j.parts {
		for _, jk := range p.View.JoinKeys {
			col, ok := j.spool.byName[jk.Name]
			if !ok {
				return appliance.Invalid(j.spool.field, "the entity rows have no column %q, a join key of %s", jk.Name, p.View.Key())
			}
			c := j.spool.cols[col]
			if c.role == roleKey && c.valueType != jk.ValueType {
				return appliance.Invalid("features", "join key %q is %s in one view and %s in another", jk.Name, c.valueType, jk.ValueType)
			}
			c.role, c.valueType = roleKey, jk.ValueType
		}
	}
	return nil
}

// schema fixes the output columns: the entity rows' columns in order of
// appearance, then the features.
func (j *Join) schema() error {
	names := map[string]bool{}
	for _, i := range j.spool.order {
		c := j.spool.cols[i]
		j.order = append(j.order, i)
		j.cols = append(j.cols, Column{Name: c.name, Dtype: c.dtype()})
		names[c.name] = true
	}
	for _, p := range j.parts {
		for k, fi := range p.Features {
			name := p.Names[k]
			if names[name] {
				return appliance.Invalid("features", "the feature column %q has the name of a column of the entity rows: set full_feature_names or rename the column", name)
			}
			names[name] = true
			j.cols = append(j.cols, Column{Name: name, Dtype: p.View.Features[fi].Dtype})
		}
	}
	return nil
}

// Columns are the output columns.
func (j *Join) Columns() []Column { return j.cols }

// Stats reports the work done.
func (j *Join) Stats() Stats { return j.stats }

// appendTimeKey encodes a time so that bytes order like numbers, as the
// store's keys do.
func appendTimeKey(dst []byte, micros int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(micros)^(1<<63))
}

func readTimeKey(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// sortRequests reads the entity rows once and feeds each part's sort with
// (entity key, time, row number) records.
func (j *Join) sortRequests(ctx context.Context, requests []*sorter) error {
	r, err := j.spool.reader()
	if err != nil {
		return err
	}
	keyCols := make([][]int, len(j.parts))
	for i, p := range j.parts {
		for _, jk := range p.View.JoinKeys {
			keyCols[i] = append(keyCols[i], j.spool.byName[jk.Name])
		}
	}
	timeCol := j.spool.byName[EventTimestamp]
	var rec []byte
	for idx := 0; idx < j.spool.rows; idx++ {
		if idx%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		row, err := r.next()
		if err != nil {
			return err
		}
		for i := range j.parts {
			rec = rec[:0]
			for _, col := range keyCols[i] {
				c := j.spool.cols[col]
				if row[col].Null() {
					return appliance.Invalid(fmt.Sprintf("%s[%d].%s", j.spool.field, idx, c.name), "is missing: it is a join key of %s", j.parts[i].View.Key())
				}
				k, err := keyValue(c.valueType, row[col])
				if err != nil {
					return appliance.Invalid(fmt.Sprintf("%s[%d].%s", j.spool.field, idx, c.name), "%s", err)
				}
				rec = appliance.AppendEntityKeyPart(rec, k)
			}
			rec = appendTimeKey(rec, row[timeCol].Int)
			rec = binary.BigEndian.AppendUint64(rec, uint64(idx))
			if err := requests[i].add(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// joinPart merges one part's sorted requests with its view's events and
// returns the results in row order. A large in-memory request set is split
// at an entity boundary and its halves merged concurrently, each with its
// own cursor: the scan of the offline log is most of a join's work, and it
// divides.
func (j *Join) joinPart(ctx context.Context, p *Part, requests *sorter, budget int) (recordIter, error) {
	in, err := requests.iterator()
	if err != nil {
		return nil, err
	}
	defer in.close()
	ranges := []recordIter{in}
	var starts [][]byte
	if mem, ok := in.(*memIter); ok && Workers > 1 && len(mem.s.recs) >= parallelMin {
		ranges, starts = mem.split(Workers)
	}
	results := make([]*sorter, len(ranges))
	stats := make([]Stats, len(ranges))
	errs := make([]error, len(ranges))
	var wg sync.WaitGroup
	for i := range ranges {
		results[i] = newSorter(j.tempDir, budget/len(ranges))
		var seek []byte
		if i > 0 {
			seek = starts[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = j.mergeRange(ctx, p, ranges[i], seek, results[i])
		}()
	}
	wg.Wait()
	its := make([]recordIter, 0, len(results))
	fail := func(err error) (recordIter, error) {
		for _, it := range its {
			it.close()
		}
		for _, r := range results {
			r.close()
		}
		return nil, err
	}
	for i := range results {
		if errs[i] != nil {
			return fail(errs[i])
		}
		j.stats.EventsScanned += stats[i].EventsScanned
		j.stats.Matched += stats[i].Matched
		j.stats.Spilled = j.stats.Spilled || results[i].spilled() || requests.spilled()
		it, err := results[i].iterator()
		if err != nil {
			return fail(err)
		}
		its = append(its, it)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if len(its) == 1 {
		return its[0], nil
	}
	return newMultiIter(its), nil
}

// Workers is how many goroutines one join may use; parallelMin is the
// smallest request set worth splitting.
var (
	Workers     = runtime.GOMAXPROCS(0)
	parallelMin = 1 << 16
)

// mergeRange is the merge of one range of sorted requests with the events,
// from the first event at or after seek (nil: the start).
func (j *Join) mergeRange(ctx context.Context, p *Part, in recordIter, seek []byte, results *sorter) (Stats, error) {
	var st Stats
	cur, err := j.events.Events(ctx, p.View)
	if err != nil {
		return st, err
	}
	defer cur.Close()
	ttl := int64(p.View.TTL) / 1000 // ns → µs

	var (
		entity   []byte // the current request's entity key
		has      bool
		marked   bool // an event of entity with time <= the request's time was seen
		markTime int64
		decoded  bool // values holds the kept event's values
		values   []appliance.Value
		out      []byte
	)
	if seek != nil {
		has = cur.SeekKey(seek)
	} else {
		has = cur.Next()
	}
	for {
		rec, ok, err := in.next()
		if err != nil {
			return st, err
		}
		if !ok {
			break
		}
		key, ts, idx := rec[:len(rec)-16], readTimeKey(rec[len(rec)-16:]), rec[len(rec)-8:]
		if !bytes.Equal(key, entity) {
			entity = append(entity[:0], key...)
			marked = false
			// Catch the events up to this entity.
			for has && bytes.Compare(cur.Key(), entity) < 0 {
				has = cur.Next()
				st.EventsScanned++
			}
		}
		// Events of this entity up to the request's time; the last one
		// wins. Requests of one entity come in time order, so the cursor
		// only moves forward.
		for has && cur.EventTime() <= ts && bytes.Equal(cur.Key(), entity) {
			cur.Keep()
			marked, markTime, decoded = true, cur.EventTime(), false
			has = cur.Next()
			st.EventsScanned++
		}
		if err := cur.Err(); err != nil {
			return st, err
		}
		out = append(out[:0], idx...)
		if marked && (ttl <= 0 || markTime >= ts-ttl) {
			if !decoded {
				if values, err = cur.KeptValues(values); err != nil {
					return st, err
				}
				decoded = true
			}
			for _, fi := range p.Features {
				out = appliance.AppendValueBinary(out, values[fi])
			}
			st.Matched++
		} else {
			for range p.Features {
				out = append(out, byte(appliance.KindNull))
			}
		}
		if err := results.add(out); err != nil {
			return st, err
		}
	}
	return st, ctx.Err()
}

// Emit streams the rows in entity row order: the entity row's columns,
// then the features. The row slice is reused between calls.
func (j *Join) Emit(ctx context.Context, fn func(row []appliance.Value) error) error {
	defer j.Close()
	r, err := j.spool.reader()
	if err != nil {
		return err
	}
	out := make([]appliance.Value, len(j.cols))
	for idx := 0; idx < j.spool.rows; idx++ {
		if idx%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		row, err := r.next()
		if err != nil {
			return err
		}
		for k, col := range j.order {
			if c := j.spool.cols[col]; c.role == roleKey {
				out[k], _ = keyValue(c.valueType, row[col]) // checked while sorting
			} else {
				out[k] = convert(row[col], j.cols[k].Dtype)
			}
		}
		at := len(j.order)
		for pi, it := range j.results {
			rec, ok, err := it.next()
			if err != nil {
				return err
			}
			if !ok || binary.BigEndian.Uint64(rec) != uint64(idx) {
				return fmt.Errorf("join %s: result of row %d is missing", j.parts[pi].View.Key(), idx)
			}
			b := rec[8:]
			for range j.parts[pi].Features {
				if out[at], b, err = appliance.ReadValueBinary(b); err != nil {
					return err
				}
				at++
			}
		}
		if err := fn(out); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the join's temporary files.
func (j *Join) Close() {
	for _, it := range j.results {
		it.close()
	}
	j.results = nil
}
