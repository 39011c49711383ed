package drift_test

import (
	"testing"

	"github.com/mlnode/mlnode/appliance/drift"
	"github.com/mlnode/mlnode/appliance/featstats"
)

// The live side of drift monitoring: two feature statistics sketches of
// 100k values each, as a window's accumulator and its reference.
func sketches100k(b *testing.B) (*featstats.Numeric, *featstats.Numeric) {
	b.Helper()
	var ref, cur featstats.Numeric
	for _, x := range normal(1, 100000, 50, 10) {
		ref.Add(x)
	}
	for _, x := range normal(2, 100000, 51, 10) {
		cur.Add(x)
	}
	return &ref, &cur
}

func BenchmarkNumericSketch_100k(b *testing.B) {
	ref, _ := sketches100k(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := drift.NumericSketch(ref); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPSI_Sketch100k(b *testing.B) {
	r, c := sketches100k(b)
	ref, cur := sketch2(b, r), sketch2(b, c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := drift.PSI(ref, cur, drift.DefaultBins); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKS_Sketch100k(b *testing.B) {
	r, c := sketches100k(b)
	ref, cur := sketch2(b, r), sketch2(b, c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := drift.KS(ref, cur); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDetect_Sketch100k(b *testing.B) {
	r, c := sketches100k(b)
	b.ReportAllocs()
	for b.Loop() {
		ref, cur := sketch2(b, r), sketch2(b, c)
		if _, err := drift.Detect(ref, cur, drift.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// The most expensive exact p-value: two samples at MaxExactKS.
func BenchmarkKS_Exact10k(b *testing.B) {
	ref, cur := sample(b, normal(1, drift.MaxExactKS, 0, 1)), sample(b, normal(2, drift.MaxExactKS, 0.02, 1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := drift.KS(ref, cur); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKS_Sample100k(b *testing.B) {
	ref, cur := sample(b, normal(1, 100000, 0, 1)), sample(b, normal(2, 100000, 0.01, 1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := drift.KS(ref, cur); err != nil {
			b.Fatal(err)
		}
	}
}

func sketch2(b *testing.B, s *featstats.Numeric) *drift.Numeric {
	b.Helper()
	d, err := drift.NumericSketch(s)
	if err != nil {
		b.Fatal(err)
	}
	return d
}
