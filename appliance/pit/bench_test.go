package pit_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/pit"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// BenchmarkJoin joins 100,000 entity rows with a view of 1,000,000 events
// over 10,000 entities and 10 float features: a tenth of the issue's
// end-to-end benchmark (bench/pit), in process, to profile the join itself.
func BenchmarkJoin(b *testing.B) {
	const events, entities, rows, features = 1_000_000, 10_000, 100_000, 10
	ctx := context.Background()
	s := storetest.Open(b, store.Options{})
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "int64"}); err != nil {
		b.Fatal(err)
	}
	fv := &appliance.FeatureView{Name: "v", Entities: []string{"user"}}
	for i := range features {
		fv.Features = append(fv.Features, appliance.Feature{Name: string(rune('a' + i)), Dtype: "float64"})
	}
	view, _, err := s.ApplyFeatureView(ctx, fv)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	span := int64(30 * 24 * time.Hour / time.Microsecond)
	batch := make([]appliance.Row, 0, 100_000)
	for i := range events {
		vals := make([]appliance.Value, features)
		for k := range vals {
			vals[k] = appliance.Float64Value(r.Float64())
		}
		batch = append(batch, appliance.Row{Key: appliance.AppendEntityKeyPart(nil, appliance.Int64Value(int64(i%entities))), EventTime: r.Int64N(span), Values: vals})
		if len(batch) == cap(batch) {
			if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: view, Rows: batch, OfflineOnly: true}); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Compact(ctx); err != nil {
		b.Fatal(err)
	}
	part := pit.Part{View: view}
	for i := range features {
		part.Features = append(part.Features, i)
		part.Names = append(part.Names, fv.Features[i].Name)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sp, err := pit.NewSpool(b.TempDir(), "entity_rows")
		if err != nil {
			b.Fatal(err)
		}
		uid, ts := sp.Column("user_id"), sp.Column("event_timestamp")
		for range rows {
			sp.Begin()
			_ = sp.Set(uid, appliance.Int64Value(r.Int64N(entities)))
			_ = sp.Set(ts, appliance.Value{Kind: appliance.KindTimestamp, Int: r.Int64N(span)})
			if err := sp.End(); err != nil {
				b.Fatal(err)
			}
		}
		j, err := pit.Prepare(ctx, sp, []pit.Part{part}, s, pit.Options{TempDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		if err := j.Emit(ctx, func([]appliance.Value) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		sp.Close()
		if n != rows {
			b.Fatalf("%d rows", n)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
}
