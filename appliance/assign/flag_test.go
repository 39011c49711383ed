package assign

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

func variants(n int) []json.RawMessage {
	vs := make([]json.RawMessage, n)
	for i := range vs {
		vs[i] = json.RawMessage(fmt.Sprintf("%q", fmt.Sprint("v", i)))
	}
	return vs
}

func TestCompileFlag_Invalid(t *testing.T) {
	tests := []struct {
		name      string
		flag      Flag
		wantField string
	}{
		{"no key", Flag{Variants: variants(2), Coverage: 1}, "key"},
		{"no variants", Flag{Key: "f", Coverage: 1}, "variants"},
		{"weights length", Flag{Key: "f", Variants: variants(2), Weights: []float64{1}, Coverage: 1}, "weights"},
		{"negative weight", Flag{Key: "f", Variants: variants(2), Weights: []float64{2, -1}, Coverage: 1}, "weights[1]"},
		{"hash version", Flag{Key: "f", Variants: variants(2), Coverage: 1, HashVersion: 7}, "hash_version"},
		{"rule variant", Flag{Key: "f", Variants: variants(2), Coverage: 1, Rules: []FlagRule{{Variant: 2}}}, "rules[0].variant"},
		{"rule condition", Flag{Key: "f", Variants: variants(2), Coverage: 1, Rules: []FlagRule{{}, {Conditions: []Rule{{"a", "is", 1}}}}}, "rules[1].conditions[0].op"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileFlag(&tt.flag)
			var ae *appliance.Error
			if !errors.As(err, &ae) || ae.Code != appliance.EINVALID || ae.Field != tt.wantField {
				t.Fatalf("CompileFlag = %v, want EINVALID on %q", err, tt.wantField)
			}
		})
	}
}

func TestFlag_Evaluate(t *testing.T) {
	f := &Flag{
		Key:      "new-checkout",
		Variants: variants(3),
		Weights:  []float64{0.5, 0.25, 0.25},
		Coverage: 0.5,
		Rules: []FlagRule{
			{Conditions: []Rule{{"email", "regex", "@mlnode\\.dev$"}}, Variant: 2},
			{Conditions: []Rule{{"country", "in", []any{"NL"}}, {"age", "gte", 18}}, Variant: 1},
		},
		HashVersion: 2,
	}
	c, err := CompileFlag(f)
	if err != nil {
		t.Fatal(err)
	}
	var inside, outside string
	for i := 0; inside == "" || outside == ""; i++ {
		u := fmt.Sprint("u", i)
		if n, _ := Hash("new-checkout", u, 2); n < 0.25 {
			inside = u // variant 0's range is [0, 0.25) at coverage 0.5
		} else if n >= 0.25 && n < 0.5 {
			outside = u
		}
	}
	tests := []struct {
		name       string
		unit       string
		attrs      map[string]any
		want       int
		wantReason string
	}{
		{"first rule", "x", map[string]any{"email": "ann@mlnode.dev", "country": "NL", "age": 40}, 2, ReasonRule},
		{"second rule", "x", map[string]any{"country": "NL", "age": 40}, 1, ReasonRule},
		{"rules need no unit", "", map[string]any{"country": "NL", "age": 40}, 1, ReasonRule},
		{"all conditions of a rule", "", map[string]any{"country": "NL", "age": 17}, 0, ReasonNoUnit},
		{"split", inside, nil, 0, ReasonSplit},
		{"outside coverage", outside, nil, 0, ReasonCoverage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, eval := range []func(string, map[string]any) (int, string){
				c.Evaluate,
				func(u string, a map[string]any) (int, string) { return Evaluate(f, u, a) },
			} {
				if v, reason := eval(tt.unit, tt.attrs); v != tt.want || reason != tt.wantReason {
					t.Errorf("got %d (%s), want %d (%s)", v, reason, tt.want, tt.wantReason)
				}
			}
		})
	}
}

func TestFlag_Evaluate_Fallbacks(t *testing.T) {
	one := &Flag{Key: "f", Variants: variants(1), Coverage: 1}
	if v, reason := Evaluate(one, "u1", nil); v != 0 || reason != ReasonDefault {
		t.Errorf("one variant: %d (%s)", v, reason)
	}
	badRule := &Flag{Key: "f", Variants: variants(2), Coverage: 1, Rules: []FlagRule{{Variant: 5}}}
	if v, reason := Evaluate(badRule, "u1", nil); v != 0 || reason != ReasonRule {
		t.Errorf("missing rule variant: %d (%s)", v, reason)
	}
	badHash := &Flag{Key: "f", Variants: variants(2), Coverage: 1, HashVersion: 9}
	if v, reason := Evaluate(badHash, "u1", nil); v != 0 || reason != ReasonDefault {
		t.Errorf("unknown hash version: %d (%s)", v, reason)
	}
	// Without weights the split is even, as an experiment's with equal weights.
	even := &Flag{Key: "f", Variants: variants(2), Coverage: 1}
	exp, _ := Compile(&Experiment{Key: "f", Weights: []float64{0.5, 0.5}, Coverage: 1})
	for i := range 1000 {
		u := fmt.Sprint("u", i)
		v, _ := Evaluate(even, u, nil)
		if w, _, _ := exp.Assign(u, nil); v != w {
			t.Fatalf("%s: flag %d, experiment %d", u, v, w)
		}
	}
}

func TestCompiledFlag_EvaluateAllocs(t *testing.T) {
	c, err := CompileFlag(&Flag{
		Key: "f", Variants: variants(2), Coverage: 1, HashVersion: 2,
		Rules: []FlagRule{{Conditions: []Rule{{"plan", "eq", "enterprise"}}, Variant: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]any{"plan": "free"}
	if allocs := testing.AllocsPerRun(100, func() { c.Evaluate("user-1234567890-abcd", attrs) }); allocs != 0 {
		t.Errorf("%v allocations, want 0", allocs)
	}
}
