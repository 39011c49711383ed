package assign

import (
	"encoding/json"
	"fmt"

	"github.com/mlnode/mlnode/appliance"
)

// Why Evaluate chose a variant.
const (
	ReasonRule     = "rule"     // a rule's conditions held: its variant
	ReasonSplit    = "split"    // the unit's hash picked the variant
	ReasonCoverage = "coverage" // the unit's hash is outside coverage: variant 0
	ReasonNoUnit   = "no_unit"  // no unit id to hash: variant 0
	ReasonDefault  = "default"  // the flag does not split (one variant, unknown hash version): variant 0
)

// Flag is a feature flag: targeting rules, then a weighted split of units
// between its variants. Variant 0 is the default, "control" or "off": what
// a unit gets when no rule matches and the split leaves it out.
type Flag struct {
	Key      string
	Variants []json.RawMessage
	// Weights of the split, one per variant; equal when nil.
	Weights []float64
	// Coverage is the share of units split between the variants; the rest
	// get variant 0. 0 splits none (see the package Caveats).
	Coverage float64
	Rules    []FlagRule
	// Seed of the hash; Key when empty.
	Seed string
	// HashVersion is 1 or 2; 0 means 1, as in the SDK.
	HashVersion int
}

// FlagRule gives Variant to every unit that satisfies all Conditions; a
// rule without conditions gives it to every unit.
type FlagRule struct {
	Conditions []Rule
	Variant    int
}

// CompiledFlag is a flag validated and ready to evaluate. It is immutable
// and safe for concurrent use.
type CompiledFlag struct {
	rules []compiledFlagRule
	split *Compiled
}

type compiledFlagRule struct {
	conditions []matcher
	variant    int
}

// CompileFlag validates f and precomputes what Evaluate needs. Besides
// what Compile refuses, weights must have one entry per variant and a
// rule's variant must exist.
func CompileFlag(f *Flag) (*CompiledFlag, error) {
	if f.Key == "" {
		return nil, appliance.Invalid("key", "is required")
	}
	if len(f.Variants) == 0 {
		return nil, appliance.Invalid("variants", "a flag needs at least one variant, the default")
	}
	if f.HashVersion < 0 || f.HashVersion > 2 {
		return nil, appliance.Invalid("hash_version", "%d is not 1 or 2", f.HashVersion)
	}
	if f.Weights != nil && len(f.Weights) != len(f.Variants) {
		return nil, appliance.Invalid("weights", "has %d weights for %d variants", len(f.Weights), len(f.Variants))
	}
	if err := validateWeights(f.Weights, f.Coverage); err != nil {
		return nil, err
	}
	for i, r := range f.Rules {
		prefix := fmt.Sprintf("rules[%d].", i)
		if r.Variant < 0 || r.Variant >= len(f.Variants) {
			return nil, appliance.Invalid(prefix+"variant", "variant %d does not exist: there are %d", r.Variant, len(f.Variants))
		}
		for j, c := range r.Conditions {
			if err := c.validate(fmt.Sprintf("%sconditions[%d].", prefix, j)); err != nil {
				return nil, err
			}
		}
	}
	return compileFlag(f), nil
}

func compileFlag(f *Flag) *CompiledFlag {
	c := &CompiledFlag{rules: make([]compiledFlagRule, len(f.Rules))}
	for i, r := range f.Rules {
		c.rules[i] = compiledFlagRule{variant: r.Variant, conditions: make([]matcher, len(r.Conditions))}
		for j, cond := range r.Conditions {
			c.rules[i].conditions[j] = newMatcher(cond)
		}
	}
	// The split is the SDK's experiment rule: key and seed of the flag,
	// one variation per variant.
	split := Experiment{Key: f.Key, Seed: f.Seed, HashVersion: f.HashVersion, Weights: f.Weights, Coverage: f.Coverage}
	c.split = compile(&split, len(f.Variants))
	return c
}

// Evaluate returns the unit's variant and why: the variant of the first
// rule whose conditions all hold; else, as the SDK evaluates a feature
// whose default value is variant 0, with force rules followed by one
// experiment rule, the split's variant; else variant 0.
func (c *CompiledFlag) Evaluate(unitID string, attrs map[string]any) (variant int, reason string) {
	for i := range c.rules {
		if matchAll(c.rules[i].conditions, attrs) {
			return c.rules[i].variant, ReasonRule
		}
	}
	s := c.split
	switch {
	case s.numVariations < 2:
		return 0, ReasonDefault
	case unitID == "":
		return 0, ReasonNoUnit
	}
	v, in, n := s.Assign(unitID, nil)
	switch {
	case in:
		return v, ReasonSplit
	case n == NotHashed: // an unknown hash version
		return 0, ReasonDefault
	}
	return 0, ReasonCoverage
}

// Evaluate evaluates a flag that is not compiled, with the SDK's
// fallbacks: a rule whose variant does not exist gives variant 0, and
// weights of the wrong length or sum are replaced by equal weights.
func Evaluate(f *Flag, unitID string, attrs map[string]any) (variant int, reason string) {
	variant, reason = compileFlag(f).Evaluate(unitID, attrs)
	if variant < 0 || variant >= len(f.Variants) {
		return 0, reason
	}
	return variant, reason
}
