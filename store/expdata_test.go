package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// The incremental aggregates equal a naive computation from every event,
// whatever the order in which exposures and events arrive.
func TestExperimentData_AggregatesMatchNaive(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	e := &appliance.Experiment{Name: "exp", Model: "m", Unit: "user_id", State: appliance.ExperimentRunning, Coverage: 1,
		Arms: []appliance.Arm{{Name: "control", Version: 1, Weight: 0.5}, {Name: "treatment", Version: 2, Weight: 0.5}},
		Metrics: []appliance.Metric{
			{Name: "converted", Type: appliance.MetricBinomial, Direction: "increase", Role: "goal"},
			{Name: "revenue", Type: appliance.MetricMean, Direction: "increase", Role: "goal", Cap: 50, Window: appliance.Duration(48 * time.Hour)},
		},
		Breakdowns: []string{"country"}}
	if err := s.CreateExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	type exposure struct {
		arm, country string
		at           time.Time
	}
	units := map[string]exposure{}
	var events []appliance.OutcomeEvent
	for i := range 300 {
		unit := fmt.Sprintf("u%d", i)
		arm := []string{"control", "treatment"}[r.IntN(2)]
		units[unit] = exposure{arm, []string{"AE", "FR"}[r.IntN(2)], t0.Add(time.Duration(r.IntN(72)) * time.Hour)}
		for range r.IntN(6) {
			metric := []string{"converted", "revenue", "unrelated"}[r.IntN(3)]
			at := t0.Add(time.Duration(r.IntN(24*20)-24*10) * time.Hour) // 10 days before to 10 days after t0
			events = append(events, appliance.OutcomeEvent{Unit: unit, Metric: metric, Value: float64(r.IntN(40)), Time: at.UnixMicro(), EventID: fmt.Sprintf("ev%d", len(events))})
		}
	}
	// Half the events come before the exposures are recorded, half after;
	// some are retried with the same id.
	half := len(events) / 2
	if _, err := s.RecordEvents(ctx, events[:half]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FoldEvents(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	var logs []appliance.ExposureLog
	for unit, x := range units {
		logs = append(logs, appliance.ExposureLog{Experiment: "exp", Arm: x.arm, Unit: unit, Time: x.at, Attributes: map[string]string{"country": x.country}})
		logs = append(logs, appliance.ExposureLog{Experiment: "exp", Arm: "treatment", Unit: unit, Time: x.at.Add(time.Hour)}) // later: ignored
	}
	if n, err := s.RecordExposures(ctx, logs, 0); err != nil || n != len(units) {
		t.Fatalf("recorded %d new units (%v), want %d", n, err, len(units))
	}
	if _, err := s.FoldEvents(ctx, 37); err != nil { // a part now, the rest below: batches fold independently
		t.Fatal(err)
	}
	res, err := s.RecordEvents(ctx, append(events[half:], events[:10]...))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Duplicates) != 10 || len(res.UnknownMetrics) != 1 || res.UnknownMetrics[0] != "unrelated" {
		t.Fatalf("second batch: %+v", res)
	}
	// Retries of events already folded are reported at once; the others
	// are logged and discarded when folded.
	if _, err := s.FoldEvents(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}

	// Naive: per unit and metric, sum post and pre events, then aggregate.
	type key struct{ arm, metric, group string }
	want := map[key]*appliance.Aggregate{}
	for unit, x := range units {
		for _, spec := range e.Metrics {
			var sumY, sumX float64
			var nY, nX int
			for _, ev := range events {
				if ev.Unit != unit || ev.Metric != spec.Name {
					continue
				}
				switch spec.Place(x.at.UnixMicro(), ev.Time, appliance.DefaultCovariateLookback) {
				case "post":
					sumY += ev.Value
					nY++
				case "pre":
					sumX += ev.Value
					nX++
				}
			}
			y, xv := spec.UnitValue(sumY, nY), spec.UnitValue(sumX, nX)
			for _, g := range []string{"", "country=" + x.country} {
				k := key{x.arm, spec.Name, g}
				a := want[k]
				if a == nil {
					a = &appliance.Aggregate{Arm: k.arm, Metric: k.metric, Group: g}
					want[k] = a
				}
				a.N++
				a.Sum += y
				a.SumSq += y * y
				a.SumX += xv
				a.SumXSq += xv * xv
				a.SumXY += xv * y
			}
		}
	}
	got, err := s.ExperimentAggregates(ctx, "exp")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d aggregates, want %d", len(got), len(want))
	}
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	for _, g := range got {
		w := want[key{g.Arm, g.Metric, g.Group}]
		if w == nil || g.N != w.N || !close(g.Sum, w.Sum) || !close(g.SumSq, w.SumSq) || !close(g.SumX, w.SumX) ||
			!close(g.SumXSq, w.SumXSq) || !close(g.SumXY, w.SumXY) {
			t.Fatalf("aggregate %+v, want %+v", g, w)
		}
	}
}

