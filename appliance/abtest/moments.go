package abtest

import "math"

// Moments aggregates one metric over the units exposed to one arm: N units,
// the sum of their values and of the squared values. A unit exposed but
// without any event counts with value 0, so N is the number of exposed
// units, not of events. For a binomial metric the value is 0 or 1.
//
// SumX, SumXSq and SumXY carry a pre-exposure covariate X of each unit (its
// value of the same metric in the weeks before the experiment, typically)
// for CUPED; they stay zero when there is none, and the adjustment then
// does nothing.
//
// The zero value is an empty aggregate. Moments merge by addition, so
// aggregates of days, shards or nodes combine exactly.
type Moments struct {
	N      int64   `json:"n"`
	Sum    float64 `json:"sum"`
	SumSq  float64 `json:"sum_sq"`
	SumX   float64 `json:"sum_x,omitempty"`
	SumXSq float64 `json:"sum_x_sq,omitempty"`
	SumXY  float64 `json:"sum_xy,omitempty"`
}

// Add counts one unit with value y and no covariate.
func (m *Moments) Add(y float64) {
	m.N++
	m.Sum += y
	m.SumSq += y * y
}

// AddWithCovariate counts one unit with value y and pre-exposure value x.
func (m *Moments) AddWithCovariate(y, x float64) {
	m.Add(y)
	m.SumX += x
	m.SumXSq += x * x
	m.SumXY += x * y
}

// Merge adds the units of o.
func (m *Moments) Merge(o Moments) {
	m.N += o.N
	m.Sum += o.Sum
	m.SumSq += o.SumSq
	m.SumX += o.SumX
	m.SumXSq += o.SumXSq
	m.SumXY += o.SumXY
}

// Mean is the mean value per unit; NaN without units.
func (m Moments) Mean() float64 {
	if m.N <= 0 {
		return math.NaN()
	}
	return m.Sum / float64(m.N)
}

// Variance is the sample variance (n−1 in the denominator); NaN for N < 2.
func (m Moments) Variance() float64 {
	return sampleVar(m.N, m.Sum, m.SumSq)
}

// CovariateMean is the mean of the covariate; NaN without units.
func (m Moments) CovariateMean() float64 {
	if m.N <= 0 {
		return math.NaN()
	}
	return m.SumX / float64(m.N)
}

// CovariateVariance is the sample variance of the covariate; NaN for N < 2.
func (m Moments) CovariateVariance() float64 {
	return sampleVar(m.N, m.SumX, m.SumXSq)
}

// Covariance is the sample covariance of value and covariate; NaN for N < 2.
func (m Moments) Covariance() float64 {
	return sampleCov(m.N, m.Sum, m.SumX, m.SumXY)
}

// hasCovariate reports whether any covariate was accumulated.
func (m Moments) hasCovariate() bool {
	return m.SumX != 0 || m.SumXSq != 0 || m.SumXY != 0
}

// sampleVar is the n−1 variance from a sum and a sum of squares. Rounding
// can make the variance of constant values slightly negative; it is clamped
// to zero so that it never reaches a square root.
func sampleVar(n int64, s, ss float64) float64 {
	if n < 2 {
		return math.NaN()
	}
	fn := float64(n)
	return max(0, (ss-s*s/fn)/(fn-1))
}

// sampleCov is the n−1 covariance from two sums and the sum of products.
func sampleCov(n int64, sa, sb, sab float64) float64 {
	if n < 2 {
		return math.NaN()
	}
	fn := float64(n)
	return (sab - sa*sb/fn) / (fn - 1)
}

// popVar and popCov divide by n: binomial metrics use them throughout, as
// gbstats' ProportionStatistic does, so that the variance of a rate is
// exactly p(1−p).
func popVar(n int64, s, ss float64) float64 {
	if n < 1 {
		return math.NaN()
	}
	fn := float64(n)
	return max(0, ss/fn-(s/fn)*(s/fn))
}

func popCov(n int64, sa, sb, sab float64) float64 {
	if n < 1 {
		return math.NaN()
	}
	fn := float64(n)
	return sab/fn - (sa/fn)*(sb/fn)
}
