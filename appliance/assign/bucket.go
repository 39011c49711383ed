package assign

// Range is the part [Start, End) of the unit interval whose units get one
// variation.
type Range struct {
	Start, End float64
}

// BucketRanges lays variations side by side on [0, 1), as the SDK's
// getBucketRanges: variation i owns [w0+…+w(i-1), that + coverage·wi).
// Each range starts where it would at full coverage and only its end moves
// with coverage, so raising coverage adds units without moving any that
// were already in.
//
// Like the SDK, it clamps coverage to [0, 1] and falls back to equal
// weights when weights is nil, has a length other than numVariations, or
// sums to outside [0.99, 1.01]. mlnode's API refuses such weights before
// they get here; the fallback stays for definitions written for the SDK.
func BucketRanges(numVariations int, coverage float64, weights []float64) []Range {
	if coverage < 0 {
		coverage = 0
	} else if coverage > 1 {
		coverage = 1
	}
	if len(weights) != numVariations {
		weights = equalWeights(numVariations)
	}
	total := 0.0
	for _, w := range weights {
		total += w
	}
	if total < 0.99 || total > 1.01 {
		weights = equalWeights(numVariations)
	}
	ranges := make([]Range, len(weights))
	cumulative := 0.0
	for i, w := range weights {
		start := cumulative
		cumulative += w
		ranges[i] = Range{start, start + coverage*w}
	}
	return ranges
}

// equalWeights is the SDK's getEqualWeights: n copies of 1/n.
func equalWeights(n int) []float64 {
	if n <= 0 {
		return nil
	}
	w := make([]float64, n)
	for i := range w {
		w[i] = 1 / float64(n)
	}
	return w
}

// ChooseVariation returns the index of the first range holding n, or -1
// when n falls in none (the unit is outside coverage).
func ChooseVariation(n float64, ranges []Range) int {
	for i, r := range ranges {
		if n >= r.Start && n < r.End {
			return i
		}
	}
	return -1
}
