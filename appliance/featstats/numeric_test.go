package featstats

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// exactMoments computes mean and sample stddev with big.Float, as the
// reference for Welford's running values.
func exactMoments(xs []float64) (mean, stddev float64) {
	const prec = 256
	sum := new(big.Float).SetPrec(prec)
	for _, x := range xs {
		sum.Add(sum, new(big.Float).SetPrec(prec).SetFloat64(x))
	}
	n := new(big.Float).SetPrec(prec).SetInt64(int64(len(xs)))
	m := new(big.Float).SetPrec(prec).Quo(sum, n)
	ss := new(big.Float).SetPrec(prec)
	for _, x := range xs {
		d := new(big.Float).SetPrec(prec).Sub(new(big.Float).SetPrec(prec).SetFloat64(x), m)
		ss.Add(ss, d.Mul(d, d))
	}
	mean, _ = m.Float64()
	if len(xs) < 2 {
		return mean, 0
	}
	v, _ := ss.Quo(ss, new(big.Float).SetPrec(prec).SetInt64(int64(len(xs)-1))).Float64()
	return mean, math.Sqrt(v)
}

func closeTo(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Max(1, math.Abs(want))
}

func TestNumeric_MomentsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(n int, f func() float64) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = f()
		}
		return xs
	}
	tests := []struct {
		name string
		xs   []float64
	}{
		{"one value", []float64{42.5}},
		{"constant", gen(1000, func() float64 { return 7 })},
		{"small integers", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"negative and positive", gen(10000, func() float64 { return r.NormFloat64()*3 - 1 })},
		// A large offset with a small spread is where the textbook
		// sum-of-squares formula loses every digit.
		{"large offset", gen(10000, func() float64 { return 1e9 + r.Float64() })},
		{"heavy tail", gen(10000, func() float64 { return math.Exp(r.NormFloat64() * 4) })},
		{"zeros", gen(100, func() float64 { return 0 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Numeric
			for _, x := range tt.xs {
				s.Add(x)
			}
			mean, stddev := exactMoments(tt.xs)
			if s.Count() != int64(len(tt.xs)) {
				t.Errorf("count %d, want %d", s.Count(), len(tt.xs))
			}
			if !closeTo(s.Mean(), mean, 1e-9) {
				t.Errorf("mean %v, want %v", s.Mean(), mean)
			}
			if !closeTo(s.Stddev(), stddev, 1e-9) {
				t.Errorf("stddev %v, want %v", s.Stddev(), stddev)
			}
			if s.Min() != slices.Min(tt.xs) || s.Max() != slices.Max(tt.xs) {
				t.Errorf("min %v max %v, want %v %v", s.Min(), s.Max(), slices.Min(tt.xs), slices.Max(tt.xs))
			}
		})
	}
}

func TestNumeric_IntegersExact(t *testing.T) {
	s := newNumeric(true, false)
	for _, x := range []int64{math.MaxInt64, math.MinInt64, 1 << 60, -3} {
		s.AddInt(x)
	}
	sum := s.summary()
	if sum.Min != "-9223372036854775808" || sum.Max != "9223372036854775807" {
		t.Fatalf("integer min %s max %s: digits lost", sum.Min, sum.Max)
	}
}

func TestNumeric_NonFinite(t *testing.T) {
	var s Numeric
	s.Add(1)
	s.Add(math.NaN())
	s.Add(math.Inf(-1))
	s.Add(3)
	if s.Count() != 2 || s.NonFinite() != 2 || s.Mean() != 2 || s.Min() != 1 {
		t.Fatalf("count %d non-finite %d mean %v min %v", s.Count(), s.NonFinite(), s.Mean(), s.Min())
	}
	// Extremes beyond the sketch's range are clamped, not lost.
	s.Add(math.MaxFloat64)
	s.Add(-math.MaxFloat64)
	if q, _ := s.Quantile(1); q != math.MaxFloat64 {
		t.Fatalf("max quantile %v", q)
	}
	if q, _ := s.Quantile(0); q != -math.MaxFloat64 {
		t.Fatalf("min quantile %v", q)
	}
}

