package drift

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/featstats"
)

// OtherCategory labels the values outside the reference's most frequent
// ones in frequency tables.
const OtherCategory = "(other)"

// Categorical is a categorical distribution: counts by value, plus values
// not itemized (those a frequent-value sketch no longer tracks). It is
// immutable and safe for concurrent use.
type Categorical struct {
	counts map[string]int64
	n      int64 // every value, itemized or not
	sketch bool
}

func (*Categorical) distribution() {}

// Count is the number of values the distribution describes.
func (d *Categorical) Count() int64 { return d.n }

// CategoricalCounts returns the distribution of counts by value. A bool
// feature is {"true": trues, "false": count − trues}.
func CategoricalCounts(counts map[string]int64) (*Categorical, error) {
	d := &Categorical{counts: make(map[string]int64, len(counts))}
	for v, c := range counts {
		if c < 0 || d.n > math.MaxInt64-c {
			return nil, appliance.Invalid("counts", "the count of %q is negative or the counts overflow", v)
		}
		if c > 0 {
			d.counts[v] = c
			d.n += c
		}
	}
	if d.n == 0 {
		return nil, appliance.Invalid("counts", "a distribution needs at least one value")
	}
	return d, nil
}

// CategoricalValues returns the distribution of raw values.
func CategoricalValues(values []string) (*Categorical, error) {
	if len(values) == 0 {
		return nil, appliance.Invalid("values", "a sample needs at least one value")
	}
	d := &Categorical{counts: make(map[string]int64), n: int64(len(values))}
	for _, v := range values {
		d.counts[v]++
	}
	return d, nil
}

// CategoricalSketch returns the distribution a feature statistics
// frequent-value sketch describes: its tracked values with their counts
// (lower bounds, off by at most MaxError each), the rest unitemized.
func CategoricalSketch(c *featstats.Categorical) (*Categorical, error) {
	if c == nil || c.Count() == 0 {
		return nil, appliance.Invalid("sketch", "the statistics hold no values")
	}
	top := c.Top(math.MaxInt)
	d := &Categorical{counts: make(map[string]int64, len(top)), n: c.Count(), sketch: c.MaxError() > 0}
	for _, t := range top {
		d.counts[t.Value] = t.Count
	}
	return d, nil
}

// Frequencies is a frequency table over the reference's most frequent
// values and OtherCategory, in that order. Categories empty on both sides
// are left out.
type Frequencies struct {
	Categories []string
	Reference  []float64 // counts
	Current    []float64
}

// NewFrequencies tabulates both distributions over the reference's topK
// most frequent values (ties in value order) and OtherCategory for the
// rest of either side: a value new in the current distribution shows as
// growth of OtherCategory.
func NewFrequencies(ref, cur *Categorical, topK int) Frequencies {
	type vc struct {
		v string
		c int64
	}
	all := make([]vc, 0, len(ref.counts))
	for v, c := range ref.counts {
		all = append(all, vc{v, c})
	}
	slices.SortFunc(all, func(a, b vc) int {
		if a.c != b.c {
			return cmp.Compare(b.c, a.c)
		}
		return strings.Compare(a.v, b.v)
	})
	all = all[:min(topK, len(all))]
	var f Frequencies
	var refIn, curIn int64
	for _, t := range all {
		c := cur.counts[t.v]
		refIn += t.c
		curIn += c
		f.Categories = append(f.Categories, t.v)
		f.Reference = append(f.Reference, float64(t.c))
		f.Current = append(f.Current, float64(c))
	}
	// A value literally named like OtherCategory among the top ones stays
	// a separate row: labels are for people, the rows are what is measured.
	if ro, co := ref.n-refIn, cur.n-curIn; ro > 0 || co > 0 {
		f.Categories = append(f.Categories, OtherCategory)
		f.Reference = append(f.Reference, float64(ro))
		f.Current = append(f.Current, float64(co))
	}
	return f
}
