package appliance_test

import (
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

func TestExperiment_MovesUnits(t *testing.T) {
	base := func() *appliance.Experiment {
		return &appliance.Experiment{Name: "e", Coverage: 0.5,
			Arms:  []appliance.Arm{{Name: "a", Version: 1, Weight: 0.5}, {Name: "b", Version: 2, Weight: 0.5}},
			Layer: &appliance.Layer{Name: "l", Start: 0, End: 0.5}}
	}
	for _, tc := range []struct {
		name   string
		change func(e *appliance.Experiment)
		moves  bool
	}{
		{"nothing", func(*appliance.Experiment) {}, false},
		{"more coverage", func(e *appliance.Experiment) { e.Coverage = 1 }, false},
		{"metrics and shadows", func(e *appliance.Experiment) {
			e.Metrics = []appliance.Metric{{Name: "m"}}
			e.Shadow = []appliance.Shadow{{Version: 3, Percent: 5}}
		}, false},
		{"the seed written out as the name", func(e *appliance.Experiment) { e.Seed = "e" }, false},
		{"less coverage", func(e *appliance.Experiment) { e.Coverage = 0.4 }, true},
		{"weights", func(e *appliance.Experiment) { e.Arms[0].Weight, e.Arms[1].Weight = 0.4, 0.6 }, true},
		{"an arm's version", func(e *appliance.Experiment) { e.Arms[1].Version = 3 }, true},
		{"a third arm", func(e *appliance.Experiment) { e.Arms = append(e.Arms, appliance.Arm{Name: "c", Version: 3}) }, true},
		{"seed", func(e *appliance.Experiment) { e.Seed = "other" }, true},
		{"layer range", func(e *appliance.Experiment) { e.Layer = &appliance.Layer{Name: "l", Start: 0, End: 0.6} }, true},
		{"no layer", func(e *appliance.Experiment) { e.Layer = nil }, true},
	} {
		next := base()
		tc.change(next)
		if got := base().MovesUnits(next); got != tc.moves {
			t.Errorf("%s: MovesUnits = %v, want %v", tc.name, got, tc.moves)
		}
	}
}

func TestLayer_Overlaps(t *testing.T) {
	l := func(name string, s, e float64) *appliance.Layer {
		return &appliance.Layer{Name: name, Start: s, End: e}
	}
	for _, tc := range []struct {
		a, b *appliance.Layer
		want bool
	}{
		{l("x", 0, 0.5), l("x", 0.5, 1), false}, // [start, end): touching ranges share no unit
		{l("x", 0, 0.5), l("x", 0.49, 1), true},
		{l("x", 0.2, 0.3), l("x", 0, 1), true},
		{l("x", 0, 1), l("y", 0, 1), false}, // other layers are independent
	} {
		if got := tc.a.Overlaps(tc.b); got != tc.want || tc.b.Overlaps(tc.a) != tc.want {
			t.Errorf("%+v vs %+v: %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
