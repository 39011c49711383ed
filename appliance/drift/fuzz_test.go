package drift_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/drift"
	"github.com/mlnode/mlnode/appliance/featstats"
)

// Any finite values, as samples, sketches or a histogram of them, give
// measures in range and never NaN or a panic.
func FuzzDetect_Numeric(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, uint8(3), uint8(0))
	f.Add(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, math.Float64bits(1e300)), math.Float64bits(-1e-300)), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, split, kinds uint8) {
		var xs []float64
		for len(data) >= 8 {
			x := math.Float64frombits(binary.LittleEndian.Uint64(data))
			data = data[8:]
			if !math.IsNaN(x) && !math.IsInf(x, 0) {
				xs = append(xs, x)
			}
		}
		if len(xs) < 2 {
			return
		}
		k := 1 + int(split)%(len(xs)-1)
		ref, cur := numeric(t, xs[:k], kinds&3), numeric(t, xs[k:], kinds>>2&3)
		if ref == nil || cur == nil {
			return
		}
		for _, m := range []drift.Method{drift.MethodKS, drift.MethodWassersteinNorm, drift.MethodJensenShannon, drift.MethodPSI} {
			r, err := drift.Detect(ref, cur, drift.Options{Method: m})
			if appliance.ErrorCode(err) == appliance.EUNPROCESSABLE && m == drift.MethodWassersteinNorm {
				continue // distances beyond float64: an error, not Inf
			}
			if err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			if !(r.Statistic >= 0) || !(r.PSI >= 0) || math.IsInf(r.PSI, 0) {
				t.Fatalf("%s: %+v", m, r)
			}
			if r.PValue != nil && !(*r.PValue >= 0 && *r.PValue <= 1) {
				t.Fatalf("%s: p-value %v", m, *r.PValue)
			}
			if (m == drift.MethodKS || m == drift.MethodJensenShannon) && r.Statistic > 1+1e-12 {
				t.Fatalf("%s: %v above 1", m, r.Statistic)
			}
		}
	})
}

// numeric returns xs as a sample, a sketch or a histogram (nil when the
// values do not make one: a histogram's edges must be distinct and finite).
func numeric(t *testing.T, xs []float64, kind uint8) *drift.Numeric {
	var d *drift.Numeric
	var err error
	switch kind {
	case 1:
		var s featstats.Numeric
		for _, x := range xs {
			s.Add(x)
		}
		d, err = drift.NumericSketch(&s)
	case 2:
		lo, hi := xs[0], xs[0]
		for _, x := range xs {
			lo, hi = min(lo, x), max(hi, x)
		}
		mid := lo/2 + hi/2
		if !(lo < mid && mid < hi) {
			return nil
		}
		var h drift.Histogram
		h.Edges = []float64{lo, mid, hi}
		h.Counts = make([]int64, 2)
		for _, x := range xs {
			if x <= mid {
				h.Counts[0]++
			} else {
				h.Counts[1]++
			}
		}
		d, err = drift.NumericHistogram(h)
		if err != nil {
			return nil // a spread that overflows the deviation
		}
	default:
		d, err = drift.NumericSample(xs)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}
