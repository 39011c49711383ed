package assign

import (
	"math"
	"testing"
)

// The vectors in this file are GrowthBook's shared SDK test cases, taken
// from growthbook/growthbook packages/sdk-js/test/cases.json (specVersion
// 0.5.4, commit 021bf498f75c8491c156184ca1b3a1fbafa1d64e); each test names
// its group and keeps the cases' names. Groups or cases that need what
// mlnode does not expose ($or, $exists, explicit ranges, filters, URLs, QA
// mode, …) are left out.

func TestCases_Hash(t *testing.T) {
	tests := []struct {
		seed, value string
		version     int
		want        float64
		ok          bool
	}{
		{"", "a", 1, 0.22, true},
		{"", "b", 1, 0.077, true},
		{"b", "a", 1, 0.946, true},
		{"ef", "d", 1, 0.652, true},
		{"asdf", "8952klfjas09ujk", 1, 0.549, true},
		{"", "123", 1, 0.011, true},
		{"", `___)((*":&`, 1, 0.563, true},
		{"seed", "a", 2, 0.0505, true},
		{"seed", "b", 2, 0.2696, true},
		{"foo", "ab", 2, 0.2575, true},
		{"foo", "def", 2, 0.2019, true},
		{"89123klj", "8952klfjas09ujkasdf", 2, 0.124, true},
		{"90850943850283058242805", "123", 2, 0.7516, true},
		{"()**(%$##$%#$#", `___)((*":&`, 2, 0.0128, true},
		{"abc", "def", 99, 0, false},
	}
	for _, tt := range tests {
		got, ok := Hash(tt.seed, tt.value, tt.version)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Hash(%q, %q, %d) = %v, %v; want %v, %v", tt.seed, tt.value, tt.version, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCases_GetBucketRange(t *testing.T) {
	tests := []struct {
		name          string
		numVariations int
		coverage      float64
		weights       []float64
		want          []Range
	}{
		{"normal 50/50", 2, 1, nil, []Range{{0, 0.5}, {0.5, 1}}},
		{"reduced coverage", 2, 0.5, nil, []Range{{0, 0.25}, {0.5, 0.75}}},
		{"zero coverage", 2, 0, nil, []Range{{0, 0}, {0.5, 0.5}}},
		{"4 variations", 4, 1, nil, []Range{{0, 0.25}, {0.25, 0.5}, {0.5, 0.75}, {0.75, 1}}},
		{"uneven weights", 2, 1, []float64{0.4, 0.6}, []Range{{0, 0.4}, {0.4, 1}}},
		{"uneven weights, 3 variations", 3, 1, []float64{0.2, 0.3, 0.5}, []Range{{0, 0.2}, {0.2, 0.5}, {0.5, 1}}},
		{"uneven weights, reduced coverage, 3 variations", 3, 0.2, []float64{0.2, 0.3, 0.5}, []Range{{0, 0.04}, {0.2, 0.26}, {0.5, 0.6}}},
		{"negative coverage", 2, -0.2, nil, []Range{{0, 0}, {0.5, 0.5}}},
		{"coverage above 1", 2, 1.5, nil, []Range{{0, 0.5}, {0.5, 1}}},
		{"weights sum below 1", 2, 1, []float64{0.4, 0.1}, []Range{{0, 0.5}, {0.5, 1}}},
		{"weights sum above 1", 2, 1, []float64{0.7, 0.6}, []Range{{0, 0.5}, {0.5, 1}}},
		{"weights.length not equal to num variations", 4, 1, []float64{0.4, 0.4, 0.2}, []Range{{0, 0.25}, {0.25, 0.5}, {0.5, 0.75}, {0.75, 1}}},
		{"weights sum almost equals 1", 2, 1, []float64{0.4, 0.5999}, []Range{{0, 0.4}, {0.4, 0.9999}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := BucketRanges(tt.numVariations, tt.coverage, tt.weights)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			// The SDK's own test rounds; the arithmetic is the same.
			for i := range got {
				if math.Abs(got[i].Start-tt.want[i].Start) > 1e-9 || math.Abs(got[i].End-tt.want[i].End) > 1e-9 {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestCases_ChooseVariation(t *testing.T) {
	even := []Range{{0, 0.5}, {0.5, 1}}
	reduced := []Range{{0, 0.25}, {0.5, 0.75}}
	tests := []struct {
		name   string
		n      float64
		ranges []Range
		want   int
	}{
		{"even range, 0.2", 0.2, even, 0},
		{"even range, 0.4", 0.4, even, 0},
		{"even range, 0.6", 0.6, even, 1},
		{"even range, 0.8", 0.8, even, 1},
		{"even range, 0", 0, even, 0},
		{"even range, 0.5", 0.5, even, 1},
		{"reduced range, 0.2", 0.2, reduced, 0},
		{"reduced range, 0.4", 0.4, reduced, -1},
		{"reduced range, 0.6", 0.6, reduced, 1},
		{"reduced range, 0.8", 0.8, reduced, -1},
		{"reduced range, 0.25", 0.25, reduced, -1},
		{"reduced range, 0.5", 0.5, reduced, 1},
		{"zero range", 0.5, []Range{{0, 0.5}, {0.5, 0.5}, {0.5, 1}}, 2},
	}
	for _, tt := range tests {
		if got := ChooseVariation(tt.n, tt.ranges); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestCases_InNamespace(t *testing.T) {
	tests := []struct {
		name string
		unit string
		ns   Namespace
		want bool
	}{
		{"user 1, namespace1, 1", "1", Namespace{"namespace1", 0, 0.4}, false},
		{"user 1, namespace1, 2", "1", Namespace{"namespace1", 0.4, 1}, true},
		{"user 1, namespace2, 1", "1", Namespace{"namespace2", 0, 0.4}, false},
		{"user 1, namespace2, 2", "1", Namespace{"namespace2", 0.4, 1}, true},
		{"user 2, namespace1, 1", "2", Namespace{"namespace1", 0, 0.4}, false},
		{"user 2, namespace1, 2", "2", Namespace{"namespace1", 0.4, 1}, true},
		{"user 2, namespace2, 1", "2", Namespace{"namespace2", 0, 0.4}, false},
		{"user 2, namespace2, 2", "2", Namespace{"namespace2", 0.4, 1}, true},
		{"user 3, namespace1, 1", "3", Namespace{"namespace1", 0, 0.4}, false},
		{"user 3, namespace1, 2", "3", Namespace{"namespace1", 0.4, 1}, true},
		{"user 3, namespace2, 1", "3", Namespace{"namespace2", 0, 0.4}, true},
		{"user 3, namespace2, 2", "3", Namespace{"namespace2", 0.4, 1}, false},
		{"user 4, namespace1, 1", "4", Namespace{"namespace1", 0, 0.4}, false},
		{"user 4, namespace1, 2", "4", Namespace{"namespace1", 0.4, 1}, true},
		{"user 4, namespace2, 1", "4", Namespace{"namespace2", 0, 0.4}, true},
		{"user 4, namespace2, 2", "4", Namespace{"namespace2", 0.4, 1}, false},
	}
	for _, tt := range tests {
		if got := InNamespace(tt.unit, tt.ns); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCases_GetEqualWeights(t *testing.T) {
	tests := []struct {
		n    int
		want []float64
	}{
		{-1, nil},
		{0, nil},
		{1, []float64{1}},
		{2, []float64{0.5, 0.5}},
		{3, []float64{0.33333333, 0.33333333, 0.33333333}},
		{4, []float64{0.25, 0.25, 0.25, 0.25}},
	}
	for _, tt := range tests {
		got := equalWeights(tt.n)
		if len(got) != len(tt.want) {
			t.Fatalf("equalWeights(%d) = %v, want %v", tt.n, got, tt.want)
		}
		for i := range got {
			if math.Abs(got[i]-tt.want[i]) > 1e-8 {
				t.Fatalf("equalWeights(%d) = %v, want %v", tt.n, got, tt.want)
			}
		}
	}
}

// The evalCondition cases whose operators are mlnode's. A condition object
// with several operators on one attribute becomes several rules (all must
// hold); GrowthBook's shorthand {"attr": value} becomes eq, which agrees
// with the shorthand's looser equality on every case here.
func TestCases_EvalCondition(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		attrs map[string]any
		want  bool
	}{
		{"equals - multiple datatypes", []Rule{{"str", "eq", "str"}, {"num", "eq", 10}, {"flag", "eq", false}},
			map[string]any{"str": "str", "num": 10, "flag": false}, true},
		{"$in - pass", []Rule{{"num", "in", []any{1, 2, 3}}}, map[string]any{"num": 2}, true},
		{"$in - fail", []Rule{{"num", "in", []any{1, 2, 3}}}, map[string]any{"num": 4}, false},
		{"$in - not array", []Rule{{"num", "in", 1}}, map[string]any{"num": 1}, false},
		{"$in - array pass 1", []Rule{{"tags", "in", []any{"a", "b"}}}, map[string]any{"tags": []any{"d", "e", "a"}}, true},
		{"$in - array pass 2", []Rule{{"tags", "in", []any{"a", "b"}}}, map[string]any{"tags": []any{"d", "b", "f"}}, true},
		{"$in - array pass 3", []Rule{{"tags", "in", []any{"a", "b"}}}, map[string]any{"tags": []any{"d", "b", "a"}}, true},
		{"$in - array fail 1", []Rule{{"tags", "in", []any{"a", "b"}}}, map[string]any{"tags": []any{"d", "e", "f"}}, false},
		{"$in - array fail 2", []Rule{{"tags", "in", []any{"a", "b"}}}, map[string]any{"tags": []any{}}, false},
		{"$nin - pass", []Rule{{"num", "nin", []any{1, 2, 3}}}, map[string]any{"num": 4}, true},
		{"$nin - fail", []Rule{{"num", "nin", []any{1, 2, 3}}}, map[string]any{"num": 2}, false},
		{"$nin - not array", []Rule{{"num", "nin", 1}}, map[string]any{"num": 1}, false},
		{"$nin - array fail 1", []Rule{{"tags", "nin", []any{"a", "b"}}}, map[string]any{"tags": []any{"d", "e", "a"}}, false},
		{"$nin - array fail 2", []Rule{{"tags", "nin", []any{"a", "b"}}}, map[string]any{"tags": []any{"d", "b", "f"}}, false},
		{"$nin - array fail 3", []Rule{{"tags", "nin", []any{"a", "b"}}}, map[string]any{"tags": []any{"d", "b", "a"}}, false},
		{"$nin - array pass 1", []Rule{{"tags", "nin", []any{"a", "b"}}}, map[string]any{"tags": []any{"d", "e", "f"}}, true},
		{"$nin - array pass 2", []Rule{{"tags", "nin", []any{"a", "b"}}}, map[string]any{"tags": []any{}}, true},
		{"missing attribute - fail", []Rule{{"pets.dog.name", "in", []any{"fido"}}}, map[string]any{"hello": "world"}, false},
		{"missing attribute with comparison operators",
			[]Rule{{"age", "gt", -10}, {"age", "lt", 10}, {"age", "gte", -9}, {"age", "lte", 9}, {"age", "neq", 10}},
			map[string]any{}, true},
		{"comparing numbers and strings", []Rule{{"n", "gt", 5}, {"n", "lt", 10}}, map[string]any{"n": "8"}, true},
		{"comparing numbers and strings - v2", []Rule{{"n", "gt", "5"}, {"n", "lt", "10"}}, map[string]any{"n": 8}, true},
		{"empty - pass", nil, map[string]any{"hello": "world"}, true},
		{"$eq - pass", []Rule{{"occupation", "eq", "engineer"}}, map[string]any{"occupation": "engineer"}, true},
		{"$eq - fail", []Rule{{"occupation", "eq", "engineer"}}, map[string]any{"occupation": "civil engineer"}, false},
		{"$ne - pass", []Rule{{"level", "neq", "senior"}}, map[string]any{"level": "junior"}, true},
		{"$ne - fail", []Rule{{"level", "neq", "senior"}}, map[string]any{"level": "senior"}, false},
		{"$regex - pass", []Rule{{"userAgent", "regex", "(Mobile|Tablet)"}}, map[string]any{"userAgent": "Android Mobile Browser"}, true},
		{"$regex - fail", []Rule{{"userAgent", "regex", "(Mobile|Tablet)"}}, map[string]any{"userAgent": "Chrome Desktop Browser"}, false},
		{"$gt/$lt numbers - pass", []Rule{{"age", "gt", 30}, {"age", "lt", 60}}, map[string]any{"age": 50}, true},
		{"$gt/$lt numbers - fail $lt", []Rule{{"age", "gt", 30}, {"age", "lt", 60}}, map[string]any{"age": 60}, false},
		{"$gt/$lt numbers - fail $gt", []Rule{{"age", "gt", 30}, {"age", "lt", 60}}, map[string]any{"age": 30}, false},
		{"$gte/$lte numbers - pass", []Rule{{"age", "gte", 30}, {"age", "lte", 60}}, map[string]any{"age": 50}, true},
		{"$gte/$lte numbers - pass $gte", []Rule{{"age", "gte", 30}, {"age", "lte", 60}}, map[string]any{"age": 30}, true},
		{"$gte/$lte numbers - pass $lte", []Rule{{"age", "gte", 30}, {"age", "lte", 60}}, map[string]any{"age": 60}, true},
		{"$gte/$lte numbers - fail $lte", []Rule{{"age", "gte", 30}, {"age", "lte", 60}}, map[string]any{"age": 61}, false},
		{"$gte/$lte numbers - fail $gte", []Rule{{"age", "gt", 30}, {"age", "lt", 60}}, map[string]any{"age": 29}, false},
		{"$gt/$lt strings - fail $gt", []Rule{{"word", "gt", "alphabet"}, {"word", "lt", "zebra"}}, map[string]any{"word": "alphabet"}, false},
		{"$gt/$lt strings - fail $lt", []Rule{{"word", "gt", "alphabet"}, {"word", "lt", "zebra"}}, map[string]any{"word": "zebra"}, false},
		{"$gt/$lt strings - pass", []Rule{{"word", "gt", "alphabet"}, {"word", "lt", "zebra"}}, map[string]any{"word": "always"}, true},
		{"$gt/$lt strings - fail uppercase", []Rule{{"word", "gt", "alphabet"}, {"word", "lt", "zebra"}}, map[string]any{"word": "AZL"}, false},
		{"nested value is null", []Rule{{"address.state", "eq", "CA"}}, map[string]any{"address": nil}, false},
		{"nested value is integer", []Rule{{"address.state", "eq", "CA"}}, map[string]any{"address": 123}, false},
		{"unknown operator - pass", []Rule{{"name", "regx", "hello"}}, map[string]any{"name": "hello"}, false},
		{"$regex invalid - pass", []Rule{{"name", "regex", "/???***[)"}}, map[string]any{"name": "hello"}, false},
		{"$regex invalid - fail", []Rule{{"name", "regex", "/???***[)"}}, map[string]any{"hello": "hello"}, false},
		{"null condition - null attribute", []Rule{{"userId", "eq", nil}}, map[string]any{"userId": nil}, true},
		{"null condition - missing attribute", []Rule{{"userId", "eq", nil}}, map[string]any{}, true},
		{"null condition - string attribute", []Rule{{"userId", "eq", nil}}, map[string]any{"userId": "123"}, false},
		{"null condition - zero attribute", []Rule{{"userId", "eq", nil}}, map[string]any{"userId": 0}, false},
		{"null condition - empty string attribute", []Rule{{"userId", "eq", nil}}, map[string]any{"userId": ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := true
			for _, r := range tt.rules {
				got = got && r.Match(tt.attrs)
			}
			if got != tt.want {
				t.Errorf("Rule.Match = %v, want %v", got, tt.want)
			}
			// Compiled, the same rules must agree; rules that do not
			// validate are refused there instead.
			c, err := Compile(&Experiment{Key: "k", Weights: []float64{0.5, 0.5}, Coverage: 1, Conditions: tt.rules})
			if err != nil {
				return
			}
			if got := matchAll(c.conditions, tt.attrs); got != tt.want {
				t.Errorf("compiled match = %v, want %v", got, tt.want)
			}
		})
	}
}

// The run cases of an experiment with variations [0, 1] (or three) hashed
// on the "id" attribute: mlnode's unit id. Context forcedVariations become
// Experiment.Force for that unit; an experiment-level force out of range
// leaves the unit out as a bad Force entry does.
func TestCases_Run(t *testing.T) {
	half := []float64{0.5, 0.5}
	third := equalWeights(3)
	tests := []struct {
		name    string
		e       Experiment
		unit    string
		attrs   map[string]any
		want    int
		wantIn  bool
		wantHsh bool
	}{
		{"default weights - 1", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "1", nil, 1, true, true},
		{"default weights - 2", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "2", nil, 0, true, true},
		{"default weights - 3", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "3", nil, 0, true, true},
		{"default weights - 4", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "4", nil, 1, true, true},
		{"default weights - 5", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "5", nil, 1, true, true},
		{"default weights - 6", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "6", nil, 1, true, true},
		{"default weights - 7", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "7", nil, 0, true, true},
		{"default weights - 8", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "8", nil, 1, true, true},
		{"default weights - 9", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "9", nil, 0, true, true},
		{"uneven weights - 1", Experiment{Key: "my-test", Weights: []float64{0.1, 0.9}, Coverage: 1}, "1", nil, 1, true, true},
		{"uneven weights - 2", Experiment{Key: "my-test", Weights: []float64{0.1, 0.9}, Coverage: 1}, "2", nil, 1, true, true},
		{"uneven weights - 3", Experiment{Key: "my-test", Weights: []float64{0.1, 0.9}, Coverage: 1}, "3", nil, 0, true, true},
		{"uneven weights - 4", Experiment{Key: "my-test", Weights: []float64{0.1, 0.9}, Coverage: 1}, "4", nil, 1, true, true},
		{"uneven weights - 5", Experiment{Key: "my-test", Weights: []float64{0.1, 0.9}, Coverage: 1}, "5", nil, 1, true, true},
		{"uneven weights - 6", Experiment{Key: "my-test", Weights: []float64{0.1, 0.9}, Coverage: 1}, "6", nil, 1, true, true},
		{"uneven weights - 7", Experiment{Key: "my-test", Weights: []float64{0.1, 0.9}, Coverage: 1}, "7", nil, 0, true, true},
		{"uneven weights - 8", Experiment{Key: "my-test", Weights: []float64{0.1, 0.9}, Coverage: 1}, "8", nil, 1, true, true},
		{"uneven weights - 9", Experiment{Key: "my-test", Weights: []float64{0.1, 0.9}, Coverage: 1}, "9", nil, 1, true, true},
		{"coverage - 1", Experiment{Key: "my-test", Weights: half, Coverage: 0.4}, "1", nil, 0, false, true},
		{"coverage - 2", Experiment{Key: "my-test", Weights: half, Coverage: 0.4}, "2", nil, 0, true, true},
		{"coverage - 3", Experiment{Key: "my-test", Weights: half, Coverage: 0.4}, "3", nil, 0, true, true},
		{"coverage - 4", Experiment{Key: "my-test", Weights: half, Coverage: 0.4}, "4", nil, 0, false, true},
		{"coverage - 5", Experiment{Key: "my-test", Weights: half, Coverage: 0.4}, "5", nil, 1, true, true},
		{"coverage - 6", Experiment{Key: "my-test", Weights: half, Coverage: 0.4}, "6", nil, 0, false, true},
		{"coverage - 7", Experiment{Key: "my-test", Weights: half, Coverage: 0.4}, "7", nil, 0, true, true},
		{"coverage - 8", Experiment{Key: "my-test", Weights: half, Coverage: 0.4}, "8", nil, 1, true, true},
		{"coverage - 9", Experiment{Key: "my-test", Weights: half, Coverage: 0.4}, "9", nil, 0, false, true},
		{"three way test - 1", Experiment{Key: "my-test", Weights: third, Coverage: 1}, "1", nil, 2, true, true},
		{"three way test - 2", Experiment{Key: "my-test", Weights: third, Coverage: 1}, "2", nil, 0, true, true},
		{"three way test - 3", Experiment{Key: "my-test", Weights: third, Coverage: 1}, "3", nil, 0, true, true},
		{"three way test - 4", Experiment{Key: "my-test", Weights: third, Coverage: 1}, "4", nil, 2, true, true},
		{"three way test - 5", Experiment{Key: "my-test", Weights: third, Coverage: 1}, "5", nil, 1, true, true},
		{"three way test - 6", Experiment{Key: "my-test", Weights: third, Coverage: 1}, "6", nil, 2, true, true},
		{"three way test - 7", Experiment{Key: "my-test", Weights: third, Coverage: 1}, "7", nil, 0, true, true},
		{"three way test - 8", Experiment{Key: "my-test", Weights: third, Coverage: 1}, "8", nil, 1, true, true},
		{"three way test - 9", Experiment{Key: "my-test", Weights: third, Coverage: 1}, "9", nil, 0, true, true},
		{"test name - my-test", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "1", nil, 1, true, true},
		{"test name - my-test-3", Experiment{Key: "my-test-3", Weights: half, Coverage: 1}, "1", nil, 0, true, true},
		{"empty id", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "", nil, 0, false, false},
		{"null id", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "", nil, 0, false, false},
		{"missing id", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "", nil, 0, false, false},
		{"missing attributes", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "", nil, 0, false, false},
		{"single variation", Experiment{Key: "my-test", Weights: []float64{1}, Coverage: 1}, "1", nil, 0, false, false},
		{"negative forced variation", Experiment{Key: "my-test", Weights: half, Coverage: 1, Force: map[string]int{"1": -8}}, "1", nil, 0, false, false},
		{"high forced variation", Experiment{Key: "my-test", Weights: half, Coverage: 1, Force: map[string]int{"1": 25}}, "1", nil, 0, false, false},
		{"evaluates conditions - pass", Experiment{Key: "my-test", Weights: half, Coverage: 1, Conditions: []Rule{{"browser", "eq", "firefox"}}},
			"1", map[string]any{"browser": "firefox"}, 1, true, true},
		{"evaluates conditions - fail", Experiment{Key: "my-test", Weights: half, Coverage: 1, Conditions: []Rule{{"browser", "eq", "firefox"}}},
			"1", map[string]any{"browser": "chrome"}, 0, false, false},
		{"custom hashAttribute", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "1", map[string]any{"id": "2"}, 1, true, true},
		{"run active experiments", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "1", nil, 1, true, true},
		{"JSON values for experiments", Experiment{Key: "my-test", Weights: half, Coverage: 1}, "1", nil, 1, true, true},
		{"Force variation from context", Experiment{Key: "my-test", Weights: half, Coverage: 1, Force: map[string]int{"1": 0}}, "1", nil, 0, true, false},
		{"Works in QA mode if forced in context", Experiment{Key: "my-test", Weights: half, Coverage: 1, Force: map[string]int{"1": 1}}, "1", nil, 1, true, false},
		{"Experiment namespace - pass", Experiment{Key: "my-test", Weights: half, Coverage: 1, Namespace: &Namespace{"namespace", 0.1, 1}}, "1", nil, 1, true, true},
		{"Experiment namespace - fail", Experiment{Key: "my-test", Weights: half, Coverage: 1, Namespace: &Namespace{"namespace", 0, 0.1}}, "1", nil, 0, false, false},
		{"Experiment coverage - Works when 0", Experiment{Key: "no-coverage", Weights: half, Coverage: 0}, "1", nil, 0, false, true},
		{"Uses seed and hash version", Experiment{Key: "key", Seed: "foo", HashVersion: 2, Weights: half, Coverage: 1}, "1", nil, 1, true, true},
		{"Uses seed with default weights/coverage", Experiment{Key: "key", Seed: "foo", HashVersion: 2, Weights: half, Coverage: 1}, "1", nil, 1, true, true},
		{"Uses seed with weights/coverage", Experiment{Key: "key", Seed: "foo", HashVersion: 2, Weights: half, Coverage: 0.99}, "1", nil, 1, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, in, n := Assign(&tt.e, tt.unit, tt.attrs)
			if v != tt.want || in != tt.wantIn || (n != NotHashed) != tt.wantHsh {
				t.Errorf("Assign = %d, %v, %v; want %d, %v, hashed %v", v, in, n, tt.want, tt.wantIn, tt.wantHsh)
			}
			c, err := Compile(&tt.e)
			if err != nil {
				return // single variation, bad forced variations
			}
			if v2, in2, n2 := c.Assign(tt.unit, tt.attrs); v2 != v || in2 != in || n2 != n {
				t.Errorf("Compiled.Assign = %d, %v, %v; Assign gave %d, %v, %v", v2, in2, n2, v, in, n)
			}
		})
	}
}
