package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// retentionBase is the event time of the retention tests' first event.
const retentionBase = int64(1_700_000_000_000_000)

// writeTimed writes n rows for entities e0..e(entities-1), row i at
// retentionBase + (i*37 % span) µs, valued i, in batches of 20, and returns
// each row's time by value.
func writeTimed(t *testing.T, s *Store, v *appliance.FeatureView, first, n, entities, span int) map[int64]int64 {
	t.Helper()
	times := map[int64]int64{}
	for start := first; start < first+n; start += 20 {
		var rows []appliance.Row
		for i := start; i < min(start+20, first+n); i++ {
			at := retentionBase + int64(i*37%span)
			times[int64(i)] = at
			rows = append(rows, appliance.Row{Key: ukey(fmt.Sprintf("e%d", i%entities)), EventTime: at, Values: []appliance.Value{appliance.Int64Value(int64(i))}})
		}
		if _, err := s.WriteRows(context.Background(), &appliance.WriteRequest{View: v, Rows: rows}); err != nil {
			t.Fatal(err)
		}
	}
	return times
}

// checkBookkeeping compares the run list, the tail count and the view's
// offline count with what the buckets hold.
func checkBookkeeping(t *testing.T, s *Store, v *appliance.FeatureView) int {
	t.Helper()
	stored := 0
	s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents).Bucket([]byte(v.Key()))
		runs, meta, err := s.runs(b, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			n := r.run.Stats().KeyN
			info := meta.Runs[runIndex(meta, r.id)]
			if info.Rows != uint64(n) {
				t.Errorf("run %d: meta says %d rows, holds %d", r.id, info.Rows, n)
			}
			if !info.Building {
				stored += n
			}
		}
		tail := b.Bucket(keyTail).Stats().KeyN
		if meta.TailRows != uint64(tail) {
			t.Errorf("tail: meta says %d rows, holds %d", meta.TailRows, tail)
		}
		stored += tail
		return nil
	})
	st, err := s.ViewStats(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	if st.OfflineRows != stored {
		t.Errorf("view stats: %d offline rows, %d stored", st.OfflineRows, stored)
	}
	return stored
}

