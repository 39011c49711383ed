package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// Job kinds of materialization.
const (
	KindMaterialize            = "materialize"
	KindMaterializeIncremental = "materialize-incremental"
)

// chunkRows is how many online rows one materialization write commits,
// with the job's checkpoint: a crash loses at most this much work.
var chunkRows = 5000

// MaterializeArgs are the arguments of both materialization jobs. Views are
// "name" (latest version) or "name@vN"; none means every view's latest
// version. Times are RFC 3339.
type MaterializeArgs struct {
	FeatureViews []string `json:"feature_views,omitempty"`
	Start        string   `json:"start,omitempty"` // materialize only
	End          string   `json:"end,omitempty"`   // default: now
}

// materializeState is the checkpoint: where the job is, and what it has
// counted so far.
type materializeState struct {
	View       int                 `json:"view"`      // index in the resolved view list
	AfterKey   []byte              `json:"after_key"` // last entity committed in that view
	Snapshot   uint64              `json:"snapshot"`  // incremental: the ingest sequence bound
	MinSkipped uint64              `json:"min_skipped,omitempty"`
	Scanned    int64               `json:"scanned"`
	Written    int64               `json:"written"`
	Results    []MaterializeResult `json:"results"`
}

// MaterializeResult reports one view version.
type MaterializeResult struct {
	View      string `json:"view"`
	Scanned   int64  `json:"events_scanned"`
	Matched   int64  `json:"entities_matched"`
	Written   int64  `json:"online_rows_written"`
	Watermark uint64 `json:"watermark,omitempty"`
	// Skipped says why a view was left out: deleted after the job was
	// submitted. The job goes on with the other views.
	Skipped string `json:"skipped,omitempty"`
}

// OnlineWriter is the part of appliance.OfflineStore a materialization uses.
type OnlineWriter interface {
	Events(ctx context.Context, view *appliance.FeatureView) (appliance.EventCursor, error)
	EventsAfter(ctx context.Context, view *appliance.FeatureView, afterSeq uint64) (appliance.EventCursor, error)
	LastSeq(ctx context.Context) (uint64, error)
	WriteOnline(ctx context.Context, w *appliance.OnlineWrite) (int, error)
	Watermark(ctx context.Context, view *appliance.FeatureView) (uint64, error)
}

// Materializer builds the materialization job specs.
type Materializer struct {
	Registry appliance.FeatureRegistry
	Features appliance.FeatureStore
	Offline  OnlineWriter
	Now      func() time.Time
}

// Specs returns the job specs of materialize and materialize-incremental.
func (m *Materializer) Specs() []appliance.JobSpec {
	return []appliance.JobSpec{
		{Kind: KindMaterialize, Validate: m.validate(false), Locks: viewLocks, Run: m.run(false)},
		{Kind: KindMaterializeIncremental, Validate: m.validate(true), Locks: viewLocks, Run: m.run(true)},
	}
}

func (m *Materializer) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// viewLocks: a materialization holds each view version it writes, so that
// two of them (or a retention pass) never interleave on one view.
func viewLocks(raw json.RawMessage) []string {
	var a MaterializeArgs
	if json.Unmarshal(raw, &a) != nil {
		return nil
	}
	locks := make([]string, len(a.FeatureViews))
	for i, v := range a.FeatureViews {
		locks[i] = "view:" + v
	}
	return locks
}

// parseViewRef splits "name", "name@vN" or "name@N".
func parseViewRef(ref string) (string, int, error) {
	name, ver, ok := strings.Cut(ref, "@")
	if !ok {
		return name, 0, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(ver, "v"))
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("%q: the version after @ must be vN or N with N >= 1", ref)
	}
	return name, n, nil
}

func parseTimeArg(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, appliance.Invalid(field, "%q is not an RFC 3339 time", s)
	}
	return t, nil
}

