package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

func openCompacting(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{Compaction: CompactionOptions{FlushRows: 50, MergeFanIn: 3, MergeChunkRows: 7, Interval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func defineView(t *testing.T, s *Store) *appliance.FeatureView {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}); err != nil {
		t.Fatal(err)
	}
	v, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "v", Entities: []string{"user"}, Features: []appliance.Feature{{Name: "x", Dtype: "int64"}}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func ukey(id string) []byte { return appliance.AppendEntityKeyPart(nil, appliance.StringValue(id)) }

// writeBatches writes batches of rows whose value is their global number,
// for entities u0..u(entities-1), and returns how many rows it wrote.
func writeBatches(t *testing.T, s *Store, v *appliance.FeatureView, batches, size, entities int) int {
	t.Helper()
	n := 0
	for b := range batches {
		rows := make([]appliance.Row, size)
		for i := range rows {
			rows[i] = appliance.Row{Key: ukey(fmt.Sprintf("u%d", n%entities)), EventTime: int64(1_700_000_000_000_000 + (n*7919)%1000), Values: []appliance.Value{appliance.Int64Value(int64(n))}}
			n++
		}
		if _, err := s.WriteRows(context.Background(), &appliance.WriteRequest{View: v, Rows: rows}); err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
	}
	return n
}

// scanAll returns the value of every stored row, sorted, and checks that
// sequences are unique.
func scanAll(t *testing.T, s *Store, v *appliance.FeatureView, after uint64) []int {
	t.Helper()
	var got []int
	seen := map[uint64]bool{}
	err := s.ScanIngested(context.Background(), v, after, func(seq uint64, r appliance.Row) bool {
		if seen[seq] {
			t.Fatalf("sequence %d returned twice", seq)
		}
		seen[seq] = true
		got = append(got, int(r.Values[0].Int))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Ints(got)
	return got
}

func eventsMetaOf(t *testing.T, s *Store, v *appliance.FeatureView) *eventsMeta {
	t.Helper()
	var m *eventsMeta
	s.db.View(func(tx *bolt.Tx) error {
		var err error
		m, err = s.readEventsMeta(tx.Bucket(bucketEvents).Bucket([]byte(v.Key())))
		return err
	})
	return m
}

func TestOffline_CompactionKeepsEveryRowOnce(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	total := writeBatches(t, s, v, 40, 13, 17) // 520 rows
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	m := eventsMetaOf(t, s, v)
	levels := map[int]int{}
	var inRuns uint64
	for _, r := range m.Runs {
		if r.Building {
			t.Fatalf("run %d left building", r.ID)
		}
		levels[r.Level]++
		inRuns += r.Rows
	}
	if len(levels) < 2 || m.TailRows >= 50 || inRuns+m.TailRows != uint64(total) {
		t.Fatalf("after compaction: levels %v, %d rows in runs, tail %d, want %d in all", levels, inRuns, m.TailRows, total)
	}
	want := make([]int, total)
	for i := range want {
		want[i] = i
	}
	if got := scanAll(t, s, v, 0); !slices.Equal(got, want) {
		t.Fatalf("rows after compaction: %d of %d, first %v", len(got), total, got[:min(10, len(got))])
	}
	// Since sequence 300: exactly the rows numbered 299 and up.
	if got := scanAll(t, s, v, 300); len(got) != total-300 || got[0] != 300 {
		t.Fatalf("scan after 300: %d rows, first %v", len(got), got[:1])
	}
	// Every run is sorted by entity, time and sequence.
	s.db.View(func(tx *bolt.Tx) error {
		runs, _, _ := s.runs(tx.Bucket(bucketEvents).Bucket([]byte(v.Key())), false)
		for _, r := range runs {
			var prev []byte
			r.run.ForEach(func(k, _ []byte) error {
				if prev != nil && string(prev) >= string(k) {
					t.Fatalf("run %d out of order", r.id)
				}
				prev = slices.Clone(k)
				return nil
			})
		}
		return nil
	})
	if err := s.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	if m := eventsMetaOf(t, s, v); m.TailRows != 0 {
		t.Fatalf("tail after FlushAll: %d", m.TailRows)
	}
	if got := scanAll(t, s, v, 0); len(got) != total {
		t.Fatalf("rows after FlushAll: %d", len(got))
	}
}

// The compactor asks every second for every view whether there is work; on a
// settled store the answer must not cost a commit (and an fsync) each time.
func TestOffline_SettledCompactionCommitsNothing(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	writeBatches(t, s, v, 10, 13, 17) // 130 rows: runs of 50, a short tail
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	before, flushes, merges := s.commits.Get(), s.flushes.Get(), s.merges.Get()
	for range 5 {
		if err := s.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.commits.Get() - before; got != 0 {
		t.Fatalf("5 compactions of a settled store committed %d times", got)
	}
	if s.flushes.Get() != flushes || s.merges.Get() != merges {
		t.Fatalf("settled store flushed or merged again")
	}
	// Work still gets done: a full tail is flushed.
	writeBatches(t, s, v, 4, 13, 17)
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if s.flushes.Get() == flushes {
		t.Fatal("a full tail was not flushed")
	}
}

func TestOffline_EraseReachesRunsTailAndBuildingRuns(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	total := writeBatches(t, s, v, 20, 13, 5) // u0..u4, 52 rows each
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	// A merge in progress: a building run holding copies of u1's rows.
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents).Bucket([]byte(v.Key()))
		m, _ := s.readEventsMeta(b)
		run, err := b.Bucket(keyRuns).CreateBucket(runKey(m.NextRun))
		if err != nil {
			return err
		}
		run.Put(appendOfflineKey(nil, ukey("u1"), 1, 1), s.codec.Seal(nil, encodeValues(nil, []appliance.Value{appliance.Int64Value(-1)})))
		m.Runs = append(m.Runs, runInfo{ID: m.NextRun, Level: 9, Building: true, Rows: 1})
		m.NextRun++
		return s.putJSON(b, keyEventMeta, m)
	})
	if err != nil {
		t.Fatal(err)
	}
	user, _ := s.Entity(ctx, "user")
	res, err := s.EraseEntityKey(ctx, user, []appliance.Value{appliance.StringValue("u1")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Offline != total/5 {
		t.Fatalf("erased %d offline rows, want %d (a copy in a building run is not a row)", res.Offline, total/5)
	}
	s.db.View(func(tx *bolt.Tx) error {
		runs, _, _ := s.runs(tx.Bucket(bucketEvents).Bucket([]byte(v.Key())), true)
		for _, r := range runs {
			if k, _ := r.run.Cursor().Seek(ukey("u1")); k != nil && string(k[:len(ukey("u1"))]) == string(ukey("u1")) {
				t.Errorf("run %d still holds u1", r.id)
			}
		}
		return nil
	})
	for _, x := range scanAll(t, s, v, 0) {
		if x%5 == 1 {
			t.Fatalf("row %d of u1 survived erasure", x)
		}
	}
	st, _ := s.ViewStats(ctx, v)
	if st.OfflineRows != total-total/5 {
		t.Fatalf("stats after erase: %+v", st)
	}
}

// A merge interrupted by a crash leaves a building run; the next open drops
// it and the data is as before the merge began.
func TestOffline_InterruptedMergeIsDroppedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := openCompacting(t, dir)
	v := defineView(t, s)
	total := writeBatches(t, s, v, 10, 20, 7)
	if err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents).Bucket([]byte(v.Key()))
		m, _ := s.readEventsMeta(b)
		run, _ := b.Bucket(keyRuns).CreateBucket(runKey(m.NextRun))
		run.Put([]byte("half-copied"), []byte{0})
		m.Runs = append(m.Runs, runInfo{ID: m.NextRun, Level: 5, Building: true})
		m.NextRun++
		return s.putJSON(b, keyEventMeta, m)
	})
	s.Close()
	s = openCompacting(t, dir)
	defer s.Close()
	for _, r := range eventsMetaOf(t, s, v).Runs {
		if r.Building {
			t.Fatalf("building run %d survived the restart", r.ID)
		}
	}
	if got := scanAll(t, s, v, 0); len(got) != total {
		t.Fatalf("%d rows after recovery, want %d", len(got), total)
	}
}

