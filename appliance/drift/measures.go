package drift

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/mlnode/mlnode/appliance"
)

// DefaultBins is how many reference-quantile bins PSI and Jensen–Shannon
// use on numeric features: deciles, the usual choice for PSI.
const DefaultBins = 10

// MaxBins bounds the bins a caller may ask for: each costs a quantile
// search, and PSI over many thin bins measures noise.
const MaxBins = 1000

// DefaultTopK is how many of the reference's most frequent values
// categorical measures itemize; the rest is OtherCategory. It is
// featstats.TopCategories, what a statistics summary shows.
const DefaultTopK = 20

// Binned is both distributions over bins fixed by the reference: Edges are
// the inner edges e₁ < … < eₖ of the bins (−∞, e₁], (e₁, e₂], …, (eₖ, +∞);
// Reference and Current the fraction of each side in each bin.
type Binned struct {
	Edges     []float64
	Reference []float64
	Current   []float64
}

// Bin returns both distributions over the reference's quantile bins (see
// DefaultBins), 2 to MaxBins of them.
func Bin(ref, cur *Numeric, bins int) (Binned, error) {
	if err := check(ref, cur); err != nil {
		return Binned{}, err
	}
	if bins < 2 || bins > MaxBins {
		return Binned{}, appliance.Invalid("bins", "%d bins; between 2 and %d are allowed", bins, MaxBins)
	}
	ref, cur = aligned(ref, cur)
	e := ref.edges(bins)
	return Binned{Edges: e, Reference: ref.masses(e), Current: cur.masses(e)}, nil
}

// PSI is the population stability index of cur against ref over the
// reference's quantile bins: Σ (cᵢ − rᵢ)·ln(cᵢ/rᵢ), with empty bins
// smoothed as Evidently does (see smooth).
func PSI(ref, cur *Numeric, bins int) (float64, error) {
	b, err := Bin(ref, cur, bins)
	if err != nil {
		return 0, err
	}
	return psi(b.Reference, b.Current), nil
}

// JensenShannon is the Jensen–Shannon distance (base 2, in [0, 1]) between
// the two distributions over the reference's quantile bins.
func JensenShannon(ref, cur *Numeric, bins int) (float64, error) {
	b, err := Bin(ref, cur, bins)
	if err != nil {
		return 0, err
	}
	return jensenShannon(b.Reference, b.Current), nil
}

// Wasserstein is the first Wasserstein (earth mover's) distance between the
// two distributions, ∫|F_ref − F_cur| dx, in the feature's unit.
func Wasserstein(ref, cur *Numeric) (float64, error) {
	if err := check(ref, cur); err != nil {
		return 0, err
	}
	ref, cur = aligned(ref, cur)
	var sum, px, pd float64
	first := true
	walk(ref, cur, func(x, rBelow, rAt, cBelow, cAt float64) {
		if !first {
			sum += integrateAbs(pd, rBelow-cBelow, x-px)
		}
		first, px, pd = false, x, rAt-cAt
	})
	if math.IsInf(sum, 0) || math.IsNaN(sum) {
		return 0, errTooFar
	}
	return sum, nil
}

// errTooFar reports distances beyond float64, from values near ±MaxFloat64.
var errTooFar = appliance.Errorf(appliance.EUNPROCESSABLE, "the values are too far apart to measure in float64")

// integrateAbs returns ∫|f| over an interval of width w on which f goes
// linearly from d0 to d1.
func integrateAbs(d0, d1, w float64) float64 {
	if d0 == 0 && d1 == 0 {
		return 0 // even over an infinite width
	}
	if d0*d1 >= 0 {
		return w * (math.Abs(d0) + math.Abs(d1)) / 2
	}
	// f crosses zero: two triangles.
	return w * (d0*d0 + d1*d1) / (2 * (math.Abs(d0) + math.Abs(d1)))
}

// minNorm is the floor on the reference deviation that WassersteinNorm
// divides by, Evidently's: a constant reference does not divide by zero.
const minNorm = 0.001

// WassersteinNorm is the Wasserstein distance in units of the reference's
// population standard deviation (at least 0.001), Evidently's
// "wasserstein_distance_norm".
func WassersteinNorm(ref, cur *Numeric) (float64, error) {
	w, err := Wasserstein(ref, cur)
	if err != nil {
		return 0, err
	}
	norm := w / max(ref.std, minNorm)
	if math.IsInf(norm, 0) || math.IsNaN(norm) {
		return 0, errTooFar
	}
	return norm, nil
}

// CategoricalPSI is the population stability index over the frequency
// table of NewFrequencies, smoothed as PSI.
func CategoricalPSI(ref, cur *Categorical, topK int) (float64, error) {
	f, err := frequencies(ref, cur, topK)
	if err != nil {
		return 0, err
	}
	return psi(fractions(f.Reference), fractions(f.Current)), nil
}

// CategoricalJensenShannon is the Jensen–Shannon distance (base 2) over
// the frequency table of NewFrequencies.
func CategoricalJensenShannon(ref, cur *Categorical, topK int) (float64, error) {
	f, err := frequencies(ref, cur, topK)
	if err != nil {
		return 0, err
	}
	return jensenShannon(fractions(f.Reference), fractions(f.Current)), nil
}

