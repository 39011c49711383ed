package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

func TestDecodeRuns(t *testing.T) {
	runs := []outcomeRun{{id: 3, level: 0, rows: 7}, {id: 9, level: 1, rows: 1 << 40, into: 12}}
	tests := []struct {
		name     string
		in       []byte
		wantNext uint64
		want     []outcomeRun
		wantErr  bool
	}{
		{name: "empty list", in: encodeRuns(5, nil), wantNext: 5, want: []outcomeRun{}},
		{name: "two runs", in: encodeRuns(12, runs), wantNext: 12, want: runs},
		{name: "truncated", in: encodeRuns(12, runs)[:5], wantErr: true},
		{name: "bad varint", in: []byte{0xff}, wantErr: true},
		{name: "nothing", in: nil, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, got, err := decodeRuns(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if next != tt.wantNext || !slices.Equal(got, tt.want) {
				t.Fatalf("got %d %+v, want %d %+v", next, got, tt.wantNext, tt.want)
			}
		})
	}
}

// Whatever the fold and merge sizes, every row is in exactly one run, the
// run list counts them, the number of runs stays logarithmic, and a unit's
// lookup finds each of its events once.
func TestMetricRuns_MergesKeepEveryRow(t *testing.T) {
	tests := []struct {
		name         string
		folds, batch int
		budget       int
	}{
		{name: "one row per fold", folds: 300, batch: 1, budget: 8},
		{name: "merges finish within a fold", folds: 100, batch: 20, budget: 1000},
		{name: "higher merges span folds", folds: 150, batch: 30, budget: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openCompacting(t, t.TempDir())
			defer s.Close()
			r := rand.New(rand.NewPCG(3, 4))
			type event struct {
				at    int64
				value float64
			}
			want := map[string][]event{}
			for range tt.folds {
				var evs []appliance.OutcomeEvent
				for range tt.batch {
					evs = append(evs, appliance.OutcomeEvent{Unit: fmt.Sprint("u", r.IntN(40)), Time: int64(r.IntN(1000)), Value: float64(r.IntN(100))})
				}
				slices.SortFunc(evs, func(a, b appliance.OutcomeEvent) int {
					return slices.Compare(appendStr(nil, a.Unit), appendStr(nil, b.Unit))
				})
				err := s.db.Update(func(tx *bolt.Tx) error {
					mr, err := openMetricRuns(tx, "m", true)
					if err != nil {
						return err
					}
					if err := mr.compact(tt.budget); err != nil {
						return err
					}
					run := mr.newRun(0)
					for _, ev := range evs {
						n, _ := mr.rows.NextSequence()
						if err := mr.rows.Put(rowKey(nil, run.id, ev.Unit, ev.Time, n), binary.BigEndian.AppendUint64(nil, math.Float64bits(ev.Value))); err != nil {
							return err
						}
						run.rows++
						want[ev.Unit] = append(want[ev.Unit], event{ev.Time, ev.Value})
					}
					return mr.save(tx)
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			err := s.db.View(func(tx *bolt.Tx) error {
				mr, err := openMetricRuns(tx, "m", false)
				if err != nil {
					return err
				}
				var counted uint64
				ids := map[uint64]bool{}
				for _, run := range mr.runs {
					counted += run.rows
					ids[run.id] = true
				}
				var keys uint64
				if err := mr.rows.ForEach(func(k, _ []byte) error {
					if !ids[binary.BigEndian.Uint64(k)] {
						return fmt.Errorf("row %x of no listed run", k)
					}
					keys++
					return nil
				}); err != nil {
					return err
				}
				if keys != counted || keys != uint64(tt.folds*tt.batch) {
					return fmt.Errorf("%d rows stored, %d counted, %d written", keys, counted, tt.folds*tt.batch)
				}
				if len(mr.runs) > 4*runFanIn {
					return fmt.Errorf("%d runs: %+v", len(mr.runs), mr.runs)
				}
				byEvent := func(a, b event) int { return cmp.Compare(a.at, b.at)*2 + cmp.Compare(a.value, b.value) }
				for unit, evs := range want {
					var got []event
					mr.forUnit(unit, func(at int64, v float64) { got = append(got, event{at, v}) })
					slices.SortFunc(got, byEvent)
					slices.SortFunc(evs, byEvent)
					if !slices.Equal(got, evs) {
						return fmt.Errorf("unit %s: events %v, want %v", unit, got, evs)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Folded a few events at a time, so that exposures read units' events
// from many runs and merges in progress, the aggregates equal those of one
// fold.
func TestExperimentData_FoldBatchesAgree(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(5, 6))
	var events []appliance.OutcomeEvent
	var exposures []appliance.ExposureLog
	for u := range 60 {
		unit := fmt.Sprint("unit-", u)
		exposures = append(exposures, appliance.ExposureLog{Experiment: "exp", Arm: []string{"control", "treatment"}[u%2], Unit: unit,
			Time: t0.Add(time.Duration(r.IntN(48)) * time.Hour)})
		for range r.IntN(12) {
			events = append(events, appliance.OutcomeEvent{Unit: unit, Metric: []string{"converted", "revenue"}[r.IntN(2)],
				Value: float64(r.IntN(20)), Time: t0.Add(time.Duration(r.IntN(24*8)-24*4) * time.Hour).UnixMicro(),
				EventID: fmt.Sprint("ev", len(events))})
		}
	}
	aggregates := func(batch int) []appliance.Aggregate {
		s := openCompacting(t, t.TempDir())
		defer s.Close()
		e := &appliance.Experiment{Name: "exp", Model: "m", Unit: "user_id", State: appliance.ExperimentRunning, Coverage: 1,
			Arms: []appliance.Arm{{Name: "control", Version: 1, Weight: 0.5}, {Name: "treatment", Version: 2, Weight: 0.5}},
			Metrics: []appliance.Metric{
				{Name: "converted", Type: appliance.MetricBinomial, Direction: "increase", Role: "goal"},
				{Name: "revenue", Type: appliance.MetricMean, Direction: "increase", Role: "goal", Window: appliance.Duration(24 * time.Hour)},
			}}
		if err := s.CreateExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
		// Half the events before the exposures, half after.
		half := len(events) / 2
		for i, part := range [][]appliance.OutcomeEvent{events[:half], events[half:]} {
			if _, err := s.RecordEvents(ctx, part); err != nil {
				t.Fatal(err)
			}
			for {
				n, err := s.FoldEvents(ctx, batch)
				if err != nil {
					t.Fatal(err)
				}
				if n < batch {
					break
				}
			}
			if i == 0 {
				if _, err := s.RecordExposures(ctx, exposures, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		aggs, err := s.ExperimentAggregates(ctx, "exp")
		if err != nil {
			t.Fatal(err)
		}
		return aggs
	}
	want := aggregates(1 << 30)
	for _, batch := range []int{1, 2, 7, 40} {
		t.Run(fmt.Sprint("batch ", batch), func(t *testing.T) {
			if got := aggregates(batch); !slices.Equal(got, want) {
				t.Fatalf("aggregates %+v, want (one fold) %+v", got, want)
			}
		})
	}
}

// A store whose folds change more pages than FoldMaxPages folds fewer
// events at a time, and the aggregates are the same.
func TestExperimentData_FoldCapBoundsTransactions(t *testing.T) {
	defer func(floor int) { foldCapFloor = floor }(foldCapFloor)
	foldCapFloor = 5
	ctx := context.Background()
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var events []appliance.OutcomeEvent
	var exposures []appliance.ExposureLog
	for u := range 300 {
		unit := fmt.Sprint("unit-", u)
		exposures = append(exposures, appliance.ExposureLog{Experiment: "exp", Arm: []string{"control", "treatment"}[u%2], Unit: unit, Time: t0})
		for i := range 3 {
			events = append(events, appliance.OutcomeEvent{Unit: unit, Metric: "revenue", Value: float64(u % 7),
				Time: t0.Add(time.Duration(i+1) * time.Hour).UnixMicro(), EventID: fmt.Sprint("ev-", u, "-", i)})
		}
	}
	run := func(opts Options, limit int) ([]appliance.Aggregate, []int) {
		s, err := Open(ctx, t.TempDir(), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		e := &appliance.Experiment{Name: "exp", Model: "m", Unit: "user_id", State: appliance.ExperimentRunning, Coverage: 1,
			Arms:    []appliance.Arm{{Name: "control", Version: 1, Weight: 0.5}, {Name: "treatment", Version: 2, Weight: 0.5}},
			Metrics: []appliance.Metric{{Name: "revenue", Type: appliance.MetricMean, Direction: "increase", Role: "goal"}}}
		if err := s.CreateExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordExposures(ctx, exposures, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordEvents(ctx, events); err != nil {
			t.Fatal(err)
		}
		var folds []int
		for {
			n, err := s.FoldEvents(ctx, limit)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			folds = append(folds, n)
		}
		aggs, err := s.ExperimentAggregates(ctx, "exp")
		if err != nil {
			t.Fatal(err)
		}
		return aggs, folds
	}
	want, _ := run(Options{}, 1<<30)
	got, folds := run(Options{FoldMaxPages: 2}, 400)
	if !slices.Equal(got, want) {
		t.Fatalf("capped folds: aggregates %+v, want %+v", got, want)
	}
	if len(folds) < 2 || folds[0] != 400 || folds[1] >= 400 {
		t.Fatalf("folds of %v events: the second must be cut after a first that changed more than 2 pages", folds)
	}
}
