package abtest

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/mlnode/mlnode/appliance"
)

// DefaultSRMThreshold is the p-value below which a sample ratio mismatch is
// flagged. It is strict because the check runs at every look of every
// experiment: at 0.05 one healthy experiment in twenty would be flagged.
const DefaultSRMThreshold = 0.001

// SRM is the sample-ratio-mismatch check: whether the units per arm are
// consistent with the configured weights. A mismatch means assignment or
// exposure logging is broken (a redirect that loses users of one arm, a bot
// filter applied after assignment), and the experiment's effects are then
// not trustworthy whatever their p-values.
type SRM struct {
	ChiSquare Float   `json:"chi_square"`
	DF        int     `json:"df"`
	PValue    Float   `json:"p_value"`
	Threshold float64 `json:"threshold"`
	Mismatch  bool    `json:"mismatch"`
	Expected  []Float `json:"expected"` // units per arm expected from the weights
}

// SampleRatioMismatch runs Pearson's chi-square goodness-of-fit test of the
// units per arm against the weights (normalized to sum to 1), with one
// degree of freedom fewer than the arms with a positive weight. Units in an
// arm of weight 0 are a mismatch outright. Without any units the p-value is
// NaN and no mismatch is flagged.
func SampleRatioMismatch(units []int64, weights []float64, threshold float64) (SRM, error) {
	if len(units) != len(weights) {
		return SRM{}, appliance.Invalid("weights", "%d weights for %d arms", len(weights), len(units))
	}
	var total int64
	var wsum float64
	for i := range units {
		if units[i] < 0 {
			return SRM{}, appliance.Invalid("units", "negative units in arm %d", i)
		}
		if !(weights[i] >= 0) || math.IsInf(weights[i], 0) {
			return SRM{}, appliance.Invalid("weights", "weight of arm %d must be a finite number >= 0", i)
		}
		total += units[i]
		wsum += weights[i]
	}
	if !(wsum > 0) {
		return SRM{}, appliance.Invalid("weights", "weights must sum to a positive number")
	}
	s := SRM{Threshold: threshold, Expected: make([]Float, len(units))}
	var chi2 float64
	for i := range units {
		exp := float64(total) * weights[i] / wsum
		s.Expected[i] = Float(exp)
		switch {
		case weights[i] > 0:
			s.DF++
			d := float64(units[i]) - exp
			chi2 += d * d / exp
		case units[i] > 0:
			chi2 = math.Inf(1)
		}
	}
	s.DF--
	switch {
	case total == 0:
		s.ChiSquare, s.PValue = Float(math.NaN()), Float(math.NaN())
		s.DF = max(s.DF, 0)
		return s, nil
	case math.IsInf(chi2, 1):
		s.PValue = 0
	case s.DF == 0:
		s.PValue = 1 // one arm with weight: nothing to mismatch
	default:
		s.PValue = Float(distuv.ChiSquared{K: float64(s.DF)}.Survival(chi2))
	}
	s.ChiSquare = Float(chi2)
	s.Mismatch = float64(s.PValue) < threshold
	return s, nil
}
