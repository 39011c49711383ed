package appliance

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// ExperimentState is where an experiment is in its life: draft → running →
// stopped → concluded. A guardrail stops a running experiment too.
type ExperimentState string

const (
	ExperimentDraft     ExperimentState = "draft"
	ExperimentRunning   ExperimentState = "running"
	ExperimentStopped   ExperimentState = "stopped"
	ExperimentConcluded ExperimentState = "concluded"
)

// Metric types, directions and roles.
const (
	MetricBinomial = "binomial"
	MetricMean     = "mean"

	DirectionIncrease = "increase"
	DirectionDecrease = "decrease"

	RoleGoal      = "goal"
	RoleGuardrail = "guardrail"
)

// weightTolerance is how far arm weights may sum from 1.
const weightTolerance = 0.001

// Experiment compares versions of one model on live traffic. Units (users,
// devices: the value of the Unit attribute) are assigned to arms by
// GrowthBook-compatible hashing of Seed and the unit id, so an assignment
// is reproducible outside the node (docs/experiments.md).
type Experiment struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Model       string `json:"model"`
	// Unit names the request attribute (usually a join key) whose value is
	// the unit id, e.g. "user_id".
	Unit string `json:"unit"`
	// Seed of the hash; the experiment's name when empty. Changing it
	// reshuffles every unit, which is the only way to change arms or
	// weights of a running experiment.
	Seed     string   `json:"seed,omitempty"`
	Arms     []Arm    `json:"arms"`
	Coverage float64  `json:"coverage"` // share of units in the experiment, (0, 1]
	Layer    *Layer   `json:"layer,omitempty"`
	Metrics  []Metric `json:"metrics,omitempty"`
	Shadow   []Shadow `json:"shadow,omitempty"`
	// Conditions target units by attributes sent with predict; all must hold.
	Conditions []Condition `json:"conditions,omitempty"`
	// Force assigns named units to arms, for QA.
	Force map[string]string `json:"force,omitempty"`
	// Breakdowns are unit attributes the results are split by.
	Breakdowns []string    `json:"breakdowns,omitempty"`
	Guardrails *Guardrails `json:"guardrails,omitempty"`
	// Ramp rolls the experiment out gradually: coverage starts at the first
	// step and moves to the next every interval while guardrails hold (the
	// weights stay, so no unit changes arm); Coverage is then the current
	// step's.
	Ramp *Ramp `json:"ramp,omitempty"`
	// RampSteps records each step taken.
	RampSteps []RampStep `json:"ramp_steps,omitempty"`

	State        ExperimentState `json:"state"`
	StopReason   string          `json:"stop_reason,omitempty"`
	ConcludedArm string          `json:"concluded_arm,omitempty"`
	CreatedAt    time.Time       `json:"created_at"`
	CreatedBy    string          `json:"created_by,omitempty"`
	UpdatedAt    time.Time       `json:"updated_at"`
	StartedAt    *time.Time      `json:"started_at,omitempty"`
	// PhaseStartedAt is when the current assignment began: the first start,
	// or the last change of seed or arms. Exposures before it belong to an
	// earlier phase and are not counted.
	PhaseStartedAt *time.Time `json:"phase_started_at,omitempty"`
	StoppedAt      *time.Time `json:"stopped_at,omitempty"`
}

// Arm is one variation: a model version and its share of covered units.
type Arm struct {
	Name    string  `json:"name"`
	Version int     `json:"version"`
	Weight  float64 `json:"weight"`
}