func retentionAudits(t *testing.T, s *Store) []map[string]any {
	t.Helper()
	entries, _, err := s.AuditEntries(context.Background(), appliance.AuditFilter{Action: "feature_view.retention", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range entries {
		var m map[string]any
		if err := json.Unmarshal(e.Summary, &m); err != nil {
			t.Fatal(err)
		}
		m["object"] = e.Object
		out = append(out, m)
	}
	return out
}

func TestDeleteEventsBefore_RunsTailAndBuildingRuns(t *testing.T) {
	for _, tt := range []struct {
		name            string
		maxRows, cutoff int
		steps           int
	}{
		{"one transaction", retentionRows, 500, retentionSteps},
		{"small chunks", 7, 500, 13},
		{"nothing old", 7, 0, 13},
		{"everything", 5, 1000, 9},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openCompacting(t, t.TempDir())
			defer s.Close()
			v := defineView(t, s)
			times := writeTimed(t, s, v, 0, 400, 11, 1000)
			if err := s.Compact(ctx); err != nil {
				t.Fatal(err)
			}
			// Some rows stay in the tail, one of them a late old event.
			for k, at := range writeTimed(t, s, v, 400, 30, 11, 1000) {
				times[k] = at
			}
			// A run left building by an interrupted merge holds copies.
			err := s.db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketEvents).Bucket([]byte(v.Key()))
				m, _ := s.readEventsMeta(b)
				run, err := b.Bucket(keyRuns).CreateBucket(runKey(m.NextRun))
				if err != nil {
					return err
				}
				run.Put(appendOfflineKey(nil, ukey("e1"), retentionBase+1, 1), s.codec.Seal(nil, encodeValues(nil, []appliance.Value{appliance.Int64Value(-1)})))
				run.Put(appendOfflineKey(nil, ukey("e1"), retentionBase+999, 2), s.codec.Seal(nil, encodeValues(nil, []appliance.Value{appliance.Int64Value(-2)})))
				m.Runs = append(m.Runs, runInfo{ID: m.NextRun, Level: 9, Building: true, Rows: 2})
				m.NextRun++
				return s.putJSON(b, keyEventMeta, m)
			})
			if err != nil {
				t.Fatal(err)
			}
			if m := eventsMetaOf(t, s, v); len(m.Runs) < 3 || m.TailRows == 0 {
				t.Fatalf("setup: want several runs and a tail, got %d runs, tail %d", len(m.Runs), m.TailRows)
			}
			online := readOnlineAll(t, s, v, 11)

			cutoff := retentionBase + int64(tt.cutoff)
			var want []int
			old := 0
			for i := range 430 {
				if times[int64(i)] >= cutoff {
					want = append(want, i)
				} else {
					old++
				}
			}
			n, err := s.deleteEventsBefore(ctx, v, cutoff, tt.maxRows, tt.steps)
			if err != nil {
				t.Fatal(err)
			}
			if n != old {
				t.Fatalf("deleted %d, want %d (copies in a building run do not count)", n, old)
			}
			got := scanAll(t, s, v, 0)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%d rows left, want %d", len(got), len(want))
			}
			if stored := checkBookkeeping(t, s, v); stored != len(want) {
				t.Fatalf("stored %d, want %d", stored, len(want))
			}
			s.db.View(func(tx *bolt.Tx) error {
				runs, _, _ := s.runs(tx.Bucket(bucketEvents).Bucket([]byte(v.Key())), true)
				r := runs[len(runs)-1].run
				if k, _ := r.Cursor().First(); tt.cutoff >= 1 && k != nil && readTime(k[len(k)-16:]) < cutoff {
					t.Error("the building run still holds an old copy")
				}
				return nil
			})
			if after := readOnlineAll(t, s, v, 11); fmt.Sprint(after) != fmt.Sprint(online) {
				t.Fatalf("online values changed:\n%v\n%v", online, after)
			}
			audits := retentionAudits(t, s)
			if old == 0 {
				if len(audits) != 0 {
					t.Fatalf("audited a retention that deleted nothing: %v", audits)
				}
				return
			}
			if len(audits) != 1 || audits[0]["deleted"] != float64(old) || audits[0]["object"] != "feature_view/v@1" || audits[0]["interrupted"] != nil {
				t.Fatalf("audit: %v", audits)
			}
			// A second pass finds nothing.
			if n, err := s.DeleteEventsBefore(ctx, v, cutoff); err != nil || n != 0 {
				t.Fatalf("second pass: %d %v", n, err)
			}
		})
	}
}

func readOnlineAll(t *testing.T, s *Store, v *appliance.FeatureView, entities int) []string {
	t.Helper()
	keys := make([][]byte, entities)
	for i := range keys {
		keys[i] = ukey(fmt.Sprintf("e%d", i))
	}
	out := make([]appliance.OnlineRow, entities)
	if err := s.ReadOnline(context.Background(), v, keys, out); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range out {
		got = append(got, fmt.Sprintf("%v@%d=%v", r.Found, r.EventTime, r.Values))
	}
	return got
}

// Ingest and the compactor (nudged by ingest) carry on while retention
// deletes in small chunks; afterwards the bookkeeping matches the buckets.
func TestDeleteEventsBefore_WhileIngesting(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	writeTimed(t, s, v, 0, 600, 13, 1000)
	var wg sync.WaitGroup
	var written atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Bounded: a compactor that always finds a full tail never lets go
		// of its lock.
		for i := 1000; i < 3000; i++ {
			row := appliance.Row{Key: ukey(fmt.Sprintf("e%d", i%13)), EventTime: retentionBase + int64(i*37%1000), Values: []appliance.Value{appliance.Int64Value(int64(i))}}
			if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row}}); err != nil {
				t.Error(err)
				return
			}
			written.Add(1)
		}
	}()
	cutoff := retentionBase + 500
	for range 5 {
		if _, err := s.deleteEventsBefore(ctx, v, cutoff, 11, 29); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	checkBookkeeping(t, s, v)
	if _, err := s.DeleteEventsBefore(ctx, v, cutoff); err != nil {
		t.Fatal(err)
	}
	for _, x := range scanAll(t, s, v, 0) {
		if retentionBase+int64(x*37%1000) < cutoff {
			t.Fatalf("row %d is older than the cutoff", x)
		}
	}
	if n := checkBookkeeping(t, s, v); n == 0 || written.Load() != 2000 {
		t.Fatalf("%d rows left, %d written meanwhile", n, written.Load())
	}
}

