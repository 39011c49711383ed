package featstats

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/DataDog/sketches-go/ddsketch"
	sketchstore "github.com/DataDog/sketches-go/ddsketch/store"
)

// RelativeAccuracy is the quantile sketches' guarantee: a reported quantile
// is within this fraction of the true value (of its distance from the
// origin, for timestamps).
const RelativeAccuracy = 0.01

// maxSketchBins bounds a sketch's memory: at 1% accuracy, 2048 bins span
// 17 orders of magnitude. Past that the bins nearest zero are merged, so
// that a feature mixing 1e-300 and 1e300 costs 32 KiB, not megabytes.
const maxSketchBins = 2048

// Numeric accumulates numbers: exact count, min, max, mean and variance
// (Welford's algorithm, merged with Chan's formula), and a DDSketch for
// quantiles. The zero value accumulates float64 values.
//
// The moments are of the distance from the first value (the origin), so
// that values far from zero with a narrow spread keep their digits.
// Timestamps are sketched at that distance too, because a relative error
// on unix microseconds — 1% of 56 years — would make their quantiles
// useless.
type Numeric struct {
	n         int64
	nonFinite int64
	mean, m2  float64 // of the distances from the origin
	origin    float64 // the first float value
	iorigin   int64   // the first integer value
	min, max  float64 // of float values
	imin      int64   // of integer values, exact beyond 2^53
	imax      int64
	integer   bool
	shifted   bool               // the sketch holds distances from iorigin
	sketch    *ddsketch.DDSketch // nil until the first value
}

func newNumeric(integer, shifted bool) *Numeric {
	return &Numeric{integer: integer, shifted: shifted && integer}
}

func newSketch() *ddsketch.DDSketch {
	s, err := ddsketch.LogCollapsingLowestDenseDDSketch(RelativeAccuracy, maxSketchBins)
	if err != nil {
		panic("BUG: DDSketch parameters: " + err.Error())
	}
	return s
}

// Add adds a float64 value. NaN and infinities are counted apart and left
// out of every statistic: ingest refuses them, so they mean a bug upstream.
func (s *Numeric) Add(x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		s.nonFinite++
		return
	}
	if s.n == 0 {
		s.min, s.max, s.origin = x, x, x
	} else if x < s.min {
		s.min = x
	} else if x > s.max {
		s.max = x
	}
	s.observe(x-s.origin, x)
}

// AddInt adds an integer value (an int64, a timestamp in microseconds, a
// length).
func (s *Numeric) AddInt(x int64) {
	if s.n == 0 {
		s.imin, s.imax, s.iorigin = x, x, x
	} else if x < s.imin {
		s.imin = x
	} else if x > s.imax {
		s.imax = x
	}
	y := diff(x, s.iorigin)
	if s.shifted {
		s.observe(y, y)
	} else {
		s.observe(y, float64(x))
	}
}

// diff returns a-b as a float64, exactly when the difference fits an int64.
func diff(a, b int64) float64 {
	d := a - b
	if (a^b)&(a^d) < 0 { // overflow
		return float64(a) - float64(b)
	}
	return float64(d)
}

// observe adds y, the distance from the origin, to the moments and v to
// the sketch.
func (s *Numeric) observe(y, v float64) {
	s.n++
	d := y - s.mean
	s.mean += d / float64(s.n)
	s.m2 += d * (y - s.mean)
	if s.sketch == nil {
		s.sketch = newSketch()
	}
	// Clamped values cannot fail: NaN was refused above.
	limit := s.sketch.MaxIndexableValue()
	_ = s.sketch.Add(max(-limit, min(v, limit)))
}

// Count is the number of values added (non-finite ones excepted).
func (s *Numeric) Count() int64 { return s.n }

// NonFinite is the number of NaN and infinite values refused.
func (s *Numeric) NonFinite() int64 { return s.nonFinite }

// momentsOrigin is what the moments are relative to.
func (s *Numeric) momentsOrigin() float64 {
	if s.integer {
		return float64(s.iorigin)
	}
	return s.origin
}

// sketchOrigin is what the sketch's values are relative to.
func (s *Numeric) sketchOrigin() float64 {
	if s.shifted {
		return float64(s.iorigin)
	}
	return 0
}

// Min and Max are exact; 0 when empty.
func (s *Numeric) Min() float64 {
	if s.integer {
		return float64(s.imin)
	}
	return s.min
}

