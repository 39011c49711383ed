package evalmetrics_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mlnode/mlnode/appliance/evalmetrics"
)

func rows(n int) (p, y []float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	p, y = make([]float64, n), make([]float64, n)
	for i := range p {
		if rng.Float64() < 0.2 {
			y[i] = 1
		}
		p[i] = 1 / (1 + math.Exp(-(-1.5 + 2*y[i] + rng.NormFloat64())))
	}
	return p, y
}

func BenchmarkClassifier_Add(b *testing.B) {
	p, y := rows(1 << 16)
	segs := []string{"web", "app", "api", ""}
	c := newClassifier(b, evalmetrics.ClassifierOptions{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := c.Add(p[i&(1<<16-1)], y[i&(1<<16-1)], segs[i&3]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// A whole evaluation at the exact AUC's limit: a million rows added, then
// sorted by Report.
func BenchmarkClassifier_1MRows(b *testing.B) {
	p, y := rows(evalmetrics.DefaultMaxExactRows)
	segs := []string{"web", "app", "api", ""}
	b.ReportAllocs()
	for b.Loop() {
		c := newClassifier(b, evalmetrics.ClassifierOptions{})
		for i := range p {
			if err := c.Add(p[i], y[i], segs[i&3]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := c.Report(); err != nil {
			b.Fatal(err)
		}
	}
}
