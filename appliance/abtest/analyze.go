package abtest

import (
	"errors"
	"fmt"
	"math"

	"github.com/mlnode/mlnode/appliance"
)

// Role says what a metric is for.
type Role string

const (
	// Goal metrics decide the experiment; their p-values are adjusted for
	// multiple comparisons.
	Goal Role = "goal"
	// Guardrail metrics must not get worse; see GuardrailBreached.
	Guardrail Role = "guardrail"
)

// Verdict is the reading of a comparison given the metric's direction.
type Verdict string

const (
	Better       Verdict = "better"
	Worse        Verdict = "worse"
	Inconclusive Verdict = "inconclusive"
)

// MetricSpec describes a metric. Direction defaults to Increase and Role to
// Goal.
type MetricSpec struct {
	Name      string     `json:"name"`
	Type      MetricType `json:"type"`
	Direction Direction  `json:"direction,omitempty"`
	Role      Role       `json:"role,omitempty"`
}

// Arm is one arm of the experiment with its configured traffic weight and
// the moments of each metric by metric name. Units is the number of units
// exposed; 0 means the largest N among the arm's metrics (equal to every N
// when every exposed unit counts in every metric, as it should).
type Arm struct {
	Name    string             `json:"name"`
	Weight  float64            `json:"weight"`
	Units   int64              `json:"units,omitempty"`
	Metrics map[string]Moments `json:"metrics"`
}

// Options configure an analysis. The zero value is GrowthBook's defaults
// plus Holm's correction; see withDefaults.
type Options struct {
	// Alpha is the significance level; 0 means DefaultAlpha.
	Alpha float64 `json:"alpha"`
	// Scale is the scale of the p-value, significance and the Bayesian
	// numbers; "" means Relative. Intervals are given on both scales.
	Scale Scale `json:"scale"`
	// Sequential makes intervals and p-values always valid, so that the
	// results may be looked at any number of times.
	Sequential bool `json:"sequential"`
	// SequentialTuning is N*; 0 means DefaultSequentialTuning.
	SequentialTuning float64 `json:"sequential_tuning"`
	// Correction applies to goal metrics; "" means CorrectionHolm, which
	// costs nothing with one goal and one treatment and protects against
	// fishing when there are more.
	Correction Correction `json:"correction"`
	// DisableCUPED ignores covariate sums. CUPED is on by default because a
	// covariate is only accumulated to be used.
	DisableCUPED bool `json:"disable_cuped,omitempty"`
	// SRMThreshold is the p-value below which the sample ratio is flagged;
	// 0 means DefaultSRMThreshold.
	SRMThreshold float64 `json:"srm_threshold"`
}

func (o Options) withDefaults() Options {
	if o.Alpha == 0 {
		o.Alpha = DefaultAlpha
	}
	if o.Scale == "" {
		o.Scale = Relative
	}
	if o.SequentialTuning == 0 {
		o.SequentialTuning = DefaultSequentialTuning
	}
	if o.Correction == "" {
		o.Correction = CorrectionHolm
	}
	if o.SRMThreshold == 0 {
		o.SRMThreshold = DefaultSRMThreshold
	}
	return o
}

// Validate reports the first option out of its range, after defaults.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case !(o.Alpha > 0 && o.Alpha < 1):
		return appliance.Invalid("options.alpha", "must be between 0 and 1, got %g", o.Alpha)
	case o.Scale != Relative && o.Scale != Absolute:
		return appliance.Invalid("options.scale", "unknown scale %q: want relative or absolute", o.Scale)
	case !(o.SequentialTuning > 0) || math.IsInf(o.SequentialTuning, 0):
		return appliance.Invalid("options.sequential_tuning", "must be a positive number of units, got %g", o.SequentialTuning)
	case o.Correction != CorrectionNone && o.Correction != CorrectionHolm && o.Correction != CorrectionBH:
		return appliance.Invalid("options.correction", "unknown correction %q: want none, holm or benjamini-hochberg", o.Correction)
	case !(o.SRMThreshold > 0 && o.SRMThreshold < 1):
		return appliance.Invalid("options.srm_threshold", "must be between 0 and 1, got %g", o.SRMThreshold)
	}
	return nil
}

// infer runs the configured frequentist test.
func (o Options) infer(e Effect) Test {
	if o.Sequential {
		return Sequential(e, o.Alpha, o.SequentialTuning)
	}
	return FixedHorizon(e, o.Alpha)
}

