package drift

import (
	"math"
)

// MaxExactKS is the largest sample for which KS computes the exact p-value,
// scipy's ks_2samp limit for method="auto".
const MaxExactKS = 10000

// KSResult is a two-sample Kolmogorov–Smirnov test.
type KSResult struct {
	Statistic float64 // sup |F_ref − F_cur|
	PValue    float64 // two-sided
	// Exact is true when PValue is the exact permutation distribution of
	// the statistic (both sides raw samples of at most MaxExactKS values);
	// otherwise it is the one-sample Kolmogorov distribution at the
	// effective size n·m/(n+m), as scipy's asymptotic method.
	Exact bool
}

// KS runs the two-sample Kolmogorov–Smirnov test as scipy's
// ks_2samp(ref, cur, method="auto"). Ties are allowed; the p-value then
// assumes continuous data and is conservative.
func KS(ref, cur *Numeric) (KSResult, error) {
	if err := check(ref, cur); err != nil {
		return KSResult{}, err
	}
	ref, cur = aligned(ref, cur)
	var d float64
	walk(ref, cur, func(_, rBelow, rAt, cBelow, cAt float64) {
		d = max(d, math.Abs(rAt-cAt), math.Abs(rBelow-cBelow))
	})
	n1, n2 := ref.n, cur.n
	if ref.src == fromSample && cur.src == fromSample && max(n1, n2) <= MaxExactKS {
		// Over samples d is |i/n1 − j/n2| for some i, j: a multiple of
		// 1/lcm, which rounding recovers exactly.
		lcm := n1 / gcd(n1, n2) * n2
		h := int64(math.Round(d * float64(lcm)))
		return KSResult{Statistic: float64(h) / float64(lcm), PValue: ksExactSF(n1, n2, h), Exact: true}, nil
	}
	m, n := float64(max(n1, n2)), float64(min(n1, n2))
	en := math.RoundToEven(m * n / (m + n)) // numpy's round, as scipy
	return KSResult{Statistic: d, PValue: kolmogorovSF(int64(max(en, 1)), d)}, nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// ksExactSF returns P(D ≥ h/lcm(n1, n2)) for two samples of n1 and n2
// values from one continuous distribution.
//
// Under the null hypothesis the merged order of the samples is a uniformly
// random lattice path from (0, 0) to (n1, n2); D ≥ h/lcm when the path
// touches a point (i, j) with |i/n1 − j/n2| ≥ h/lcm. The path is walked as
// an urn (from (i, j) the next value is from the first sample with
// probability (n1−i)/(n1−i+n2−j)), and the probability of leaving the band
// is summed where it leaves: a sum of positive terms, accurate for small
// p-values too, where 1 − P(stay) would cancel. Only the band is visited:
// O(n1·width) time, O(n2) memory.
func ksExactSF(n1, n2, h int64) float64 {
	if h <= 0 {
		return 1
	}
	g := gcd(n1, n2)
	a, b := n2/g, n1/g // i/n1 − j/n2 = (i·a − j·b)/lcm
	band := func(i int64) (lo, hi int64) {
		// Inside: i·a − h < j·b < i·a + h.
		lo = max(floorDiv(i*a-h, b)+1, 0)
		hi = min(ceilDiv(i*a+h, b)-1, n2)
		return lo, hi
	}
	down := func(i, j int64) float64 { return float64(n1-i) / float64(n1-i+n2-j) }
	right := func(i, j int64) float64 { return float64(n2-j) / float64(n1-i+n2-j) }

	prev, cur := make([]float64, n2+1), make([]float64, n2+1)
	plo, phi := int64(0), int64(-1)
	var out float64
	for i := int64(0); i <= n1; i++ {
		if i > 0 && plo > phi {
			break // every path has left the band
		}
		lo, hi := band(i)
		for j := lo; j <= hi; j++ {
			var v float64
			if i == 0 && j == 0 {
				v = 1
			}
			if i > 0 && j >= plo && j <= phi {
				v += prev[j] * down(i-1, j)
			}
			if j > lo {
				v += cur[j-1] * right(i, j-1)
			}
			cur[j] = v
		}
		// Mass stepping out of the band: down from the previous row, or
		// right from this row's last inside point.
		for j := plo; j <= phi; j++ {
			if j < lo || j > hi {
				out += prev[j] * down(i-1, j)
			}
		}
		if lo <= hi && hi < n2 {
			out += cur[hi] * right(i, hi)
		}
		prev, cur = cur, prev
		plo, phi = lo, hi
	}
	return min(out, 1)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }
