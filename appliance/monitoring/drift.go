// Package monitoring watches models in production: the drift job compares
// each input and output of a model's live traffic (the prediction logs)
// with reference distributions, records the result per window, and raises
// alerts (stored, and sent to webhooks) when a feature drifts.
package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/drift"
	"github.com/mlnode/mlnode/appliance/featstats"
)

// KindDrift is the drift job's kind.
const KindDrift = "drift"

// smallSample is how many raw values per feature a window keeps for exact
// tests; beyond it the window is a sketch.
const smallSample = 1000

// DriftArgs are the drift job's arguments: which models (default: every
// model with the alias), which alias's version (default production), and
// the window of traffic to compare (default 1h).
type DriftArgs struct {
	Models []string `json:"models,omitempty"`
	Alias  string   `json:"alias,omitempty"`
	Window string   `json:"window,omitempty"`
}

// Drift builds the drift job.
type Drift struct {
	Models    appliance.ModelRegistry
	Views     appliance.FeatureRegistry
	Stats     appliance.FeatureStatsStore
	Telemetry appliance.TelemetryReader
	Store     appliance.DriftStore
	Notifier  appliance.Notifier // nil: alerts are stored only
	Now       func() time.Time
}

func (d *Drift) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

// Spec returns the job spec.
func (d *Drift) Spec() appliance.JobSpec {
	return appliance.JobSpec{Kind: KindDrift, Validate: d.validate, Run: d.run,
		Locks: func(json.RawMessage) []string { return []string{"drift"} }}
}

func (d *Drift) validate(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var a DriftArgs
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, appliance.JSONError("args", err)
	}
	if a.Alias == "" {
		a.Alias = appliance.ProductionAlias
	}
	if err := appliance.ValidateAliasName(a.Alias); err != nil && a.Alias != "latest" {
		return nil, err // "a.b" names no alias: the job would find nothing and succeed
	}
	if a.Window == "" {
		a.Window = "1h"
	}
	w, err := appliance.ParseDuration(a.Window)
	if err != nil || time.Duration(w) < time.Minute {
		return nil, appliance.Invalid("window", "%q is not a duration of at least 1m", a.Window)
	}
	for i, m := range a.Models {
		if _, err := d.Models.Model(ctx, m); err != nil {
			return nil, &appliance.Error{Code: appliance.ErrorCode(err), Field: fmt.Sprintf("models[%d]", i), Message: appliance.ErrorMessage(err)}
		}
	}
	return json.Marshal(a)
}

// window is the live traffic of one model version.
type window struct {
	requests int64
	inputs   []*feature
	outputs  []*feature
}

type feature struct {
	stats  *featstats.FeatureStats
	sample []float64
}

func newFeature(name string) *feature {
	return &feature{stats: featstats.NewFeatureStats(appliance.Feature{Name: name, Dtype: appliance.DTypeFloat64})}
}

func (f *feature) add(x float64) {
	_ = f.stats.Add(appliance.Float64Value(x))
	if len(f.sample) < smallSample {
		f.sample = append(f.sample, x)
	}
}

// distribution is the window's side of a comparison: the raw values while
// few (exact tests), the sketch beyond.
func (f *feature) distribution() (drift.Distribution, error) {
	if f.stats.Count <= smallSample {
		return drift.NumericSample(f.sample)
	}
	return drift.NumericSketch(f.stats.Values)
}

// peekPredictionLog reads the time and model that lead a prediction log as
// the predictor writes it ({"request_id":…,"time":"…","model":"…",…});
// ok is false for any other layout, which is then decoded in full.
func peekPredictionLog(data []byte) (time.Time, []byte, bool) {
	_, rest, ok := bytes.Cut(data, []byte(`,"time":"`))
	if !ok {
		return time.Time{}, nil, false
	}
	ts, rest, ok := bytes.Cut(rest, []byte(`","model":"`))
	if !ok {
		return time.Time{}, nil, false
	}
	model, _, ok := bytes.Cut(rest, []byte(`"`))
	if !ok || bytes.IndexByte(model, '\\') >= 0 {
		return time.Time{}, nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return time.Time{}, nil, false
	}
	return t, model, true
}

