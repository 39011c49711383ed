package drift

import (
	"math"

	"gonum.org/v1/gonum/mat"
)

// kolmogorovSF returns P(Dₙ ≥ x) for the two-sided one-sample
// Kolmogorov–Smirnov statistic Dₙ of n values, as scipy's kstwo.sf. The
// method depends on the region, after Simard & L'Ecuyer, "Computing the
// two-sided Kolmogorov–Smirnov distribution", J. Stat. Softw. 39(11), 2011:
// closed forms at the ends (Ruben & Gambino), the exact one-sided
// Smirnov tail doubled where the two tails cannot overlap enough to matter
// (Miller), Durbin's matrix (as Marsaglia, Tsang & Wang 2003) where it is
// cheap, and the Pelz–Good asymptotic series elsewhere.
func kolmogorovSF(n int64, x float64) float64 {
	if !(x > 0) {
		return 1
	}
	if x >= 1 {
		return 0
	}
	nf := float64(n)
	t := nf * x
	if t <= 1 {
		if t <= 0.5 {
			return 1
		}
		// P(Dₙ ≤ x) = n!/nⁿ·(2t − 1)ⁿ for 1/(2n) ≤ x ≤ 1/n.
		lg, _ := math.Lgamma(nf + 1)
		return clamp01(1 - math.Exp(lg-nf*math.Log(nf)+nf*math.Log(2*t-1)))
	}
	if t >= nf-1 {
		return clamp01(2 * math.Pow(1-x, nf))
	}
	if x >= 0.5 { // the two tails are disjoint: exact
		return clamp01(2 * smirnovSF(n, x))
	}
	nx2 := t * x
	if n <= 140 {
		if nx2 <= 4 {
			return clamp01(1 - durbinCDF(n, x))
		}
		return clamp01(2 * smirnovSF(n, x))
	}
	switch {
	case nx2 >= 370:
		return 0
	case nx2 >= 2.2:
		return clamp01(2 * smirnovSF(n, x))
	case n <= 100000 && nf*math.Pow(x, 1.5) <= 1.4:
		return clamp01(1 - durbinCDF(n, x))
	}
	return clamp01(1 - pelzGoodCDF(n, x))
}

func clamp01(p float64) float64 { return min(max(p, 0), 1) }

// smirnovSF returns P(Dₙ⁺ ≥ x) for the one-sided statistic, by the exact
// Birnbaum–Tingey sum
//
//	x · Σ_{j=0}^{⌊n(1−x)⌋} C(n, j) (1 − x − j/n)^(n−j) (x + j/n)^(j−1),
//
// all of whose terms are positive: summed in logarithms, scaled by the
// largest so far, so that neither large n nor tiny tails overflow.
func smirnovSF(n int64, x float64) float64 {
	nf := float64(n)
	last := int64(math.Floor(nf * (1 - x)))
	lgN, _ := math.Lgamma(nf + 1)
	var lnC float64 // ln C(n, j)
	top, sum := math.Inf(-1), 0.0
	for j := int64(0); j <= last; j++ {
		if j%1024 == 0 {
			// The ratio recurrence drifts by a rounding a step (5e-9
			// relative at n = 4·10⁵ without this); Lgamma resets it.
			lgJ, _ := math.Lgamma(float64(j) + 1)
			lgNJ, _ := math.Lgamma(float64(n-j) + 1)
			lnC = lgN - lgJ - lgNJ
		} else {
			lnC += math.Log(float64(n-j+1) / float64(j))
		}
		jf := float64(j)
		a := 1 - x - jf/nf
		if a <= 0 {
			break
		}
		l := lnC + (nf-jf)*math.Log(a) + (jf-1)*math.Log(x+jf/nf)
		if l > top {
			sum = sum*math.Exp(top-l) + 1
			top = l
		} else {
			sum += math.Exp(l - top)
		}
	}
	if sum == 0 {
		return 0
	}
	return x * math.Exp(top+math.Log(sum))
}

