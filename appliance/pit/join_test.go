package pit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/pit"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

var base = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

type world struct {
	s      *store.Store
	user   *appliance.FeatureView // keyed by user_id (int64), ttl 30 min
	driver *appliance.FeatureView // keyed by driver_id (string), no ttl
	events map[string][]ev        // by view name
}

type ev struct {
	key  appliance.Value
	t    int64
	seq  uint64
	vals []appliance.Value
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	s := storetest.Open(t, store.Options{Compaction: store.CompactionOptions{FlushRows: 40, MergeFanIn: 3, Interval: time.Hour}})
	for _, e := range []*appliance.Entity{
		{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "int64"},
		{Name: "driver", JoinKeys: []string{"driver_id"}, ValueType: "string"},
	} {
		if _, err := s.CreateEntity(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	user, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "user_stats", Entities: []string{"user"}, TTL: appliance.Duration(30 * time.Minute),
		Features: []appliance.Feature{{Name: "clicks", Dtype: "int64"}, {Name: "score", Dtype: "float64"}}})
	if err != nil {
		t.Fatal(err)
	}
	driver, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "driver_stats", Entities: []string{"driver"},
		Features: []appliance.Feature{{Name: "trips", Dtype: "int64"}, {Name: "city", Dtype: "string"}}})
	if err != nil {
		t.Fatal(err)
	}
	return &world{s: s, user: user, driver: driver, events: map[string][]ev{}}
}

