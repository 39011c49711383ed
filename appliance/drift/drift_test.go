package drift_test

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/drift"
	"github.com/mlnode/mlnode/appliance/featstats"
)

// Samples for the scipy reference values below (fixed, not generated, so
// that the values can be recomputed anywhere).
var (
	sampleA = []float64{0.61, 0.29, 0.06, 0.59, -1.73, -0.74, 0.51, -0.56, 0.39, 1.64, 0.05, -0.06, 0.64,
		-0.82, 0.37, 1.77, 1.09, -1.28, 2.36, 1.31, 1.05, -0.32, -0.4, 1.06, -2.47}
	sampleB = []float64{2.2, 1.05, 0.59, 1.64, 0.94, 1.95, 0.09, 1.28, 1.51, 2.33, 0.71, 1.44, 0.18, 0.05,
		1.31, 1.73, 0.66, 2.9, 1.86, 0.43}
	sampleC = []float64{0.7, -0.4, 1.2, 0.3, -1.1, 0.9, 0.05, -0.25, 1.8, -0.6, 0.45, 0.1, -0.9, 1.4, 0.2}
	sampleD = []float64{0.8, 0.35, 1.9, 1.1, -0.2, 1.6, 0.65, 2.1, 0.15, 1.25, 0.95, 2.4, 0.5, 1.45, 0.75}
	ties1   = []float64{1, 2, 2, 3, 3, 3, 4, 4, 5, 6, 6, 7}
	ties2   = []float64{2, 3, 3, 4, 4, 4, 5, 5, 5, 6, 7, 7, 8, 8}
)

func grid(n int, f func(i, n float64) float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = f(float64(i), float64(n))
	}
	return out
}

func sample(t testing.TB, xs []float64) *drift.Numeric {
	t.Helper()
	d, err := drift.NumericSample(xs)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sketch(t testing.TB, xs []float64) *drift.Numeric {
	t.Helper()
	var s featstats.Numeric
	for _, x := range xs {
		s.Add(x)
	}
	d, err := drift.NumericSketch(&s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func normal(seed uint64, n int, mean, sd float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]float64, n)
	for i := range out {
		out[i] = mean + sd*r.NormFloat64()
	}
	return out
}

func allNear(got, want []float64) bool {
	return slices.EqualFunc(got, want, func(a, b float64) bool { return near(a, b, 1e-12) })
}

func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

// Reference values: scipy 1.10.1 stats.ks_2samp(x, y) (method "auto",
// two-sided), e.g. ks_2samp(sampleA, sampleB) = (0.47, 0.009913060147864434).
// The grid cases are x = [i/n1 for i in range(n1)] and y as written, in
// Python, with the same floating-point divisions as here.
func TestKS_Scipy(t *testing.T) {
	tests := []struct {
		name      string
		x, y      []float64
		d, p      float64
		wantExact bool
	}{
		{"unequal sizes", sampleA, sampleB, 0.47, 0.009913060147864434, true},
		{"equal sizes", sampleC, sampleD, 0.4666666666666667, 0.07546400948132746, true},
		{"ties", ties1, ties2, 0.2857142857142857, 0.5567002495418163, true},
		{"identical", sampleA, sampleA, 0, 1, true},
		{"tiny", sampleA[:5], sampleB[:3], 0.6666666666666666, 0.2857142857142857, true},
		{"asymptotic, Durbin region",
			grid(12000, func(i, n float64) float64 { return i / n }),
			grid(300, func(j, n float64) float64 { return 0.03 + j/n }),
			0.03008333333333335, 0.9462800586282263, false},
		{"asymptotic, Pelz-Good region",
			grid(15000, func(i, n float64) float64 { return i / n }),
			grid(11000, func(j, n float64) float64 { return 0.01 + j/n }),
			0.010066666666666668, 0.5376303328286671, false},
		{"asymptotic, one side small",
			grid(10001, func(i, n float64) float64 { return i / n }),
			grid(60, func(j, n float64) float64 { return 0.1 + j/n }),
			0.10009832350098324, 0.5509469755820771, false},
		{"asymptotic, skewed",
			grid(20000, func(i, n float64) float64 { return i / n }),
			grid(700, func(j, n float64) float64 { return math.Pow(j/n, 1.1) }),
			0.036471428571428544, 0.3218398418931854, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := drift.KS(sample(t, tt.x), sample(t, tt.y))
			if err != nil {
				t.Fatal(err)
			}
			if !near(got.Statistic, tt.d, 1e-12) || !near(got.PValue, tt.p, 1e-6) || got.Exact != tt.wantExact {
				t.Errorf("KS = %+v, want statistic %v, p-value %v, exact %v", got, tt.d, tt.p, tt.wantExact)
			}
		})
	}
}