// quantileOK checks the sketch's guarantee: within RelativeAccuracy of the
// value at rank floor(q*(n-1)) of the sorted data.
func quantileOK(sorted []float64, q, got, origin float64) (float64, bool) {
	want := sorted[int(math.Floor(q*float64(len(sorted)-1)))]
	return want, math.Abs(got-want) <= RelativeAccuracy*math.Abs(want-origin)*(1+1e-9)+1e-9
}

func TestNumeric_QuantilesWithinGuarantee(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dists := []struct {
		name string
		f    func() float64
	}{
		{"uniform", func() float64 { return r.Float64() * 1000 }},
		{"normal with negatives", func() float64 { return r.NormFloat64() * 50 }},
		{"lognormal", func() float64 { return math.Exp(r.NormFloat64() * 3) }},
		{"exponential", func() float64 { return r.ExpFloat64() * 10 }},
		{"negative only", func() float64 { return -1 - r.Float64()*1e6 }},
		{"integers with zeros", func() float64 { return float64(r.IntN(5)) }},
	}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			xs := make([]float64, 100000)
			var s Numeric
			for i := range xs {
				xs[i] = d.f()
				s.Add(xs[i])
			}
			slices.Sort(xs)
			for _, q := range []float64{0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1} {
				got, ok := s.Quantile(q)
				if !ok {
					t.Fatalf("no quantile %v", q)
				}
				if want, ok := quantileOK(xs, q, got, 0); !ok {
					t.Errorf("q%v = %v, want %v ± %v%%", q, got, want, RelativeAccuracy*100)
				}
			}
		})
	}
}

func TestNumeric_TimestampsShifted(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	start := int64(1_780_000_000_000_000) // 2026, in µs
	s := newNumeric(true, true)
	xs := make([]float64, 50000)
	for i := range xs {
		us := start + r.Int64N(30*24*3600*1e6) // a month
		s.AddInt(us)
		xs[i] = float64(us)
	}
	slices.Sort(xs)
	for _, q := range []float64{0.01, 0.5, 0.99} {
		got, _ := s.Quantile(q)
		want, ok := quantileOK(xs, q, got, float64(s.iorigin))
		if !ok {
			t.Errorf("q%v = %v, want %v within 1%% of the distance from the origin", q, got, want)
		}
		// Unshifted, the error could reach 1% of 56 years: half a year.
		if math.Abs(got-want) > 8*3600*1e6 {
			t.Errorf("q%v off by %v hours", q, math.Abs(got-want)/3600e6)
		}
	}
	mean, stddev := exactMoments(xs)
	if math.Abs(s.Mean()-mean) > 1 || !closeTo(s.Stddev(), stddev, 1e-9) {
		t.Errorf("mean %v stddev %v, want %v %v", s.Mean(), s.Stddev(), mean, stddev)
	}
}

func TestNumeric_MergeEqualsSinglePass(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	xs := make([]float64, 30000)
	for i := range xs {
		xs[i] = r.NormFloat64()*100 + 20
	}
	var whole Numeric
	for _, x := range xs {
		whole.Add(x)
	}
	for _, parts := range []int{2, 3, 10, 1000} {
		var merged Numeric
		size := len(xs) / parts
		for p := range parts {
			var part Numeric
			for _, x := range xs[p*size : (p+1)*size] {
				part.Add(x)
			}
			if err := merged.Merge(&part); err != nil {
				t.Fatal(err)
			}
		}
		if merged.Count() != whole.Count() || merged.Min() != whole.Min() || merged.Max() != whole.Max() ||
			!closeTo(merged.Mean(), whole.Mean(), 1e-9) || !closeTo(merged.Stddev(), whole.Stddev(), 1e-9) {
			t.Errorf("%d parts: merged n=%d min=%v max=%v mean=%v sd=%v, single pass n=%d min=%v max=%v mean=%v sd=%v", parts,
				merged.Count(), merged.Min(), merged.Max(), merged.Mean(), merged.Stddev(),
				whole.Count(), whole.Min(), whole.Max(), whole.Mean(), whole.Stddev())
		}
		for _, q := range []float64{0.01, 0.25, 0.5, 0.75, 0.99} {
			a, _ := merged.Quantile(q)
			b, _ := whole.Quantile(q)
			if a != b {
				t.Errorf("%d parts: q%v merged %v, single pass %v", parts, q, a, b)
			}
		}
	}
}

