package drift

import (
	"math"
	"testing"
)

// Reference values are scipy.stats.kstwo.sf(x, n) from scipy 1.10.1
// (Debian bookworm's python3-scipy), whose _kolmogn follows the same
// Simard & L'Ecuyer selection: every region (closed forms, Durbin matrix,
// Pelz–Good, doubled Smirnov tail) appears below.
func TestKolmogorovSF_Scipy(t *testing.T) {
	tests := []struct {
		n       int64
		x, want float64
	}{
		{1, 0.9, 0.19999999999999996},
		{1, 0.7, 0.6000000000000001},
		{5, 0.18, 0.987417088},
		{5, 0.3, 0.664},
		{5, 0.7, 0.005560000000000004},
		{20, 0.045, 0.9999999997324996},
		{20, 0.075, 0.9993813369935705},
		{20, 0.05, 0.9999999767980384},
		{20, 0.1, 0.976255094592155},
		{20, 0.3, 0.04306706665851623},
		{20, 0.7, 2.392395040880019e-10},
		{100, 0.009000000000000001, 1.0},
		{100, 0.02, 0.999999999978262},
		{100, 0.05, 0.9532159710635725},
		{100, 0.1, 0.2526927570063874},
		{100, 0.3, 1.7719869892662917e-08},
		{100, 0.7, 1.2211404981217991e-49},
		{140, 0.0064285714285714285, 1.0},
		{140, 0.02, 0.9999999774822331},
		{140, 0.05, 0.8576480297656114},
		{140, 0.1, 0.11353657290090946},
		{140, 0.3, 1.1370251710737309e-11},
		{140, 0.7, 2.7611948816463573e-69},
		{141, 0.006382978723404256, 1.0},
		{141, 0.02, 0.9999999744561288},
		{141, 0.05, 0.8548456930096628},
		{141, 0.1, 0.11128445516467944},
		{141, 0.3, 9.46134771413843e-12},
		{141, 0.7, 8.911602304669148e-70},
		{1000, 0.0009, 1.0},
		{1000, 0.02, 0.8108971656895577},
		{1000, 0.05, 0.013012074781090332},
		{1000, 0.1, 3.703687096817711e-09},
		{1000, 0.3, 2.590715705736845e-80},
		{5000, 0.00018, 1.0},
		{5000, 0.02, 0.03613941395325637},
		{5000, 0.05, 2.6523052328711187e-11},
		{5000, 0.1, 5.590495886396459e-44},
		{100000, 9e-06, 1.0},
		{100000, 0.02, 3.5372711931479597e-35},
		{100000, 0.05, 1.0446857833684497e-217},
		{400000, 2.25e-06, 1.0},
		{400000, 0.02, 2.035756212542114e-139},
		{5000, 0.01, 0.6954557253913853},
		{1000, 0.01, 0.9999496745370611},
		{100000, 0.003, 0.3284563327726956},
		{100001, 0.003, 0.32845050055711633},
		{400000, 0.0015, 0.3287803618863431},
		{300, 0.06, 0.221275575895042},
		{50000, 0.004, 0.3994316646755731},
	}
	for _, tt := range tests {
		got := kolmogorovSF(tt.n, tt.x)
		if !relClose(got, tt.want, 1e-9) {
			t.Errorf("kolmogorovSF(%d, %v) = %v, want %v", tt.n, tt.x, got, tt.want)
		}
	}
}

// relClose compares p-values by their digits, not by being both near zero.
func relClose(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Abs(want)
}

// The exact two-sample distribution against brute force: every ordering of
// two small samples is equally likely under the null hypothesis, so
// counting the orderings whose statistic reaches d gives P(D ≥ d).
func TestKSExactSF_Enumeration(t *testing.T) {
	for _, sz := range [][2]int64{{1, 1}, {3, 3}, {4, 6}, {5, 3}, {7, 5}, {6, 9}} {
		n1, n2 := sz[0], sz[1]
		lcm := n1 / gcd(n1, n2) * n2
		counts := map[int64]float64{} // h → orderings with D = h/lcm
		var total float64
		var visit func(i, j, worst int64)
		visit = func(i, j, worst int64) {
			dev := i*(lcm/n1) - j*(lcm/n2)
			if dev < 0 {
				dev = -dev
			}
			worst = max(worst, dev)
			if i == n1 && j == n2 {
				counts[worst]++
				total++
				return
			}
			if i < n1 {
				visit(i+1, j, worst)
			}
			if j < n2 {
				visit(i, j+1, worst)
			}
		}
		visit(0, 0, 0)
		for h := int64(0); h <= lcm; h++ {
			var atLeast float64
			for k, c := range counts {
				if k >= h {
					atLeast += c
				}
			}
			want := atLeast / total
			if got := ksExactSF(n1, n2, h); math.Abs(got-want) > 1e-12 {
				t.Errorf("ksExactSF(%d, %d, %d) = %v, want %v", n1, n2, h, got, want)
			}
		}
	}
}

func TestKSExactSF_Symmetric(t *testing.T) {
	for _, h := range []int64{1, 700, 2500, 6000, 20000} {
		a, b := ksExactSF(130, 210, h), ksExactSF(210, 130, h)
		if !relClose(a, b, 1e-10) {
			t.Errorf("h=%d: %v != %v", h, a, b)
		}
	}
}
