package featstats

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// JobKind is the kind of the statistics job.
const JobKind = "statistics"

// JobArgs are the statistics job's arguments. Validation resolves
// FeatureViews to "name@N" (every view's latest version when empty), so
// that a job record says what it covers and its locks are known up front.
type JobArgs struct {
	FeatureViews []string `json:"feature_views"` // "name" (latest version) or "name@N"
	Full         bool     `json:"full"`          // recompute from the first event
}

// JobResult is what the statistics job reports.
type JobResult struct {
	Views []ViewResult `json:"views"`
}

// ViewResult is what the job did to one view version.
type ViewResult struct {
	View       string `json:"view"`
	RowsAdded  int64  `json:"rows_added"`
	Rows       int64  `json:"rows"`
	ThroughSeq uint64 `json:"through_seq"`
	// Recomputed says why stored statistics were dropped, if they were.
	Recomputed string `json:"recomputed,omitempty"`
	Skipped    string `json:"skipped,omitempty"`
}

// checkpoint lists the views a job has finished, so that a resumed full
// recomputation does not start over.
type checkpoint struct {
	Done []ViewResult `json:"done"`
}

// progressEvery is how many events pass between progress reports and
// looks at ctx.
const progressEvery = 1024

type job struct {
	reg     appliance.FeatureRegistry
	offline appliance.OfflineStore
	stats   appliance.FeatureStatsStore
	now     func() time.Time
}

// JobSpec returns the statistics job: it brings the statistics of the
// given view versions up to date by adding the events ingested since they
// were last computed, or recomputes them with "full".
func JobSpec(reg appliance.FeatureRegistry, offline appliance.OfflineStore, stats appliance.FeatureStatsStore) appliance.JobSpec {
	return (&job{reg: reg, offline: offline, stats: stats, now: time.Now}).spec()
}

func (j *job) spec() appliance.JobSpec {
	return appliance.JobSpec{Kind: JobKind, Validate: j.validate, Locks: j.locks, Run: j.run}
}

func parseArgs(raw json.RawMessage) (*JobArgs, error) {
	var a JobArgs
	if len(raw) == 0 || string(raw) == "null" {
		return &a, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, appliance.JSONError("args", err)
	}
	return &a, nil
}

// resolve returns the view versions args name, each once, in order.
func (j *job) resolve(ctx context.Context, a *JobArgs) ([]*appliance.FeatureView, error) {
	if len(a.FeatureViews) == 0 {
		views, err := j.reg.FeatureViews(ctx)
		if err != nil {
			return nil, fmt.Errorf("list feature views: %w", err)
		}
		return views, nil
	}
	var out []*appliance.FeatureView
	seen := map[string]bool{}
	for _, ref := range a.FeatureViews {
		name, version, err := parseViewRef(ref)
		if err != nil {
			return nil, err
		}
		v, err := j.reg.FeatureView(ctx, name, version)
		if appliance.ErrorCode(err) == appliance.ENOTFOUND {
			return nil, &appliance.Error{Code: appliance.ENOTFOUND, Field: "feature_views", Message: appliance.ErrorMessage(err)}
		} else if err != nil {
			return nil, fmt.Errorf("feature view %s: %w", ref, err)
		}
		if !seen[v.Key()] {
			seen[v.Key()] = true
			out = append(out, v)
		}
	}
	return out, nil
}

// parseViewRef reads "name", "name@N" or "name@vN" (version 0: latest).
func parseViewRef(ref string) (string, int, error) {
	name, ver, ok := strings.Cut(ref, "@")
	if !ok {
		return ref, 0, appliance.ValidateName("feature_views", ref)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(ver, "v"))
	if err != nil || n < 1 {
		return "", 0, appliance.Invalid("feature_views", "%q: the version must be a positive integer, as in \"name@2\"", ref)
	}
	return name, n, appliance.ValidateName("feature_views", name)
}

func (j *job) validate(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	a, err := parseArgs(raw)
	if err != nil {
		return nil, err
	}
	views, err := j.resolve(ctx, a)
	if err != nil {
		return nil, err
	}
	norm := JobArgs{FeatureViews: make([]string, len(views)), Full: a.Full}
	for i, v := range views {
		norm.FeatureViews[i] = v.Key()
	}
	return json.Marshal(norm)
}

// locks names each view version the job covers, so that two statistics
// jobs never update the same version at once (the second would overwrite
// the first's work with its own).
func (j *job) locks(raw json.RawMessage) []string {
	a, err := parseArgs(raw)
	if err != nil {
		return nil
	}
	var locks []string
	if len(a.FeatureViews) == 0 {
		// Only arguments that skipped validation get here. Resolving is a
		// registry read from memory, which needs no deadline.
		views, _ := j.reg.FeatureViews(context.Background())
		for _, v := range views {
			locks = append(locks, "stats:"+v.Key())
		}
		return locks
	}
	for _, ref := range a.FeatureViews {
		name, version, err := parseViewRef(ref)
		if err != nil {
			continue
		}
		if version == 0 {
			v, err := j.reg.FeatureView(context.Background(), name, 0)
			if err != nil {
				continue
			}
			version = v.Version
		}
		locks = append(locks, "stats:"+name+"@"+strconv.Itoa(version))
	}
	return locks
}