// Reference deciles by hand: the values 1…10 with 5 bins have inner edges
// at their quantiles 0.2, 0.4, 0.6, 0.8 (the smallest value with that
// fraction at or below it): 2, 4, 6, 8, each bin holding 0.2.
func TestBin_HandComputed(t *testing.T) {
	ref := sample(t, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	cur := sample(t, []float64{1, 1, 1, 1, 3, 5, 7, 9, 9, 10})
	got, err := drift.Bin(ref, cur, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := drift.Binned{Edges: []float64{2, 4, 6, 8}, Reference: []float64{.2, .2, .2, .2, .2}, Current: []float64{.4, .1, .1, .1, .3}}
	if !allNear(got.Edges, want.Edges) || !allNear(got.Reference, want.Reference) || !allNear(got.Current, want.Current) {
		t.Errorf("Bin = %+v, want %+v", got, want)
	}
}

// PSI by hand over the bins above:
//
//	(.4−.2)ln 2 + 3·(.1−.2)ln .5 + (.3−.2)ln 1.5 = 0.3871201010907891;
//
// with three empty current bins, each smoothed to 10⁻⁴ (the smallest
// non-zero fraction, 0.5, is above 10⁻⁴):
//
//	2·(.5−.2)ln 2.5 + 3·(10⁻⁴−.2)ln(10⁻⁴/.2) = 5.10803564411188.
//
// Both agree with Evidently's formula evaluated in numpy.
func TestPSI_HandComputed(t *testing.T) {
	ref := sample(t, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	tests := []struct {
		name string
		cur  []float64
		want float64
	}{
		{"shifted mass", []float64{1, 1, 1, 1, 3, 5, 7, 9, 9, 10}, 0.3871201010907891},
		{"empty bins smoothed", []float64{1, 1, 1, 1, 1, 9, 9, 9, 10, 10}, 5.10803564411188},
		{"same", []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := drift.PSI(ref, sample(t, tt.cur), 5)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got, tt.want, 1e-12) {
				t.Errorf("PSI = %v, want %v", got, tt.want)
			}
		})
	}
}

// Reference values: scipy 1.10.1 spatial.distance.jensenshannon(p, q,
// base=2) over the fractions of the 5 bins of TestBin_HandComputed.
func TestJensenShannon(t *testing.T) {
	ref := sample(t, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	tests := []struct {
		name string
		cur  []float64
		want float64
	}{
		{"shifted mass", []float64{1, 1, 1, 1, 3, 5, 7, 9, 9, 10}, 0.261802360274818},
		{"all above the reference", []float64{100, 200}, 0.7810163551494856},
		{"same", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := drift.JensenShannon(ref, sample(t, tt.cur), 5)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got, tt.want, 1e-12) {
				t.Errorf("JensenShannon = %v, want %v", got, tt.want)
			}
		})
	}
}

