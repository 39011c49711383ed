package pit

import (
	"context"
	"fmt"

	"github.com/mlnode/mlnode/appliance"
)

// Range is entity-less retrieval: every event of the parts' views with
// start <= event time < end (0 leaves a side open), each as one row of
// join keys, event_timestamp and the requested features; features of the
// other parts are null in it. Rows come view by view, each in (entity,
// time) order.
type Range struct {
	parts  []Part
	events Events
	start  int64
	end    int64
	cols   []Column
	keyAt  [][]int // per part, the output column of each join key
	featAt []int   // per part, the output column of its first feature
	timeAt int
}

// NewRange plans a range retrieval. Times are unix microseconds.
func NewRange(parts []Part, ev Events, start, end int64) (*Range, error) {
	r := &Range{parts: parts, events: ev, start: start, end: end}
	at := map[string]int{}
	for _, p := range parts {
		var keys []int
		for _, jk := range p.View.JoinKeys {
			i, ok := at[jk.Name]
			if !ok {
				i = len(r.cols)
				at[jk.Name] = i
				d := appliance.DTypeString
				if jk.ValueType == appliance.EntityInt64 {
					d = appliance.DTypeInt64
				}
				r.cols = append(r.cols, Column{Name: jk.Name, Dtype: d})
			}
			keys = append(keys, i)
		}
		r.keyAt = append(r.keyAt, keys)
	}
	r.timeAt = len(r.cols)
	at[EventTimestamp] = r.timeAt
	r.cols = append(r.cols, Column{Name: EventTimestamp, Dtype: appliance.DTypeTimestamp})
	for _, p := range parts {
		r.featAt = append(r.featAt, len(r.cols))
		for k, fi := range p.Features {
			if _, dup := at[p.Names[k]]; dup {
				return nil, appliance.Invalid("features", "the column %q appears twice: set full_feature_names", p.Names[k])
			}
			at[p.Names[k]] = len(r.cols)
			r.cols = append(r.cols, Column{Name: p.Names[k], Dtype: p.View.Features[fi].Dtype})
		}
	}
	return r, nil
}

// Columns are the output columns.
func (r *Range) Columns() []Column { return r.cols }

// emitBatch is how many rows Emit reads before it lets go of the store and
// hands them on: the consumer may be a slow client, and a read transaction
// held while it waits would hold up writes that grow the file.
const emitBatch = 1024

// Emit streams the rows; the row slice is reused between calls.
func (r *Range) Emit(ctx context.Context, fn func(row []appliance.Value) error) error {
	batch := make([][]appliance.Value, emitBatch)
	for i := range batch {
		batch[i] = make([]appliance.Value, len(r.cols))
	}
	var vals []appliance.Value
	for pi := range r.parts {
		p := &r.parts[pi]
		cur, err := r.events.Events(ctx, p.View)
		if err != nil {
			return err
		}
		err = func() error {
			defer cur.Close()
			n := 0
			flush := func() error {
				cur.Release()
				for _, row := range batch[:n] {
					if err := fn(row); err != nil {
						return err
					}
				}
				n = 0
				return nil
			}
			for cur.Next() {
				t := cur.EventTime()
				if r.start != 0 && t < r.start || r.end != 0 && t >= r.end {
					continue
				}
				out := batch[n]
				clear(out)
				key := cur.Key()
				for k, jk := range p.View.JoinKeys {
					var v appliance.Value
					if v, key, err = appliance.DecodeEntityKeyPart(key, jk.ValueType); err != nil {
						return fmt.Errorf("event of %s: %w", p.View.Key(), err)
					}
					out[r.keyAt[pi][k]] = v
				}
				out[r.timeAt] = appliance.Value{Kind: appliance.KindTimestamp, Int: t}
				if vals, err = cur.Values(vals[:0]); err != nil {
					return err
				}
				for k, fi := range p.Features {
					out[r.featAt[pi]+k] = vals[fi]
				}
				if n++; n == emitBatch {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			if err := cur.Err(); err != nil {
				return err
			}
			return flush()
		}()
		if err != nil {
			return err
		}
	}
	return nil
}
