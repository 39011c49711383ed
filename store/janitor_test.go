package store

import (
	"context"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

func TestStore_Janitor_PurgesExpiredIdempotencyAnswers(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := Open(ctx, t.TempDir(), Options{Now: clock, IdempotencyTTL: time.Hour, JanitorInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}); err != nil {
		t.Fatal(err)
	}
	v, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "v", Entities: []string{"user"}, Features: []appliance.Feature{{Name: "x", Dtype: "int64"}}})
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketIdempotency).Stats().KeyN; return nil })
		return n
	}
	for _, key := range []string{"old", "new"} {
		if key == "new" {
			mu.Lock()
			now = now.Add(2 * time.Hour)
			mu.Unlock()
		}
		row := appliance.Row{Key: []byte{1, 'a'}, EventTime: now.UnixMicro(), Values: []appliance.Value{appliance.Int64Value(1)}}
		if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row}, Idempotency: &appliance.Idempotency{Key: key, Response: []byte("{}")}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for count() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d answers stored, want only the live one", count())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, ok, _ := s.IdempotentResponse(ctx, "new"); !ok {
		t.Fatal("the live answer was purged")
	}
}

func TestTelemetry_RetentionDropsOldFlushes(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := Open(ctx, t.TempDir(), Options{Now: clock, TelemetryFlush: time.Hour, JanitorInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tel := s.Telemetry()
	count := func() int {
		n := 0
		tel.Read("prediction", 0, func(uint64, []byte) bool { n++; return true })
		return n
	}
	for range 3 {
		tel.Append("prediction", []byte(`{"old":true}`))
	}
	tel.flush()
	mu.Lock()
	now = now.Add(40 * 24 * time.Hour)
	mu.Unlock()
	for range 2 {
		tel.Append("prediction", []byte(`{"new":true}`))
	}
	tel.flush()
	if count() != 5 {
		t.Fatalf("%d records before the purge", count())
	}
	n, err := tel.purge(ctx, 30*24*time.Hour, 1000)
	if err != nil || n != 3 || count() != 2 {
		t.Fatalf("purge deleted %d (%v); %d left, want 2", n, err, count())
	}
	if n, _ := tel.purge(ctx, 30*24*time.Hour, 1000); n != 0 {
		t.Fatalf("a second purge deleted %d", n)
	}
}

// A record appended after the store closed (a request that outlived the
// HTTP shutdown) is dropped and counted, not left in an unflushed buffer.
func TestTelemetry_AppendAfterCloseIsCountedDropped(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir(), Options{TelemetryFlush: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tel := s.Telemetry()
	if !tel.Append("prediction", []byte(`{"before":true}`)) {
		t.Fatal("append before close refused")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if tel.Append("prediction", []byte(`{"after":true}`)) {
		t.Fatal("append after close reported as kept")
	}
	if got := tel.Dropped("prediction"); got != 1 {
		t.Fatalf("dropped %d, want 1", got)
	}
	if got := tel.written.Get(); got != 1 {
		t.Fatalf("written %d, want the one appended before close", got)
	}
}