func TestExperimentData_PurgeEventIDs(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	now := time.Date(2026, 6, 10, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	ev := func(id string) []appliance.OutcomeEvent {
		return []appliance.OutcomeEvent{{Unit: "u", Metric: "m", Value: 1, Time: now.UnixMicro(), EventID: id}}
	}
	record := func(evs []appliance.OutcomeEvent) *appliance.EventsResult {
		t.Helper()
		res, err := s.RecordEvents(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.FoldEvents(ctx, 1<<30); err != nil {
			t.Fatal(err)
		}
		return res
	}
	record(ev("a"))
	record(ev("b"))
	now = now.Add(8 * 24 * time.Hour)
	record(ev("c"))
	n, err := s.PurgeEventIDs(ctx, now.Add(-appliance.EventIDWindow), 100)
	if err != nil || n != 2 {
		t.Fatalf("purged %d (%v), want 2", n, err)
	}
	// "a" may be sent again (a new event after the window); "c" is still a duplicate.
	if res := record(append(ev("a"), ev("c")...)); len(res.Duplicates) != 1 || res.Duplicates[0] != "c" {
		t.Fatalf("after purge: %+v", res)
	}
}

// A new seed starts a new phase: the old assignment's units and aggregates
// go, and exposures from before the phase are not counted.
func TestExperimentData_ReseedStartsANewPhase(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	e := &appliance.Experiment{Name: "exp", Model: "m", Unit: "user_id", State: appliance.ExperimentRunning, Coverage: 1, PhaseStartedAt: &t0,
		Arms:    []appliance.Arm{{Name: "control", Version: 1, Weight: 0.5}, {Name: "treatment", Version: 2, Weight: 0.5}},
		Metrics: []appliance.Metric{{Name: "converted", Type: appliance.MetricBinomial, Direction: "increase", Role: "goal"}}}
	if err := s.CreateExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	expose := func(unit string, at time.Time) {
		if _, err := s.RecordExposures(ctx, []appliance.ExposureLog{{Experiment: "exp", Arm: "control", Unit: unit, Time: at}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	expose("u1", t0.Add(time.Minute))
	if aggs, _ := s.ExperimentAggregates(ctx, "exp"); len(aggs) != 1 {
		t.Fatalf("aggregates before the reseed: %+v", aggs)
	}
	phase := t0.Add(time.Hour)
	if _, err := s.UpdateExperiment(ctx, "exp", "update", func(cur *appliance.Experiment, _ []*appliance.Experiment) (*appliance.Experiment, error) {
		next := *cur
		next.Seed, next.PhaseStartedAt = "exp-2", &phase
		return &next, nil
	}); err != nil {
		t.Fatal(err)
	}
	if aggs, _ := s.ExperimentAggregates(ctx, "exp"); len(aggs) != 0 {
		t.Fatalf("aggregates after the reseed: %+v", aggs)
	}
	expose("u2", t0.Add(30*time.Minute)) // logged before the phase, consumed after
	expose("u3", t0.Add(2*time.Hour))
	aggs, _ := s.ExperimentAggregates(ctx, "exp")
	if len(aggs) != 1 || aggs[0].N != 1 {
		t.Fatalf("aggregates of the new phase: %+v", aggs)
	}
}

func TestExperimentData_PercentileCap(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	e := &appliance.Experiment{Name: "exp", Model: "m", Unit: "user_id", State: appliance.ExperimentRunning, Coverage: 1,
		Arms:    []appliance.Arm{{Name: "control", Version: 1, Weight: 0.5}, {Name: "treatment", Version: 2, Weight: 0.5}},
		Metrics: []appliance.Metric{{Name: "revenue", Type: appliance.MetricMean, Direction: "increase", Role: "goal", CapPercentile: 0.9}}}
	if err := s.CreateExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	var logs []appliance.ExposureLog
	var events []appliance.OutcomeEvent
	for i := 1; i <= 100; i++ {
		unit := fmt.Sprintf("u%d", i)
		logs = append(logs, appliance.ExposureLog{Experiment: "exp", Arm: e.Arms[i%2].Name, Unit: unit, Time: t0})
		events = append(events, appliance.OutcomeEvent{Unit: unit, Metric: "revenue", Value: float64(i), Time: t0.Add(time.Hour).UnixMicro()})
	}
	if _, err := s.RecordExposures(ctx, logs, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FoldEvents(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	capAt, aggs, err := s.CappedAggregates(ctx, e, "revenue")
	if err != nil || capAt != 90 {
		t.Fatalf("cap %v (%v), want 90", capAt, err)
	}
	want := map[string]float64{}
	for i := 1; i <= 100; i++ {
		want[e.Arms[i%2].Name] += math.Min(float64(i), 90)
	}
	for _, a := range aggs {
		if a.Group == "" && (a.N != 50 || a.Sum != want[a.Arm]) {
			t.Fatalf("%+v, want N 50 and sum %v", a, want[a.Arm])
		}
	}
}

// A retry racing its original (both logged before either is folded) counts
// once.
func TestExperimentData_RacingRetryCountsOnce(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	e := &appliance.Experiment{Name: "exp", Model: "m", Unit: "user_id", State: appliance.ExperimentRunning, Coverage: 1,
		Arms:    []appliance.Arm{{Name: "control", Version: 1, Weight: 0.5}, {Name: "treatment", Version: 2, Weight: 0.5}},
		Metrics: []appliance.Metric{{Name: "revenue", Type: appliance.MetricMean, Direction: "increase", Role: "goal"}}}
	if err := s.CreateExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordExposures(ctx, []appliance.ExposureLog{{Experiment: "exp", Arm: "control", Unit: "u", Time: t0}}, 0); err != nil {
		t.Fatal(err)
	}
	ev := []appliance.OutcomeEvent{{Unit: "u", Metric: "revenue", Value: 5, Time: t0.Add(time.Hour).UnixMicro(), EventID: "p-1"}}
	for range 2 {
		if res, err := s.RecordEvents(ctx, ev); err != nil || res.Accepted != 1 {
			t.Fatalf("%+v %v", res, err)
		}
	}
	if n, err := s.FoldEvents(ctx, 100); err != nil || n != 2 {
		t.Fatalf("folded %d (%v)", n, err)
	}
	aggs, _ := s.ExperimentAggregates(ctx, "exp")
	if len(aggs) != 1 || aggs[0].Sum != 5 {
		t.Fatalf("aggregates %+v, want a sum of 5", aggs)
	}
	if n, _ := s.FoldEvents(ctx, 100); n != 0 {
		t.Fatalf("folded %d again", n)
	}
}
