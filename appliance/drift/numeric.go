package drift

import (
	"math"
	"slices"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/featstats"
)

// source is where a distribution came from, which decides how exact the
// measures on it are.
type source uint8

const (
	fromSample source = iota
	fromSketch
	fromHistogram
)

// knot is a point where a CDF is not linear: below is the left limit
// F(x−), at is F(x). Between two knots F goes linearly from the first's at
// to the second's below; it is 0 before the first knot and 1 after the
// last. Steps (samples, sketches) and piecewise-uniform densities
// (histograms) are both this shape, so that every measure has one
// implementation.
type knot struct{ x, below, at float64 }

// Numeric is a numeric distribution: a sample's values, a quantile
// sketch's bins, or a histogram. It is immutable and safe for concurrent
// use.
type Numeric struct {
	src    source
	knots  []knot
	n      int64
	mean   float64
	std    float64   // population (ddof 0), as numpy's and Evidently's norm
	values []float64 // a sample's values, sorted: kept to sketch them like a sketched other side
}

func (*Numeric) distribution() {}

// Count is the number of values the distribution describes.
func (d *Numeric) Count() int64 { return d.n }

// Mean is the distribution's mean (exact for samples and sketches).
func (d *Numeric) Mean() float64 { return d.mean }

// Std is the population standard deviation (n in the denominator).
func (d *Numeric) Std() float64 { return d.std }

// NumericSample returns the distribution of raw values. Every value must be
// finite.
func NumericSample(values []float64) (*Numeric, error) {
	if len(values) == 0 {
		return nil, appliance.Invalid("values", "a sample needs at least one value")
	}
	xs := slices.Clone(values)
	n := float64(len(xs))
	var mean float64
	for i, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, appliance.Invalid("values", "value %d is %v; values must be finite", i, x)
		}
		mean += x / n // no overflow near ±MaxFloat64, unlike the sum
	}
	slices.Sort(xs)
	var ss float64 // two passes: the one-pass formula cancels badly far from zero
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	d := &Numeric{src: fromSample, n: int64(len(xs)), mean: mean, std: math.Sqrt(ss / n), values: xs}
	for i := 0; i < len(xs); {
		j := i + 1
		for j < len(xs) && xs[j] == xs[i] {
			j++
		}
		// Counts over n, as ks_2samp's searchsorted(..., "right")/n, so that
		// statistics match scipy's to the last bit.
		d.knots = append(d.knots, knot{x: xs[i], below: float64(i) / n, at: float64(j) / n})
		i = j
	}
	d.knots[len(d.knots)-1].at = 1
	return d, nil
}

// NumericSketch returns the distribution a feature statistics sketch
// describes: its bins, each a point mass at the bin's representative
// value, within featstats.RelativeAccuracy of the values it stands for.
// Count, mean and standard deviation are the accumulator's exact ones.
func NumericSketch(s *featstats.Numeric) (*Numeric, error) {
	if s == nil || s.Count() == 0 {
		return nil, appliance.Invalid("sketch", "the statistics hold no values")
	}
	bins := s.Bins()
	var total float64
	for _, b := range bins {
		total += b.Count
	}
	if !(total > 0) {
		return nil, appliance.Invalid("sketch", "the sketch holds no values")
	}
	n := s.Count()
	// featstats reports the sample deviation; Evidently norms by numpy's
	// population one.
	std := s.Stddev() * math.Sqrt(float64(n-1)/float64(n))
	d := &Numeric{src: fromSketch, n: n, mean: s.Mean(), std: std}
	// Representatives are not clamped to the exact min and max: two
	// sketches then put equal values at equal points, which keeps bins and
	// steps aligned between reference and current.
	var cum float64
	for _, b := range bins {
		if b.Count <= 0 {
			continue
		}
		x := b.Value
		if math.IsInf(x, 0) { // the top bin's representative can overflow
			x = min(max(x, s.Min()), s.Max())
		}
		below := cum / total
		cum += b.Count
		if k := len(d.knots); k > 0 && d.knots[k-1].x == x {
			d.knots[k-1].at = cum / total
			continue
		}
		d.knots = append(d.knots, knot{x: x, below: below, at: cum / total})
	}
	d.knots[len(d.knots)-1].at = 1
	return d, nil
}

// Histogram is a numeric distribution as bin counts between edges, the
// form of a model manifest's reference distributions. Values are taken as
// spread uniformly within each bin.
type Histogram struct {
	Edges  []float64 // len(Counts)+1, finite, strictly increasing
	Counts []int64
	// Mean and Std (population) are used when Std > 0; otherwise both are
	// computed from the bins under the uniform assumption.
	Mean, Std float64
}

