package assign

import (
	"fmt"
	"testing"
)

// Unit ids of about 20 ASCII characters, as user ids and UUID prefixes are.
func benchUnits() []string {
	units := make([]string, 1024)
	for i := range units {
		units[i] = fmt.Sprintf("user-%015d", i*7919)
	}
	return units
}

func BenchmarkHash(b *testing.B) {
	units := benchUnits()
	for _, v := range []int{1, 2} {
		b.Run(fmt.Sprint("v", v), func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				Hash("checkout-2026", units[i&1023], v)
			}
		})
	}
	b.Run("v2-non-ASCII", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			Hash("checkout-2026", "ユーザー-😀-é-1234567", 2)
		}
	})
}

func BenchmarkInNamespace(b *testing.B) {
	units := benchUnits()
	ns := Namespace{"pricing", 0.2, 0.7}
	b.ReportAllocs()
	for i := range b.N {
		InNamespace(units[i&1023], ns)
	}
}

// An experiment as mlnode runs one: hash version 2, three arms, partial
// coverage, a namespace and two conditions, against a request's attributes.
func BenchmarkAssign(b *testing.B) {
	c, err := Compile(&Experiment{
		Key: "ranker-v7", HashVersion: 2, Weights: []float64{0.34, 0.33, 0.33}, Coverage: 0.9,
		Namespace:  &Namespace{"ranking", 0, 1},
		Conditions: []Rule{{"country", "in", []string{"NL", "BE", "DE"}}, {"age", "gte", 18}},
	})
	if err != nil {
		b.Fatal(err)
	}
	attrs := map[string]any{"country": "NL", "age": 34.0, "plan": "pro"}
	units := benchUnits()
	b.ReportAllocs()
	for i := range b.N {
		c.Assign(units[i&1023], attrs)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	c, err := CompileFlag(&Flag{
		Key: "new-checkout", Variants: variants(2), Weights: []float64{0.5, 0.5}, Coverage: 1, HashVersion: 2,
		Rules: []FlagRule{{Conditions: []Rule{{"email", "regex", `@mlnode\.dev$`}}, Variant: 1}},
	})
	if err != nil {
		b.Fatal(err)
	}
	attrs := map[string]any{"email": "ann@example.com"}
	units := benchUnits()
	b.ReportAllocs()
	for i := range b.N {
		c.Evaluate(units[i&1023], attrs)
	}
}