func (d *Drift) run(ctx context.Context, jc appliance.JobControl) (any, error) {
	var a DriftArgs
	if err := json.Unmarshal(jc.Job().Args, &a); err != nil {
		return nil, err
	}
	wd, _ := appliance.ParseDuration(a.Window)
	end := d.now()
	start := end.Add(-time.Duration(wd))
	models := a.Models
	if len(models) == 0 {
		list, err := d.Models.Models(ctx)
		if err != nil {
			return nil, err
		}
		for _, m := range list {
			if _, ok := m.Aliases[a.Alias]; ok {
				models = append(models, m.Name)
			}
		}
	}
	versions := map[string]*appliance.ModelVersion{}
	windows := map[string]*window{}
	for _, name := range models {
		mv, err := d.Models.ResolveModel(ctx, name, a.Alias)
		if err != nil {
			continue // the alias moved away or the model is gone: nothing to watch
		}
		versions[name] = mv
		w := &window{}
		for _, in := range mv.Inputs {
			w.inputs = append(w.inputs, newFeature(in))
		}
		for _, out := range mv.Outputs {
			w.outputs = append(w.outputs, newFeature(out))
		}
		windows[name] = w
	}
	// One pass over the window's prediction logs feeds every model's
	// window: it starts at the last flush before the window and stops a
	// minute past its end (logs are in flush order, a record flushed within
	// about a second of its time), not at both ends of the retention.
	if len(windows) == 0 {
		// Nothing to watch (no model has the alias): no scan.
		return map[string]any{"models": []any{}, "window_start": start, "window_end": end}, nil
	}
	from, err := d.Telemetry.FlushedBefore("prediction", start)
	if err != nil {
		return nil, err
	}
	var scanned int64
	err = d.Telemetry.Read("prediction", from, func(_ uint64, data []byte) bool {
		scanned++
		if scanned%4096 == 0 && ctx.Err() != nil {
			return false
		}
		// Most logs are of other models or outside the window: their time
		// and model, which lead every log, decide that without decoding
		// the inputs and outputs.
		if t, model, ok := peekPredictionLog(data); ok {
			if t.After(end.Add(time.Minute)) {
				return false
			}
			if windows[string(model)] == nil || t.Before(start) || t.After(end) {
				return true
			}
		}
		var l appliance.PredictionLog
		if json.Unmarshal(data, &l) != nil {
			return true
		}
		if l.Time.After(end.Add(time.Minute)) {
			return false
		}
		w, mv := windows[l.Model], versions[l.Model]
		if w == nil || l.Version != mv.Version || l.Time.Before(start) || l.Time.After(end) {
			return true
		}
		w.requests++
		for i, x := range l.Inputs {
			if i < len(w.inputs) {
				w.inputs[i].add(x)
			}
		}
		for i, x := range l.Outputs {
			if i < len(w.outputs) {
				w.outputs[i].add(x)
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	type modelResult struct {
		Model    string `json:"model"`
		Version  int    `json:"version"`
		Requests int64  `json:"requests"`
		Drifted  int    `json:"drifted"`
	}
	results := []modelResult{}
	for _, name := range models {
		mv, w := versions[name], windows[name]
		if mv == nil {
			continue
		}
		dw := &appliance.DriftWindow{Model: name, Version: mv.Version, Start: start, End: end, Requests: w.requests}
		for i, ref := range mv.Inputs {
			dw.Features = append(dw.Features, d.compareInput(ctx, mv, ref, w.inputs[i]))
		}
		for i, out := range mv.Outputs {
			dw.Features = append(dw.Features, d.compareOutput(ctx, mv, out, w.outputs[i]))
		}
		var drifted []string
		for _, f := range dw.Features {
			if f.Drifted || f.PSIAlert {
				dw.Drifted++
				drifted = append(drifted, f.Name)
			}
		}
		if err := d.Store.PutDriftWindow(ctx, dw); err != nil {
			return nil, err
		}
		if len(drifted) > 0 {
			if err := d.alert(ctx, dw, drifted); err != nil {
				return nil, err
			}
		}
		results = append(results, modelResult{Model: name, Version: mv.Version, Requests: w.requests, Drifted: dw.Drifted})
	}
	jc.Progress(scanned, scanned)
	return map[string]any{"models": results, "window_start": start, "window_end": end}, nil
}

// compareInput compares an input with its view's feature statistics.
func (d *Drift) compareInput(ctx context.Context, mv *appliance.ModelVersion, ref string, cur *feature) appliance.FeatureDrift {
	fd := appliance.FeatureDrift{Name: ref, Kind: "input", Current: cur.stats.Count}
	if strings.HasPrefix(ref, appliance.RequestPrefix) {
		fd.Note = "a request input has no stored reference"
		return fd
	}
	fr, err := appliance.ParseFeatureRef("input", ref)
	if err != nil {
		fd.Note = appliance.ErrorMessage(err)
		return fd
	}
	version := fr.Version
	if version == 0 {
		version = mv.Lineage.FeatureViews[fr.View]
	}
	view, err := d.Views.FeatureView(ctx, fr.View, version)
	if err != nil {
		fd.Note = appliance.ErrorMessage(err)
		return fd
	}
	fd.Reference = "feature statistics of " + view.Key()
	rec, err := d.Stats.Stats(ctx, view)
	if err != nil {
		fd.Note = "no feature statistics for " + view.Key() + " yet: run the statistics job"
		return fd
	}
	vs, err := featstats.FromRecord(rec)
	if err != nil {
		fd.Note = err.Error()
		return fd
	}
	fs := vs.Feature(fr.Feature)
	if fs == nil || fs.Values == nil || fs.Values.Count() == 0 {
		fd.Note = "the statistics hold no numeric values of " + fr.Feature
		return fd
	}
	refDist, err := drift.NumericSketch(fs.Values)
	if err != nil {
		fd.Note = appliance.ErrorMessage(err)
		return fd
	}
	return detect(fd, refDist, cur)
}

// compareOutput compares an output with the version's first window, which
// becomes its baseline.
func (d *Drift) compareOutput(ctx context.Context, mv *appliance.ModelVersion, name string, cur *feature) appliance.FeatureDrift {
	fd := appliance.FeatureDrift{Name: name, Kind: "output", Current: cur.stats.Count}
	if cur.stats.Count == 0 {
		fd.Note = "no predictions in the window"
		return fd
	}
	key := fmt.Sprintf("%s@%d:%s", mv.Model, mv.Version, name)
	mine, err := cur.stats.MarshalBinary()
	if err != nil {
		fd.Note = err.Error()
		return fd
	}
	stored, err := d.Store.PutDriftBaseline(ctx, key, mine)
	if err != nil {
		fd.Note = err.Error()
		return fd
	}
	fd.Reference = "the version's first window of predictions"
	base := &featstats.FeatureStats{}
	if err := base.UnmarshalBinary(stored); err != nil || base.Values == nil {
		fd.Note = "the stored baseline cannot be read"
		return fd
	}
	refDist, err := drift.NumericSketch(base.Values)
	if err != nil {
		fd.Note = appliance.ErrorMessage(err)
		return fd
	}
	return detect(fd, refDist, cur)
}

func detect(fd appliance.FeatureDrift, ref drift.Distribution, cur *feature) appliance.FeatureDrift {
	if cur.stats.Count == 0 {
		fd.Note = "no values in the window"
		return fd
	}
	dist, err := cur.distribution()
	if err != nil {
		fd.Note = appliance.ErrorMessage(err)
		return fd
	}
	rep, err := drift.Detect(ref, dist, drift.Options{})
	if err != nil {
		fd.Note = appliance.ErrorMessage(err)
		return fd
	}
	fd.Method, fd.Statistic, fd.PValue, fd.Threshold = string(rep.Method), rep.Statistic, rep.PValue, rep.Threshold
	fd.Drifted, fd.PSI, fd.PSIAlert = rep.Drifted, rep.PSI, rep.PSIAlert
	return fd
}

func (d *Drift) alert(ctx context.Context, w *appliance.DriftWindow, drifted []string) error {
	msg := fmt.Sprintf("%s version %d: %s drifted over %s–%s", w.Model, w.Version, strings.Join(drifted, ", "),
		w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
	a := &appliance.Alert{Time: d.now(), Type: appliance.EventDriftAlert, Subject: "model/" + w.Model, Message: msg,
		Data: map[string]any{"model": w.Model, "version": w.Version, "features": drifted, "window_end": w.End}}
	if err := d.Store.PutAlert(ctx, a); err != nil {
		return err
	}
	if d.Notifier != nil {
		ev := appliance.Event{Type: appliance.EventDriftAlert, Subject: a.Subject, Time: a.Time, Data: a.Data}
		if err := d.Notifier.Notify(ctx, ev); err != nil {
			return fmt.Errorf("notify drift alert: %w", err)
		}
	}
	return nil
}