// validate checks the arguments and pins them: every view becomes an exact
// "name@vN", and end gets a value, so that a resumed job does the same work.
func (m *Materializer) validate(incremental bool) func(context.Context, json.RawMessage) (json.RawMessage, error) {
	return func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var a MaterializeArgs
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return nil, appliance.JSONError("args", err)
		}
		if incremental && a.Start != "" {
			return nil, appliance.Invalid("start", "materialize-incremental starts at each view's watermark; use materialize for a time range")
		}
		var start time.Time
		if a.Start != "" {
			t, err := parseTimeArg("start", a.Start)
			if err != nil {
				return nil, err
			}
			start = t
		}
		end := m.now().UTC()
		if a.End != "" {
			t, err := parseTimeArg("end", a.End)
			if err != nil {
				return nil, err
			}
			end = t
		}
		if !start.IsZero() && end.Before(start) {
			return nil, appliance.Invalid("end", "is before start")
		}
		a.End = end.UTC().Format(time.RFC3339Nano)
		if len(a.FeatureViews) == 0 {
			views, err := m.Registry.FeatureViews(ctx)
			if err != nil {
				return nil, err
			}
			for _, v := range views {
				a.FeatureViews = append(a.FeatureViews, v.Name)
			}
			if len(a.FeatureViews) == 0 {
				return nil, appliance.Invalid("feature_views", "there are no feature views to materialize")
			}
		}
		seen := map[string]bool{}
		for i, ref := range a.FeatureViews {
			field := fmt.Sprintf("feature_views[%d]", i)
			name, version, err := parseViewRef(ref)
			if err != nil {
				return nil, appliance.Invalid(field, "%v", err)
			}
			v, err := m.Registry.FeatureView(ctx, name, version)
			if err != nil {
				if appliance.ErrorCode(err) == appliance.ENOTFOUND {
					return nil, &appliance.Error{Code: appliance.ENOTFOUND, Field: field, Message: appliance.ErrorMessage(err)}
				}
				return nil, err
			}
			key := v.Name + "@v" + strconv.Itoa(v.Version)
			if seen[key] {
				return nil, appliance.Invalid(field, "%s is listed twice", key)
			}
			seen[key] = true
			a.FeatureViews[i] = key
		}
		return json.Marshal(a)
	}
}

func (m *Materializer) run(incremental bool) func(context.Context, appliance.JobControl) (any, error) {
	return func(ctx context.Context, jc appliance.JobControl) (any, error) {
		job := jc.Job()
		var a MaterializeArgs
		if err := json.Unmarshal(job.Args, &a); err != nil {
			return nil, fmt.Errorf("job args: %w", err)
		}
		var start int64 = math.MinInt64
		if a.Start != "" {
			t, err := parseTimeArg("start", a.Start)
			if err != nil {
				return nil, err
			}
			start = t.UnixMicro()
		}
		endT, err := parseTimeArg("end", a.End)
		if err != nil {
			return nil, err
		}
		end := endT.UnixMicro()
		views := make([]*appliance.FeatureView, len(a.FeatureViews))
		var total int64
		for i, ref := range a.FeatureViews {
			name, version, err := parseViewRef(ref)
			if err != nil {
				return nil, err
			}
			if views[i], err = m.Registry.FeatureView(ctx, name, version); err != nil {
				if appliance.ErrorCode(err) == appliance.ENOTFOUND {
					views[i] = nil // deleted since the job was submitted
					continue
				}
				return nil, fmt.Errorf("view %s: %w", ref, err)
			}
			st, err := m.Features.ViewStats(ctx, views[i])
			if err != nil {
				if appliance.ErrorCode(err) == appliance.ENOTFOUND {
					views[i] = nil
					continue
				}
				return nil, err
			}
			total += int64(st.OfflineRows)
		}
		var st materializeState
		if len(job.Checkpoint) > 0 {
			if err := json.Unmarshal(job.Checkpoint, &st); err != nil {
				return nil, fmt.Errorf("job checkpoint: %w", err)
			}
		}
		for ; st.View < len(views); st.View++ {
			view := views[st.View]
			if view == nil {
				if len(st.Results) <= st.View {
					st.Results = append(st.Results, MaterializeResult{View: a.FeatureViews[st.View], Skipped: "deleted before the job ran"})
				}
				continue
			}
			if len(st.Results) <= st.View {
				st.Results = append(st.Results, MaterializeResult{View: view.Key()})
			}
			var err error
			if incremental {
				err = m.incremental(ctx, jc, view, end, &st, total)
			} else {
				err = m.scan(ctx, jc, view, &st, total, func(t int64, _ uint64) bool { return t >= start && t <= end }, nil, 0)
			}
			if err != nil && appliance.ErrorCode(err) == appliance.ENOTFOUND && ctx.Err() == nil {
				if _, gone := m.Registry.FeatureView(ctx, view.Name, view.Version); appliance.ErrorCode(gone) == appliance.ENOTFOUND {
					// Deleted while this job ran: its rows went with it.
					st.Results[st.View].Skipped = "deleted while the job ran"
					err = nil
				}
			}
			if err != nil {
				return nil, fmt.Errorf("materialize %s: %w", view.Key(), err)
			}
			st.AfterKey, st.Snapshot, st.MinSkipped = nil, 0, 0
		}
		jc.Progress(st.Scanned, max(total, st.Scanned))
		return map[string]any{"views": st.Results}, nil
	}
}