// ChiSquareResult is Pearson's chi-square test of homogeneity.
type ChiSquareResult struct {
	Statistic float64
	PValue    float64
	DF        int
}

// ChiSquare tests whether both samples come from one categorical
// distribution: Pearson's chi-square on the 2×k table of NewFrequencies,
// without continuity correction (scipy's chi2_contingency with
// correction=False). With two categories it is the two-proportion z-test
// that Evidently uses for binary features (χ² = z²).
//
// Evidently instead tests cur against expected counts taken from ref as if
// they were exact, which ignores the reference's own sampling error and,
// for samples of similar size, flags drift far more often than the
// nominal level under no drift.
func ChiSquare(ref, cur *Categorical, topK int) (ChiSquareResult, error) {
	f, err := frequencies(ref, cur, topK)
	if err != nil {
		return ChiSquareResult{}, err
	}
	var nr, nc float64
	for i := range f.Categories {
		nr += f.Reference[i]
		nc += f.Current[i]
	}
	df := len(f.Categories) - 1
	if df == 0 {
		// One category: nothing can differ (scipy returns the same).
		return ChiSquareResult{Statistic: 0, PValue: 1}, nil
	}
	n := nr + nc
	var stat float64
	for i := range f.Categories {
		col := f.Reference[i] + f.Current[i]
		er, ec := nr*col/n, nc*col/n
		stat += (f.Reference[i]-er)*(f.Reference[i]-er)/er + (f.Current[i]-ec)*(f.Current[i]-ec)/ec
	}
	p := distuv.ChiSquared{K: float64(df)}.Survival(stat)
	return ChiSquareResult{Statistic: stat, PValue: min(max(p, 0), 1), DF: df}, nil
}

func frequencies(ref, cur *Categorical, topK int) (Frequencies, error) {
	if err := check(ref, cur); err != nil {
		return Frequencies{}, err
	}
	if topK < 1 {
		return Frequencies{}, appliance.Invalid("top_k", "%d categories; at least 1 is needed", topK)
	}
	return NewFrequencies(ref, cur, topK), nil
}

func fractions(counts []float64) []float64 {
	var n float64
	for _, c := range counts {
		n += c
	}
	out := make([]float64, len(counts))
	for i, c := range counts {
		out[i] = c / n
	}
	return out
}

// psi sums (cᵢ − rᵢ)·ln(cᵢ/rᵢ) over the bins not empty on both sides.
func psi(ref, cur []float64) float64 {
	ref, cur = dropEmpty(ref, cur)
	ref, cur = smooth(ref), smooth(cur)
	var s float64
	for i := range ref {
		s += (cur[i] - ref[i]) * math.Log(cur[i]/ref[i])
	}
	return s
}

// smooth replaces empty bins' zero fractions as Evidently's
// get_binned_data does, so that ln(c/r) stays finite: by the smallest
// non-zero fraction over 10⁶ when that is at most 10⁻⁴, else by 10⁻⁴. The
// other fractions are left as they are (the sum can exceed 1 slightly).
func smooth(p []float64) []float64 {
	least := math.Inf(1)
	for _, x := range p {
		if x > 0 {
			least = min(least, x)
		}
	}
	eps := 1e-4
	if least <= 1e-4 {
		eps = least / 1e6
	}
	out := make([]float64, len(p))
	for i, x := range p {
		if x == 0 {
			x = eps
		}
		out[i] = x
	}
	return out
}

// dropEmpty leaves out the bins empty on both sides, which say nothing
// about a change but would contribute the difference of two smoothings.
func dropEmpty(ref, cur []float64) ([]float64, []float64) {
	r, c := make([]float64, 0, len(ref)), make([]float64, 0, len(cur))
	for i := range ref {
		if ref[i] > 0 || cur[i] > 0 {
			r, c = append(r, ref[i]), append(c, cur[i])
		}
	}
	return r, c
}

// jensenShannon returns √JSD in base 2 (as scipy's jensenshannon with
// base=2): 0 for equal distributions, 1 for disjoint ones.
func jensenShannon(p, q []float64) float64 {
	var s float64
	for i := range p {
		m := (p[i] + q[i]) / 2
		if p[i] > 0 {
			s += p[i] * math.Log2(p[i]/m)
		}
		if q[i] > 0 {
			s += q[i] * math.Log2(q[i]/m)
		}
	}
	return math.Sqrt(min(max(s/2, 0), 1))
}

// check refuses missing or empty distributions: every measure needs
// values on both sides.
func check(ref, cur Distribution) error {
	switch {
	case isNil(ref) || ref.Count() == 0:
		return appliance.Errorf(appliance.EUNPROCESSABLE, "the reference distribution holds no values")
	case isNil(cur) || cur.Count() == 0:
		return appliance.Errorf(appliance.EUNPROCESSABLE, "the current distribution holds no values")
	}
	return nil
}

func isNil(d Distribution) bool {
	switch d := d.(type) {
	case *Numeric:
		return d == nil
	case *Categorical:
		return d == nil
	}
	return d == nil
}
