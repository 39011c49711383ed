package assign

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

func validExperiment() *Experiment {
	return &Experiment{Key: "checkout", HashVersion: 2, Weights: []float64{0.5, 0.5}, Coverage: 1}
}

func TestCompile_Invalid(t *testing.T) {
	tests := []struct {
		name      string
		change    func(e *Experiment)
		wantField string
	}{
		{"no key", func(e *Experiment) { e.Key = "" }, "key"},
		{"hash version", func(e *Experiment) { e.HashVersion = 3 }, "hash_version"},
		{"one variation", func(e *Experiment) { e.Weights = []float64{1} }, "weights"},
		{"negative weight", func(e *Experiment) { e.Weights = []float64{1.5, -0.5} }, "weights[1]"},
		{"NaN weight", func(e *Experiment) { e.Weights = []float64{math.NaN(), 1} }, "weights[0]"},
		{"infinite coverage", func(e *Experiment) { e.Coverage = math.Inf(1) }, "coverage"},
		{"namespace id", func(e *Experiment) { e.Namespace = &Namespace{"", 0, 1} }, "namespace.id"},
		{"namespace order", func(e *Experiment) { e.Namespace = &Namespace{"ns", 0.6, 0.4} }, "namespace"},
		{"namespace NaN", func(e *Experiment) { e.Namespace = &Namespace{"ns", math.NaN(), 0.4} }, "namespace"},
		{"condition op", func(e *Experiment) { e.Conditions = []Rule{{"a", "eq", 1}, {"b", "like", "x"}} }, "conditions[1].op"},
		{"condition regex", func(e *Experiment) { e.Conditions = []Rule{{"a", "regex", "("}} }, "conditions[0].value"},
		{"forced empty unit", func(e *Experiment) { e.Force = map[string]int{"": 0} }, "force"},
		{"forced variation", func(e *Experiment) { e.Force = map[string]int{"qa-1": 2} }, "force.qa-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validExperiment()
			tt.change(e)
			_, err := Compile(e)
			var ae *appliance.Error
			if !errors.As(err, &ae) || ae.Code != appliance.EINVALID || ae.Field != tt.wantField {
				t.Fatalf("Compile = %v, want EINVALID on %q", err, tt.wantField)
			}
		})
	}
}

// What the SDK tolerates, Compile keeps: weights off 1 become equal and
// coverage is clamped.
func TestCompile_SDKFallbacks(t *testing.T) {
	e := validExperiment()
	e.Weights, e.Coverage = []float64{0.7, 0.6}, 1.5
	c, err := Compile(e)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Ranges(), []Range{{0, 0.5}, {0.5, 1}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Ranges() = %v, want %v", got, want)
	}
}

func TestCompile_CopiesDefinition(t *testing.T) {
	e := validExperiment()
	e.Force = map[string]int{"qa": 1}
	e.Namespace = &Namespace{"ns", 0, 1}
	c, err := Compile(e)
	if err != nil {
		t.Fatal(err)
	}
	before := assignAll(c, 1000)
	e.Weights[0], e.Weights[1] = 0.1, 0.9
	e.Force["qa"] = 0
	e.Namespace.End = 0
	e.Key, e.Seed = "x", "y"
	if after := assignAll(c, 1000); after != before {
		t.Error("a compiled experiment changed with its definition")
	}
	if v, in, _ := c.Assign("qa", nil); v != 1 || !in {
		t.Errorf("forced unit got %d, %v", v, in)
	}
}

func assignAll(c *Compiled, n int) string {
	b := make([]byte, n)
	for i := range b {
		v, in, _ := c.Assign(fmt.Sprintf("u%d", i), nil)
		if in {
			b[i] = byte('0' + v)
		} else {
			b[i] = '-'
		}
	}
	return string(b)
}

// Raising coverage only ever adds units: every unit in the experiment at a
// lower coverage keeps its variation at every higher one.
func TestAssign_RaisingCoverageMovesNoUnit(t *testing.T) {
	for _, hv := range []int{1, 2} {
		for _, weights := range [][]float64{{0.5, 0.5}, {0.2, 0.3, 0.5}, {0.1, 0.9}} {
			assigned := map[string]int{}
			prevIn := 0
			for cov := 0.0; cov <= 1.0001; cov += 0.05 {
				c, err := Compile(&Experiment{Key: "pricing", HashVersion: hv, Weights: weights, Coverage: cov})
				if err != nil {
					t.Fatal(err)
				}
				in := 0
				for i := range 5000 {
					unit := fmt.Sprintf("user-%d", i)
					v, ok, _ := c.Assign(unit, nil)
					if prev, was := assigned[unit]; was && (!ok || v != prev) {
						t.Fatalf("v%d %v: coverage %.2f moved %s from %d to %d (in %v)", hv, weights, cov, unit, prev, v, ok)
					}
					if ok {
						assigned[unit] = v
						in++
					}
				}
				if in < prevIn {
					t.Fatalf("coverage %.2f has fewer units", cov)
				}
				prevIn = in
			}
			if prevIn != 5000 {
				t.Errorf("v%d %v: full coverage has %d of 5000 units", hv, weights, prevIn)
			}
		}
	}
}

