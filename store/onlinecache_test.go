package store_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// Every way of changing an online row is seen by the next read, though the
// row before it was cached.
func TestOnlineCache_ReadsSeeAcknowledgedWrites(t *testing.T) {
	now := time.Now().Truncate(time.Microsecond)
	cases := []struct {
		name string
		// change alters alice's online row and returns the view to read
		// and what the read must give (found, clicks).
		change      func(t *testing.T, s *store.Store, v *appliance.FeatureView) (*appliance.FeatureView, bool, int64)
		wantCachedN bool // the second read before the change was a hit
	}{
		{"ingest", func(t *testing.T, s *store.Store, v *appliance.FeatureView) (*appliance.FeatureView, bool, int64) {
			if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("alice", now.Add(time.Second), 2, 0)}}); err != nil {
				t.Fatal(err)
			}
			return v, true, 2
		}, true},
		{"materialize", func(t *testing.T, s *store.Store, v *appliance.FeatureView) (*appliance.FeatureView, bool, int64) {
			r := row("alice", now.Add(time.Minute), 3, 0)
			if _, err := s.WriteOnline(ctx, &appliance.OnlineWrite{View: v, Rows: []appliance.SeqRow{{Row: r, Seq: 1 << 40}}}); err != nil {
				t.Fatal(err)
			}
			return v, true, 3
		}, true},
		{"erase", func(t *testing.T, s *store.Store, v *appliance.FeatureView) (*appliance.FeatureView, bool, int64) {
			user, _ := s.Entity(ctx, "user")
			if _, err := s.EraseEntityKey(ctx, user, []appliance.Value{appliance.StringValue("alice")}); err != nil {
				t.Fatal(err)
			}
			return v, false, 0
		}, true},
		{"delete and recreate the view", func(t *testing.T, s *store.Store, v *appliance.FeatureView) (*appliance.FeatureView, bool, int64) {
			if err := s.DeleteFeatureView(ctx, v.Name, true); err != nil {
				t.Fatal(err)
			}
			again, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: v.Name, Entities: []string{"user"}, Features: v.Features, TTL: v.TTL})
			if err != nil || again.Key() != v.Key() {
				t.Fatalf("recreate: %v %v", again, err)
			}
			return again, false, 0
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.Open(t, store.Options{})
			v := mustCreateUserView(t, s)
			if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("alice", now, 1, 0)}}); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if got := readOne(t, s, v, "alice"); !got.Found || got.Values[0].Int != 1 {
					t.Fatalf("before: %+v", got)
				}
			}
			if hits, _, _ := s.OnlineCacheForTest(); hits == 0 {
				t.Fatal("the second read of a row was not served by the cache")
			}
			view, found, clicks := tc.change(t, s, v)
			got := readOne(t, s, view, "alice")
			if got.Found != found || found && got.Values[0].Int != clicks {
				t.Fatalf("after: %+v, want found=%v clicks=%d", got, found, clicks)
			}
		})
	}
}

// Absent keys are cached as absent until a write adds them.
func TestOnlineCache_AbsentThenWritten(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	for range 2 {
		if readOne(t, s, v, "nobody").Found {
			t.Fatal("found a row never written")
		}
	}
	if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("nobody", time.Now(), 7, 0)}}); err != nil {
		t.Fatal(err)
	}
	if got := readOne(t, s, v, "nobody"); !got.Found || got.Values[0].Int != 7 {
		t.Fatalf("after the write: %+v", got)
	}
}

// Readers racing a writer never see a value go back, and never see one
// older than the last acknowledged write.
func TestOnlineCache_ConcurrentReadersAndWriter(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	base := time.Now()
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			last := int64(0)
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := acked.Load()
				got := readOne(t, s, v, "alice")
				var clicks int64
				if got.Found {
					clicks = got.Values[0].Int
				}
				if clicks < floor || clicks < last {
					errs <- fmt.Errorf("read %d after an acknowledged %d (previous read %d)", clicks, floor, last)
					return
				}
				last = clicks
			}
		})
	}
	for i := int64(1); i <= 300; i++ {
		if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("alice", base.Add(time.Duration(i)*time.Millisecond), i, 0)}}); err != nil {
			t.Fatal(err)
		}
		acked.Store(i)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// The cache stays within its budget and a row it had to drop is read from
// the store again.
func TestOnlineCache_Budget(t *testing.T) {
	const budget = 64 << 10
	s := storetest.Open(t, store.Options{OnlineCacheBytes: budget})
	v := mustCreateUserView(t, s)
	rows := make([]appliance.Row, 5000)
	for i := range rows {
		rows[i] = row(fmt.Sprint("u", i), time.Now(), int64(i), 0)
	}
	if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: rows}); err != nil {
		t.Fatal(err)
	}
	for pass := range 2 {
		for i := range rows {
			if got := readOne(t, s, v, fmt.Sprint("u", i)); !got.Found || got.Values[0].Int != int64(i) {
				t.Fatalf("pass %d, u%d: %+v", pass, i, got)
			}
			if _, _, used := s.OnlineCacheForTest(); used > budget {
				t.Fatalf("cache holds %d bytes, budget %d", used, budget)
			}
		}
	}
}

// A negative budget turns the cache off; reads work the same.
func TestOnlineCache_Off(t *testing.T) {
	s := storetest.Open(t, store.Options{OnlineCacheBytes: -1})
	v := mustCreateUserView(t, s)
	if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("alice", time.Now(), 4, 0)}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got := readOne(t, s, v, "alice"); !got.Found || got.Values[0].Int != 4 {
			t.Fatalf("%+v", got)
		}
	}
	if hits, misses, _ := s.OnlineCacheForTest(); hits+misses != 0 {
		t.Fatal("a cache turned off was used")
	}
}
