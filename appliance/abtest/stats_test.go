package abtest

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestFixedHorizon_KnownQuantiles(t *testing.T) {
	tests := []struct {
		name      string
		e         Effect
		halfWidth float64 // textbook critical value times SE
		p         float64
	}{
		// z: Φ⁻¹(0.975) = 1.959963984540054; 2(1 − Φ(1.96)) = 0.0499957902964
		{"z", Effect{Estimate: 1.96, StdErr: 1, DF: math.Inf(1)}, 1.959963984540054, 0.0499957902964},
		// t, 10 df: t₀.₉₇₅ = 2.228138851986274; P(|T| > 2.228138851986274) = 0.05
		{"t", Effect{Estimate: 2 * 2.228138851986274, StdErr: 2, DF: 10}, 2 * 2.228138851986274, 0.05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := FixedHorizon(tt.e, 0.05)
			near(t, "half width", r.CI.High-tt.e.Estimate, tt.halfWidth, 1e-9)
			near(t, "p", r.PValue, tt.p, 1e-9)
		})
	}
}

func TestEstimateEffect_Undefined(t *testing.T) {
	tests := []struct {
		name    string
		c, t    Moments
		typ     MetricType
		scale   Scale
		wantErr error
		est     float64 // NaN: undefined
	}{
		{"one unit per arm", sampleMean(1, 1, 1), sampleMean(3, 9, 1), MeanMetric, Absolute, ErrTooFewUnits, 2},
		{"no units", Moments{}, Moments{}, BinomialMetric, Absolute, ErrTooFewUnits, math.NaN()},
		{"zero variance", sampleMean(5, 5, 5), sampleMean(10, 20, 5), MeanMetric, Absolute, ErrZeroVariance, 1},
		{"no conversions at all", proportion(0, 100), proportion(0, 100), BinomialMetric, Absolute, ErrZeroVariance, 0},
		{"zero baseline", proportion(0, 100), proportion(5, 100), BinomialMetric, Relative, ErrZeroBaseline, math.NaN()},
		{"zero baseline, absolute", proportion(0, 100), proportion(5, 100), BinomialMetric, Absolute, nil, 0.05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := EstimateEffect(tt.c, tt.t, tt.typ, tt.scale, true)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if math.IsNaN(tt.est) != math.IsNaN(e.Estimate) || (!math.IsNaN(tt.est) && math.Abs(e.Estimate-tt.est) > 1e-12) {
				t.Errorf("estimate = %g, want %g", e.Estimate, tt.est)
			}
			// Nothing downstream may panic or invent a number.
			for _, r := range []Test{FixedHorizon(e, 0.05), Sequential(e, 0.05, 5000)} {
				if err != nil && !math.IsNaN(r.PValue) {
					t.Errorf("p = %g for an undefined effect", r.PValue)
				}
			}
			if p := Bayesian(e, Prior{}, 0.05, Increase); err != nil && !math.IsNaN(p.ChanceToWin) {
				t.Errorf("chance to win = %g for an undefined effect", p.ChanceToWin)
			}
		})
	}
}

func TestEstimateEffect_NegativeBaselineKeepsSign(t *testing.T) {
	// Losses shrink from −10 to −5 per unit: an improvement, so the lift
	// must be positive like the absolute difference.
	c := sampleMean(-1000, 100*100+100*1, 100) // mean −10, variance ≈ 1
	tr := sampleMean(-500, 100*25+100*1, 100)  // mean −5
	e, err := EstimateEffect(c, tr, MeanMetric, Relative, false)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "lift", e.Estimate, 0.5, 1e-12)
}

