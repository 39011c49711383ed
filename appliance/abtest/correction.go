package abtest

import (
	"math"
	"slices"
)

// Correction is a method of adjusting p-values for testing several
// hypotheses at once.
type Correction string

const (
	// CorrectionNone leaves p-values as they are.
	CorrectionNone Correction = "none"
	// CorrectionHolm controls the family-wise error rate: the chance of any
	// false positive among the goal metrics stays below alpha.
	CorrectionHolm Correction = "holm"
	// CorrectionBH controls the false discovery rate: the expected share of
	// false positives among the significant goal metrics stays below alpha.
	CorrectionBH Correction = "benjamini-hochberg"
)

// Adjust returns the p-values adjusted by c. NaN p-values (tests that
// could not be run) are not part of the family and stay NaN.
func (c Correction) Adjust(p []float64) []float64 {
	switch c {
	case CorrectionHolm:
		return HolmBonferroni(p)
	case CorrectionBH:
		return BenjaminiHochberg(p)
	default:
		return slices.Clone(p)
	}
}

// HolmBonferroni returns Holm's (1979) step-down adjusted p-values: the
// i-th smallest of m is multiplied by m − i + 1, and each adjusted value is
// at least the one before, so that rejecting every adjusted p ≤ α is
// Holm's procedure. NaN entries are left out of m and stay NaN.
func HolmBonferroni(p []float64) []float64 {
	order, adj := rank(p)
	m := len(order)
	running := 0.0
	for i, k := range order {
		running = max(running, min(1, float64(m-i)*p[k]))
		adj[k] = running
	}
	return adj
}

// BenjaminiHochberg returns the Benjamini–Hochberg (1995) step-up adjusted
// p-values (q-values): the i-th smallest of m is multiplied by m/i, and
// each adjusted value is at most the one after. NaN entries are left out
// of m and stay NaN.
func BenjaminiHochberg(p []float64) []float64 {
	order, adj := rank(p)
	m := len(order)
	running := 1.0
	for i := m - 1; i >= 0; i-- {
		k := order[i]
		running = min(running, float64(m)/float64(i+1)*p[k])
		adj[k] = running
	}
	return adj
}

// rank returns the indexes of the non-NaN p-values in ascending order of
// p, and a result slice pre-filled with NaN.
func rank(p []float64) (order []int, adj []float64) {
	adj = make([]float64, len(p))
	for i, v := range p {
		adj[i] = math.NaN()
		if !math.IsNaN(v) {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case p[a] < p[b]:
			return -1
		case p[a] > p[b]:
			return 1
		}
		return 0
	})
	return order, adj
}
