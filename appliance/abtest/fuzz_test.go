package abtest

import (
	"encoding/json"
	"testing"
)

// FuzzAnalyze feeds arbitrary aggregates through every statistic: whatever
// the numbers, Analyze returns a result or an invalid-input error, never
// panics, and the result encodes as JSON.
func FuzzAnalyze(f *testing.F) {
	f.Add(int64(100), 10.0, 10.0, 1.0, int64(100), 12.0, 12.0, 2.0, 0.5, false, true)
	f.Add(int64(1), 0.0, 0.0, 0.0, int64(0), 0.0, 0.0, 0.0, 0.0, true, false)
	f.Add(int64(5), 5.0, 5.0, 3.0, int64(5), 5.0, 5.0, 3.0, 1.0, false, false)
	f.Fuzz(func(t *testing.T, n1 int64, s1, q1, x1 float64, n2 int64, s2, q2, x2, w float64, binomial, seq bool) {
		typ := MeanMetric
		if binomial {
			typ = BinomialMetric
		}
		arm := func(name string, n int64, s, q, x float64) Arm {
			m := Moments{N: n, Sum: s, SumSq: q, SumX: x, SumXSq: x * x, SumXY: x * s}
			return Arm{Name: name, Weight: w, Metrics: map[string]Moments{"m": m}}
		}
		in := Input{
			Arms:       []Arm{arm("a", n1, s1, q1, x1), arm("b", n2, s2, q2, x2)},
			Metrics:    []MetricSpec{{Name: "m", Type: typ}},
			Breakdowns: []Breakdown{{Metric: "m", Groups: []Group{{Name: "g", Arms: map[string]Moments{"a": {N: n1, Sum: s1, SumSq: q1}}}}}},
			Options:    Options{Sequential: seq},
		}
		r, err := Analyze(in)
		if err != nil {
			return
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("JSON: %v", err)
		}
	})
}