func TestCUPED_MatchesUnitLevelRegressionAndReducesVariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	type arm struct {
		m    Moments
		x, y []float64
	}
	gen := func(n int, lift float64) arm {
		var a arm
		for range n {
			x := 10 + 2*rng.NormFloat64()      // pre-exposure spend
			y := 5 + 0.8*x + rng.NormFloat64() // post-exposure spend, ρ² ≈ 0.72
			y += lift
			a.m.AddWithCovariate(y, x)
			a.x, a.y = append(a.x, x), append(a.y, y)
		}
		return a
	}
	c, tr := gen(4000, 0), gen(4200, 0.1)

	// Reference: θ as the OLS slope of y on x over both arms (two-pass),
	// then each unit's y − θx, then the plain difference of means.
	xs, ys := append(append([]float64{}, c.x...), tr.x...), append(append([]float64{}, c.y...), tr.y...)
	mx, vx := twoPass(xs)
	my, _ := twoPass(ys)
	var sxy float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	theta := sxy / float64(len(xs)-1) / vx
	adj := func(a arm) (float64, float64) {
		z := make([]float64, len(a.y))
		for i := range z {
			z[i] = a.y[i] - theta*a.x[i]
		}
		return twoPass(z)
	}
	mc, vc := adj(c)
	mt, vt := adj(tr)
	wantEst := mt - mc
	wantSE := math.Sqrt(vt/float64(len(tr.y)) + vc/float64(len(c.y)))

	got, err := EstimateEffect(c.m, tr.m, MeanMetric, Absolute, true)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "theta", got.Theta, theta, 1e-9)
	near(t, "estimate", got.Estimate, wantEst, 1e-9)
	near(t, "stderr", got.StdErr, wantSE, 1e-9)

	raw, err := EstimateEffect(c.m, tr.m, MeanMetric, Absolute, false)
	if err != nil {
		t.Fatal(err)
	}
	reduction := 1 - got.StdErr*got.StdErr/(raw.StdErr*raw.StdErr)
	// ρ² = 0.8²·4 / (0.8²·4 + 1) ≈ 0.719 is the reduction CUPED promises.
	if reduction < 0.65 || reduction > 0.78 {
		t.Errorf("variance reduction = %.3f, want about 0.72", reduction)
	}
}

func TestCUPED_OffWithoutCovariate(t *testing.T) {
	a, b := sampleMean(1396.87, 52377.9767, 3000), sampleMean(2422.7, 134698.29, 3461)
	with, _ := EstimateEffect(a, b, MeanMetric, Relative, true)
	without, _ := EstimateEffect(a, b, MeanMetric, Relative, false)
	if with != without {
		t.Errorf("CUPED without a covariate changed the effect: %+v vs %+v", with, without)
	}
}

func TestSequential_PeekingKeepsFalsePositivesBounded(t *testing.T) {
	// A/A experiments looked at 20 times each: stopping at the first
	// fixed-horizon p < 0.05 finds "effects" far more often than 5%; the
	// always-valid p-value does not.
	rng := rand.New(rand.NewPCG(3, 5))
	const sims, looks, perLook = 300, 20, 250
	var fixedFP, seqFP int
	for range sims {
		var c, tr Moments
		fixedHit, seqHit := false, false
		for range looks {
			for range perLook {
				c.Add(rng.NormFloat64())
				tr.Add(rng.NormFloat64())
			}
			e, err := EstimateEffect(c, tr, MeanMetric, Absolute, false)
			if err != nil {
				t.Fatal(err)
			}
			fixedHit = fixedHit || FixedHorizon(e, 0.05).PValue < 0.05
			seqHit = seqHit || Sequential(e, 0.05, DefaultSequentialTuning).PValue < 0.05
		}
		if fixedHit {
			fixedFP++
		}
		if seqHit {
			seqFP++
		}
	}
	fixedRate, seqRate := float64(fixedFP)/sims, float64(seqFP)/sims
	if seqRate > 0.07 || fixedRate < 0.12 {
		t.Errorf("false positive rate with peeking: fixed %.3f, sequential %.3f; want fixed inflated, sequential ≤ 0.05", fixedRate, seqRate)
	}
	t.Logf("false positive rate over %d looks: fixed-horizon %.3f, sequential %.3f", looks, fixedRate, seqRate)
}