// stopAfter is a context whose Err turns to Canceled after n calls: a
// cancellation between two chunks, deterministically.
type stopAfter struct {
	context.Context
	n atomic.Int32
}

func (c *stopAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestDeleteEventsBefore_CancelledAuditsWhatItDeleted(t *testing.T) {
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	writeTimed(t, s, v, 0, 200, 7, 1000)
	ctx := &stopAfter{Context: context.Background()}
	ctx.n.Store(3)
	n, err := s.deleteEventsBefore(ctx, v, retentionBase+900, 10, 1000)
	if !errors.Is(err, context.Canceled) || n == 0 {
		t.Fatalf("deleted %d, err %v; want some and Canceled", n, err)
	}
	audits := retentionAudits(t, s)
	if len(audits) != 1 || audits[0]["deleted"] != float64(n) || audits[0]["interrupted"] != true {
		t.Fatalf("audit: %v", audits)
	}
	checkBookkeeping(t, s, v)
	// The compaction lock was released.
	if err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteEventsBefore_UnknownViewAndCancelledWait(t *testing.T) {
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	ghost := *v
	ghost.Name = "ghost"
	if _, err := s.DeleteEventsBefore(context.Background(), &ghost, retentionBase); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("unknown view: %v", err)
	}
	// While a compaction holds the lock, a cancelled caller gives up.
	s.compactMu.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.DeleteEventsBefore(ctx, v, retentionBase); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for the compactor: %v", err)
	}
	s.compactMu.Unlock()
	if _, err := s.DeleteEventsBefore(context.Background(), v, retentionBase); err != nil {
		t.Fatal(err)
	}
}

// Retention is metadata: set at creation or by PATCH, shared by versions,
// audited, kept across a restart, and never a new version.
func TestRegistry_Retention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openCompacting(t, dir)
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}); err != nil {
		t.Fatal(err)
	}
	def := func(features ...string) *appliance.FeatureView {
		v := &appliance.FeatureView{Name: "v", Entities: []string{"user"}, Retention: appliance.Duration(90 * 24 * time.Hour)}
		for _, f := range features {
			v.Features = append(v.Features, appliance.Feature{Name: f, Dtype: "int64"})
		}
		return v
	}
	v1, _, err := s.ApplyFeatureView(ctx, def("x"))
	if err != nil || v1.Retention != appliance.Duration(90*24*time.Hour) {
		t.Fatalf("create: %+v %v", v1, err)
	}
	if _, _, err := s.ApplyFeatureView(ctx, def("x", "y")); err != nil {
		t.Fatal(err)
	}
	r := appliance.Duration(30 * 24 * time.Hour)
	p, err := s.PatchFeatureView(ctx, "v", &appliance.FeatureViewPatch{Retention: &r})
	if err != nil || p.Retention != r || p.Version != 2 {
		t.Fatalf("patch: %+v %v", p, err)
	}
	short := appliance.Duration(30 * time.Second)
	if _, err := s.PatchFeatureView(ctx, "v", &appliance.FeatureViewPatch{Retention: &short}); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Fatalf("30s retention: %v", err)
	}
	entries, _, _ := s.AuditEntries(ctx, appliance.AuditFilter{Action: "feature_view.update"})
	if len(entries) != 1 || !json.Valid(entries[0].Summary) || string(entries[0].Summary) == "" {
		t.Fatalf("audit of the patch: %v", entries)
	}
	var sum struct{ Before, After map[string]any }
	json.Unmarshal(entries[0].Summary, &sum)
	if sum.Before["retention"] != "2160h" || sum.After["retention"] != "720h" {
		t.Fatalf("audit summary: %s", entries[0].Summary)
	}
	s.Close()
	s = openCompacting(t, dir)
	defer s.Close()
	for _, version := range []int{1, 2} {
		v, err := s.FeatureView(ctx, "v", version)
		if err != nil || v.Retention != r {
			t.Fatalf("v%d after restart: %+v %v", version, v, err)
		}
	}
	if vs, _ := s.FeatureViewVersions(ctx, "v"); len(vs) != 2 {
		t.Fatalf("%d versions, want 2: retention is not schema", len(vs))
	}
}