func (s *Numeric) Max() float64 {
	if s.integer {
		return float64(s.imax)
	}
	return s.max
}

// Mean is exact up to float64 rounding; 0 when empty.
func (s *Numeric) Mean() float64 {
	if s.n == 0 {
		return 0
	}
	return s.momentsOrigin() + s.mean
}

// Stddev is the sample standard deviation (n-1 in the denominator, as
// pandas and numpy's ddof=1); 0 for fewer than two values.
func (s *Numeric) Stddev() float64 {
	if s.n < 2 {
		return 0
	}
	return math.Sqrt(s.m2 / float64(s.n-1))
}

// Quantile returns the value at quantile q in [0, 1], within
// RelativeAccuracy of the value at rank floor(q*(n-1)); false when empty.
// Quantiles 0 and 1 are the exact min and max.
func (s *Numeric) Quantile(q float64) (float64, bool) {
	if s.n == 0 || s.sketch == nil || q < 0 || q > 1 {
		return 0, false
	}
	switch q {
	case 0:
		return s.Min(), true
	case 1:
		return s.Max(), true
	}
	v, err := s.sketch.GetValueAtQuantile(q)
	if err != nil {
		return 0, false
	}
	// A bin's representative can fall just outside the exact range; the
	// true quantile cannot, so clamping only brings the answer closer.
	return min(max(v+s.sketchOrigin(), s.Min()), s.Max()), true
}

// Bin is one bin of a sketch: values near Value, Count of them.
type Bin struct {
	Value float64
	Count float64
}

// Bins returns the sketch's bins in increasing order of value: the
// distribution at the sketch's resolution, from which drift measures can
// build any histogram.
func (s *Numeric) Bins() []Bin {
	if s.sketch == nil {
		return nil
	}
	var bins []Bin
	shift := s.sketchOrigin()
	s.sketch.ForEach(func(v, c float64) bool {
		bins = append(bins, Bin{Value: v + shift, Count: c})
		return false
	})
	slices.SortFunc(bins, func(a, b Bin) int {
		switch {
		case a.Value < b.Value:
			return -1
		case a.Value > b.Value:
			return 1
		}
		return 0
	})
	return bins
}

// CDF returns the fraction of values at or below x, at the sketch's
// resolution: values are placed at their bin's representative.
func (s *Numeric) CDF(x float64) float64 {
	if s.n == 0 || s.sketch == nil {
		return 0
	}
	x -= s.sketchOrigin()
	var below, total float64
	s.sketch.ForEach(func(v, c float64) bool {
		total += c
		if v <= x {
			below += c
		}
		return false
	})
	if total == 0 {
		return 0
	}
	return below / total
}

// Merge adds o's values to s: the result is what adding both streams to
// one accumulator would give, exactly for the moments and within the
// sketch's guarantee for quantiles. Timestamps with different origins are
// re-binned at s's origin, which adds up to one more bin width of error.
func (s *Numeric) Merge(o *Numeric) error {
	if s.integer != o.integer || s.shifted != o.shifted {
		return fmt.Errorf("merge numeric statistics of different kinds")
	}
	s.nonFinite += o.nonFinite
	if o.n == 0 {
		return nil
	}
	if s.n == 0 {
		nonFinite := s.nonFinite
		*s = *o
		s.nonFinite = nonFinite
		s.sketch = o.sketch.Copy()
		return nil
	}
	var delta float64 // from s's origin to o's
	if s.integer {
		delta = diff(o.iorigin, s.iorigin)
		s.imin, s.imax = min(s.imin, o.imin), max(s.imax, o.imax)
	} else {
		delta = o.origin - s.origin
		s.min, s.max = min(s.min, o.min), max(s.max, o.max)
	}
	na, nb := float64(s.n), float64(o.n)
	n := na + nb
	d := o.mean + delta - s.mean
	s.mean += d * nb / n
	s.m2 += o.m2 + d*d*(na/n)*nb
	s.n += o.n
	if !s.shifted || delta == 0 {
		return s.sketch.MergeWith(o.sketch)
	}
	limit := s.sketch.MaxIndexableValue()
	o.sketch.ForEach(func(v, c float64) bool {
		_ = s.sketch.AddWithCount(max(-limit, min(v+delta, limit)), c)
		return false
	})
	return nil
}

const numericFormat = 1

const (
	flagInteger = 1 << iota
	flagShifted
)

