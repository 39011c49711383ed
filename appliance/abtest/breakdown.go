package abtest

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Breakdown holds one metric's aggregates split by a unit attribute (country,
// device, an age band): per group, the moments of each arm.
type Breakdown struct {
	Attribute string  `json:"attribute"`
	Metric    string  `json:"metric"`
	Groups    []Group `json:"groups"`
}

// Group is one value of the attribute, with the moments of each arm by arm
// name.
type Group struct {
	Name string             `json:"name"`
	Arms map[string]Moments `json:"arms"`
}

// BreakdownResult is a treatment arm's effect on one metric in each group,
// and how much the effect differs between groups: a treatment that helps
// one group and hurts another, or helps one much more, shows here while the
// overall effect can look uniform.
type BreakdownResult struct {
	Attribute     string        `json:"attribute"`
	Metric        string        `json:"metric"`
	Arm           string        `json:"arm"`
	Groups        []GroupEffect `json:"groups"`
	Gap           *Gap          `json:"gap"` // nil with fewer than two estimable groups
	Heterogeneity Heterogeneity `json:"heterogeneity"`
}

// GroupEffect is the effect within one group. Intervals and the p-value are
// per group, not adjusted for the number of groups.
type GroupEffect struct {
	Group          string   `json:"group"`
	ControlUnits   int64    `json:"control_units"`
	TreatmentUnits int64    `json:"treatment_units"`
	Absolute       Float    `json:"absolute"`
	AbsoluteCI     Interval `json:"absolute_ci"`
	Relative       Float    `json:"relative"`
	RelativeCI     Interval `json:"relative_ci"`
	PValue         Float    `json:"p_value"` // of the absolute difference
	Note           string   `json:"note,omitempty"`
}

// Gap is the largest difference between the absolute effects of two groups.
// Its interval is Bonferroni-adjusted over all k(k−1)/2 pairs of groups,
// because the pair was picked for being the most extreme; without that
// adjustment the largest of many gaps would look significant by chance.
type Gap struct {
	High       string   `json:"high"` // group with the largest effect
	Low        string   `json:"low"`  // group with the smallest effect
	Difference Float    `json:"difference"`
	CI         Interval `json:"ci"`
}

// Heterogeneity is Cochran's Q test of the treatment × group interaction:
// whether the absolute effects of the groups differ by more than their
// standard errors explain. I2 is the share of the spread between groups
// that is not chance (Higgins & Thompson 2002).
type Heterogeneity struct {
	Q      Float `json:"q"`
	DF     int   `json:"df"`
	PValue Float `json:"p_value"`
	I2     Float `json:"i2"`
}

// AnalyzeBreakdown compares the treatment arm with control within each group
// of b. Differences between groups are measured on the absolute scale: a
// relative lift is undefined for a group whose control mean is 0, and lifts
// over different baselines are not comparable as gaps. o is completed with
// defaults.
func AnalyzeBreakdown(b Breakdown, control, treatment string, typ MetricType, o Options) BreakdownResult {
	o = o.withDefaults()
	r := BreakdownResult{Attribute: b.Attribute, Metric: b.Metric, Arm: treatment, Groups: make([]GroupEffect, len(b.Groups))}
	effects := make([]Effect, 0, len(b.Groups))
	names := make([]string, 0, len(b.Groups))
	for i, g := range b.Groups {
		c, t := g.Arms[control], g.Arms[treatment]
		ge := GroupEffect{Group: g.Name, ControlUnits: c.N, TreatmentUnits: t.N}
		abs, errA := EstimateEffect(c, t, typ, Absolute, !o.DisableCUPED)
		rel, _ := EstimateEffect(c, t, typ, Relative, !o.DisableCUPED)
		at, rt := o.infer(abs), o.infer(rel)
		ge.Absolute, ge.AbsoluteCI, ge.PValue = Float(abs.Estimate), at.CI, Float(at.PValue)
		ge.Relative, ge.RelativeCI = Float(rel.Estimate), rt.CI
		if errA != nil {
			ge.Note = errA.Error()
		} else {
			effects = append(effects, abs)
			names = append(names, g.Name)
		}
		r.Groups[i] = ge
	}
	r.Heterogeneity = CochranQ(effects)
	if len(effects) >= 2 && validAlpha(o.Alpha) {
		hi, lo := 0, 0
		for i, e := range effects {
			if e.Estimate > effects[hi].Estimate {
				hi = i
			}
			if e.Estimate < effects[lo].Estimate {
				lo = i
			}
		}
		k := float64(len(effects))
		pairs := k * (k - 1) / 2
		d := effects[hi].Estimate - effects[lo].Estimate
		se := math.Hypot(effects[hi].StdErr, effects[lo].StdErr)
		w := distuv.UnitNormal.Quantile(1-o.Alpha/(2*pairs)) * se
		r.Gap = &Gap{High: names[hi], Low: names[lo], Difference: Float(d), CI: Interval{d - w, d + w}}
	}
	return r
}

// CochranQ tests whether independent estimates of one effect differ by more
// than chance: Q = Σ wᵢ(dᵢ − d̄)², wᵢ = 1/SEᵢ², d̄ the weighted mean, is
// chi-square with k − 1 degrees of freedom when they do not. Fewer than two
// estimates give NaN.
func CochranQ(effects []Effect) Heterogeneity {
	nan := Float(math.NaN())
	h := Heterogeneity{Q: nan, DF: max(0, len(effects)-1), PValue: nan, I2: nan}
	if len(effects) < 2 {
		return h
	}
	var sw, swd float64
	for _, e := range effects {
		w := 1 / (e.StdErr * e.StdErr)
		sw += w
		swd += w * e.Estimate
	}
	mean := swd / sw
	var q float64
	for _, e := range effects {
		d := (e.Estimate - mean) / e.StdErr
		q += d * d
	}
	df := float64(h.DF)
	h.Q = Float(q)
	h.PValue = Float(distuv.ChiSquared{K: df}.Survival(q))
	h.I2 = 0
	if q > df {
		h.I2 = Float((q - df) / q)
	}
	return h
}