func (j *job) run(ctx context.Context, jc appliance.JobControl) (any, error) {
	rec := jc.Job()
	a, err := parseArgs(rec.Args)
	if err != nil {
		return nil, err
	}
	var cp checkpoint
	if len(rec.Checkpoint) > 0 {
		if err := json.Unmarshal(rec.Checkpoint, &cp); err != nil {
			return nil, fmt.Errorf("statistics job checkpoint: %w", err)
		}
	}
	done := map[string]bool{}
	var rows int64
	for _, r := range cp.Done {
		done[r.View] = true
		rows += r.RowsAdded
	}
	refs := a.FeatureViews
	if len(refs) == 0 {
		// Arguments that did not pass through validation: every view.
		views, err := j.resolve(ctx, a)
		if err != nil {
			return nil, err
		}
		for _, v := range views {
			refs = append(refs, v.Key())
		}
	}
	res := &JobResult{Views: append([]ViewResult{}, cp.Done...)}
	for _, ref := range refs {
		if done[ref] {
			continue
		}
		r, err := j.runView(ctx, jc, ref, a.Full, &rows)
		if err != nil {
			return nil, err
		}
		res.Views = append(res.Views, *r)
		done[ref] = true
		if err := jc.SaveCheckpoint(ctx, checkpoint{Done: res.Views}); err != nil {
			return nil, fmt.Errorf("statistics job checkpoint: %w", err)
		}
	}
	jc.Progress(rows, rows)
	return res, nil
}

// runView updates one view version's statistics. rows counts events across
// the job, for progress.
func (j *job) runView(ctx context.Context, jc appliance.JobControl, ref string, full bool, rows *int64) (*ViewResult, error) {
	res := &ViewResult{View: ref}
	name, version, err := parseViewRef(ref)
	if err != nil {
		return nil, err
	}
	view, err := j.reg.FeatureView(ctx, name, version)
	if appliance.ErrorCode(err) == appliance.ENOTFOUND {
		res.Skipped = "the feature view was deleted"
		return res, nil
	} else if err != nil {
		return nil, fmt.Errorf("feature view %s: %w", ref, err)
	}
	res.View = view.Key()
	// Read before scanning: every event at or below bound is stored by
	// now, and the ones the scan meets above it are left for next time,
	// so the watermark never passes an event the scan did not see.
	bound, err := j.offline.LastSeq(ctx)
	if err != nil {
		return nil, fmt.Errorf("statistics of %s: %w", view.Key(), err)
	}
	var st *ViewStats
	if !full {
		if st, res.Recomputed, err = j.load(ctx, view); err != nil {
			return nil, err
		}
	}
	fresh := st == nil
	if fresh {
		st = New(view)
	}
	res.Rows, res.ThroughSeq = st.Rows, st.ThroughSeq
	if !fresh && st.ThroughSeq >= bound {
		return res, nil
	}
	var addErr error
	err = j.offline.ScanIngested(ctx, view, st.ThroughSeq, func(seq uint64, row appliance.Row) bool {
		if seq > bound {
			return true
		}
		if addErr = st.Add(seq, row.Values); addErr != nil {
			return false
		}
		res.RowsAdded++
		if res.RowsAdded%progressEvery == 0 {
			jc.Progress(*rows+res.RowsAdded, 0)
			return ctx.Err() == nil
		}
		return true
	})
	*rows += res.RowsAdded
	switch {
	case addErr != nil:
		return nil, addErr
	case err != nil:
		return nil, fmt.Errorf("scan events of %s: %w", view.Key(), err)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	if res.RowsAdded == 0 && !fresh {
		return res, nil
	}
	st.ComputedAt = j.now().UTC()
	r, err := st.Record()
	if err != nil {
		return nil, fmt.Errorf("encode statistics of %s: %w", view.Key(), err)
	}
	if err := j.stats.PutStats(ctx, view, r); appliance.ErrorCode(err) == appliance.ENOTFOUND {
		res.Skipped = "the feature view was deleted"
		return res, nil
	} else if err != nil {
		return nil, fmt.Errorf("store statistics of %s: %w", view.Key(), err)
	}
	res.Rows, res.ThroughSeq = st.Rows, st.ThroughSeq
	return res, nil
}

// load returns a view version's stored statistics, or nil to start over
// (with the reason, when there were statistics that cannot be used).
func (j *job) load(ctx context.Context, view *appliance.FeatureView) (*ViewStats, string, error) {
	rec, err := j.stats.Stats(ctx, view)
	if appliance.ErrorCode(err) == appliance.ENOTFOUND {
		return nil, "", nil
	} else if err != nil {
		return nil, "", fmt.Errorf("statistics of %s: %w", view.Key(), err)
	}
	st, err := FromRecord(rec)
	if err != nil {
		// Derived data: recomputing is the repair.
		return nil, "stored statistics unreadable: " + err.Error(), nil
	}
	if !st.Matches(view) {
		return nil, "stored statistics are of another schema", nil
	}
	return st, "", nil
}