// Input is everything an analysis needs. Control names the control arm;
// "" means the first arm.
type Input struct {
	Arms       []Arm        `json:"arms"`
	Control    string       `json:"control,omitempty"`
	Metrics    []MetricSpec `json:"metrics"`
	Breakdowns []Breakdown  `json:"breakdowns,omitempty"`
	Options    Options      `json:"options"`
}

// Result is an analysis, ready to encode as JSON: undefined numbers are
// null.
type Result struct {
	Control     string            `json:"control"`
	Options     Options           `json:"options"` // with defaults filled in
	Arms        []ArmResult       `json:"arms"`
	Comparisons []Comparison      `json:"comparisons"` // by metric, then by treatment arm
	SRM         SRM               `json:"srm"`
	Breakdowns  []BreakdownResult `json:"breakdowns,omitempty"`
}

// ArmResult describes one arm's data.
type ArmResult struct {
	Name    string      `json:"name"`
	Weight  float64     `json:"weight"`
	Units   int64       `json:"units"`
	Metrics []ArmMetric `json:"metrics"` // in the order of Input.Metrics
}

// ArmMetric is one metric in one arm, unadjusted. Variance is the one the
// tests use: the sample variance, or p(1−p) for a binomial metric.
type ArmMetric struct {
	Metric   string `json:"metric"`
	N        int64  `json:"n"`
	Mean     Float  `json:"mean"`
	Variance Float  `json:"variance"`
}

// Comparison is one treatment arm against control on one metric.
//
// Scale is the scale of StdErr, DF, the p-values, AlwaysValidCI and the
// Bayesian numbers: the configured one, or Absolute when the relative lift
// is undefined. The intervals follow the configured method (fixed horizon
// or sequential); AlwaysValidCI is the sequential one whatever the method,
// for guardrails. Risks are expected losses in units of the Scale (a
// fraction for Relative).
type Comparison struct {
	Metric              string    `json:"metric"`
	Arm                 string    `json:"arm"`
	Role                Role      `json:"role"`
	Direction           Direction `json:"direction"`
	Scale               Scale     `json:"scale"`
	Absolute            Float     `json:"absolute"`
	AbsoluteCI          Interval  `json:"absolute_ci"`
	Relative            Float     `json:"relative"`
	RelativeCI          Interval  `json:"relative_ci"`
	StdErr              Float     `json:"std_err"`
	DF                  Float     `json:"df"` // null for a z test
	PValue              Float     `json:"p_value"`
	AdjustedPValue      Float     `json:"adjusted_p_value"`
	AlwaysValidCI       Interval  `json:"always_valid_ci"`
	ChanceToBeatControl Float     `json:"chance_to_beat_control"`
	RiskControl         Float     `json:"risk_control"`
	RiskTreatment       Float     `json:"risk_treatment"`
	Significant         bool      `json:"significant"`
	Verdict             Verdict   `json:"verdict"`
	CUPEDTheta          Float     `json:"cuped_theta,omitempty"`
	VarianceReduction   Float     `json:"variance_reduction,omitempty"` // 1 − Var(adjusted)/Var(unadjusted) of the absolute difference
	Note                string    `json:"note,omitempty"`
}

// GuardrailBreached reports whether c is a guardrail that is significantly
// worse in the treatment arm under the always-valid interval. Using the
// sequential interval whatever the analysis method means the check may run
// at every look without inflating false alarms, so a breach can stop an
// experiment early.
func GuardrailBreached(c Comparison) bool {
	if c.Role != Guardrail {
		return false
	}
	if c.Direction == Decrease {
		return c.AlwaysValidCI.Low > 0
	}
	return c.AlwaysValidCI.High < 0
}

// BreachedGuardrails returns the comparisons of r for which
// GuardrailBreached is true.
func (r *Result) BreachedGuardrails() []Comparison {
	var out []Comparison
	for _, c := range r.Comparisons {
		if GuardrailBreached(c) {
			out = append(out, c)
		}
	}
	return out
}

