package evalmetrics

import (
	"math"
	"slices"
	"strings"

	"github.com/mlnode/mlnode/appliance"
)

// RegressorOptions configure a Regressor; zero fields take the defaults.
type RegressorOptions struct {
	// MaxSegments bounds the number of segments kept. Default 256.
	MaxSegments int
}

// Regressor accumulates a regressor's metrics.
type Regressor struct {
	opts     RegressorOptions
	overall  regAcc
	segments map[string]*regAcc
}

type regAcc struct {
	n             int64
	sse, sae, sum float64 // of errors (prediction − label)
	mean, m2      float64 // of labels (Welford): R²'s total sum of squares
}

// NewRegressor returns an empty Regressor.
func NewRegressor(opts RegressorOptions) (*Regressor, error) {
	if opts.MaxSegments < 0 {
		return nil, appliance.Invalid("max_segments", "must not be negative")
	}
	if opts.MaxSegments == 0 {
		opts.MaxSegments = DefaultMaxSegments
	}
	return &Regressor{opts: opts, segments: map[string]*regAcc{}}, nil
}

// Add adds one scored row: the prediction, the true value, and the row's
// segment ("" for none). Both numbers must be finite.
func (r *Regressor) Add(prediction, label float64, segment string) error {
	if math.IsNaN(prediction) || math.IsInf(prediction, 0) {
		return appliance.Invalid("prediction", "%v is not a finite number", prediction)
	}
	if math.IsNaN(label) || math.IsInf(label, 0) {
		return appliance.Invalid("label", "%v is not a finite number", label)
	}
	r.overall.add(prediction, label)
	if segment == "" {
		return nil
	}
	a, ok := r.segments[segment]
	if !ok {
		if len(r.segments) >= r.opts.MaxSegments {
			segment = OtherSegment
			a, ok = r.segments[segment]
		}
		if !ok {
			a = &regAcc{}
			r.segments[strings.Clone(segment)] = a
		}
	}
	a.add(prediction, label)
	return nil
}

func (a *regAcc) add(p, y float64) {
	a.n++
	e := p - y
	a.sse += e * e
	a.sae += math.Abs(e)
	a.sum += e
	d := y - a.mean
	a.mean += d / float64(a.n)
	a.m2 += d * (y - a.mean)
}

// RegressorReport is a regressor's metrics, overall and per segment.
type RegressorReport struct {
	Overall  RegressorMetrics   `json:"overall"`
	Segments []RegressorMetrics `json:"segments,omitempty"` // by name
}

// RegressorMetrics is the metrics of one set of rows.
type RegressorMetrics struct {
	Segment   string  `json:"segment,omitempty"`
	Count     int64   `json:"count"`
	RMSE      float64 `json:"rmse"`
	MAE       float64 `json:"mae"`
	MeanError float64 `json:"mean_error"` // bias: mean of prediction − label
	// R2 is null when the labels are constant (R² divides by their
	// variance), R2Undefined saying why; scikit-learn reports 0 or 1 there.
	R2          *float64 `json:"r2"`
	R2Undefined string   `json:"r2_undefined,omitempty"`
}

// Report returns the metrics of the rows added so far; it is an error when
// there are none.
func (r *Regressor) Report() (*RegressorReport, error) {
	if r.overall.n == 0 {
		return nil, appliance.Errorf(appliance.EUNPROCESSABLE, "no rows to evaluate")
	}
	out := &RegressorReport{Overall: r.overall.metrics("")}
	for name, a := range r.segments {
		out.Segments = append(out.Segments, a.metrics(name))
	}
	slices.SortFunc(out.Segments, func(a, b RegressorMetrics) int { return strings.Compare(a.Segment, b.Segment) })
	return out, nil
}

func (a *regAcc) metrics(name string) RegressorMetrics {
	n := float64(a.n)
	m := RegressorMetrics{Segment: name, Count: a.n, RMSE: math.Sqrt(a.sse / n), MAE: a.sae / n, MeanError: a.sum / n}
	if a.m2 > 0 {
		r2 := 1 - a.sse/a.m2
		m.R2 = &r2
	} else {
		m.R2Undefined = "labels are constant: R² needs their variance"
	}
	return m
}