// A store of schema 2 kept its offline log as one entity-ordered bucket per
// view version and an ingest index; opening it moves the rows into a run.
func TestMigrate_OfflineBucketsBecomeARun(t *testing.T) {
	dir := t.TempDir()
	s := openCompacting(t, dir)
	v := defineView(t, s)
	total := writeBatches(t, s, v, 3, 10, 4)
	var rows []appliance.Row
	var seqs []uint64
	s.ScanIngested(context.Background(), v, 0, func(seq uint64, r appliance.Row) bool {
		rows, seqs = append(rows, r), append(seqs, seq)
		return true
	})
	// Rebuild the schema 2 layout by hand.
	err := s.db.Update(func(tx *bolt.Tx) error {
		old, _ := tx.CreateBucketIfNotExists([]byte("offline"))
		ob, _ := old.CreateBucket([]byte(v.Key()))
		for i, r := range rows {
			ob.Put(appendOfflineKey(nil, r.Key, r.EventTime, seqs[i]), s.codec.Seal(nil, encodeValues(nil, r.Values)))
		}
		tx.CreateBucketIfNotExists([]byte("ingest_index"))
		if err := tx.Bucket(bucketEvents).DeleteBucket([]byte(v.Key())); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, binary.BigEndian.AppendUint32(nil, 2))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openCompacting(t, dir)
	defer s.Close()
	if got := scanAll(t, s, v, 0); len(got) != total {
		t.Fatalf("%d rows after migration, want %d", len(got), total)
	}
	s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("offline")) != nil || tx.Bucket([]byte("ingest_index")) != nil {
			t.Error("old buckets kept")
		}
		return nil
	})
	if m := eventsMetaOf(t, s, v); len(m.Runs) != 1 || m.Runs[0].Rows != uint64(total) {
		t.Fatalf("runs after migration: %+v", m.Runs)
	}
}

// The HTTP server hands the store names that alias request buffers it
// reuses (fiber's zero-copy strings); the store must not keep them.
func TestRegistry_PatchKeepsNoCallerMemory(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	defineView(t, s) // "v"
	buf := []byte("v")
	owner := "growth"
	if _, err := s.PatchFeatureView(ctx, unsafe.String(&buf[0], len(buf)), &appliance.FeatureViewPatch{Owner: &owner}); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'x' // the server reuses its buffer for the next request
	v, err := s.FeatureView(ctx, "v", 0)
	if err != nil || v.Owner != "growth" || v.Name != "v" || v.Key() != "v@1" {
		t.Fatalf("view after patch: %+v %v", v, err)
	}
}
