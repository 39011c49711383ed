package assign

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

func TestRule_Validate(t *testing.T) {
	tests := []struct {
		name      string
		rule      Rule
		wantField string // "" when valid
	}{
		{"eq string", Rule{"country", "eq", "NL"}, ""},
		{"eq null", Rule{"country", "eq", nil}, ""},
		{"eq int", Rule{"age", "eq", 30}, ""},
		{"neq bool", Rule{"beta", "neq", true}, ""},
		{"in strings", Rule{"country", "in", []string{"NL", "BE"}}, ""},
		{"nin mixed", Rule{"tier", "nin", []any{"gold", 3.0, nil, false}}, ""},
		{"lt string", Rule{"version", "lt", "2.0"}, ""},
		{"gte json number", Rule{"age", "gte", json.Number("18")}, ""},
		{"regex", Rule{"ua", "regex", `Mobile|Tablet`}, ""},
		{"nested attribute", Rule{"address.country", "eq", "NL"}, ""},
		{"no attribute", Rule{"", "eq", "x"}, "attribute"},
		{"leading dot", Rule{".a", "eq", "x"}, "attribute"},
		{"empty part", Rule{"a..b", "eq", "x"}, "attribute"},
		{"unknown op", Rule{"name", "regx", "hello"}, "op"},
		{"no op", Rule{"name", "", "hello"}, "op"},
		{"op case", Rule{"name", "EQ", "hello"}, "op"},
		{"mongo op", Rule{"name", "$eq", "hello"}, "op"},
		{"eq array", Rule{"tags", "eq", []any{"a"}}, "value"},
		{"eq object", Rule{"tags", "eq", map[string]any{}}, "value"},
		{"eq NaN", Rule{"n", "eq", math.NaN()}, "value"},
		{"lt bool", Rule{"n", "lt", true}, "value"},
		{"lt null", Rule{"n", "lt", nil}, "value"},
		{"gt infinite", Rule{"n", "gt", math.Inf(1)}, "value"},
		{"in scalar", Rule{"n", "in", 1}, "value"},
		{"in nested array", Rule{"n", "in", []any{"a", []any{}}}, "value[1]"},
		{"nin NaN", Rule{"n", "nin", []float64{math.NaN()}}, "value[0]"},
		{"regex number", Rule{"n", "regex", 5}, "value"},
		{"regex invalid", Rule{"n", "regex", "/???***[)"}, "value"},
		{"regex lookahead", Rule{"n", "regex", "a(?=b)"}, "value"},
		{"regex backreference", Rule{"n", "regex", `(a)\1`}, "value"},
		{"regex JS escape", Rule{"n", "regex", `\u00e9`}, "value"},
		{"regex inline flags", Rule{"n", "regex", "(?i)mobile"}, "value"},
		{"regex Go named group", Rule{"n", "regex", "(?P<x>a)"}, "value"},
		{"regex unicode class", Rule{"n", "regex", `\p{L}+`}, "value"},
		{"regex text anchors", Rule{"n", "regex", `\Aa\z`}, "value"},
		{"regex POSIX class", Rule{"n", "regex", "[[:alpha:]]"}, "value"},
		{"regex escaped backslash then p", Rule{"n", "regex", `\\p`}, ""},
		{"regex too long", Rule{"n", "regex", strings.Repeat("a", maxPatternBytes+1)}, "value"},
		{"regex too large", Rule{"n", "regex", "(a{100}){100}"}, "value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var e *appliance.Error
			if !errors.As(err, &e) || e.Code != appliance.EINVALID || e.Field != tt.wantField {
				t.Fatalf("Validate() = %#v, want EINVALID on %q", err, tt.wantField)
			}
		})
	}
}

// The SDK's JavaScript semantics, where they surprise.
func TestRule_Match_Semantics(t *testing.T) {
	attrs := map[string]any{
		"age":     int64(30),
		"score":   json.Number("7.5"),
		"plan":    "gold",
		"id":      "1",
		"num":     1,
		"tags":    []string{"a", "b"},
		"nums":    []int{3, 4},
		"address": map[string]any{"country": "NL", "zip": nil},
		"beta":    true,
		"version": "10",
		"weird":   struct{}{},
	}
	tests := []struct {
		name string
		rule Rule
		want bool
	}{
		{"missing attribute is null, 0 for lt", Rule{"height", "lt", 10}, true},
		{"missing attribute is null, not 0 for eq", Rule{"height", "eq", 0}, false},
		{"missing attribute tests as text null", Rule{"height", "regex", "^nu"}, true},
		{"missing attribute is neq anything", Rule{"height", "neq", "x"}, true},
		{"missing attribute is eq null", Rule{"height", "eq", nil}, true},
		{"eq is strict: number vs string", Rule{"id", "eq", 1}, false},
		{"eq is strict: string vs number", Rule{"num", "eq", "1"}, false},
		{"in is strict", Rule{"num", "in", []any{"1", "2"}}, false},
		{"int64 is a number", Rule{"age", "eq", 30}, true},
		{"json.Number is a number", Rule{"score", "gt", 7}, true},
		{"lt converts a numeric string", Rule{"version", "gt", 9}, true},
		{"two strings compare as text", Rule{"version", "gt", "9"}, false},
		{"non-numeric string is NaN", Rule{"plan", "gt", 0}, false},
		{"NaN is not lte either", Rule{"plan", "lte", 0}, false},
		{"bool is 1", Rule{"beta", "gte", 1}, true},
		{"string slice intersects", Rule{"tags", "in", []any{"b", "z"}}, true},
		{"int slice intersects", Rule{"nums", "nin", []any{4}}, false},
		{"regex on a number uses its text", Rule{"age", "regex", "^30$"}, true},
		{"regex on an array joins it", Rule{"tags", "regex", "^a,b$"}, true},
		{"regex on a bool", Rule{"beta", "regex", "^true$"}, true},
		{"nested path", Rule{"address.country", "eq", "NL"}, true},
		{"nested null", Rule{"address.zip", "eq", nil}, true},
		{"path through a string is null", Rule{"plan.name", "eq", nil}, true},
		{"unknown Go type is an object", Rule{"weird", "regex", `^\[object Object\]$`}, true},
		{"regex is case sensitive", Rule{"plan", "regex", "GOLD"}, false},
		{"regex character class", Rule{"plan", "regex", "^[Gg]old$"}, true},
		{"regex named group", Rule{"plan", "regex", "^(?<metal>gold)$"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.rule.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tt.rule.Match(attrs); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

// Match on a nil map sees every attribute as missing.
func TestRule_Match_NilAttrs(t *testing.T) {
	if !(Rule{"x", "eq", nil}).Match(nil) || (Rule{"x", "eq", "a"}).Match(nil) {
		t.Error("nil attrs must read as null")
	}
}

// A compiled rule keeps its own copy of the list.
func TestRule_CompiledDoesNotAlias(t *testing.T) {
	list := []any{"NL"}
	e := &Experiment{Key: "k", Weights: []float64{0.5, 0.5}, Coverage: 1, Conditions: []Rule{{"country", "in", list}}}
	c, err := Compile(e)
	if err != nil {
		t.Fatal(err)
	}
	list[0] = "BE"
	e.Conditions[0].Attribute = "other"
	if !matchAll(c.conditions, map[string]any{"country": "NL"}) {
		t.Error("compiled rule changed with the caller's slice")
	}
}
