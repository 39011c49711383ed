package assign

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"
)

// testdata/sdk.json holds answers of the GrowthBook JavaScript SDK itself
// (testdata/gen.js says how to regenerate it) for random ids with non-ASCII
// and non-BMP characters, random weights and coverage, and random
// conditions over mixed types. Unlike cases.json these are exact: the same
// float operations must give the same bits.
type sdkVectors struct {
	SDKVersion   string              `json:"sdkVersion"`
	Hash         [][]json.RawMessage `json:"hash"`
	InNamespace  [][]json.RawMessage `json:"inNamespace"`
	BucketRanges [][]json.RawMessage `json:"bucketRanges"`
	Conditions   [][]json.RawMessage `json:"conditions"`
	Run          [][]json.RawMessage `json:"run"`
	Flags        [][]json.RawMessage `json:"flags"`
}

func loadSDKVectors(t *testing.T) *sdkVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/sdk.json")
	if err != nil {
		t.Fatal(err)
	}
	var v sdkVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// decode unmarshals each raw element into the pointer at the same place.
func decode(t *testing.T, raw []json.RawMessage, into ...any) {
	t.Helper()
	if len(raw) != len(into) {
		t.Fatalf("vector has %d elements, want %d", len(raw), len(into))
	}
	for i := range raw {
		if err := json.Unmarshal(raw[i], into[i]); err != nil {
			t.Fatalf("element %d %s: %v", i, raw[i], err)
		}
	}
}

func TestSDK_Hash(t *testing.T) {
	v := loadSDKVectors(t)
	for _, raw := range v.Hash {
		var seed, value string
		var version int
		var want *float64
		decode(t, raw, &seed, &value, &version, &want)
		got, ok := Hash(seed, value, version)
		if !ok || want == nil || got != *want {
			t.Errorf("Hash(%q, %q, %d) = %v; SDK %s gives %v", seed, value, version, got, v.SDKVersion, *want)
		}
	}
}

func TestSDK_InNamespace(t *testing.T) {
	v := loadSDKVectors(t)
	for _, raw := range v.InNamespace {
		var unit string
		var ns []json.RawMessage
		var want bool
		decode(t, raw, &unit, &ns, &want)
		var n Namespace
		decode(t, ns, &n.ID, &n.Start, &n.End)
		if got := InNamespace(unit, n); got != want {
			t.Errorf("InNamespace(%q, %v) = %v; SDK gives %v", unit, n, got, want)
		}
	}
}

func TestSDK_BucketRanges(t *testing.T) {
	v := loadSDKVectors(t)
	for _, raw := range v.BucketRanges {
		var n int
		var coverage float64
		var weights []float64
		var want [][2]float64
		decode(t, raw, &n, &coverage, &weights, &want)
		got := BucketRanges(n, coverage, weights)
		if len(got) != len(want) {
			t.Fatalf("BucketRanges(%d, %v, %v) = %v; SDK gives %v", n, coverage, weights, got, want)
		}
		for i := range got {
			if got[i].Start != want[i][0] || got[i].End != want[i][1] {
				t.Fatalf("BucketRanges(%d, %v, %v) = %v; SDK gives %v", n, coverage, weights, got, want)
			}
		}
	}
}

func TestSDK_Conditions(t *testing.T) {
	v := loadSDKVectors(t)
	for _, raw := range v.Conditions {
		var r Rule
		var attrs map[string]any
		var want bool
		decode(t, raw, &r, &attrs, &want)
		if err := r.Validate(); err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if got := r.Match(attrs); got != want {
			t.Errorf("%+v on %v = %v; SDK gives %v", r, attrs, got, want)
		}
	}
}

type sdkExperiment struct {
	Key         string         `json:"key"`
	Seed        string         `json:"seed"`
	HashVersion int            `json:"hashVersion"`
	Weights     []float64      `json:"weights"`
	Coverage    float64        `json:"coverage"`
	Namespace   *Namespace     `json:"namespace"`
	Conditions  []Rule         `json:"conditions"`
	Force       map[string]int `json:"force"`
}

func TestSDK_Run(t *testing.T) {
	v := loadSDKVectors(t)
	for _, raw := range v.Run {
		var se sdkExperiment
		var unit string
		var attrs map[string]any
		var want int
		var wantIn bool
		var bucket *float64
		decode(t, raw, &se, &unit, &attrs, &want, &wantIn, &bucket)
		e := Experiment(se)
		c, err := Compile(&e)
		if err != nil {
			t.Fatalf("Compile(%+v): %v", e, err)
		}
		for _, assign := range []func() (int, bool, float64){
			func() (int, bool, float64) { return Assign(&e, unit, attrs) },
			func() (int, bool, float64) { return c.Assign(unit, attrs) },
		} {
			got, in, n := assign()
			if got != want || in != wantIn || bucket != nil && n != *bucket {
				t.Fatalf("%+v, unit %q, attrs %v: got %d, %v, %v; SDK gives %d, %v, bucket %v", e, unit, attrs, got, in, n, want, wantIn, bucket)
			}
		}
	}
}

func TestSDK_Flags(t *testing.T) {
	v := loadSDKVectors(t)
	for _, raw := range v.Flags {
		var f struct {
			Key         string     `json:"key"`
			Variants    int        `json:"variants"`
			Seed        string     `json:"seed"`
			HashVersion int        `json:"hashVersion"`
			Weights     []float64  `json:"weights"`
			Coverage    float64    `json:"coverage"`
			Rules       []FlagRule `json:"rules"`
		}
		var unit, source string
		var attrs map[string]any
		var want int
		decode(t, raw, &f, &unit, &attrs, &want, &source)
		flag := Flag{Key: f.Key, Seed: f.Seed, HashVersion: f.HashVersion, Weights: f.Weights, Coverage: f.Coverage, Rules: f.Rules}
		for i := range f.Variants {
			flag.Variants = append(flag.Variants, json.RawMessage(strconv.Itoa(i)))
		}
		wantReasons := map[string][]string{
			"force":        {ReasonRule},
			"experiment":   {ReasonSplit},
			"defaultValue": {ReasonCoverage, ReasonNoUnit, ReasonDefault},
		}[source]
		c, err := CompileFlag(&flag)
		if err != nil {
			t.Fatalf("CompileFlag(%+v): %v", flag, err)
		}
		for _, eval := range []func() (int, string){
			func() (int, string) { return Evaluate(&flag, unit, attrs) },
			func() (int, string) { return c.Evaluate(unit, attrs) },
		} {
			got, reason := eval()
			if got != want || !slices.Contains(wantReasons, reason) {
				t.Fatalf("%+v, unit %q, attrs %v: got %d (%s); SDK gives %d (%s)", flag, unit, attrs, got, reason, want, source)
			}
		}
	}
}
