package assign

import (
	"fmt"
	"maps"
	"slices"

	"github.com/mlnode/mlnode/appliance"
)

// NotHashed is the hash value Assign reports when it decided without
// hashing the unit: a forced unit, an empty unit id, or a unit kept out by
// its namespace or a condition.
const NotHashed = -1.0

// Experiment is what assignment needs of an experiment. Variation i has
// weight Weights[i], so there are len(Weights) variations; variation 0 is
// the control, which units outside the experiment get.
type Experiment struct {
	Key string
	// Seed of the hash; Key when empty.
	Seed string
	// HashVersion is 1 or 2; 0 means 1, as in the SDK.
	HashVersion int
	Weights     []float64
	// Coverage is the share of units in the experiment, in [0, 1]; 0 lets
	// none in (see the package Caveats).
	Coverage  float64
	Namespace *Namespace
	// Conditions must all hold for a unit to enter.
	Conditions []Rule
	// Force assigns units by id to a variation, before anything else is
	// checked: for QA.
	Force map[string]int
}

// Compiled is an experiment validated and ready to assign units: its bucket
// ranges and patterns computed once. It is immutable and safe for
// concurrent use.
type Compiled struct {
	seed          string
	hashVersion   int
	numVariations int
	ranges        []Range
	namespace     *Namespace
	conditions    []matcher
	force         map[string]int
}

// Compile validates e and precomputes what Assign needs. It refuses, with
// an EINVALID error naming the field, what the SDK would silently treat as
// "nobody is in" — fewer than two variations, an unknown hash version, a
// forced variation out of range — and weights or coverage that are not
// finite, negative weights, and a namespace outside [0, 1]. Weights that
// do not sum to about 1 fall back to equal weights and coverage is clamped
// to [0, 1], as in the SDK.
func Compile(e *Experiment) (*Compiled, error) {
	if e.Key == "" {
		return nil, appliance.Invalid("key", "is required")
	}
	if e.HashVersion < 0 || e.HashVersion > 2 {
		return nil, appliance.Invalid("hash_version", "%d is not 1 or 2", e.HashVersion)
	}
	if len(e.Weights) < 2 {
		return nil, appliance.Invalid("weights", "an experiment needs at least two variations")
	}
	if err := validateWeights(e.Weights, e.Coverage); err != nil {
		return nil, err
	}
	if ns := e.Namespace; ns != nil {
		if ns.ID == "" {
			return nil, appliance.Invalid("namespace.id", "is required")
		}
		if !(ns.Start >= 0 && ns.Start <= ns.End && ns.End <= 1) {
			return nil, appliance.Invalid("namespace", "start and end must satisfy 0 <= start <= end <= 1")
		}
	}
	for i, r := range e.Conditions {
		if err := r.validate(fmt.Sprintf("conditions[%d].", i)); err != nil {
			return nil, err
		}
	}
	for unit, v := range e.Force {
		if unit == "" {
			return nil, appliance.Invalid("force", "a forced unit id must not be empty")
		}
		if v < 0 || v >= len(e.Weights) {
			return nil, appliance.Invalid("force."+unit, "variation %d does not exist: there are %d", v, len(e.Weights))
		}
	}
	c := compile(e, len(e.Weights))
	c.force = maps.Clone(e.Force)
	return c, nil
}

func validateWeights(weights []float64, coverage float64) error {
	for i, w := range weights {
		if !(w >= 0) || !isFinite(w) {
			return appliance.Invalid(fmt.Sprintf("weights[%d]", i), "must be a finite number, 0 or more")
		}
	}
	if !isFinite(coverage) {
		return appliance.Invalid("coverage", "must be a finite number in [0, 1]")
	}
	return nil
}

// compile builds a Compiled from e as it is, with the SDK's fallbacks, and
// shares e.Force.
func compile(e *Experiment, numVariations int) *Compiled {
	c := &Compiled{
		seed:          e.Seed,
		hashVersion:   e.HashVersion,
		numVariations: numVariations,
		ranges:        BucketRanges(numVariations, e.Coverage, e.Weights),
		force:         e.Force,
	}
	if c.seed == "" {
		c.seed = e.Key
	}
	if c.hashVersion == 0 {
		c.hashVersion = 1
	}
	if e.Namespace != nil {
		ns := *e.Namespace
		c.namespace = &ns
	}
	c.conditions = make([]matcher, len(e.Conditions))
	for i, r := range e.Conditions {
		c.conditions[i] = newMatcher(r)
	}
	return c
}

// Ranges returns the experiment's bucket ranges.
func (c *Compiled) Ranges() []Range {
	return slices.Clone(c.ranges)
}

// Assign decides the unit's variation, in the order of the SDK's run():
// a forced unit gets its variation; a unit with an empty id, outside the
// namespace or failing a condition is not in the experiment; otherwise the
// unit's hash picks the range it falls in, or none when it is outside
// coverage. A unit not in the experiment gets variation 0, the control.
// hashValue is the unit's hash, or NotHashed when it was not computed.
func (c *Compiled) Assign(unitID string, attrs map[string]any) (variation int, inExperiment bool, hashValue float64) {
	if c.numVariations < 2 {
		return 0, false, NotHashed
	}
	if v, ok := c.force[unitID]; ok {
		if v < 0 || v >= c.numVariations {
			return 0, false, NotHashed
		}
		return v, true, NotHashed
	}
	if unitID == "" {
		return 0, false, NotHashed
	}
	// The SDK checks the namespace before conditions; both only exclude, so
	// the order changes no outcome, only the cost.
	if c.namespace != nil && !InNamespace(unitID, *c.namespace) {
		return 0, false, NotHashed
	}
	if !matchAll(c.conditions, attrs) {
		return 0, false, NotHashed
	}
	n, ok := Hash(c.seed, unitID, c.hashVersion)
	if !ok {
		return 0, false, NotHashed
	}
	v := ChooseVariation(n, c.ranges)
	if v < 0 {
		return 0, false, n
	}
	return v, true, n
}

// Assign decides as Compiled.Assign for an experiment that is not
// compiled, with the SDK's fallbacks where Compile would refuse: fewer
// than two variations, an unknown hash version or an out-of-range forced
// variation leave the unit out of the experiment.
func Assign(e *Experiment, unitID string, attrs map[string]any) (variation int, inExperiment bool, hashValue float64) {
	return compile(e, len(e.Weights)).Assign(unitID, attrs)
}
