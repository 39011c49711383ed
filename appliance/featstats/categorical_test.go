package featstats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// zipf returns n values over distinct keys with a skewed frequency.
func zipf(seed uint64, n int, s float64, distinct uint64) []string {
	r := rand.New(rand.NewPCG(seed, seed+1))
	z := rand.NewZipf(r, s, 1, distinct-1)
	out := make([]string, n)
	for i := range out {
		out[i] = "v" + strconv.FormatUint(z.Uint64(), 10)
	}
	return out
}

func exactCounts(vs []string) map[string]int64 {
	m := map[string]int64{}
	for _, v := range vs {
		m[v]++
	}
	return m
}

// checkBounds checks the Misra–Gries guarantees against exact counts.
func checkBounds(t *testing.T, c *Categorical, exact map[string]int64) {
	t.Helper()
	n := c.Count()
	if c.MaxError() > n/(counters/2+1) {
		t.Errorf("max error %d exceeds n/%d = %d", c.MaxError(), counters/2+1, n/(counters/2+1))
	}
	tracked := map[string]bool{}
	for _, cat := range c.Top(counters) {
		tracked[cat.Value] = true
		if f := exact[cat.Value]; cat.Count > f || f > cat.Count+c.MaxError() {
			t.Errorf("%s: count %d, true %d, max error %d", cat.Value, cat.Count, f, c.MaxError())
		}
	}
	for v, f := range exact {
		if !tracked[v] && f > c.MaxError() {
			t.Errorf("%s occurs %d times, more than the max error %d, and is not tracked", v, f, c.MaxError())
		}
	}
}

func TestCategorical_TopKOnSkewedData(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		s        float64
		distinct uint64
	}{
		{"few values", 10000, 1.5, 50},
		{"zipf 1.1", 200000, 1.1, 100000},
		{"zipf 1.5", 200000, 1.5, 100000},
		{"nearly uniform", 50000, 1.0001, 20000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := zipf(11, tt.n, tt.s, tt.distinct)
			var c Categorical
			for _, v := range vs {
				c.Add(v)
			}
			exact := exactCounts(vs)
			checkBounds(t, &c, exact)
			// Values clearly above the error bound come out in true order.
			type kv struct {
				v string
				n int64
			}
			var truth []kv
			for v, n := range exact {
				truth = append(truth, kv{v, n})
			}
			slices.SortFunc(truth, func(a, b kv) int {
				if a.n != b.n {
					return int(b.n - a.n)
				}
				return strings.Compare(a.v, b.v)
			})
			top := c.Top(TopCategories)
			for i := 0; i < len(top) && i < len(truth)-1; i++ {
				if truth[i].n-truth[i+1].n > 2*c.MaxError() && top[i].Value != truth[i].v {
					t.Errorf("rank %d: %s, want %s (%d vs %d occurrences)", i, top[i].Value, truth[i].v, top[i].Count, truth[i].n)
				}
			}
		})
	}
}

func TestCategorical_ExactWhileFew(t *testing.T) {
	var c Categorical
	for i := range 1000 {
		c.Add(fmt.Sprint(i % 7))
	}
	if d, exact := c.Distinct(); d != 7 || !exact || c.MaxError() != 0 {
		t.Fatalf("distinct %v exact %v max error %d", d, exact, c.MaxError())
	}
	top := c.Top(3)
	want := []Category{{"0", 143}, {"1", 143}, {"2", 143}}
	if !slices.Equal(top, want) {
		t.Fatalf("top %v, want %v", top, want)
	}
}

func TestCategorical_DistinctEstimate(t *testing.T) {
	for _, distinct := range []int{300, 1000, 10000, 100000} {
		var c Categorical
		for i := range distinct * 3 {
			c.Add("user-" + strconv.Itoa(i%distinct))
		}
		d, exact := c.Distinct()
		if exact {
			t.Errorf("%d distinct: claimed exact", distinct)
		}
		if rel := math.Abs(d-float64(distinct)) / float64(distinct); rel > 0.05 {
			t.Errorf("%d distinct: estimated %.0f (%.1f%% off)", distinct, d, rel*100)
		}
	}
}

func TestCategorical_MergeKeepsBounds(t *testing.T) {
	vs := zipf(13, 120000, 1.2, 50000)
	exact := exactCounts(vs)
	var whole Categorical
	for _, v := range vs {
		whole.Add(v)
	}
	for _, parts := range []int{2, 7, 60} {
		var merged Categorical
		size := len(vs) / parts
		for p := range parts {
			var part Categorical
			end := (p + 1) * size
			if p == parts-1 {
				end = len(vs)
			}
			for _, v := range vs[p*size : end] {
				part.Add(v)
			}
			merged.Merge(&part)
		}
		if merged.Count() != int64(len(vs)) {
			t.Fatalf("%d parts: count %d", parts, merged.Count())
		}
		checkBounds(t, &merged, exact)
		dm, _ := merged.Distinct()
		dw, _ := whole.Distinct()
		// The merged sketch is the register-wise max: the same as one pass.
		if dm != dw {
			t.Errorf("%d parts: distinct %v, single pass %v", parts, dm, dw)
		}
		if merged.Top(1)[0].Value != whole.Top(1)[0].Value {
			t.Errorf("%d parts: most frequent %v, single pass %v", parts, merged.Top(1), whole.Top(1))
		}
	}
}

func TestCategorical_MergeSmallIsExact(t *testing.T) {
	var a, b, whole Categorical
	for i := range 500 {
		v := strconv.Itoa(i % 40)
		if i%3 == 0 {
			a.Add(v)
		} else {
			b.Add(v)
		}
		whole.Add(v)
	}
	a.Merge(&b)
	if !slices.Equal(a.Top(100), whole.Top(100)) || a.MaxError() != 0 {
		t.Fatalf("merged %v, single pass %v", a.Top(100), whole.Top(100))
	}
	if d, exact := a.Distinct(); d != 40 || !exact {
		t.Fatalf("distinct %v exact %v", d, exact)
	}
}

func TestCategorical_LongValuesTruncated(t *testing.T) {
	var c Categorical
	long := strings.Repeat("é", MaxCategoryBytes) // 2 bytes a rune
	c.Add(long)
	c.Add(long + "tail")
	top := c.Top(1)
	if len(top) != 1 || top[0].Count != 2 || len(top[0].Value) != MaxCategoryBytes || !strings.HasPrefix(long, top[0].Value) {
		t.Fatalf("top %d values, first of %d bytes counted %d", len(top), len(top[0].Value), top[0].Count)
	}
	odd := "x" + long // the cut falls inside a rune: it moves back
	var d Categorical
	d.Add(odd)
	if v := d.Top(1)[0].Value; len(v) != MaxCategoryBytes-1 {
		t.Fatalf("cut at %d bytes inside a rune", len(v))
	}
}

func TestCategorical_BinaryRoundTrip(t *testing.T) {
	for _, vs := range [][]string{nil, {"a", "b", "a"}, zipf(17, 20000, 1.3, 5000)} {
		var c Categorical
		for _, v := range vs {
			c.Add(v)
		}
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Categorical
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Top(counters), c.Top(counters)) || got.Count() != c.Count() || got.MaxError() != c.MaxError() {
			t.Fatalf("round trip changed the counters")
		}
		d1, e1 := c.Distinct()
		d2, e2 := got.Distinct()
		if d1 != d2 || e1 != e2 {
			t.Fatalf("round trip changed distinct: %v %v -> %v %v", d1, e1, d2, e2)
		}
		again, _ := got.MarshalBinary()
		if string(again) != string(b) {
			t.Fatal("encoding is not deterministic")
		}
	}
}
