package featstats

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unicode/utf8"
)

const (
	// counters is how many distinct values a Categorical tracks at most.
	// After a reduction at most half remain, so any value more frequent
	// than 1/129 of the stream is always among them.
	counters = 256
	// MaxCategoryBytes is how much of a value is counted: longer values
	// are counted by their first MaxCategoryBytes bytes (cut at a UTF-8
	// boundary), so that a free-text feature cannot hold megabytes of state.
	MaxCategoryBytes = 256
	// hllPrecision gives 2^12 HyperLogLog registers: 4 KiB, a standard
	// error of 1.6% on the distinct count.
	hllPrecision = 12
	hllRegisters = 1 << hllPrecision
)

// Categorical counts the most frequent values of a stream with the
// Misra–Gries algorithm and estimates how many distinct values it holds.
//
// Counts are lower bounds: a tracked value's true count is between Count
// and Count+MaxError, and an untracked value occurred at most MaxError
// times. MaxError is at most n/129 for n values, and is the exact sum of
// the reductions made, usually far less. Merging keeps both guarantees.
//
// While no reduction has happened the counters hold every distinct value,
// so the distinct count is exact and no hashing is done; the HyperLogLog
// sketch is built from the counters at the first reduction.
type Categorical struct {
	counts  map[string]int64
	n       int64
	dropped int64       // the sum of reductions: the error bound on every count
	hll     hyperLogLog // nil while counts holds every distinct value
	scratch []int64
}

// Category is a value and how often it occurred (a lower bound; see
// Categorical).
type Category struct {
	Value string
	Count int64
}

// Add counts one value.
func (c *Categorical) Add(v string) {
	if len(v) > MaxCategoryBytes {
		v = strings.Clone(truncate(v))
	}
	if c.counts == nil {
		c.counts = make(map[string]int64, 16)
	}
	c.n++
	if c.hll != nil {
		c.hll.add(v)
	}
	before := len(c.counts)
	c.counts[v]++
	if len(c.counts) > before && len(c.counts) > counters {
		c.reduce()
	}
}

func truncate(v string) string {
	i := MaxCategoryBytes
	for i > MaxCategoryBytes-utf8.UTFMax && !utf8.RuneStart(v[i]) {
		i--
	}
	return v[:i]
}

// reduce subtracts the median count from every counter and drops those at
// or below zero, leaving at most counters/2. The median is the
// (counters/2+1)-th largest, so each reduction by r removes at least
// r*(counters/2+1) from the total: the reductions sum to at most
// n/(counters/2+1).
func (c *Categorical) reduce() {
	c.ensureHLL()
	c.scratch = c.scratch[:0]
	for _, k := range c.counts {
		c.scratch = append(c.scratch, k)
	}
	slices.SortFunc(c.scratch, func(a, b int64) int { return cmp.Compare(b, a) })
	r := c.scratch[counters/2]
	for v, k := range c.counts {
		if k <= r {
			delete(c.counts, v)
		} else {
			c.counts[v] = k - r
		}
	}
	c.dropped += r
}

// ensureHLL builds the distinct-count sketch from the counters, which
// until now held every distinct value.
func (c *Categorical) ensureHLL() {
	if c.hll != nil {
		return
	}
	c.hll = make(hyperLogLog, hllRegisters)
	for v := range c.counts {
		c.hll.add(v)
	}
}

// Count is the number of values added.
func (c *Categorical) Count() int64 { return c.n }

// MaxError bounds how much any count is below the truth.
func (c *Categorical) MaxError() int64 { return c.dropped }

// Distinct returns the number of distinct values, exactly (true) while
// every one is tracked, else a HyperLogLog estimate.
func (c *Categorical) Distinct() (float64, bool) {
	if c.hll == nil {
		return float64(len(c.counts)), true
	}
	return c.hll.estimate(), false
}

// Top returns up to k values, most frequent first, ties in value order.
func (c *Categorical) Top(k int) []Category {
	all := make([]Category, 0, len(c.counts))
	for v, n := range c.counts {
		all = append(all, Category{Value: v, Count: n})
	}
	slices.SortFunc(all, func(a, b Category) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		return strings.Compare(a.Value, b.Value)
	})
	return all[:min(k, len(all))]
}