// Two experiments on disjoint parts of one namespace share no unit.
func TestAssign_NamespacesExclude(t *testing.T) {
	a, _ := Compile(&Experiment{Key: "a", Weights: []float64{0.5, 0.5}, Coverage: 1, Namespace: &Namespace{"layer", 0, 0.4}})
	b, _ := Compile(&Experiment{Key: "b", Weights: []float64{0.5, 0.5}, Coverage: 1, Namespace: &Namespace{"layer", 0.4, 1}})
	inA, inB := 0, 0
	for i := range 5000 {
		unit := fmt.Sprintf("user-%d", i)
		_, okA, _ := a.Assign(unit, nil)
		_, okB, _ := b.Assign(unit, nil)
		if okA && okB {
			t.Fatalf("%s is in both", unit)
		}
		if okA {
			inA++
		}
		if okB {
			inB++
		}
	}
	if inA+inB != 5000 || inA < 1800 || inA > 2200 {
		t.Errorf("in a: %d, in b: %d of 5000", inA, inB)
	}
}

func TestAssign_Order(t *testing.T) {
	e := validExperiment()
	e.Namespace = &Namespace{"layer", 0, 0.5}
	e.Conditions = []Rule{{"country", "eq", "NL"}}
	e.Force = map[string]int{"qa-tester": 1}
	c, err := Compile(e)
	if err != nil {
		t.Fatal(err)
	}
	nl := map[string]any{"country": "NL"}
	// A forced unit skips namespace and conditions.
	if v, in, n := c.Assign("qa-tester", nil); v != 1 || !in || n != NotHashed {
		t.Errorf("forced: %d, %v, %v", v, in, n)
	}
	if v, in, n := c.Assign("", nl); v != 0 || in || n != NotHashed {
		t.Errorf("empty id: %d, %v, %v", v, in, n)
	}
	var outside, inside string
	for i := 0; outside == "" || inside == ""; i++ {
		u := fmt.Sprintf("u%d", i)
		if InNamespace(u, *e.Namespace) {
			inside = u
		} else {
			outside = u
		}
	}
	if _, in, n := c.Assign(outside, nl); in || n != NotHashed {
		t.Errorf("outside the namespace: %v, %v", in, n)
	}
	if _, in, n := c.Assign(inside, map[string]any{"country": "BE"}); in || n != NotHashed {
		t.Errorf("failing a condition: %v, %v", in, n)
	}
	want, _ := Hash("checkout", inside, 2)
	if v, in, n := c.Assign(inside, nl); !in || n != want || v != ChooseVariation(want, c.ranges) {
		t.Errorf("in: %d, %v, %v; hash %v", v, in, n, want)
	}
}

func TestAssign_SeedDefaultsToKey(t *testing.T) {
	a, _ := Compile(&Experiment{Key: "k", Weights: []float64{0.5, 0.5}, Coverage: 1})
	b, _ := Compile(&Experiment{Key: "other", Seed: "k", Weights: []float64{0.5, 0.5}, Coverage: 1})
	if assignAll(a, 2000) != assignAll(b, 2000) {
		t.Error("an empty seed is not the key")
	}
}

// The shares of units follow the weights.
func TestAssign_Shares(t *testing.T) {
	c, _ := Compile(&Experiment{Key: "split", HashVersion: 2, Weights: []float64{0.2, 0.3, 0.5}, Coverage: 0.8})
	counts := make([]int, 4)
	const n = 100000
	for i := range n {
		v, in, _ := c.Assign(fmt.Sprintf("device-%08d", i), nil)
		if !in {
			v = 3
		}
		counts[v]++
	}
	for i, want := range []float64{0.16, 0.24, 0.40, 0.20} {
		if got := float64(counts[i]) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("share %d = %.4f, want %.2f", i, got, want)
		}
	}
}

// One compiled experiment serves many goroutines.
func TestCompiled_Hammer(t *testing.T) {
	e := validExperiment()
	e.Conditions = []Rule{{"ua", "regex", "Mobile"}, {"age", "gte", 18}}
	c, err := Compile(e)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int, 500)
	attrs := map[string]any{"ua": "Android Mobile", "age": 30}
	for i := range want {
		want[i], _, _ = c.Assign(fmt.Sprint(i), attrs)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				for i := range want {
					if v, _, _ := c.Assign(fmt.Sprint(i), attrs); v != want[i] {
						t.Errorf("unit %d: %d, want %d", i, v, want[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestCompiled_AssignAllocs(t *testing.T) {
	e := validExperiment()
	e.Namespace = &Namespace{"layer", 0, 1}
	e.Conditions = []Rule{{"ua", "regex", "Mobile"}, {"age", "gte", 18}, {"country", "in", []string{"NL", "BE"}}}
	c, err := Compile(e)
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]any{"ua": "Android Mobile", "age": 30, "country": "NL"}
	if allocs := testing.AllocsPerRun(100, func() { c.Assign("user-1234567890-abcd", attrs) }); allocs != 0 {
		t.Errorf("%v allocations, want 0", allocs)
	}
}
