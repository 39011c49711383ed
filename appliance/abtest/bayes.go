package abtest

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Direction says which way a metric should move.
type Direction string

const (
	// Increase: more is better (conversion, revenue).
	Increase Direction = "increase"
	// Decrease: less is better (latency, errors, churn).
	Decrease Direction = "decrease"
)

// Prior is a Gaussian prior on the effect, on the effect's scale. A zero
// Variance is GrowthBook's default improper flat prior, under which the
// posterior is the likelihood itself.
type Prior struct {
	Mean, Variance float64
}

// Posterior is the Bayesian reading of an effect: its Gaussian posterior,
// the chance that the treatment beats control, and the risk of each choice:
// the expected loss, on the effect's scale, of shipping that arm if the
// other is in fact better.
type Posterior struct {
	Mean, StdDev  float64
	CI            Interval // equal-tailed credible interval
	ChanceToWin   float64
	RiskControl   float64 // expected loss of keeping control
	RiskTreatment float64 // expected loss of shipping the treatment
}

// Bayesian is gbstats' EffectBayesianABTest: a Gaussian approximation of the
// effect's likelihood (its estimate and standard error) combined with a
// Gaussian prior. For a Decrease metric, winning means a negative effect
// and the risks swap accordingly.
func Bayesian(e Effect, prior Prior, alpha float64, dir Direction) Posterior {
	if !(e.StdErr > 0) || !validAlpha(alpha) {
		nan := math.NaN()
		return Posterior{nan, nan, undefinedInterval(), nan, nan, nan}
	}
	dataPrec := 1 / (e.StdErr * e.StdErr)
	mu, prec := e.Estimate, dataPrec
	if prior.Variance > 0 {
		prec += 1 / prior.Variance
		mu = (e.Estimate*dataPrec + prior.Mean/prior.Variance) / prec
	}
	sd := 1 / math.Sqrt(prec)
	w := distuv.UnitNormal.Quantile(1-alpha/2) * sd

	// E[max(0, Δ)] and E[max(0, −Δ)] for Δ ~ N(μ, σ²), in closed form: the
	// loss of keeping control is the gain forgone, and conversely.
	z := mu / sd
	pdf := math.Exp(-z*z/2) / math.Sqrt(2*math.Pi)
	gain := sd*pdf + mu*normalCDF(z)
	loss := sd*pdf - mu*normalCDF(-z)
	p := Posterior{
		Mean:          mu,
		StdDev:        sd,
		CI:            Interval{mu - w, mu + w},
		ChanceToWin:   normalCDF(z),
		RiskControl:   max(0, gain),
		RiskTreatment: max(0, loss),
	}
	if dir == Decrease {
		p.ChanceToWin = normalCDF(-z)
		p.RiskControl, p.RiskTreatment = p.RiskTreatment, p.RiskControl
	}
	return p
}

// normalCDF is Φ(z) via erfc, which keeps its digits in both tails.
func normalCDF(z float64) float64 {
	return 0.5 * math.Erfc(-z/math.Sqrt2)
}