// Merge adds o's values to c (the mergeable Misra–Gries summary of Agarwal
// et al.): counters are summed and reduced as in Add, and the error bounds
// add up, so that MaxError still bounds every count.
func (c *Categorical) Merge(o *Categorical) {
	if o.n == 0 {
		return
	}
	if c.counts == nil {
		c.counts = make(map[string]int64, len(o.counts))
	}
	if o.hll != nil {
		c.ensureHLL()
		c.hll.merge(o.hll)
	} else if c.hll != nil {
		for v := range o.counts {
			c.hll.add(v)
		}
	}
	for v, k := range o.counts {
		c.counts[v] += k
	}
	c.n += o.n
	c.dropped += o.dropped
	// Before reducing: without a sketch the merged counters are the exact
	// union, from which ensureHLL builds one.
	for len(c.counts) > counters {
		c.reduce()
	}
}

const categoricalFormat = 1

// MarshalBinary encodes the counters (in value order, so that equal states
// encode equally) and the distinct-count sketch.
func (c *Categorical) MarshalBinary() ([]byte, error) { return c.appendBinary(nil), nil }

func (c *Categorical) appendBinary(b []byte) []byte {
	b = append(b, categoricalFormat)
	b = binary.AppendUvarint(b, uint64(c.n))
	b = binary.AppendUvarint(b, uint64(c.dropped))
	keys := make([]string, 0, len(c.counts))
	for v := range c.counts {
		keys = append(keys, v)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, v := range keys {
		b = appendString(b, v)
		b = binary.AppendUvarint(b, uint64(c.counts[v]))
	}
	return appendBytes(b, c.hll)
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (c *Categorical) UnmarshalBinary(data []byte) error {
	d := &decoder{b: data}
	if err := c.decode(d); err != nil {
		return err
	}
	return d.done()
}

func (c *Categorical) decode(d *decoder) error {
	if f := d.byte(); d.err == nil && f != categoricalFormat {
		return fmt.Errorf("categorical statistics: unknown format %d", f)
	}
	n := Categorical{n: d.count(), dropped: d.count()}
	keys := d.uvarint()
	if keys > counters {
		return fmt.Errorf("categorical statistics: %d counters, at most %d", keys, counters)
	}
	n.counts = make(map[string]int64, keys)
	var sum int64
	for range keys {
		v, k := d.string(), d.count()
		if d.err != nil {
			break
		}
		n.counts[v] = k
		sum += k
	}
	if h := d.bytes(); len(h) > 0 {
		if len(h) != hllRegisters {
			return fmt.Errorf("categorical statistics: %d HyperLogLog registers, want %d", len(h), hllRegisters)
		}
		n.hll = hyperLogLog(slices.Clone(h))
	}
	if d.err != nil {
		return fmt.Errorf("categorical statistics: %w", d.err)
	}
	if sum < 0 || sum > n.n || len(n.counts) != int(keys) || n.hll == nil && (n.dropped != 0 || sum != n.n) {
		return fmt.Errorf("categorical statistics: inconsistent counters")
	}
	*c = n
	return nil
}

// hyperLogLog is a HyperLogLog sketch (Flajolet et al. 2007) with a 64-bit hash,
// which needs no large-range correction; small counts use linear counting.
type hyperLogLog []uint8

func (h hyperLogLog) add(v string) {
	x := hash64(v)
	i := x >> (64 - hllPrecision)
	rho := uint8(min(bits.LeadingZeros64(x<<hllPrecision), 64-hllPrecision) + 1)
	if rho > h[i] {
		h[i] = rho
	}
}

func (h hyperLogLog) merge(o hyperLogLog) {
	for i, r := range o {
		h[i] = max(h[i], r)
	}
}

func (h hyperLogLog) estimate() float64 {
	m := float64(len(h))
	var sum float64
	zeros := 0
	for _, r := range h {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	e := 0.7213 / (1 + 1.079/m) * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		return m * math.Log(m/float64(zeros))
	}
	return e
}

// hash64 is FNV-1a followed by MurmurHash3's finalizer, whose avalanche
// FNV lacks in the high bits that pick a register. It must not change:
// registers are stored.
func hash64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