// MarshalBinary encodes the accumulator, sketch included.
func (s *Numeric) MarshalBinary() ([]byte, error) { return s.appendBinary(nil), nil }

func (s *Numeric) appendBinary(b []byte) []byte {
	b = append(b, numericFormat)
	var flags byte
	if s.integer {
		flags |= flagInteger
	}
	if s.shifted {
		flags |= flagShifted
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(s.n))
	b = binary.AppendUvarint(b, uint64(s.nonFinite))
	b = appendFloat(b, s.mean)
	b = appendFloat(b, s.m2)
	b = appendFloat(b, s.origin)
	b = appendFloat(b, s.min)
	b = appendFloat(b, s.max)
	b = binary.AppendVarint(b, s.iorigin)
	b = binary.AppendVarint(b, s.imin)
	b = binary.AppendVarint(b, s.imax)
	var sk []byte
	if s.sketch != nil {
		s.sketch.Encode(&sk, false)
	}
	return appendBytes(b, sk)
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (s *Numeric) UnmarshalBinary(data []byte) error {
	d := &decoder{b: data}
	if err := s.decode(d); err != nil {
		return err
	}
	return d.done()
}

func (s *Numeric) decode(d *decoder) error {
	if f := d.byte(); d.err == nil && f != numericFormat {
		return fmt.Errorf("numeric statistics: unknown format %d", f)
	}
	flags := d.byte()
	n := &Numeric{integer: flags&flagInteger != 0, shifted: flags&flagShifted != 0}
	n.n, n.nonFinite = d.count(), d.count()
	n.mean, n.m2, n.origin, n.min, n.max = d.float(), d.float(), d.float(), d.float(), d.float()
	n.iorigin, n.imin, n.imax = d.varint(), d.varint(), d.varint()
	sk := d.bytes()
	if d.err != nil {
		return fmt.Errorf("numeric statistics: %w", d.err)
	}
	// Inputs are finite, so these are; the moments may overflow (and are
	// shown as null) when values span the whole float64 range.
	for _, f := range []float64{n.origin, n.min, n.max} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("numeric statistics: a bound is %v", f)
		}
	}
	if n.m2 < 0 || n.n > 0 && (n.integer && n.imin > n.imax || !n.integer && n.min > n.max) {
		return fmt.Errorf("numeric statistics: inconsistent moments")
	}
	if len(sk) > 0 {
		var err error
		if n.sketch, err = decodeSketch(sk); err != nil {
			return fmt.Errorf("numeric statistics: %w", err)
		}
	}
	var inSketch float64
	if n.sketch != nil {
		inSketch = n.sketch.GetCount()
	}
	if inSketch != float64(n.n) {
		return fmt.Errorf("numeric statistics: sketch holds %g values, count is %d", inSketch, n.n)
	}
	*s = *n
	return nil
}

// decodeSketch decodes a sketch in two passes. The first decodes into
// sparse stores and checks every bin: indices in encoded form are
// unchecked, and the bounded dense stores would walk every index between
// two far-apart ones of a damaged value. The library's panics become
// errors: stored state is ours, but a damaged file must not take the node
// down.
func decodeSketch(b []byte) (s *ddsketch.DDSketch, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("decode sketch: %v", r)
		}
	}()
	s = newSketch()
	probe, err := ddsketch.DecodeDDSketch(b, sketchstore.SparseStoreConstructor, s.IndexMapping)
	if err != nil {
		return nil, fmt.Errorf("decode sketch: %w", err)
	}
	lo, hi := s.Index(s.MinIndexableValue()), s.Index(s.MaxIndexableValue())
	for _, st := range []sketchstore.Store{probe.GetPositiveValueStore(), probe.GetNegativeValueStore()} {
		st.ForEach(func(i int, c float64) bool {
			if i < lo || i > hi || !validCount(c) {
				err = fmt.Errorf("decode sketch: bin %d of count %g", i, c)
			}
			return err != nil
		})
		if err != nil {
			return nil, err
		}
	}
	if !validCount(probe.GetZeroCount()) {
		return nil, fmt.Errorf("decode sketch: zero count %g", probe.GetZeroCount())
	}
	if err := s.DecodeAndMergeWith(b); err != nil {
		return nil, fmt.Errorf("decode sketch: %w", err)
	}
	return s, nil
}

func validCount(c float64) bool { return c >= 0 && c <= 1<<53 }