// NumericHistogram returns the distribution a histogram describes.
func NumericHistogram(h Histogram) (*Numeric, error) {
	if len(h.Edges) < 2 {
		return nil, appliance.Invalid("edges", "a histogram needs at least 2 edges")
	}
	if len(h.Counts) != len(h.Edges)-1 {
		return nil, appliance.Invalid("counts", "has %d bins; %d edges make %d", len(h.Counts), len(h.Edges), len(h.Edges)-1)
	}
	for i, e := range h.Edges {
		if math.IsNaN(e) || math.IsInf(e, 0) || i > 0 && !(e > h.Edges[i-1]) {
			return nil, appliance.Invalid("edges", "edges must be finite and strictly increasing (edge %d is %v)", i, e)
		}
	}
	var n int64
	for i, c := range h.Counts {
		if c < 0 || n > math.MaxInt64-c {
			return nil, appliance.Invalid("counts", "count %d is negative or the counts overflow", i)
		}
		n += c
	}
	if n == 0 {
		return nil, appliance.Invalid("counts", "the histogram holds no values")
	}
	if math.IsNaN(h.Mean) || math.IsInf(h.Mean, 0) || math.IsNaN(h.Std) || math.IsInf(h.Std, 0) || h.Std < 0 {
		return nil, appliance.Invalid("std", "mean and std must be finite and std not negative")
	}
	total := float64(n)
	d := &Numeric{src: fromHistogram, n: n, mean: h.Mean, std: h.Std}
	var cum float64
	d.knots = append(d.knots, knot{x: h.Edges[0]})
	for i, c := range h.Counts {
		cum += float64(c)
		f := cum / total
		d.knots = append(d.knots, knot{x: h.Edges[i+1], below: f, at: f})
	}
	d.knots[len(d.knots)-1].below, d.knots[len(d.knots)-1].at = 1, 1
	if h.Std == 0 {
		var mean, m2 float64
		for i, c := range h.Counts {
			mean += float64(c) / total * (h.Edges[i]/2 + h.Edges[i+1]/2)
		}
		for i, c := range h.Counts {
			w := h.Edges[i+1] - h.Edges[i]
			mid := h.Edges[i]/2 + h.Edges[i+1]/2
			m2 += float64(c) / total * ((mid-mean)*(mid-mean) + w*w/12)
		}
		d.mean, d.std = mean, math.Sqrt(m2)
	}
	return d, nil
}

// cdf returns F(x).
func (d *Numeric) cdf(x float64) float64 {
	k := d.knots
	i, found := slices.BinarySearchFunc(k, x, func(k knot, x float64) int {
		switch {
		case k.x < x:
			return -1
		case k.x > x:
			return 1
		}
		return 0
	})
	switch {
	case found:
		return k[i].at
	case i == 0:
		return 0
	case i == len(k):
		return 1
	}
	a, b := k[i-1], k[i]
	return a.at + (b.below-a.at)*frac(x, a.x, b.x)
}

// frac returns (x−a)/(b−a) for a < x < b, in halves so that spans beyond
// MaxFloat64 do not overflow.
func frac(x, a, b float64) float64 { return (x/2 - a/2) / (b/2 - a/2) }

// quantile returns inf{x : F(x) ≥ q} for q in (0, 1): for a sample, the
// smallest value with at least a fraction q of the values at or below it.
func (d *Numeric) quantile(q float64) float64 {
	k := d.knots
	i, _ := slices.BinarySearchFunc(k, q, func(k knot, q float64) int {
		if k.at < q {
			return -1
		}
		return 1
	})
	if i == len(k) { // only by rounding: the last knot is at 1
		return k[len(k)-1].x
	}
	if i > 0 && k[i].below >= q { // F crosses q on the slope before knot i
		a, b := k[i-1], k[i]
		t := (q - a.at) / (b.below - a.at)
		return a.x*(1-t) + b.x*t // no overflow, unlike a + t·(b−a)
	}
	return k[i].x
}

// edges returns the reference's quantiles at 1/bins, …, (bins−1)/bins
// without repeats: the inner edges of bins that each hold about 1/bins of
// the reference. Ties (a discrete feature, a mode) merge bins.
func (d *Numeric) edges(bins int) []float64 {
	out := make([]float64, 0, bins-1)
	for j := 1; j < bins; j++ {
		e := d.quantile(float64(j) / float64(bins))
		if len(out) == 0 || e > out[len(out)-1] {
			out = append(out, e)
		}
	}
	return out
}