// Reference values: scipy 1.10.1 stats.wasserstein_distance(x, y), and
// that over numpy's np.std(x) for the normed distance (Evidently's
// formula). The histogram case is by hand: a uniform density on [0, 1]
// against a point at 0.5 is ∫₀^½ x dx + ∫½¹ (1−x) dx = 0.25, over the
// uniform's deviation 1/√12.
func TestWasserstein(t *testing.T) {
	uniform, err := drift.NumericHistogram(drift.Histogram{Edges: []float64{0, 0.5, 1}, Counts: []int64{5, 5}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		ref, cur   *drift.Numeric
		want, norm float64
	}{
		{"samples", sample(t, sampleA), sample(t, sampleB), 1.0261, 0.9421682786070418},
		{"ties", sample(t, ties1), sample(t, ties2), 1.238095238095238, 0.6988212165135294},
		{"histogram against a point", uniform, sample(t, []float64{0.5}), 0.25, 0.25 * math.Sqrt(12)},
		{"same", sample(t, sampleA), sample(t, sampleA), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := drift.Wasserstein(tt.ref, tt.cur)
			if err != nil {
				t.Fatal(err)
			}
			norm, err := drift.WassersteinNorm(tt.ref, tt.cur)
			if err != nil {
				t.Fatal(err)
			}
			if !near(w, tt.want, 1e-12) || !near(norm, tt.norm, 1e-12) {
				t.Errorf("Wasserstein = %v, normed %v; want %v, %v", w, norm, tt.want, tt.norm)
			}
		})
	}
}