// incremental materializes the events ingested after the view's watermark.
// The watermark is an ingest sequence, not an event time, so a late event
// (old time, new sequence) is never missed; an event newer than end is
// left for a later run by holding the watermark just below it.
func (m *Materializer) incremental(ctx context.Context, jc appliance.JobControl, view *appliance.FeatureView, end int64, st *materializeState, total int64) error {
	w, err := m.Offline.Watermark(ctx, view)
	if err != nil {
		return err
	}
	if st.Snapshot == 0 {
		if st.Snapshot, err = m.Offline.LastSeq(ctx); err != nil {
			return err
		}
		st.MinSkipped = math.MaxUint64
	}
	snapshot := st.Snapshot
	pred := func(t int64, seq uint64) bool {
		if seq <= w || seq > snapshot {
			return false
		}
		if t > end {
			st.MinSkipped = min(st.MinSkipped, seq)
			return false
		}
		return true
	}
	watermark := func() uint64 {
		if st.MinSkipped != math.MaxUint64 && st.MinSkipped > 0 {
			return max(w, st.MinSkipped-1)
		}
		return max(w, snapshot)
	}
	return m.scan(ctx, jc, view, st, total, pred, watermark, w)
}

// scan walks a view's events in entity order and writes, per entity, the
// last event pred accepts: the newest, ties to the later-ingested.
// When watermark is not nil, the final chunk also sets the view's watermark
// to what it returns. Events at or below afterSeq are not read at all.
func (m *Materializer) scan(ctx context.Context, jc appliance.JobControl, view *appliance.FeatureView, st *materializeState, total int64, pred func(int64, uint64) bool, watermark func() uint64, afterSeq uint64) error {
	cur, err := m.Offline.EventsAfter(ctx, view, afterSeq)
	if err != nil {
		return err
	}
	defer cur.Close()
	res := &st.Results[st.View]
	has := false
	if st.AfterKey != nil {
		has = cur.SeekKey(st.AfterKey)
		for has && bytes.Equal(cur.Key(), st.AfterKey) {
			has = cur.Next()
		}
	} else {
		has = cur.Next()
	}
	var (
		chunk    []appliance.SeqRow
		entity   []byte
		best     appliance.SeqRow
		haveBest bool
		scratch  []appliance.Value
	)
	commit := func(final bool) error {
		if len(chunk) > 0 {
			st.AfterKey = slices.Clone(chunk[len(chunk)-1].Key)
		}
		cp, err := json.Marshal(st)
		if err != nil {
			return err
		}
		// The write must not wait on our own read transaction.
		cur.Release()
		wr := &appliance.OnlineWrite{View: view, Rows: chunk, JobID: jc.Job().ID, Checkpoint: cp}
		if final && watermark != nil {
			wr.Watermark = watermark()
			res.Watermark = wr.Watermark
			if cp, err = json.Marshal(st); err == nil {
				wr.Checkpoint = cp
			}
		}
		n, err := m.Offline.WriteOnline(ctx, wr)
		if err != nil {
			return err
		}
		res.Written += int64(n)
		st.Written += int64(n)
		chunk = chunk[:0]
		jc.Progress(st.Scanned, max(total, st.Scanned))
		return nil
	}
	endEntity := func() {
		if haveBest {
			best.Key = entity
			best.Values = slices.Clone(scratch)
			chunk = append(chunk, best)
			res.Matched++
		}
		haveBest = false
	}
	for has {
		if !bytes.Equal(cur.Key(), entity) {
			endEntity()
			if len(chunk) >= chunkRows {
				if err := commit(false); err != nil {
					return err
				}
			}
			entity = slices.Clone(cur.Key())
		}
		t, seq := cur.EventTime(), cur.Seq()
		if pred(t, seq) {
			if scratch, err = cur.Values(scratch); err != nil {
				return err
			}
			best = appliance.SeqRow{Row: appliance.Row{EventTime: t}, Seq: seq}
			haveBest = true
		}
		st.Scanned++
		res.Scanned++
		has = cur.Next()
	}
	if err := cur.Err(); err != nil {
		return err
	}
	endEntity()
	return commit(true)
}