// masses returns the fraction of the distribution in each bin (−∞, e₁],
// (e₁, e₂], …, (eₖ, +∞).
func (d *Numeric) masses(edges []float64) []float64 {
	out := make([]float64, len(edges)+1)
	prev := 0.0
	for i, e := range edges {
		f := d.cdf(e)
		out[i] = max(f-prev, 0)
		prev = f
	}
	out[len(edges)] = max(1-prev, 0)
	return out
}

// aligned returns the two distributions at a common resolution, so that
// equal distributions measure as equal:
//
//   - A sample compared with a sketch is sketched the same way: sketch
//     representatives sit up to 1% away from the values they stand for, so
//     that a raw 5 and a sketched 5 would otherwise fall on either side of
//     a bin edge or a step.
//   - A sample or sketch compared with a histogram is seen through the
//     histogram's bins, spread uniformly like the histogram's own values:
//     a histogram knows its CDF only at its edges, and the uniform spread
//     within a wide outer bin is far from any real tail.
func aligned(a, b *Numeric) (*Numeric, *Numeric) {
	switch {
	case a.src == fromSample && b.src == fromSketch:
		return a.sketched(), b
	case a.src == fromSketch && b.src == fromSample:
		return a, b.sketched()
	case a.src == fromHistogram && b.src != fromHistogram:
		return a, b.rebinned(a)
	case b.src == fromHistogram && a.src != fromHistogram:
		return a.rebinned(b), b
	}
	return a, b
}

// rebinned returns d's masses in h's bins, spread uniformly within each,
// with the mass outside h's range spread between h's outer edges and d's
// extremes.
func (d *Numeric) rebinned(h *Numeric) *Numeric {
	lo, hi := d.knots[0].x, d.knots[len(d.knots)-1].x
	first, last := h.knots[0].x, h.knots[len(h.knots)-1].x
	out := &Numeric{src: fromHistogram, n: d.n, mean: d.mean, std: d.std, knots: make([]knot, 0, len(h.knots)+2)}
	if lo < first {
		out.knots = append(out.knots, knot{x: lo})
	}
	for i, k := range h.knots {
		f := d.cdf(k.x)
		below := f
		if i == 0 && lo >= first {
			below = 0 // d's values at the first edge: a step there
		}
		out.knots = append(out.knots, knot{x: k.x, below: below, at: f})
	}
	if hi > last {
		out.knots = append(out.knots, knot{x: hi, below: 1, at: 1})
	} else {
		out.knots[len(out.knots)-1].below, out.knots[len(out.knots)-1].at = 1, 1
	}
	return out
}

func (d *Numeric) sketched() *Numeric {
	var s featstats.Numeric
	for _, x := range d.values {
		s.Add(x)
	}
	out, err := NumericSketch(&s)
	if err != nil {
		panic("BUG: sketch of a non-empty sample: " + err.Error())
	}
	// The sample's moments are exact; keep them rather than the sketch's
	// (equal up to rounding).
	out.mean, out.std = d.mean, d.std
	return out
}

// walk calls fn at every knot of a or b in increasing order, with both
// CDFs' left limits and values there. Between two consecutive calls both
// CDFs are linear, which is what KS and Wasserstein rely on.
func walk(a, b *Numeric, fn func(x, aBelow, aAt, bBelow, bAt float64)) {
	ia, ib := 0, 0
	for ia < len(a.knots) || ib < len(b.knots) {
		var x float64
		switch {
		case ib == len(b.knots) || ia < len(a.knots) && a.knots[ia].x <= b.knots[ib].x:
			x = a.knots[ia].x
		default:
			x = b.knots[ib].x
		}
		aBelow, aAt := valueAt(a.knots, ia, x)
		bBelow, bAt := valueAt(b.knots, ib, x)
		if ia < len(a.knots) && a.knots[ia].x == x {
			ia++
		}
		if ib < len(b.knots) && b.knots[ib].x == x {
			ib++
		}
		fn(x, aBelow, aAt, bBelow, bAt)
	}
}

// valueAt returns F(x−) and F(x) given i, the first knot at or after x.
func valueAt(k []knot, i int, x float64) (below, at float64) {
	switch {
	case i < len(k) && k[i].x == x:
		return k[i].below, k[i].at
	case i == 0:
		return 0, 0
	case i == len(k):
		return 1, 1
	}
	p, q := k[i-1], k[i]
	f := p.at + (q.below-p.at)*frac(x, p.x, q.x)
	return f, f
}
