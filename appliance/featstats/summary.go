package featstats

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// TopCategories is how many of the most frequent values a summary lists.
const TopCategories = 20

// summaryQuantiles are the quantiles a summary reports, by name.
var summaryQuantiles = [...]struct {
	name string
	q    float64
}{{"p01", 0.01}, {"p05", 0.05}, {"p25", 0.25}, {"p50", 0.50}, {"p75", 0.75}, {"p95", 0.95}, {"p99", 0.99}}

// Summary is the statistics of a view version as the API shows them.
type Summary struct {
	View             string           `json:"view"`
	Version          int              `json:"version"`
	ThroughSeq       uint64           `json:"through_seq"`
	Rows             int64            `json:"rows"`
	ComputedAt       time.Time        `json:"computed_at"`
	QuantileAccuracy float64          `json:"quantile_relative_accuracy"`
	Features         []FeatureSummary `json:"features"`
}

// FeatureSummary is one feature's statistics; the dtype decides which of
// the optional parts are present (see FeatureStats).
type FeatureSummary struct {
	Name        string              `json:"name"`
	Dtype       appliance.DType     `json:"dtype"`
	Count       int64               `json:"count"`
	Nulls       int64               `json:"nulls"`
	NullRate    float64             `json:"null_rate"`
	Numeric     *NumericSummary     `json:"numeric,omitempty"`
	Timestamp   *TimeSummary        `json:"timestamp,omitempty"`
	Bool        *BoolSummary        `json:"bool,omitempty"`
	Categorical *CategoricalSummary `json:"categorical,omitempty"`
	Length      *NumericSummary     `json:"length,omitempty"`
}

// NumericSummary describes numbers: values, list elements or lengths.
// Min and max are exact (integers keep every digit); quantiles of integers
// are rounded to the nearest integer.
type NumericSummary struct {
	Count     int64              `json:"count"`
	NonFinite int64              `json:"non_finite,omitempty"`
	Min       json.Number        `json:"min"`
	Max       json.Number        `json:"max"`
	Mean      Float              `json:"mean"`
	Stddev    Float              `json:"stddev"`
	Quantiles map[string]float64 `json:"quantiles"`
}

// TimeSummary describes timestamps.
type TimeSummary struct {
	Min           time.Time            `json:"min"`
	Max           time.Time            `json:"max"`
	Mean          time.Time            `json:"mean"`
	StddevSeconds Float                `json:"stddev_seconds"`
	Quantiles     map[string]time.Time `json:"quantiles"`
}

// BoolSummary describes booleans.
type BoolSummary struct {
	TrueCount int64   `json:"true_count"`
	TrueRate  float64 `json:"true_rate"`
}

// CategoricalSummary describes strings, bytes or the elements of string
// lists. A listed count is at most MaxError below the true count; bytes
// values are shown in standard base64.
type CategoricalSummary struct {
	Count         int64             `json:"count"`
	Distinct      int64             `json:"distinct"`
	DistinctExact bool              `json:"distinct_exact"`
	MaxError      int64             `json:"max_error"`
	Encoding      string            `json:"encoding,omitempty"`
	Top           []CategorySummary `json:"top"`
}

// CategorySummary is one frequent value; Rate is its share of Count.
type CategorySummary struct {
	Value string  `json:"value"`
	Count int64   `json:"count"`
	Rate  float64 `json:"rate"`
}

// Float is a float64 that encodes as null when it is not finite, which
// JSON cannot represent: a variance can overflow where the values do not.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 64), nil
}

// Summary returns the statistics as the API shows them.
func (s *ViewStats) Summary() *Summary {
	out := &Summary{View: s.View, Version: s.Version, ThroughSeq: s.ThroughSeq, Rows: s.Rows,
		ComputedAt: s.ComputedAt, QuantileAccuracy: RelativeAccuracy, Features: make([]FeatureSummary, len(s.Features))}
	for i, f := range s.Features {
		out.Features[i] = f.Summary()
	}
	return out
}

// Summary returns the feature's statistics as the API shows them.
func (s *FeatureStats) Summary() FeatureSummary {
	out := FeatureSummary{Name: s.Name, Dtype: s.Dtype, Count: s.Count, Nulls: s.Nulls, NullRate: ratio(s.Nulls, s.Count+s.Nulls)}
	switch s.Dtype {
	case appliance.DTypeTimestamp:
		out.Timestamp = s.Values.timeSummary()
	case appliance.DTypeBool:
		out.Bool = &BoolSummary{TrueCount: s.Trues, TrueRate: ratio(s.Trues, s.Count)}
	default:
		out.Numeric = s.Values.summary()
	}
	if s.Categories != nil && s.Categories.n > 0 {
		out.Categorical = s.Categories.summary(s.Dtype == appliance.DTypeBytes)
	}
	out.Length = s.Lengths.summary()
	return out
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (s *Numeric) summary() *NumericSummary {
	if s == nil || s.n == 0 && s.nonFinite == 0 {
		return nil
	}
	out := &NumericSummary{Count: s.n, NonFinite: s.nonFinite, Mean: Float(s.Mean()), Stddev: Float(s.Stddev()),
		Quantiles: make(map[string]float64, len(summaryQuantiles))}
	if s.integer {
		out.Min, out.Max = json.Number(strconv.FormatInt(s.imin, 10)), json.Number(strconv.FormatInt(s.imax, 10))
	} else {
		out.Min, out.Max = json.Number(strconv.FormatFloat(s.min, 'g', -1, 64)), json.Number(strconv.FormatFloat(s.max, 'g', -1, 64))
	}
	if s.n == 0 {
		out.Min, out.Max = "0", "0"
	}
	for _, q := range summaryQuantiles {
		if v, ok := s.Quantile(q.q); ok {
			if s.integer {
				v = math.Round(v)
			}
			out.Quantiles[q.name] = v
		}
	}
	return out
}

func (s *Numeric) timeSummary() *TimeSummary {
	if s.n == 0 {
		return nil
	}
	out := &TimeSummary{Min: microsTime(s.imin), Max: microsTime(s.imax), Mean: microsTime(int64(math.Round(s.Mean()))),
		StddevSeconds: Float(s.Stddev() / 1e6), Quantiles: make(map[string]time.Time, len(summaryQuantiles))}
	for _, q := range summaryQuantiles {
		if v, ok := s.Quantile(q.q); ok {
			out.Quantiles[q.name] = microsTime(int64(math.Round(v)))
		}
	}
	return out
}

// microsTime converts unix microseconds to a time that JSON can encode
// (years 1 to 9999): an estimate must not make the summary fail.
func microsTime(us int64) time.Time {
	const lo, hi = -62135596800_000000, 253402300799_999999
	return time.UnixMicro(min(max(us, lo), hi)).UTC()
}

func (c *Categorical) summary(bytes bool) *CategoricalSummary {
	distinct, exact := c.Distinct()
	out := &CategoricalSummary{Count: c.n, Distinct: int64(math.Round(distinct)), DistinctExact: exact, MaxError: c.dropped}
	if bytes {
		out.Encoding = "base64"
	}
	top := c.Top(TopCategories)
	out.Top = make([]CategorySummary, len(top))
	for i, t := range top {
		v := t.Value
		if bytes {
			v = base64.StdEncoding.EncodeToString([]byte(v))
		}
		out.Top[i] = CategorySummary{Value: v, Count: t.Count, Rate: ratio(t.Count, c.n)}
	}
	return out
}