// durbinCDF returns P(Dₙ < x) by Durbin's matrix formula: with
// x = (k − h)/n, k a positive integer and 0 ≤ h < 1, it is n!/nⁿ times
// the central element of Hⁿ, H the (2k−1)×(2k−1) matrix of Marsaglia,
// Tsang & Wang, "Evaluating Kolmogorov's distribution", J. Stat. Softw.
// 8(18), 2003. The power is scaled by powers of two as it grows, so that
// n up to 10⁵ does not overflow. Cost O(k³ log n).
func durbinCDF(n int64, x float64) float64 {
	nf := float64(n)
	k := int(math.Ceil(nf * x))
	hh := float64(k) - nf*x
	m := 2*k - 1
	h := mat.NewDense(m, m, nil)
	invFact := make([]float64, m+1) // 1/i!, underflowing harmlessly for large i
	invFact[0] = 1
	for i := 1; i <= m; i++ {
		invFact[i] = invFact[i-1] / float64(i)
	}
	for i := range m {
		for j := range m {
			if i-j+1 >= 0 {
				h.Set(i, j, invFact[i-j+1])
			}
		}
	}
	for i := range m {
		h.Set(i, 0, (1-math.Pow(hh, float64(i+1)))*invFact[i+1])
		h.Set(m-1, i, (1-math.Pow(hh, float64(m-i)))*invFact[m-i])
	}
	h.Set(m-1, 0, (1-2*math.Pow(hh, float64(m))+math.Pow(max(0, 2*hh-1), float64(m)))*invFact[m])

	// Square-and-multiply, every factor kept below 2^256 with its binary
	// exponent carried apart.
	const scale = 256
	pow := mat.NewDense(m, m, nil)
	for i := range m {
		pow.Set(i, i, 1)
	}
	var powExp, hExp int
	tmp := mat.NewDense(m, m, nil)
	for e := n; e > 0; e >>= 1 {
		if e&1 == 1 {
			tmp.Mul(pow, h)
			pow, tmp = tmp, pow
			powExp += hExp
			powExp += rescale(pow, scale)
		}
		if e > 1 {
			tmp.Mul(h, h)
			h, tmp = tmp, h
			hExp *= 2
			hExp += rescale(h, scale)
		}
	}
	c := pow.At(k-1, k-1)
	if c <= 0 {
		return 0
	}
	lg, _ := math.Lgamma(nf + 1)
	return clamp01(math.Exp(math.Log(c) + float64(powExp)*math.Ln2 + lg - nf*math.Log(nf)))
}

// rescale divides a by 2^s while its largest element exceeds 2^s and
// returns the exponent taken out.
func rescale(a *mat.Dense, s int) int {
	taken := 0
	for mat.Max(a) > math.Ldexp(1, s) {
		a.Scale(math.Ldexp(1, -s), a)
		taken += s
	}
	return taken
}

// pelzGoodCDF returns the Pelz–Good (1976) approximation of P(Dₙ ≤ x),
// K₀(z) + K₁(z)/√n + K₂(z)/n + K₃(z)/n^(3/2) with z = x√n, each Kᵢ in the
// theta-function form that converges fast for the small z where it is
// used (formulas as given by Simard & L'Ecuyer 2011, section 2.3).
func pelzGoodCDF(n int64, x float64) float64 {
	z := x * math.Sqrt(float64(n))
	z2 := z * z
	z4, z6 := z2*z2, z2*z2*z2
	pi2 := math.Pi * math.Pi
	pi4, pi6 := pi2*pi2, pi2*pi2*pi2
	if pi2/(8*z2) > 708 { // e^(−π²/8z²) underflows: the CDF is 0
		return 0
	}
	var s0, s1, s2, s3 float64 // sums over odd m = 2k−1 of q^(m²) terms
	for k := 1; ; k++ {
		m := float64(2*k - 1)
		m2 := m * m
		q := math.Exp(-pi2 * m2 / (8 * z2))
		s0 += q
		s1 += (pi2*m2/4 - z2) * q
		s2 += (6*z6 + 2*z4 + pi2*(2*z4-5*z2)*m2/4 + pi4*(1-2*z2)*m2*m2/16) * q
		s3 += (-30*z6 - 90*z6*z2 + pi2*(135*z4-96*z6)*m2/4 + pi4*(212*z4-60*z2)*m2*m2/16 + pi6*(5-30*z2)*m2*m2*m2/64) * q
		if q < 1e-300 || k > 1000 {
			break
		}
	}
	var t2, t3 float64 // sums over all k ≥ 1 of e^(−π²k²/2z²) terms
	for k := 1; ; k++ {
		kf := float64(k)
		q := math.Exp(-pi2 * kf * kf / (2 * z2))
		t2 += kf * kf * q
		t3 += (3*z2 - pi2*kf*kf) * kf * kf * q
		if q < 1e-300 || k > 1000 {
			break
		}
	}
	r := math.Sqrt(2 * math.Pi)
	k0 := r / z * s0
	k1 := r / (6 * z4) * s1
	k2 := r/(72*z6*z)*s2 - r*pi2/(36*z2*z)*t2
	k3 := r/(6480*z6*z4)*s3 + r*pi2/(216*z6)*t3
	sn := math.Sqrt(float64(n))
	return k0 + k1/sn + k2/float64(n) + k3/(sn*float64(n))
}
