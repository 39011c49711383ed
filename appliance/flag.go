package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Flag is a feature flag: rules that give a variant to units with given
// attributes, then a weighted split of the other units between the
// variants, hashed as experiments are, so features and model choices are
// toggled without a deploy. Variant 0 is the default ("off").
type Flag struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Variants    []json.RawMessage `json:"variants"`
	Weights     []float64         `json:"weights,omitempty"` // one per variant; equal when empty
	Coverage    float64           `json:"coverage"`          // share of units split, (0, 1]; the rest get variant 0
	Rules       []FlagRule        `json:"rules,omitempty"`
	Seed        string            `json:"seed,omitempty"` // the flag's name when empty
	CreatedAt   time.Time         `json:"created_at"`
	CreatedBy   string            `json:"created_by,omitempty"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

// FlagRule gives a variant (its index) to units whose attribute matches.
type FlagRule struct {
	Attribute string `json:"attribute"`
	Op        string `json:"op"`
	Value     any    `json:"value"`
	Variant   int    `json:"variant"`
}

// Validate checks what needs no hashing library: the evaluator compiles the
// rest (operators, patterns, weights).
func (f *Flag) Validate() error {
	if err := ValidateName("name", f.Name); err != nil {
		return err
	}
	if len(f.Variants) == 0 {
		return Invalid("variants", "a flag needs at least one variant; the first is the default")
	}
	for i, v := range f.Variants {
		if !json.Valid(v) {
			return Invalid(fmt.Sprintf("variants[%d]", i), "is not a JSON value")
		}
	}
	if len(f.Weights) > 0 && len(f.Weights) != len(f.Variants) {
		return Invalid("weights", "has %d weights for %d variants", len(f.Weights), len(f.Variants))
	}
	if len(f.Weights) > 0 {
		sum := 0.0
		for i, w := range f.Weights {
			if !(w >= 0 && w <= 1) {
				return Invalid(fmt.Sprintf("weights[%d]", i), "must be in [0, 1]")
			}
			sum += w
		}
		if sum < 1-weightTolerance || sum > 1+weightTolerance {
			return Invalid("weights", "sum to %g; they must sum to 1 (± %g)", sum, weightTolerance)
		}
	}
	if !(f.Coverage > 0 && f.Coverage <= 1) {
		return Invalid("coverage", "must be in (0, 1]")
	}
	for i, r := range f.Rules {
		field := fmt.Sprintf("rules[%d]", i)
		if r.Attribute == "" {
			return Invalid(field+".attribute", "is required")
		}
		if r.Variant < 0 || r.Variant >= len(f.Variants) {
			return Invalid(field+".variant", "variant %d does not exist: there are %d", r.Variant, len(f.Variants))
		}
	}
	return nil
}

// FlagStore keeps flags; every change is audited in the same transaction.
type FlagStore interface {
	// PutFlag creates or replaces a flag and reports whether it was new;
	// with createOnly an existing name is ECONFLICT.
	PutFlag(ctx context.Context, f *Flag, createOnly bool) (created bool, err error)
	Flag(ctx context.Context, name string) (*Flag, error)
	Flags(ctx context.Context) ([]*Flag, error)
	DeleteFlag(ctx context.Context, name string) error
}
