package abtest

import (
	"errors"
	"math"

	"github.com/mlnode/mlnode/appliance"
)

// MetricType says how a metric's values are distributed.
type MetricType string

const (
	// BinomialMetric values are 0 or 1 per unit (converted or not): a rate,
	// with variance p(1−p), tested with a z test.
	BinomialMetric MetricType = "binomial"
	// MeanMetric values are any number per unit (revenue, clicks): a mean,
	// with the sample variance, tested with Welch's t test.
	MeanMetric MetricType = "mean"
)

// Scale is the scale an effect is measured on.
type Scale string

const (
	// Relative is the lift (treatment − control) / |control|, GrowthBook's
	// default, readable across metrics of different units.
	Relative Scale = "relative"
	// Absolute is the difference treatment − control in the metric's units.
	Absolute Scale = "absolute"
)

// Reasons an effect cannot be estimated. Analyze turns them into notes.
var (
	ErrTooFewUnits  = errors.New("too few units to estimate a variance")
	ErrZeroVariance = errors.New("zero variance: no spread to measure the effect against")
	ErrZeroBaseline = errors.New("control mean is 0: relative lift undefined")
)

// Effect is an estimated difference between a treatment arm and control,
// with what the tests need to turn it into intervals and probabilities.
type Effect struct {
	Scale    Scale
	Estimate float64 // treatment − control, divided by |control mean| on the relative scale
	StdErr   float64
	DF       float64 // Welch–Satterthwaite degrees of freedom; +Inf for a binomial metric (z test)
	N        int64   // units in both arms: the sample size of the sequential test
	Theta    float64 // CUPED coefficient applied; 0 when not adjusted
}

// armStat holds one arm's moments as means, variances and covariances, in
// the denominators the metric type calls for.
type armStat struct {
	n           float64
	mean, meanX float64
	varY, varX  float64
	cov         float64
}

func summarize(m Moments, typ MetricType) armStat {
	s := armStat{n: float64(m.N), mean: m.Mean(), meanX: m.CovariateMean()}
	if typ == BinomialMetric {
		s.varY = s.mean * (1 - s.mean)
		s.varX = popVar(m.N, m.SumX, m.SumXSq)
		s.cov = popCov(m.N, m.Sum, m.SumX, m.SumXY)
	} else {
		s.varY = m.Variance()
		s.varX = m.CovariateVariance()
		s.cov = m.Covariance()
	}
	return s
}

// adjusted returns the CUPED-adjusted mean and variance of Y − θ(X − E[X]):
// the mean shifts by θ times the covariate mean, and the variance loses
// the part of Y that X explains.
func (s armStat) adjusted(theta float64) (mean, variance float64) {
	if theta == 0 {
		return s.mean, s.varY
	}
	return s.mean - theta*s.meanX, max(0, s.varY+theta*theta*s.varX-2*theta*s.cov)
}

// Theta is the CUPED coefficient for a pair of arms: the slope of the
// metric on the covariate in both arms pooled, as GrowthBook computes it.
// Pooling keeps θ identical for both arms, which keeps the adjusted
// difference unbiased (the covariate means differ only by chance). It is 0
// when either pooled variance is 0 or undefined, which turns the
// adjustment off.
func Theta(control, treatment Moments, typ MetricType) float64 {
	if !control.hasCovariate() && !treatment.hasCovariate() {
		return 0
	}
	joint := control
	joint.Merge(treatment)
	j := summarize(joint, typ)
	if !(j.varX > 0) || !(j.varY > 0) {
		return 0
	}
	theta := j.cov / j.varX
	if math.IsNaN(theta) || math.IsInf(theta, 0) {
		return 0
	}
	return theta
}

// minUnits is the smallest arm that has a variance: one unit already has
// p(1−p) for a rate, a sample variance needs two.
func minUnits(typ MetricType) int64 {
	if typ == BinomialMetric {
		return 1
	}
	return 2
}

// EstimateEffect estimates treatment − control on the given scale, with
// CUPED when cuped is true and the moments carry a covariate.
//
// The relative lift's standard error comes from the delta method, treating
// the control mean in the denominator as random; with CUPED it is gbstats'
// formula for the regression-adjusted lift. It returns ErrTooFewUnits,
// ErrZeroVariance or ErrZeroBaseline when the effect is not estimable.
func EstimateEffect(control, treatment Moments, typ MetricType, scale Scale, cuped bool) (Effect, error) {
	e := Effect{Scale: scale, N: control.N + treatment.N, Estimate: math.NaN(), StdErr: math.NaN(), DF: math.NaN()}
	if typ != BinomialMetric && typ != MeanMetric {
		return e, appliance.Invalid("type", "unknown metric type %q: want binomial or mean", typ)
	}
	if scale != Absolute && scale != Relative {
		return e, appliance.Invalid("scale", "unknown scale %q: want relative or absolute", scale)
	}
	if cuped && min(control.N, treatment.N) >= minUnits(typ) {
		e.Theta = Theta(control, treatment, typ)
	}
	c, t := summarize(control, typ), summarize(treatment, typ)
	mc, vc := c.adjusted(e.Theta)
	mt, vt := t.adjusted(e.Theta)

	// The point estimate is reported even when its variance is not: a
	// difference of two means exists with one unit per arm.
	var variance float64
	if scale == Absolute {
		e.Estimate = mt - mc
		variance = vt/t.n + vc/c.n
	} else {
		base := c.mean // the unadjusted control mean, as in gbstats
		if base == 0 {
			return e, ErrZeroBaseline
		}
		e.Estimate = (mt - mc) / math.Abs(base)
		// Delta method on (μt − θx̄t − μc + θx̄c)/μc in the control's
		// (μc, x̄c); with θ = 0 it is the usual variance of a ratio.
		r := t.mean / base
		vcRel := c.varY*r*r - 2*e.Theta*c.cov*r + e.Theta*e.Theta*c.varX
		variance = (vt/t.n + max(0, vcRel)/c.n) / (base * base)
	}
	if min(control.N, treatment.N) < minUnits(typ) {
		return e, ErrTooFewUnits
	}
	se := math.Sqrt(variance)
	if !(se > 0) || math.IsInf(se, 0) {
		return e, ErrZeroVariance
	}
	e.StdErr = se
	e.DF = math.Inf(1)
	if typ == MeanMetric {
		e.DF = welchDF(vc, c.n, vt, t.n)
	}
	return e, nil
}

// welchDF is the Welch–Satterthwaite approximation of the degrees of freedom
// of a difference of two means with unequal variances (Welch 1947).
func welchDF(va, na, vb, nb float64) float64 {
	a, b := va/na, vb/nb
	return (a + b) * (a + b) / (a*a/(na-1) + b*b/(nb-1))
}