// write stores random events: coarse minutes make ties on event time
// common, and later batches reach back in time (late events).
func (w *world) write(t *testing.T, r *rand.Rand, view *appliance.FeatureView, n int, keys []appliance.Value) {
	t.Helper()
	rows := make([]appliance.Row, n)
	evs := make([]ev, n)
	for i := range rows {
		k := keys[r.IntN(len(keys))]
		tm := base.Add(time.Duration(r.IntN(240)) * time.Minute).UnixMicro()
		var vals []appliance.Value
		if view == w.user {
			vals = []appliance.Value{appliance.Int64Value(r.Int64N(1000)), appliance.Float64Value(r.Float64())}
			if r.IntN(10) == 0 {
				vals[1] = appliance.Value{} // stored nulls stay null
			}
		} else {
			vals = []appliance.Value{appliance.Int64Value(r.Int64N(1000)), appliance.StringValue(fmt.Sprintf("c%d", r.IntN(5)))}
		}
		rows[i] = appliance.Row{Key: appliance.AppendEntityKeyPart(nil, k), EventTime: tm, Values: vals}
		evs[i] = ev{key: k, t: tm, vals: vals}
	}
	res, err := w.s.WriteRows(context.Background(), &appliance.WriteRequest{View: view, Rows: rows, OfflineOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		evs[i].seq = res.FirstSeq + uint64(i)
	}
	w.events[view.Name] = append(w.events[view.Name], evs...)
}

// naive is the reference: for one row, scan every event of the view.
func naive(evs []ev, view *appliance.FeatureView, key appliance.Value, ts int64, feats []int) []appliance.Value {
	var best *ev
	for i := range evs {
		e := &evs[i]
		if !e.key.Equal(key) || e.t > ts {
			continue
		}
		if view.TTL > 0 && e.t < ts-time.Duration(view.TTL).Microseconds() {
			continue
		}
		if best == nil || e.t > best.t || e.t == best.t && e.seq > best.seq {
			best = e
		}
	}
	out := make([]appliance.Value, len(feats))
	if best != nil {
		for i, f := range feats {
			out[i] = best.vals[f]
		}
	}
	return out
}

type entityRow struct {
	user   int64
	driver string
	ts     int64
	label  int64
}

func spoolRows(t *testing.T, rows []entityRow) *pit.Spool {
	t.Helper()
	sp, err := pit.NewSpool(t.TempDir(), "entity_rows")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	for _, r := range rows {
		sp.Begin()
		must(t, sp.Set(sp.Column("user_id"), appliance.Int64Value(r.user)))
		must(t, sp.Set(sp.Column("driver_id"), appliance.StringValue(r.driver)))
		must(t, sp.Set(sp.Column("event_timestamp"), appliance.Value{Kind: appliance.KindTimestamp, Int: r.ts}))
		must(t, sp.Set(sp.Column("label"), appliance.Int64Value(r.label)))
		must(t, sp.End())
	}
	return sp
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestJoin_MatchesNaiveReference(t *testing.T) {
	for _, tc := range []struct {
		name     string
		seed     uint64
		budget   int
		parallel bool
	}{
		{"in memory", 1, 0, false},
		{"spilling", 2, 1, false}, // the smallest budget: every sort goes to disk
		{"in memory 2", 3, 0, false},
		{"split across workers", 4, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.parallel {
				defer pit.SetParallelMin(10)()
				defer func(w int) { pit.Workers = w }(pit.Workers)
				pit.Workers = 3
			}
			r := rand.New(rand.NewPCG(tc.seed, 99))
			w := newWorld(t)
			var users, drivers []appliance.Value
			for i := range 25 {
				users = append(users, appliance.Int64Value(int64(i*7919-50000)))
				drivers = append(drivers, appliance.StringValue(fmt.Sprintf("d%d", i)))
			}
			for range 4 {
				w.write(t, r, w.user, 150, users)
				w.write(t, r, w.driver, 100, drivers)
				if err := w.s.Compact(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			w.write(t, r, w.user, 30, users) // left in the tail
			rows := make([]entityRow, 700)
			for i := range rows {
				ts := base.Add(time.Duration(r.IntN(300)-20) * time.Minute).UnixMicro()
				if r.IntN(5) == 0 {
					// Exactly on an event's time, or exactly at its TTL edge.
					e := w.events["user_stats"][r.IntN(len(w.events["user_stats"]))]
					ts = e.t
					if r.IntN(2) == 0 {
						ts = e.t + (30 * time.Minute).Microseconds()
					}
				}
				rows[i] = entityRow{user: users[r.IntN(len(users))].Int, driver: drivers[r.IntN(len(drivers))].Str, ts: ts, label: int64(i)}
				if r.IntN(20) == 0 {
					rows[i].user = 424242 // no events at all
				}
			}
			sp := spoolRows(t, rows)
			parts := []pit.Part{
				{View: w.driver, Features: []int{1, 0}, Names: []string{"driver_stats__city", "driver_stats__trips"}},
				{View: w.user, Features: []int{0, 1}, Names: []string{"clicks", "score"}},
			}
			j, err := pit.Prepare(context.Background(), sp, parts, w.s, pit.Options{TempDir: t.TempDir(), MemoryBudget: tc.budget})
			if err != nil {
				t.Fatal(err)
			}
			wantCols := []pit.Column{{"user_id", "int64"}, {"driver_id", "string"}, {"event_timestamp", "timestamp"}, {"label", "int64"},
				{"driver_stats__city", "string"}, {"driver_stats__trips", "int64"}, {"clicks", "int64"}, {"score", "float64"}}
			if !reflect.DeepEqual(j.Columns(), wantCols) {
				t.Fatalf("columns %v, want %v", j.Columns(), wantCols)
			}
			i := 0
			err = j.Emit(context.Background(), func(got []appliance.Value) error {
				er := rows[i]
				want := []appliance.Value{appliance.Int64Value(er.user), appliance.StringValue(er.driver), {Kind: appliance.KindTimestamp, Int: er.ts}, appliance.Int64Value(er.label)}
				want = append(want, naive(w.events["driver_stats"], w.driver, appliance.StringValue(er.driver), er.ts, []int{1, 0})...)
				want = append(want, naive(w.events["user_stats"], w.user, appliance.Int64Value(er.user), er.ts, []int{0, 1})...)
				for k := range want {
					if !got[k].Equal(want[k]) {
						return fmt.Errorf("row %d column %s: got %+v, want %+v", i, wantCols[k].Name, got[k], want[k])
					}
				}
				i++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if i != len(rows) {
				t.Fatalf("emitted %d rows, want %d", i, len(rows))
			}
			if st := j.Stats(); tc.budget == 1 && !st.Spilled {
				t.Fatalf("a 1-byte budget did not spill: %+v", st)
			}
		})
	}
}

func TestJoin_BadEntityRows(t *testing.T) {
	w := newWorld(t)
	ts := appliance.StringValue("2026-03-01T00:00:00Z")
	for _, tc := range []struct {
		name  string
		fill  func(sp *pit.Spool) error
		field string
	}{
		{"missing join key", func(sp *pit.Spool) error {
			must(t, sp.Set(sp.Column("user_id"), appliance.Int64Value(1)))
			must(t, sp.Set(sp.Column("event_timestamp"), ts))
			must(t, sp.End())
			sp.Begin()
			must(t, sp.Set(sp.Column("event_timestamp"), ts))
			return sp.End()
		}, "entity_rows[1].user_id"},
		{"no join key column at all", func(sp *pit.Spool) error {
			must(t, sp.Set(sp.Column("event_timestamp"), ts))
			return sp.End()
		}, "entity_rows"},
		{"missing timestamp", func(sp *pit.Spool) error {
			must(t, sp.Set(sp.Column("user_id"), appliance.Int64Value(1)))
			return sp.End()
		}, "entity_rows[0].event_timestamp"},
		{"bad timestamp", func(sp *pit.Spool) error {
			return sp.SetText(sp.Column("event_timestamp"), "yesterday")
		}, "entity_rows[0].event_timestamp"},
		{"string for an int64 key", func(sp *pit.Spool) error {
			must(t, sp.SetText(sp.Column("user_id"), "bob"))
			must(t, sp.Set(sp.Column("event_timestamp"), ts))
			return sp.End()
		}, "entity_rows[0].user_id"},
		{"a column named like a feature", func(sp *pit.Spool) error {
			must(t, sp.Set(sp.Column("user_id"), appliance.Int64Value(1)))
			must(t, sp.Set(sp.Column("clicks"), appliance.Int64Value(1)))
			must(t, sp.Set(sp.Column("event_timestamp"), ts))
			return sp.End()
		}, "features"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := pit.NewSpool(t.TempDir(), "entity_rows")
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			sp.Begin()
			err = tc.fill(sp)
			if err == nil {
				parts := []pit.Part{{View: w.user, Features: []int{0}, Names: []string{"clicks"}}}
				_, err = pit.Prepare(context.Background(), sp, parts, w.s, pit.Options{TempDir: t.TempDir()})
			}
			var e *appliance.Error
			if !errors.As(err, &e) || e.Field != tc.field || e.Code != appliance.EINVALID {
				t.Fatalf("got %v, want EINVALID on %s", err, tc.field)
			}
		})
	}
}

func TestRange_EveryEventInRange(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	w := newWorld(t)
	users := []appliance.Value{appliance.Int64Value(1), appliance.Int64Value(-5), appliance.Int64Value(99)}
	w.write(t, r, w.user, 200, users)
	if err := w.s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.write(t, r, w.user, 50, users)
	w.write(t, r, w.driver, 60, []appliance.Value{appliance.StringValue("a"), appliance.StringValue("b")})
	start, end := base.Add(time.Hour).UnixMicro(), base.Add(2*time.Hour).UnixMicro()
	rg, err := pit.NewRange([]pit.Part{
		{View: w.user, Features: []int{1}, Names: []string{"score"}},
		{View: w.driver, Features: []int{0}, Names: []string{"trips"}},
	}, w.s, start, end)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for name, evs := range w.events {
		for _, e := range evs {
			if e.t >= start && e.t < end {
				f := e.vals[1]
				if name == "driver_stats" {
					f = e.vals[0]
				}
				want[fmt.Sprintf("%s|%d|%v", name, e.t, f)]++
			}
		}
	}
	got := map[string]int{}
	err = rg.Emit(context.Background(), func(row []appliance.Value) error {
		// user_id, driver_id, event_timestamp, score, trips
		name, f := "user_stats", row[3]
		if row[0].Null() {
			name, f = "driver_stats", row[4]
			if row[1].Null() || !row[3].Null() {
				return fmt.Errorf("driver row %+v", row)
			}
		} else if row[2].Int < start || row[2].Int >= end || !row[1].Null() || !row[4].Null() {
			return fmt.Errorf("user row %+v", row)
		}
		got[fmt.Sprintf("%s|%d|%v", name, row[2].Int, f)]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || len(want) == 0 {
		t.Fatalf("range returned %d distinct rows, want %d", len(got), len(want))
	}
}