func TestSampleRatioMismatch(t *testing.T) {
	tests := []struct {
		name     string
		units    []int64
		weights  []float64
		df       int
		p        float64 // NaN: undefined
		mismatch bool
	}{
		// χ² with 1 df: p = erfc(√(χ²/2)); 2 df: p = exp(−χ²/2).
		{"balanced", []int64{5000, 5000}, []float64{1, 1}, 1, 1, false},
		{"within chance", []int64{50000, 50500}, []float64{50, 50}, 1, math.Erfc(math.Sqrt(2 * 250.0 * 250 / 50250 / 2)), false},
		{"broken 50/50", []int64{821588, 815482}, []float64{0.5, 0.5}, 1, math.Erfc(math.Sqrt(2 * 3053.0 * 3053 / 818535 / 2)), true},
		{"unequal weights honoured", []int64{9000, 1000}, []float64{0.9, 0.1}, 1, 1, false},
		{"unequal weights broken", []int64{5000, 5000}, []float64{0.9, 0.1}, 1, 0, true},
		{"three arms", []int64{1000, 1000, 1100}, []float64{1, 1, 1}, 2, math.Exp(-(2*(100.0/3)*(100.0/3)/(3100.0/3) + (200.0/3)*(200.0/3)/(3100.0/3)) / 2), false},
		{"units in a zero-weight arm", []int64{1000, 1000, 1}, []float64{1, 1, 0}, 1, 0, true},
		{"no units", []int64{0, 0}, []float64{1, 1}, 1, math.NaN(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := SampleRatioMismatch(tt.units, tt.weights, DefaultSRMThreshold)
			if err != nil {
				t.Fatal(err)
			}
			if s.DF != tt.df || s.Mismatch != tt.mismatch {
				t.Errorf("df %d mismatch %v, want %d %v", s.DF, s.Mismatch, tt.df, tt.mismatch)
			}
			p := float64(s.PValue)
			if math.IsNaN(tt.p) != math.IsNaN(p) || (!math.IsNaN(p) && math.Abs(p-tt.p) > 1e-12+1e-9*tt.p) {
				t.Errorf("p = %g, want %g", p, tt.p)
			}
		})
	}
}

func TestSampleRatioMismatch_Invalid(t *testing.T) {
	for _, tt := range []struct {
		name    string
		units   []int64
		weights []float64
	}{
		{"length", []int64{1, 2}, []float64{1}},
		{"negative weight", []int64{1, 2}, []float64{1, -1}},
		{"NaN weight", []int64{1, 2}, []float64{1, math.NaN()}},
		{"zero weights", []int64{1, 2}, []float64{0, 0}},
		{"negative units", []int64{-1, 2}, []float64{1, 1}},
	} {
		if _, err := SampleRatioMismatch(tt.units, tt.weights, 0.001); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestCorrections(t *testing.T) {
	// Benjamini & Hochberg (1995), section 3.2: of these 15 p-values, at
	// 0.05 Bonferroni-type control rejects 3 and the FDR procedure 4.
	bh95 := []float64{0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000}
	count := func(adj []float64) (n int) {
		for _, p := range adj {
			if p <= 0.05 {
				n++
			}
		}
		return n
	}
	if n := count(HolmBonferroni(bh95)); n != 3 {
		t.Errorf("Holm rejects %d, want 3", n)
	}
	if n := count(BenjaminiHochberg(bh95)); n != 4 {
		t.Errorf("BH rejects %d, want 4", n)
	}

	// Hand-worked: sorted 0.005, 0.01, 0.03, 0.04 with m = 4 (one NaN left
	// out of the family).
	p := []float64{0.01, 0.04, math.NaN(), 0.03, 0.005}
	tests := []struct {
		c    Correction
		want []float64
	}{
		{CorrectionHolm, []float64{0.03, 0.06, math.NaN(), 0.06, 0.02}},
		{CorrectionBH, []float64{0.02, 0.04, math.NaN(), 0.04, 0.02}},
		{CorrectionNone, p},
	}
	for _, tt := range tests {
		got := tt.c.Adjust(p)
		for i := range got {
			if math.IsNaN(tt.want[i]) != math.IsNaN(got[i]) || (!math.IsNaN(got[i]) && math.Abs(got[i]-tt.want[i]) > 1e-15) {
				t.Errorf("%s: adjusted = %v, want %v", tt.c, got, tt.want)
				break
			}
		}
	}
}