// Analyze computes every statistic of an experiment. It fails only on
// invalid input, with an *appliance.Error naming the field; a statistic
// that the data cannot support is null with a note.
func Analyze(in Input) (*Result, error) {
	if err := validate(in); err != nil {
		return nil, err
	}
	o := in.Options.withDefaults()
	control := in.Control
	if control == "" {
		control = in.Arms[0].Name
	}
	var ctl Arm
	for _, a := range in.Arms {
		if a.Name == control {
			ctl = a
		}
	}

	r := &Result{Control: control, Options: o, Arms: make([]ArmResult, len(in.Arms))}
	units := make([]int64, len(in.Arms))
	weights := make([]float64, len(in.Arms))
	for i, a := range in.Arms {
		ar := ArmResult{Name: a.Name, Weight: a.Weight, Units: armUnits(a), Metrics: make([]ArmMetric, len(in.Metrics))}
		for j, m := range in.Metrics {
			mo := a.Metrics[m.Name]
			v := mo.Variance()
			if m.Type == BinomialMetric {
				v = popVar(mo.N, mo.Sum, mo.Sum)
			}
			ar.Metrics[j] = ArmMetric{Metric: m.Name, N: mo.N, Mean: Float(mo.Mean()), Variance: Float(v)}
		}
		r.Arms[i] = ar
		units[i], weights[i] = ar.Units, a.Weight
	}
	srm, err := SampleRatioMismatch(units, weights, o.SRMThreshold)
	if err != nil {
		return nil, err
	}
	r.SRM = srm

	r.Comparisons = make([]Comparison, 0, len(in.Metrics)*(len(in.Arms)-1))
	for _, m := range in.Metrics {
		m = m.withDefaults()
		for _, a := range in.Arms {
			if a.Name == control {
				continue
			}
			r.Comparisons = append(r.Comparisons, compare(ctl.Metrics[m.Name], a.Metrics[m.Name], m, a.Name, o))
		}
	}
	adjust(r.Comparisons, o)

	for _, b := range in.Breakdowns {
		typ := MeanMetric
		for _, m := range in.Metrics {
			if m.Name == b.Metric {
				typ = m.Type
			}
		}
		for _, a := range in.Arms {
			if a.Name != control {
				r.Breakdowns = append(r.Breakdowns, AnalyzeBreakdown(b, control, a.Name, typ, o))
			}
		}
	}
	return r, nil
}

func (m MetricSpec) withDefaults() MetricSpec {
	if m.Direction == "" {
		m.Direction = Increase
	}
	if m.Role == "" {
		m.Role = Goal
	}
	return m
}

func armUnits(a Arm) int64 {
	if a.Units > 0 {
		return a.Units
	}
	var n int64
	for _, m := range a.Metrics {
		n = max(n, m.N)
	}
	return n
}

