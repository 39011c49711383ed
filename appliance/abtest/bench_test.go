package abtest

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchInput is 2 arms × 5 metrics (two with a CUPED covariate) from a
// million units, and a breakdown of one metric into 10 groups.
func benchInput() Input {
	rng := rand.New(rand.NewPCG(1, 1))
	moments := func(n int64, mean, sd float64, cuped bool) Moments {
		// Aggregates as they would arrive: only the sums, not the units.
		m := Moments{N: n, Sum: float64(n) * mean, SumSq: float64(n) * (mean*mean + sd*sd)}
		if cuped {
			xm := mean * (0.9 + 0.1*rng.Float64())
			m.SumX, m.SumXSq, m.SumXY = float64(n)*xm, float64(n)*(xm*xm+sd*sd), float64(n)*(mean*xm+0.7*sd*sd)
		}
		return m
	}
	in := Input{
		Metrics: []MetricSpec{
			{Name: "conversion", Type: BinomialMetric},
			{Name: "revenue", Type: MeanMetric},
			{Name: "sessions", Type: MeanMetric},
			{Name: "errors", Type: BinomialMetric, Direction: Decrease, Role: Guardrail},
			{Name: "latency_ms", Type: MeanMetric, Direction: Decrease, Role: Guardrail},
		},
		Options: Options{Sequential: true},
	}
	for i, name := range []string{"control", "treatment"} {
		lift := 1 + 0.01*float64(i)
		in.Arms = append(in.Arms, Arm{Name: name, Weight: 0.5, Units: 500000, Metrics: map[string]Moments{
			"conversion": proportion(50000*lift, 500000),
			"revenue":    moments(500000, 20*lift, 30, true),
			"sessions":   moments(500000, 3*lift, 2, true),
			"errors":     proportion(500, 500000),
			"latency_ms": moments(500000, 120, 40, false),
		}})
	}
	b := Breakdown{Attribute: "country", Metric: "revenue"}
	for g := range 10 {
		b.Groups = append(b.Groups, Group{Name: fmt.Sprintf("c%d", g), Arms: map[string]Moments{
			"control":   moments(50000, 20, 30, true),
			"treatment": moments(50000, 20*(1+0.002*float64(g)), 30, true),
		}})
	}
	in.Breakdowns = []Breakdown{b}
	return in
}

func BenchmarkAnalyze(b *testing.B) {
	in := benchInput()
	if _, err := Analyze(in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Analyze(in); err != nil {
			b.Fatal(err)
		}
	}
}
