package abtest

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// DefaultAlpha is the significance level when none is configured: a 95%
// interval, as GrowthBook.
const DefaultAlpha = 0.05

// DefaultSequentialTuning is N*, the number of units (both arms) at which
// the sequential interval is tightest, when none is configured: GrowthBook's
// default.
const DefaultSequentialTuning = 5000

// Test is a frequentist inference on one effect: an interval for it and the
// two-sided p-value of "no effect".
type Test struct {
	CI     Interval
	PValue float64
}

// validAlpha keeps quantile functions, which panic outside [0, 1], away
// from a bad level passed to an exported function.
func validAlpha(alpha float64) bool { return alpha > 0 && alpha < 1 }

func undefinedTest() Test { return Test{CI: undefinedInterval(), PValue: math.NaN()} }

// FixedHorizon is the classical two-sided test, valid if the data are looked
// at once, at a sample size fixed in advance: Welch's t test when e.DF is
// finite, a z test when it is infinite (binomial metrics).
func FixedHorizon(e Effect, alpha float64) Test {
	if !(e.StdErr > 0) || !validAlpha(alpha) {
		return undefinedTest()
	}
	w := criticalValue(alpha, e.DF) * e.StdErr
	z := math.Abs(e.Estimate / e.StdErr)
	return Test{
		CI:     Interval{e.Estimate - w, e.Estimate + w},
		PValue: min(1, 2*upperTail(z, e.DF)),
	}
}

// criticalValue is the 1 − α/2 quantile of Student's t with df degrees of
// freedom, or of the normal when df is infinite.
func criticalValue(alpha, df float64) float64 {
	if math.IsInf(df, 1) {
		return distuv.UnitNormal.Quantile(1 - alpha/2)
	}
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(1 - alpha/2)
}

// upperTail is P(T > z), computed directly rather than as 1 − CDF so that
// tiny p-values keep their digits.
func upperTail(z, df float64) float64 {
	if math.IsInf(df, 1) {
		return 0.5 * math.Erfc(z/math.Sqrt2)
	}
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Survival(z)
}

// Sequential is the always-valid version of the test: an asymptotic
// confidence sequence (Waudby-Smith et al. 2023, eq. 9 with the mixing
// parameter of eq. 161) and its always-valid p-value (eq. 155), as gbstats'
// SequentialTwoSidedTTest. The interval covers the effect at every sample
// size simultaneously with probability 1 − α, so the experiment may be
// looked at, and stopped, at any time.
//
// tuning is N*, the total sample size at which the interval is tightest;
// a value far from the final sample size only widens it.
func Sequential(e Effect, alpha, tuning float64) Test {
	if !(e.StdErr > 0) || e.N <= 0 || !(tuning > 0) || !validAlpha(alpha) {
		return undefinedTest()
	}
	n := float64(e.N)
	rho2 := sequentialRho2(alpha, tuning)
	nr2p1 := n*rho2 + 1
	// The per-unit variance σ² of the paper is SE²·n for a two-arm estimate.
	s2 := e.StdErr * e.StdErr * n
	w := math.Sqrt(s2) * math.Sqrt(2*nr2p1*math.Log(math.Sqrt(nr2p1)/alpha)/(n*n*rho2))
	// p = 1/E with the mixture e-value E = exp(ρ²S²/(2σ²(nρ²+1)))/√(nρ²+1),
	// where S²/σ² = n·estimate²/SE²; in logs, because E overflows for
	// large effects.
	st2 := n * e.Estimate * e.Estimate / (e.StdErr * e.StdErr)
	logP := 0.5*math.Log(nr2p1) - rho2*st2/(2*nr2p1)
	return Test{
		CI:     Interval{e.Estimate - w, e.Estimate + w},
		PValue: math.Exp(min(0, logP)),
	}
}

// sequentialRho2 is ρ², the mixing variance that makes the confidence
// sequence tightest at n = N* (Waudby-Smith et al. eq. 161, two-sided).
func sequentialRho2(alpha, tuning float64) float64 {
	l := -2 * math.Log(alpha)
	return (l + math.Log(l+1)) / tuning
}