// compare fills everything of a comparison but the adjusted p-value and
// what depends on it.
func compare(ctl, trt Moments, m MetricSpec, arm string, o Options) Comparison {
	c := Comparison{Metric: m.Name, Arm: arm, Role: m.Role, Direction: m.Direction, Scale: o.Scale}
	cuped := !o.DisableCUPED
	abs, errA := EstimateEffect(ctl, trt, m.Type, Absolute, cuped)
	rel, errR := EstimateEffect(ctl, trt, m.Type, Relative, cuped)
	at, rt := o.infer(abs), o.infer(rel)
	c.Absolute, c.AbsoluteCI = Float(abs.Estimate), at.CI
	c.Relative, c.RelativeCI = Float(rel.Estimate), rt.CI

	e, t, err := rel, rt, errR
	if errors.Is(errR, ErrZeroBaseline) {
		c.Note = ErrZeroBaseline.Error()
		if o.Scale == Relative {
			c.Note += "; tested on the absolute scale"
		}
		c.Scale = Absolute
	}
	if c.Scale == Absolute {
		e, t, err = abs, at, errA
	}
	if err != nil {
		c.Note = joinNote(c.Note, err.Error())
	}
	c.StdErr, c.DF, c.PValue = Float(e.StdErr), Float(e.DF), Float(t.PValue)
	c.AlwaysValidCI = Sequential(e, o.Alpha, o.SequentialTuning).CI
	post := Bayesian(e, Prior{}, o.Alpha, m.Direction)
	c.ChanceToBeatControl, c.RiskControl, c.RiskTreatment = Float(post.ChanceToWin), Float(post.RiskControl), Float(post.RiskTreatment)

	if abs.Theta != 0 && errA == nil {
		c.CUPEDTheta = Float(abs.Theta)
		if raw, err := EstimateEffect(ctl, trt, m.Type, Absolute, false); err == nil {
			c.VarianceReduction = Float(1 - (abs.StdErr*abs.StdErr)/(raw.StdErr*raw.StdErr))
		}
	}
	return c
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// adjust corrects the p-values of goal metrics as one family (every goal
// metric × treatment arm), then decides significance and the verdict.
func adjust(cs []Comparison, o Options) {
	var idx []int
	var ps []float64
	for i, c := range cs {
		cs[i].AdjustedPValue = c.PValue
		if c.Role == Goal {
			idx = append(idx, i)
			ps = append(ps, float64(c.PValue))
		}
	}
	for k, p := range o.Correction.Adjust(ps) {
		cs[idx[k]].AdjustedPValue = Float(p)
	}
	for i := range cs {
		c := &cs[i]
		c.Verdict = Inconclusive
		c.Significant = float64(c.AdjustedPValue) <= o.Alpha
		if !c.Significant {
			continue
		}
		est := c.Relative
		if c.Scale == Absolute {
			est = c.Absolute
		}
		up := est > 0
		if up == (c.Direction == Increase) {
			c.Verdict = Better
		} else {
			c.Verdict = Worse
		}
	}
}

// validate checks the input's shape; the statistics handle any values the
// data can take.
func validate(in Input) error {
	if err := in.Options.Validate(); err != nil {
		return err
	}
	if len(in.Arms) < 2 {
		return appliance.Invalid("arms", "an experiment needs at least 2 arms, got %d", len(in.Arms))
	}
	if len(in.Metrics) == 0 {
		return appliance.Invalid("metrics", "at least one metric is required")
	}
	metrics := make(map[string]MetricSpec, len(in.Metrics))
	for i, m := range in.Metrics {
		f := fmt.Sprintf("metrics[%d]", i)
		m = m.withDefaults()
		switch {
		case m.Name == "":
			return appliance.Invalid(f+".name", "required")
		case metrics[m.Name].Name != "":
			return appliance.Invalid(f+".name", "duplicate metric %q", m.Name)
		case m.Type != BinomialMetric && m.Type != MeanMetric:
			return appliance.Invalid(f+".type", "unknown metric type %q: want binomial or mean", m.Type)
		case m.Direction != Increase && m.Direction != Decrease:
			return appliance.Invalid(f+".direction", "unknown direction %q: want increase or decrease", m.Direction)
		case m.Role != Goal && m.Role != Guardrail:
			return appliance.Invalid(f+".role", "unknown role %q: want goal or guardrail", m.Role)
		}
		metrics[m.Name] = m
	}
	arms := make(map[string]bool, len(in.Arms))
	for i, a := range in.Arms {
		f := fmt.Sprintf("arms[%d]", i)
		switch {
		case a.Name == "":
			return appliance.Invalid(f+".name", "required")
		case arms[a.Name]:
			return appliance.Invalid(f+".name", "duplicate arm %q", a.Name)
		case !(a.Weight >= 0) || math.IsInf(a.Weight, 0):
			return appliance.Invalid(f+".weight", "must be a finite number >= 0, got %g", a.Weight)
		case a.Units < 0:
			return appliance.Invalid(f+".units", "must be >= 0, got %d", a.Units)
		}
		arms[a.Name] = true
		for _, m := range in.Metrics {
			mo, ok := a.Metrics[m.Name]
			mf := fmt.Sprintf("%s.metrics[%q]", f, m.Name)
			if !ok {
				return appliance.Invalid(mf, "missing: every arm needs every metric")
			}
			if err := validateMoments(mo, m.Type, mf); err != nil {
				return err
			}
			if a.Units > 0 && mo.N > a.Units {
				return appliance.Invalid(mf+".n", "%d exceeds the arm's %d units", mo.N, a.Units)
			}
		}
	}
	if in.Control != "" && !arms[in.Control] {
		return appliance.Invalid("control", "no arm named %q", in.Control)
	}
	for i, b := range in.Breakdowns {
		f := fmt.Sprintf("breakdowns[%d]", i)
		m, ok := metrics[b.Metric]
		if !ok {
			return appliance.Invalid(f+".metric", "unknown metric %q", b.Metric)
		}
		for j, g := range b.Groups {
			gf := fmt.Sprintf("%s.groups[%d]", f, j)
			if g.Name == "" {
				return appliance.Invalid(gf+".name", "required")
			}
			for arm, mo := range g.Arms {
				if !arms[arm] {
					return appliance.Invalid(gf+".arms", "no arm named %q", arm)
				}
				if err := validateMoments(mo, m.Type, fmt.Sprintf("%s.arms[%q]", gf, arm)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func validateMoments(m Moments, typ MetricType, field string) error {
	for _, v := range []float64{m.Sum, m.SumSq, m.SumX, m.SumXSq, m.SumXY} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return appliance.Invalid(field, "sums must be finite")
		}
	}
	switch {
	case m.N < 0:
		return appliance.Invalid(field+".n", "must be >= 0, got %d", m.N)
	case m.SumSq < 0 || m.SumXSq < 0:
		return appliance.Invalid(field, "sums of squares must be >= 0")
	case typ == BinomialMetric && (m.Sum < 0 || m.Sum > float64(m.N)):
		return appliance.Invalid(field+".sum", "a binomial sum counts units: must be between 0 and n=%d, got %g", m.N, m.Sum)
	}
	return nil
}