func counts(t testing.TB, m map[string]int64) *drift.Categorical {
	t.Helper()
	d, err := drift.CategoricalCounts(m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Reference values: scipy 1.10.1 stats.chi2_contingency(table,
// correction=False) on the 2×k tables of counts, jensenshannon(base=2) and
// Evidently's PSI formula in numpy on their fractions. The 2×2 case is
// also the two-proportion z-test: z = (.6−.25)/√(.425·.575·(1/20+1/20)),
// z² = 5.0128.
func TestCategorical_Scipy(t *testing.T) {
	ref := counts(t, map[string]int64{"a": 50, "b": 30, "c": 20})
	cur := counts(t, map[string]int64{"a": 40, "b": 30, "c": 20, "d": 10}) // "d" is new: (other)
	chi, err := drift.ChiSquare(ref, cur, drift.DefaultTopK)
	if err != nil {
		t.Fatal(err)
	}
	if want := (drift.ChiSquareResult{Statistic: 11.11111111111111, PValue: 0.011139980641667716, DF: 3}); !chiNear(chi, want) {
		t.Errorf("ChiSquare = %+v, want %+v", chi, want)
	}
	js, err := drift.CategoricalJensenShannon(ref, cur, drift.DefaultTopK)
	if err != nil || !near(js, 0.2324129365435581, 1e-12) {
		t.Errorf("CategoricalJensenShannon = %v, %v; want 0.2324129365435581", js, err)
	}
	psi, err := drift.CategoricalPSI(ref, cur, drift.DefaultTopK)
	if err != nil || !near(psi, 0.7123991075017365, 1e-12) {
		t.Errorf("CategoricalPSI = %v, %v; want 0.7123991075017365", psi, err)
	}

	two, err := drift.ChiSquare(counts(t, map[string]int64{"yes": 12, "no": 8}), counts(t, map[string]int64{"yes": 5, "no": 15}), 20)
	if want := (drift.ChiSquareResult{Statistic: 5.012787723785166, PValue: 0.025160759200408785, DF: 1}); err != nil || !chiNear(two, want) {
		t.Errorf("ChiSquare 2×2 = %+v, %v; want %+v", two, err, want)
	}
}

func chiNear(got, want drift.ChiSquareResult) bool {
	return near(got.Statistic, want.Statistic, 1e-12) && near(got.PValue, want.PValue, 1e-9) && got.DF == want.DF
}

func TestNewFrequencies_TopKAndOther(t *testing.T) {
	ref := counts(t, map[string]int64{"a": 5, "b": 3, "c": 3, "d": 1})
	cur := counts(t, map[string]int64{"b": 4, "e": 6})
	got := drift.NewFrequencies(ref, cur, 2)
	want := drift.Frequencies{
		Categories: []string{"a", "b", drift.OtherCategory}, // b before c: ties in value order
		Reference:  []float64{5, 3, 4},
		Current:    []float64{0, 4, 6},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NewFrequencies = %+v, want %+v", got, want)
	}
}

func TestDetect(t *testing.T) {
	small := normal(1, 500, 10, 2)
	large := normal(2, 50000, 10, 2)
	catRef := map[string]int64{"fr": 400, "de": 300, "it": 200, "es": 100}
	tests := []struct {
		name     string
		ref, cur drift.Distribution
		opts     drift.Options
		want     drift.Report // PValue and Statistic are checked for sign only
	}{
		{"small, same sample", sample(t, small), sample(t, small), drift.Options{},
			drift.Report{Method: drift.MethodKS, Threshold: 0.05}},
		{"small, same distribution", sample(t, small), sample(t, normal(3, 400, 10, 2)), drift.Options{},
			drift.Report{Method: drift.MethodKS, Threshold: 0.05}},
		{"small, shifted by half a deviation", sample(t, small), sample(t, normal(3, 400, 11, 2)), drift.Options{},
			drift.Report{Method: drift.MethodKS, Threshold: 0.05, Drifted: true, PSIAlert: true}},
		{"large sketch, same distribution", sketch(t, large), sketch(t, normal(4, 20000, 10, 2)), drift.Options{},
			drift.Report{Method: drift.MethodWassersteinNorm, Threshold: 0.1, Approximate: true}},
		{"large sketch, shifted", sketch(t, large), sketch(t, normal(4, 20000, 11, 2)), drift.Options{},
			drift.Report{Method: drift.MethodWassersteinNorm, Threshold: 0.1, Drifted: true, PSIAlert: true, Approximate: true}},
		{"large sketch, slightly shifted: no PSI alert", sketch(t, large), sketch(t, normal(4, 20000, 10.4, 2)), drift.Options{},
			drift.Report{Method: drift.MethodWassersteinNorm, Threshold: 0.1, Drifted: true, Approximate: true}},
		{"large sketch, scaled: PSI alert", sketch(t, large), sample(t, normal(5, 5000, 10, 5)), drift.Options{},
			drift.Report{Method: drift.MethodWassersteinNorm, Threshold: 0.1, Drifted: true, PSIAlert: true, Approximate: true}},
		{"forced PSI", sample(t, small), sample(t, normal(3, 400, 10, 2)), drift.Options{Method: drift.MethodPSI},
			drift.Report{Method: drift.MethodPSI, Threshold: 0.2}},
		{"categorical small, same", counts(t, catRef), counts(t, map[string]int64{"fr": 41, "de": 29, "it": 19, "es": 11}), drift.Options{},
			drift.Report{Method: drift.MethodChiSquare, Threshold: 0.05}},
		{"categorical small, new value", counts(t, catRef), counts(t, map[string]int64{"fr": 40, "de": 20, "it": 10, "pt": 30}), drift.Options{},
			drift.Report{Method: drift.MethodChiSquare, Threshold: 0.05, Drifted: true, PSIAlert: true}},
		{"categorical large, same", counts(t, map[string]int64{"fr": 4000, "de": 3000, "it": 2000, "es": 1000}),
			counts(t, map[string]int64{"fr": 410, "de": 290, "it": 190, "es": 110}), drift.Options{},
			drift.Report{Method: drift.MethodJensenShannon, Threshold: 0.1}},
		{"categorical large, shifted", counts(t, map[string]int64{"fr": 4000, "de": 3000, "it": 2000, "es": 1000}),
			counts(t, map[string]int64{"fr": 100, "de": 200, "it": 300, "es": 400}), drift.Options{},
			drift.Report{Method: drift.MethodJensenShannon, Threshold: 0.1, Drifted: true, PSIAlert: true}},
		{"custom thresholds", sample(t, small), sample(t, normal(3, 400, 10.3, 2)), drift.Options{PValue: 0.5, PSIThreshold: 0.01},
			drift.Report{Method: drift.MethodKS, Threshold: 0.5, Drifted: true, PSIAlert: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := drift.Detect(tt.ref, tt.cur, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []float64{got.Statistic, got.PSI} {
				if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
					t.Errorf("Detect = %+v: a statistic is %v", got, f)
				}
			}
			if isTest := got.Method == drift.MethodKS || got.Method == drift.MethodChiSquare; isTest != (got.PValue != nil) {
				t.Errorf("Detect = %+v: p-value %v for %s", got, got.PValue, got.Method)
			}
			tt.want.PSIThreshold = max(tt.opts.PSIThreshold, 0)
			if tt.want.PSIThreshold == 0 {
				tt.want.PSIThreshold = drift.DefaultPSIThreshold
			}
			tt.want.Reference, tt.want.Current = tt.ref.Count(), tt.cur.Count()
			t.Logf("statistic %v, p-value %v, PSI %v", got.Statistic, deref(got.PValue), got.PSI)
			decision := got
			decision.Statistic, decision.PValue, decision.PSI = 0, nil, 0
			if decision != tt.want {
				t.Errorf("Detect = %+v, want %+v\n(statistic %v, p-value %v, PSI %v)", decision, tt.want, got.Statistic, deref(got.PValue), got.PSI)
			}
		})
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestDetect_Identical_NoDrift(t *testing.T) {
	xs := normal(9, 3000, -4, 0.3)
	for _, pair := range [][2]*drift.Numeric{
		{sample(t, xs), sample(t, xs)},
		{sketch(t, xs), sketch(t, xs)},
		{sketch(t, xs), sample(t, xs)}, // the sample is sketched alike
	} {
		for _, m := range []drift.Method{drift.MethodKS, drift.MethodWassersteinNorm, drift.MethodJensenShannon, drift.MethodPSI} {
			r, err := drift.Detect(pair[0], pair[1], drift.Options{Method: m})
			if err != nil {
				t.Fatal(err)
			}
			if r.Drifted || r.PSIAlert || r.Statistic > 1e-12 && r.PValue == nil || r.PValue != nil && *r.PValue != 1 || r.PSI > 1e-12 {
				t.Errorf("%s on identical distributions: %+v (p %v)", m, r, deref(r.PValue))
			}
		}
	}
}

// Integers sit at sketch representatives up to 1% away from them: a raw
// current sample against a sketched reference must be compared at the
// sketch's resolution, or every bin edge would split equal values.
func TestPSI_SketchAgainstSample_Integers(t *testing.T) {
	var xs []float64
	for i := range 5000 {
		xs = append(xs, float64(i%37))
	}
	var ref featstats.Numeric
	for _, x := range xs {
		ref.Add(x)
	}
	r, err := drift.NumericSketch(&ref)
	if err != nil {
		t.Fatal(err)
	}
	cur := slices.Clone(xs[:999])
	psi, err := drift.PSI(r, sample(t, cur), drift.DefaultBins)
	if err != nil || psi > 0.01 {
		t.Errorf("PSI(sketch, same integers) = %v, %v; want about 0", psi, err)
	}
	ks, err := drift.KS(r, sample(t, cur))
	if err != nil || ks.Statistic > 0.01 {
		t.Errorf("KS(sketch, same integers) = %+v, %v; want a statistic about 0", ks, err)
	}
}

// A sketch sees values at its bins' representatives: the KS statistic of
// two sketches is the statistic of the binned samples, within the largest
// bin's mass of the raw one.
func TestKS_SketchesNearSamples(t *testing.T) {
	x, y := normal(11, 10000, 100, 15), normal(12, 9000, 101, 15)
	raw, err := drift.KS(sample(t, x), sample(t, y))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := drift.KS(sketch(t, x), sketch(t, y))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(raw.Statistic-sk.Statistic) > 0.01 || sk.Exact || !raw.Exact {
		t.Errorf("KS on samples %+v, on sketches %+v", raw, sk)
	}
	w1, _ := drift.WassersteinNorm(sample(t, x), sample(t, y))
	w2, _ := drift.WassersteinNorm(sketch(t, x), sketch(t, y))
	if math.Abs(w1-w2) > 0.01 {
		t.Errorf("WassersteinNorm on samples %v, on sketches %v", w1, w2)
	}
}

func TestHistogramReference(t *testing.T) {
	// A manifest's reference: a standard normal's histogram at its deciles.
	edges := []float64{-6, -1.2816, -0.8416, -0.5244, -0.2533, 0, 0.2533, 0.5244, 0.8416, 1.2816, 6}
	ref, err := drift.NumericHistogram(drift.Histogram{Edges: edges, Counts: []int64{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}})
	if err != nil {
		t.Fatal(err)
	}
	same, err := drift.Detect(ref, sample(t, normal(21, 800, 0, 1)), drift.Options{})
	t.Logf("same: %+v p %v", same, deref(same.PValue))
	if err != nil || same.Drifted || same.PSIAlert {
		t.Errorf("Detect(histogram, same distribution) = %+v, %v", same, err)
	}
	shifted, err := drift.Detect(ref, sample(t, normal(21, 800, 0.6, 1)), drift.Options{})
	if err != nil || !shifted.Drifted || !shifted.PSIAlert {
		t.Errorf("Detect(histogram, shifted) = %+v, %v", shifted, err)
	}
}

// Degenerate inputs give finite numbers or errors, never NaN or a panic.
func TestDegenerate(t *testing.T) {
	constant := sample(t, []float64{3, 3, 3})
	other := sample(t, []float64{3, 3, 4})
	one := sample(t, []float64{7})
	pairs := [][2]*drift.Numeric{{constant, constant}, {constant, other}, {other, constant}, {one, one}, {one, constant}, {constant, one}}
	for _, p := range pairs {
		for _, m := range []drift.Method{drift.MethodKS, drift.MethodWassersteinNorm, drift.MethodJensenShannon, drift.MethodPSI} {
			r, err := drift.Detect(p[0], p[1], drift.Options{Method: m})
			if err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			for _, f := range []float64{r.Statistic, r.PSI, r.Threshold} {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					t.Errorf("%s(%v, %v) = %+v", m, p[0].Mean(), p[1].Mean(), r)
				}
			}
			if r.PValue != nil && (math.IsNaN(*r.PValue) || *r.PValue < 0 || *r.PValue > 1) {
				t.Errorf("%s: p-value %v", m, *r.PValue)
			}
		}
	}
	w, err := drift.WassersteinNorm(constant, other)
	if err != nil || !near(w, (1.0/3)/0.001, 1e-12) {
		t.Errorf("WassersteinNorm(constant, …) = %v, %v; want W over the 0.001 floor", w, err)
	}
	one1 := counts(t, map[string]int64{"x": 3})
	chi, err := drift.ChiSquare(one1, one1, 5)
	if err != nil || chi.PValue != 1 || chi.DF != 0 {
		t.Errorf("ChiSquare on one category = %+v, %v", chi, err)
	}
}

func TestErrors(t *testing.T) {
	num := sample(t, sampleA)
	cat := counts(t, map[string]int64{"a": 1})
	var nilNum *drift.Numeric
	var empty featstats.Numeric
	tests := []struct {
		name     string
		run      func() error
		wantCode string
	}{
		{"empty sample", func() error { _, err := drift.NumericSample(nil); return err }, appliance.EINVALID},
		{"NaN", func() error { _, err := drift.NumericSample([]float64{1, math.NaN()}); return err }, appliance.EINVALID},
		{"infinite", func() error { _, err := drift.NumericSample([]float64{math.Inf(1)}); return err }, appliance.EINVALID},
		{"empty sketch", func() error { _, err := drift.NumericSketch(&empty); return err }, appliance.EINVALID},
		{"nil sketch", func() error { _, err := drift.NumericSketch(nil); return err }, appliance.EINVALID},
		{"histogram edges", func() error {
			_, err := drift.NumericHistogram(drift.Histogram{Edges: []float64{0, 0}, Counts: []int64{1}})
			return err
		}, appliance.EINVALID},
		{"histogram counts", func() error {
			_, err := drift.NumericHistogram(drift.Histogram{Edges: []float64{0, 1}, Counts: []int64{1, 2}})
			return err
		}, appliance.EINVALID},
		{"histogram empty", func() error {
			_, err := drift.NumericHistogram(drift.Histogram{Edges: []float64{0, 1}, Counts: []int64{0}})
			return err
		}, appliance.EINVALID},
		{"negative count", func() error { _, err := drift.CategoricalCounts(map[string]int64{"a": -1}); return err }, appliance.EINVALID},
		{"no categories", func() error { _, err := drift.CategoricalValues(nil); return err }, appliance.EINVALID},
		{"nil reference", func() error { _, err := drift.Detect(nilNum, num, drift.Options{}); return err }, appliance.EUNPROCESSABLE},
		{"nil current", func() error { _, err := drift.KS(num, nil); return err }, appliance.EUNPROCESSABLE},
		{"untyped nil", func() error { _, err := drift.Detect(nil, num, drift.Options{}); return err }, appliance.EUNPROCESSABLE},
		{"kinds differ", func() error { _, err := drift.Detect(num, cat, drift.Options{}); return err }, appliance.EINVALID},
		{"chi-square on numbers", func() error {
			_, err := drift.Detect(num, num, drift.Options{Method: drift.MethodChiSquare})
			return err
		}, appliance.EINVALID},
		{"KS on categories", func() error { _, err := drift.Detect(cat, cat, drift.Options{Method: drift.MethodKS}); return err }, appliance.EINVALID},
		{"unknown method", func() error { _, err := drift.Detect(num, num, drift.Options{Method: "t-test"}); return err }, appliance.EINVALID},
		{"one bin", func() error { _, err := drift.PSI(num, num, 1); return err }, appliance.EINVALID},
		{"p-value 1", func() error { _, err := drift.Detect(num, num, drift.Options{PValue: 1}); return err }, appliance.EINVALID},
		{"NaN distance", func() error { _, err := drift.Detect(num, num, drift.Options{Distance: math.NaN()}); return err }, appliance.EINVALID},
		{"zero top-k", func() error { _, err := drift.ChiSquare(cat, cat, 0); return err }, appliance.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := appliance.ErrorCode(tt.run()); code != tt.wantCode {
				t.Errorf("error code %q, want %q", code, tt.wantCode)
			}
		})
	}
}

func TestCategoricalSketch(t *testing.T) {
	var ref, cur featstats.Categorical
	for i := range 3000 {
		ref.Add([]string{"a", "b", "b", "c"}[i%4])
		cur.Add([]string{"a", "b", "c", "c"}[i%4])
	}
	r, err := drift.CategoricalSketch(&ref)
	if err != nil {
		t.Fatal(err)
	}
	c, err := drift.CategoricalSketch(&cur)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := drift.Detect(r, c, drift.Options{})
	if err != nil || rep.Method != drift.MethodJensenShannon || !rep.Drifted || rep.Approximate {
		t.Errorf("Detect(sketch, sketch) = %+v, %v", rep, err)
	}
}