// Layer makes experiments mutually exclusive, as GrowthBook namespaces: a
// unit is in the experiment only if its layer hash falls in [Start, End).
// Two running experiments of one layer may not overlap.
type Layer struct {
	Name  string  `json:"name"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// Metric is what the experiment measures from outcome events.
type Metric struct {
	Name      string `json:"name"`
	Type      string `json:"type"`      // binomial | mean
	Direction string `json:"direction"` // increase | decrease: which is better
	Role      string `json:"role"`      // goal | guardrail
	// Window counts only events within this long after the unit's first
	// exposure; 0 means no limit.
	Window Duration `json:"conversion_window,omitempty"`
	// Cap bounds each unit's value against outliers: an absolute cap, or
	// the value at a percentile of units (0 < p < 1) when CapPercentile is set.
	Cap           float64 `json:"cap,omitempty"`
	CapPercentile float64 `json:"cap_percentile,omitempty"`
}

// Shadow runs another version on a sample of requests, after the response.
type Shadow struct {
	Version int     `json:"version"`
	Percent float64 `json:"percent"` // (0, 100]
}

// Condition targets units by an attribute: op is eq, neq, in, nin, lt,
// lte, gt, gte or regex.
type Condition struct {
	Attribute string `json:"attribute"`
	Op        string `json:"op"`
	Value     any    `json:"value"`
}

// Guardrails stop an experiment whose arm is too slow or failing.
type Guardrails struct {
	MaxErrorRate    float64 `json:"max_error_rate,omitempty"`     // e.g. 0.01
	MaxP99LatencyMS float64 `json:"max_p99_latency_ms,omitempty"` // e.g. 50
}

// Ramp is a gradual rollout: coverages in increasing order, e.g. 0.01,
// 0.05, 0.25, 0.5, 1, and the time between steps.
type Ramp struct {
	Steps    []float64 `json:"steps"`
	Interval Duration  `json:"interval"`
}

// RampStep is one step a ramp took.
type RampStep struct {
	Step     int       `json:"step"`
	Coverage float64   `json:"coverage"`
	At       time.Time `json:"at"`
}

// ConditionOps are the targeting operators.
var ConditionOps = []string{"eq", "neq", "in", "nin", "lt", "lte", "gt", "gte", "regex"}

// HashSeed is the seed assignment hashes with.
func (e *Experiment) HashSeed() string {
	if e.Seed != "" {
		return e.Seed
	}
	return e.Name
}

// Phase identifies the current assignment: the phase's start in unix
// nanoseconds (0 before the first start). Counters and seen-sets key by it,
// so a new phase starts them afresh.
func (e *Experiment) Phase() int64 {
	if e.PhaseStartedAt == nil {
		return 0
	}
	return e.PhaseStartedAt.UnixNano()
}

// Arm returns the arm of that name.
func (e *Experiment) Arm(name string) *Arm {
	for i := range e.Arms {
		if e.Arms[i].Name == name {
			return &e.Arms[i]
		}
	}
	return nil
}

// Validate checks an experiment's definition on its own; the service checks
// it against the registry (versions exist, layers do not overlap).
func (e *Experiment) Validate() error {
	if err := ValidateName("name", e.Name); err != nil {
		return err
	}
	if err := ValidateModelName("model", e.Model); err != nil {
		return err
	}
	if e.Unit == "" {
		return Invalid("unit", "is required: the attribute whose value identifies a unit, e.g. user_id")
	}
	if len(e.Arms) < 2 {
		return Invalid("arms", "an experiment needs at least two arms (the first is the control)")
	}
	names, versions := map[string]bool{}, map[int]string{}
	sum := 0.0
	for i, a := range e.Arms {
		field := fmt.Sprintf("arms[%d]", i)
		if err := ValidateName(field+".name", a.Name); err != nil {
			return err
		}
		if names[a.Name] {
			return Invalid(field+".name", "%q is used by two arms", a.Name)
		}
		names[a.Name] = true
		if a.Version < 1 {
			return Invalid(field+".version", "must be a model version, 1 or more")
		}
		if other, dup := versions[a.Version]; dup {
			return Invalid(field+".version", "version %d is already arm %q: arms compare different versions", a.Version, other)
		}
		versions[a.Version] = a.Name
		if !(a.Weight > 0 && a.Weight <= 1) {
			return Invalid(field+".weight", "must be in (0, 1]")
		}
		sum += a.Weight
	}
	if math.Abs(sum-1) > weightTolerance {
		return Invalid("arms", "weights sum to %g; they must sum to 1 (± %g)", sum, weightTolerance)
	}
	if !(e.Coverage > 0 && e.Coverage <= 1) {
		return Invalid("coverage", "must be in (0, 1]")
	}
	if l := e.Layer; l != nil {
		if err := ValidateName("layer.name", l.Name); err != nil {
			return err
		}
		if !(l.Start >= 0 && l.Start < l.End && l.End <= 1) {
			return Invalid("layer", "start and end must satisfy 0 <= start < end <= 1")
		}
	}
	metrics := map[string]bool{}
	for i, m := range e.Metrics {
		field := fmt.Sprintf("metrics[%d]", i)
		if err := ValidateName(field+".name", m.Name); err != nil {
			return err
		}
		if metrics[m.Name] {
			return Invalid(field+".name", "metric %q is listed twice", m.Name)
		}
		metrics[m.Name] = true
		if m.Type != MetricBinomial && m.Type != MetricMean {
			return Invalid(field+".type", "%q is not binomial or mean", m.Type)
		}
		if m.Direction != DirectionIncrease && m.Direction != DirectionDecrease {
			return Invalid(field+".direction", "%q is not increase or decrease", m.Direction)
		}
		if m.Role != RoleGoal && m.Role != RoleGuardrail {
			return Invalid(field+".role", "%q is not goal or guardrail", m.Role)
		}
		if m.Window < 0 {
			return Invalid(field+".conversion_window", "must not be negative")
		}
		if m.Cap < 0 {
			return Invalid(field+".cap", "must not be negative")
		}
		if m.CapPercentile != 0 {
			switch {
			case m.CapPercentile <= 0 || m.CapPercentile >= 1:
				return Invalid(field+".cap_percentile", "must be in (0, 1), e.g. 0.99")
			case m.Cap > 0:
				return Invalid(field+".cap_percentile", "give an absolute cap or a percentile cap, not both")
			case m.Type != MetricMean:
				return Invalid(field+".cap_percentile", "only a mean metric is capped; a binomial one is 0 or 1")
			}
		}
	}
	for i, s := range e.Shadow {
		field := fmt.Sprintf("shadow[%d]", i)
		if s.Version < 1 {
			return Invalid(field+".version", "must be a model version, 1 or more")
		}
		if arm, ok := versions[s.Version]; ok {
			return Invalid(field+".version", "version %d is arm %q; a shadow is a version that serves no traffic", s.Version, arm)
		}
		if !(s.Percent > 0 && s.Percent <= 100) {
			return Invalid(field+".percent", "must be in (0, 100]")
		}
	}
	for i, c := range e.Conditions {
		field := fmt.Sprintf("conditions[%d]", i)
		if c.Attribute == "" {
			return Invalid(field+".attribute", "is required")
		}
		known := false
		for _, op := range ConditionOps {
			known = known || op == c.Op
		}
		if !known {
			return Invalid(field+".op", "%q is not one of %v", c.Op, ConditionOps)
		}
	}
	for unit, arm := range e.Force {
		if !names[arm] {
			return Invalid("force."+unit, "arm %q does not exist", arm)
		}
	}
	if r := e.Ramp; r != nil {
		if len(r.Steps) < 2 {
			return Invalid("ramp.steps", "a ramp needs at least two coverages")
		}
		for i, c := range r.Steps {
			if !(c > 0 && c <= 1) || i > 0 && c <= r.Steps[i-1] {
				return Invalid(fmt.Sprintf("ramp.steps[%d]", i), "coverages must increase, each in (0, 1]")
			}
		}
		if time.Duration(r.Interval) < time.Minute {
			return Invalid("ramp.interval", "must be at least 1m")
		}
	}
	if g := e.Guardrails; g != nil && (g.MaxErrorRate < 0 || g.MaxErrorRate > 1 || g.MaxP99LatencyMS < 0) {
		return Invalid("guardrails", "max_error_rate must be in [0, 1] and max_p99_latency_ms not negative")
	}
	return nil
}

// MovesUnits reports whether changing e into next would move units that
// are already assigned: a different seed, arms, weights or layer. Raising
// coverage does not (GrowthBook's bucket ranges keep assigned units);
// lowering it drops units out, which counts.
func (e *Experiment) MovesUnits(next *Experiment) bool {
	if e.HashSeed() != next.HashSeed() || len(e.Arms) != len(next.Arms) || next.Coverage < e.Coverage {
		return true
	}
	for i := range e.Arms {
		if e.Arms[i] != next.Arms[i] {
			return true
		}
	}
	if (e.Layer == nil) != (next.Layer == nil) || e.Layer != nil && *e.Layer != *next.Layer {
		return true
	}
	return !maps.Equal(e.Force, next.Force) // a forced unit moves arm
}

// SameMetrics reports whether two definitions measure the same way: the
// aggregates of one cannot serve the other, so a change needs a new phase.
func (e *Experiment) SameMetrics(next *Experiment) bool {
	return slices.Equal(e.Metrics, next.Metrics) && slices.Equal(e.Breakdowns, next.Breakdowns)
}

// Overlaps reports whether two layer ranges share any unit.
func (l *Layer) Overlaps(o *Layer) bool {
	return l.Name == o.Name && l.Start < o.End && o.Start < l.End
}

// ExperimentStore keeps experiments. Every change is audited in the same
// transaction.
type ExperimentStore interface {
	// CreateExperiment stores a new experiment; ECONFLICT if the name exists.
	CreateExperiment(ctx context.Context, e *Experiment) error
	// UpdateExperiment replaces an experiment with what change returns.
	// change runs inside the write, on a copy of the stored experiment and
	// the others (to check layers), so checks and write are atomic; it may
	// run more than once and must have no other effects. action names the
	// change in the audit log.
	UpdateExperiment(ctx context.Context, name, action string, change func(cur *Experiment, others []*Experiment) (*Experiment, error)) (*Experiment, error)
	Experiment(ctx context.Context, name string) (*Experiment, error)
	Experiments(ctx context.Context) ([]*Experiment, error)
}

// Route is where an experiment sends one unit.
type Route struct {
	Experiment *Experiment
	Arm        *Arm
	Unit       string
}

// UnitSource finds a unit attribute's value in a request.
type UnitSource interface {
	UnitOf(attribute string) (string, bool)
}

// ExperimentRouter finds the running experiment a unit of a model is in.
// units looks up the experiment's unit attribute in the request; false
// means no experiment takes the unit (it gets the production alias). The
// route is a value: predict keeps it on its stack.
type ExperimentRouter interface {
	Route(ctx context.Context, model string, units UnitSource, attrs map[string]any) (Route, bool, error)
	// Invalidate drops what the router cached: an experiment changed.
	Invalidate()
	// Check compiles a definition as routing will, so that targeting it
	// cannot evaluate (a bad regex, a scalar for "in") is refused when
	// stored, not silently failed for every unit.
	Check(e *Experiment) error
}
