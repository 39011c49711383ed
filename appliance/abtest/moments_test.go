package abtest

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// twoPass is the textbook mean and n−1 variance, a reference independent of
// the running sums.
func twoPass(xs []float64) (mean, variance float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		variance += (x - mean) * (x - mean)
	}
	return mean, variance / float64(len(xs)-1)
}

func TestMoments_MergeEqualsAddingAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var all, a, b Moments
	ys := make([]float64, 1000)
	for i := range ys {
		x := rng.NormFloat64()
		ys[i] = 3 + 2*x + rng.NormFloat64()
		all.AddWithCovariate(ys[i], x)
		if i%3 == 0 {
			a.AddWithCovariate(ys[i], x)
		} else {
			b.AddWithCovariate(ys[i], x)
		}
	}
	a.Merge(b)
	if a.N != all.N {
		t.Fatalf("N = %d, want %d", a.N, all.N)
	}
	for name, got := range map[string][2]float64{
		"mean":     {a.Mean(), all.Mean()},
		"variance": {a.Variance(), all.Variance()},
		"xvar":     {a.CovariateVariance(), all.CovariateVariance()},
		"cov":      {a.Covariance(), all.Covariance()},
	} {
		near(t, name, got[0], got[1], 1e-9*math.Abs(got[1]))
	}
	mean, variance := twoPass(ys)
	near(t, "mean vs two-pass", all.Mean(), mean, 1e-12)
	near(t, "variance vs two-pass", all.Variance(), variance, 1e-9)
}

func TestMoments_Edges(t *testing.T) {
	tests := []struct {
		name           string
		values         []float64
		mean, variance float64 // NaN: undefined
	}{
		{"empty", nil, math.NaN(), math.NaN()},
		{"one unit", []float64{4}, 4, math.NaN()},
		{"constant", []float64{0.1, 0.1, 0.1}, 0.1, 0},
		{"zeros count as units", []float64{0, 0, 6}, 2, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Moments
			for _, v := range tt.values {
				m.Add(v)
			}
			for _, c := range []struct {
				what      string
				got, want float64
			}{{"mean", m.Mean(), tt.mean}, {"variance", m.Variance(), tt.variance}} {
				if math.IsNaN(c.want) != math.IsNaN(c.got) || (!math.IsNaN(c.want) && math.Abs(c.got-c.want) > 1e-12) {
					t.Errorf("%s = %g, want %g", c.what, c.got, c.want)
				}
			}
			if v := m.Variance(); v < 0 {
				t.Errorf("variance %g < 0", v)
			}
		})
	}
}

func TestFloat_JSONNullForUndefined(t *testing.T) {
	b, err := json.Marshal(struct {
		A, B, C Float
		I       Interval
	}{Float(math.NaN()), Float(math.Inf(1)), 0.25, Interval{math.NaN(), 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"A":null,"B":null,"C":0.25,"I":[null,1]}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	var back struct {
		A Float
		I Interval
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(back.A)) || !math.IsNaN(back.I.Low) || back.I.High != 1 {
		t.Errorf("round trip = %+v", back)
	}
}
