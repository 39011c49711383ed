package appliance

import (
	"context"
	"time"
)

// DefaultCovariateLookback is how far before a unit's first exposure its
// events count as the pre-exposure covariate for CUPED (GrowthBook's
// default).
const DefaultCovariateLookback = 14 * 24 * time.Hour

// EventIDWindow is how long an event_id is remembered: a retry within it
// is recognised and not counted twice.
const EventIDWindow = 7 * 24 * time.Hour

// OutcomeEvent is one outcome of a unit: a conversion, a purchase amount.
type OutcomeEvent struct {
	Unit    string  `json:"unit"`
	Metric  string  `json:"metric"`
	Value   float64 `json:"value"`
	Time    int64   `json:"-"` // unix microseconds
	EventID string  `json:"event_id,omitempty"`
}

// EventsResult reports what an events request did.
type EventsResult struct {
	Accepted       int      `json:"accepted"`
	Duplicates     []string `json:"duplicates"`      // event ids seen before, within the window: not counted again
	UnknownMetrics []string `json:"unknown_metrics"` // no experiment measures them: stored, not counted
}

// ExperimentData keeps outcome events, exposures and the incremental
// aggregates that results are computed from.
type ExperimentData interface {
	// RecordEvents stores events durably (an append to the outcome log);
	// FoldEvents later folds them into the aggregates of every experiment
	// that exposed their unit.
	RecordEvents(ctx context.Context, events []OutcomeEvent) (*EventsResult, error)
	// FoldEvents folds at most limit logged events and reports how many;
	// it may fold fewer while more are pending (0 only when none are).
	FoldEvents(ctx context.Context, limit int) (int, error)
	// RecordExposures records first exposures (later ones of a unit are
	// ignored: assignment is sticky) and folds the unit's stored events into
	// the aggregates. throughSeq, when not 0, becomes the exposure cursor in
	// the same transaction. It reports how many units were new.
	RecordExposures(ctx context.Context, exposures []ExposureLog, throughSeq uint64) (int, error)
	// ExposureCursor is the telemetry sequence through which exposures are
	// recorded.
	ExposureCursor(ctx context.Context) (uint64, error)
	// CappedAggregates recomputes one metric's aggregates with each unit's
	// value (and covariate) capped at the metric's CapPercentile of all
	// exposed units' values, and returns the cap. It reads every unit of the
	// experiment: a percentile cap cannot be kept incrementally.
	CappedAggregates(ctx context.Context, e *Experiment, metric string) (float64, []Aggregate, error)
	// PurgeEventIDs forgets at most limit event ids first seen before
	// cutoff and reports how many it forgot.
	PurgeEventIDs(ctx context.Context, cutoff time.Time, limit int) (int, error)
	// ExperimentAggregates returns an experiment's aggregates by arm,
	// metric and group ("" for all units; "attribute=value" for a breakdown).
	ExperimentAggregates(ctx context.Context, name string) ([]Aggregate, error)
}

// Aggregate is the running sums of one metric over one arm's units (of
// one breakdown group): enough for means, variances and CUPED.
type Aggregate struct {
	Arm    string `json:"arm"`
	Metric string `json:"metric"`
	Group  string `json:"group,omitempty"`
	N      int64  `json:"n"`
	Sum    float64
	SumSq  float64
	SumX   float64
	SumXSq float64
	SumXY  float64
}

// UnitValue is a unit's value of a metric as the analysis counts it:
// binomial metrics count whether any event happened, mean metrics sum the
// values, capped when the metric has an absolute cap.
func (m *Metric) UnitValue(sum float64, events int) float64 {
	if m.Type == MetricBinomial {
		if events > 0 {
			return 1
		}
		return 0
	}
	if m.Cap > 0 && sum > m.Cap {
		return m.Cap
	}
	return sum
}

// Place says where an event falls for a unit first exposed at exposure:
// "post" counts toward the metric, "pre" toward the CUPED covariate, ""
// nowhere.
func (m *Metric) Place(exposure, event int64, lookback time.Duration) string {
	switch {
	case event >= exposure:
		if m.Window > 0 && event > exposure+time.Duration(m.Window).Microseconds() {
			return ""
		}
		return "post"
	case event >= exposure-lookback.Microseconds():
		return "pre"
	}
	return ""
}