func TestNumeric_MergeTimestampsOfDifferentOrigins(t *testing.T) {
	day := int64(24 * 3600 * 1e6)
	a, b, whole := newNumeric(true, true), newNumeric(true, true), newNumeric(true, true)
	var xs []float64
	for i := range int64(1000) {
		us := 1_780_000_000_000_000 + i*day/10
		if i < 500 {
			a.AddInt(us)
		} else {
			b.AddInt(us)
		}
		whole.AddInt(us)
		xs = append(xs, float64(us))
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if a.Count() != 1000 || a.Min() != whole.Min() || a.Max() != whole.Max() || math.Abs(a.Mean()-whole.Mean()) > 1 ||
		!closeTo(a.Stddev(), whole.Stddev(), 1e-9) {
		t.Fatalf("merged count %d min %v max %v mean %v sd %v; single pass %v %v %v %v",
			a.Count(), a.Min(), a.Max(), a.Mean(), a.Stddev(), whole.Min(), whole.Max(), whole.Mean(), whole.Stddev())
	}
	// Re-binning at another origin costs up to one more bin width.
	for _, q := range []float64{0.1, 0.5, 0.9} {
		got, _ := a.Quantile(q)
		want := xs[int(q*999)]
		if math.Abs(got-want) > 2*RelativeAccuracy*(want-xs[0])+1 {
			t.Errorf("q%v = %v, want %v", q, got, want)
		}
	}
}

func TestNumeric_MergeKinds(t *testing.T) {
	if err := newNumeric(true, false).Merge(newNumeric(false, false)); err == nil {
		t.Fatal("merged integer and float statistics")
	}
	var empty Numeric
	full := Numeric{}
	full.Add(1)
	full.Add(math.NaN())
	empty.Add(math.Inf(1))
	if err := empty.Merge(&full); err != nil || empty.Count() != 1 || empty.NonFinite() != 2 {
		t.Fatalf("merge into empty: %v, count %d non-finite %d", err, empty.Count(), empty.NonFinite())
	}
	full.Add(5) // the merged copy must not share the sketch
	if q, _ := empty.Quantile(1); q != 1 {
		t.Fatalf("merged sketch follows its source: max %v", q)
	}
}

func TestNumeric_BinaryRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, s := range []*Numeric{{}, newNumeric(true, false), newNumeric(true, true)} {
		for range 1000 {
			if s.integer {
				s.AddInt(r.Int64N(1e12) - 5e11)
			} else {
				s.Add(r.NormFloat64())
			}
		}
		s.nonFinite = 3
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Numeric
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if got.n != s.n || got.mean != s.mean || got.m2 != s.m2 || got.min != s.min || got.max != s.max ||
			got.imin != s.imin || got.imax != s.imax || got.origin != s.origin || got.iorigin != s.iorigin || got.integer != s.integer ||
			got.shifted != s.shifted || got.nonFinite != s.nonFinite {
			t.Fatalf("round trip changed the moments: %+v -> %+v", s, got)
		}
		for _, q := range []float64{0, 0.3, 0.99, 1} {
			a, _ := s.Quantile(q)
			b, _ := got.Quantile(q)
			if a != b {
				t.Fatalf("round trip changed q%v: %v -> %v", q, a, b)
			}
		}
		// The decoded sketch keeps accumulating.
		got.Add(1)
	}
	var empty Numeric
	b, _ := empty.MarshalBinary()
	if err := new(Numeric).UnmarshalBinary(b); err != nil {
		t.Fatalf("empty: %v", err)
	}
}

func TestNumeric_BinsAndCDF(t *testing.T) {
	var s Numeric
	for i := 1; i <= 100; i++ {
		s.Add(float64(i))
	}
	bins := s.Bins()
	var total float64
	for i, b := range bins {
		total += b.Count
		if i > 0 && b.Value <= bins[i-1].Value {
			t.Fatalf("bins out of order at %d: %v", i, bins)
		}
	}
	if total != 100 {
		t.Fatalf("bins hold %v values", total)
	}
	if c := s.CDF(50); math.Abs(c-0.5) > 0.02 {
		t.Fatalf("CDF(50) = %v", c)
	}
	if s.CDF(0) != 0 || s.CDF(1000) != 1 {
		t.Fatalf("CDF at the ends: %v %v", s.CDF(0), s.CDF(1000))
	}
}
