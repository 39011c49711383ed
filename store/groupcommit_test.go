package store

import (
	"context"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// The group commit runs every write queued together in one transaction;
// when one fails, the batch rolls back and the others run again. These
// tests queue writes behind a held writer so that they share a batch.

// holdWriter blocks the store's writer until release is called.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	held, gate := make(chan struct{}), make(chan struct{})
	go s.update(context.Background(), func(*bolt.Tx) error {
		select {
		case <-held:
		default:
			close(held)
		}
		<-gate
		return nil
	}, nil)
	<-held
	return func() { close(gate) }
}

// waitQueued waits until n writes wait for the writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.writes) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", len(s.writes), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// failLater queues a write that fails, so that the batch runs again.
func failLater(s *Store) chan error {
	done := make(chan error, 1)
	go func() {
		done <- s.update(context.Background(), func(*bolt.Tx) error { return errors.New("this write fails") }, nil)
	}()
	return done
}

// A new view re-run after a failing write in its batch is still version 1.
func TestGroupCommit_NewViewSurvivesARerun(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}); err != nil {
		t.Fatal(err)
	}
	release := holdWriter(t, s)
	type applied struct {
		v   *appliance.FeatureView
		err error
	}
	got := make(chan applied, 1)
	go func() {
		v, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "v", Entities: []string{"user"}, Features: []appliance.Feature{{Name: "x", Dtype: "int64"}}})
		got <- applied{v, err}
	}()
	waitQueued(t, s, 1)
	failed := failLater(s)
	waitQueued(t, s, 2)
	release()
	if err := <-failed; err == nil {
		t.Fatal("the failing write succeeded")
	}
	a := <-got
	if a.err != nil || a.v.Version != 1 {
		t.Fatalf("new view after a rerun: %+v %v", a.v, a.err)
	}
	if versions, err := s.FeatureViewVersions(ctx, "v"); err != nil || len(versions) != 1 {
		t.Fatalf("registry holds %d versions (%v)", len(versions), err)
	}
	// Its buckets are there: a new schema makes version 2.
	v2, created, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "v", Entities: []string{"user"}, Features: []appliance.Feature{{Name: "x", Dtype: "float64"}}})
	if err != nil || !created || v2.Version != 2 {
		t.Fatalf("next version: %+v %v %v", v2, created, err)
	}
}

// Two uploads of one model in one batch get two versions, and both stay.
func TestGroupCommit_ModelVersionsInOneBatch(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	release := holdWriter(t, s)
	results := make(chan *appliance.ModelVersion, 2)
	for i, content := range []string{"a", "b"} {
		go func() {
			wasm := []byte("\x00asm\x01\x00\x00\x00" + content)
			v, _, err := s.CreateModelVersion(ctx, &appliance.ModelVersion{Model: "churn", SHA256: appliance.ModuleDigest([]byte(content)),
				Module: "sha256:" + appliance.ModuleDigest(wasm), Outputs: []string{"score"}}, []byte("bundle"+content), map[string][]byte{"m.wasm": wasm})
			if err != nil {
				t.Errorf("upload %s: %v", content, err)
			}
			results <- v
		}()
		waitQueued(t, s, i+1)
	}
	release()
	a, b := <-results, <-results
	if a == nil || b == nil || a.Version == b.Version {
		t.Fatalf("two uploads in one batch: %+v and %+v", a, b)
	}
	for _, v := range []*appliance.ModelVersion{a, b} {
		got, err := s.ModelVersion(ctx, "churn", v.Version)
		if err != nil || got.SHA256 != v.SHA256 {
			t.Fatalf("version %d reads back %+v (%v), want sha %s", v.Version, got, err, v.SHA256)
		}
	}
}

// A delete that fails leaves the view's online cache as it was: writes in
// flight have marked that entry, and a new one would not see them end.
func TestGroupCommit_FailedViewDeleteKeepsTheOnlineCache(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	writeBatches(t, s, v, 1, 1, 1)
	rows := make([]appliance.OnlineRow, 1)
	if err := s.ReadOnline(ctx, v, [][]byte{ukey("u0")}, rows); err != nil || !rows[0].Found {
		t.Fatalf("read: %+v %v", rows[0], err)
	}
	before := (*s.online.views.Load())[v.Key()]
	if err := s.DeleteFeatureView(ctx, "v", false); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("delete of a view with data: %v, want conflict", err)
	}
	if after := (*s.online.views.Load())[v.Key()]; before == nil || after != before {
		t.Fatal("a failed delete replaced the view's online cache entry")
	}
	if err := s.DeleteFeatureView(ctx, "v", true); err != nil {
		t.Fatal(err)
	}
	if _, ok := (*s.online.views.Load())[v.Key()]; ok {
		t.Fatal("a deleted view's online cache entry remains")
	}
}

// A materialization that scanned the offline log before an erasure must not
// write the erased rows back online (a soak found 238 of 785 erased keys
// online again); rows ingested after the erasure are new data and pass.
func TestErasure_SurvivesAMaterializationInFlight(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, OfflineOnly: true, Rows: []appliance.Row{
		{Key: ukey("alice"), EventTime: 1_700_000_000_000_000, Values: []appliance.Value{appliance.Int64Value(1)}},
		{Key: ukey("bob"), EventTime: 1_700_000_000_000_000, Values: []appliance.Value{appliance.Int64Value(2)}},
	}}); err != nil {
		t.Fatal(err)
	}
	scan := func(after uint64) *appliance.OnlineWrite {
		w := &appliance.OnlineWrite{View: v}
		if err := s.ScanIngested(ctx, v, after, func(seq uint64, r appliance.Row) bool {
			w.Rows = append(w.Rows, appliance.SeqRow{Row: r, Seq: seq})
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return w
	}
	scanned := scan(0) // the job reads, then the erasure commits, then the job writes
	user := &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}
	if _, err := s.EraseEntityKey(ctx, user, []appliance.Value{appliance.StringValue("alice")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteOnline(ctx, scanned); err != nil {
		t.Fatal(err)
	}
	read := func(id string) appliance.OnlineRow {
		rows := make([]appliance.OnlineRow, 1)
		if err := s.ReadOnline(ctx, v, [][]byte{ukey(id)}, rows); err != nil {
			t.Fatal(err)
		}
		return rows[0]
	}
	if r := read("alice"); r.Found {
		t.Fatalf("an erased entity is online again: %+v", r)
	}
	if r := read("bob"); !r.Found {
		t.Fatal("the other entity was not materialized")
	}
	// New data for the same key after the erasure is materialized.
	st, _ := s.ViewStats(ctx, v)
	if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, OfflineOnly: true, Rows: []appliance.Row{
		{Key: ukey("alice"), EventTime: 1_600_000_000_000_000, Values: []appliance.Value{appliance.Int64Value(3)}},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteOnline(ctx, scan(st.LastSeq)); err != nil {
		t.Fatal(err)
	}
	if r := read("alice"); !r.Found || r.Values[0].Int != 3 {
		t.Fatalf("data ingested after the erasure: %+v", r)
	}
}
