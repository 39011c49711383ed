package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

type cursorEvent struct {
	key  string
	time int64
	seq  uint64
	val  int64
}

func compareEvents(a, b cursorEvent) int {
	if c := bytes.Compare([]byte(a.key), []byte(b.key)); c != 0 {
		return c
	}
	if a.time != b.time {
		if a.time < b.time {
			return -1
		}
		return 1
	}
	if a.seq < b.seq {
		return -1
	} else if a.seq > b.seq {
		return 1
	}
	return 0
}

// expectedEvents is every stored event in cursor order, from ScanIngested.
func expectedEvents(t *testing.T, s *Store, v *appliance.FeatureView) []cursorEvent {
	t.Helper()
	var want []cursorEvent
	if err := s.ScanIngested(context.Background(), v, 0, func(seq uint64, r appliance.Row) bool {
		want = append(want, cursorEvent{string(r.Key), r.EventTime, seq, r.Values[0].Int})
		return true
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, compareEvents)
	return want
}

func readCursor(t *testing.T, c appliance.EventCursor, during func(i int)) []cursorEvent {
	t.Helper()
	var got []cursorEvent
	var vals []appliance.Value
	for i := 0; c.Next(); i++ {
		var err error
		if vals, err = c.Values(vals); err != nil {
			t.Fatal(err)
		}
		got = append(got, cursorEvent{string(c.Key()), c.EventTime(), c.Seq(), vals[0].Int})
		if during != nil {
			during(i)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestEvents_OrderAndSnapshotWhileCompacting(t *testing.T) {
	for _, renew := range []bool{false, true} {
		t.Run(fmt.Sprintf("renew=%v", renew), func(t *testing.T) {
			if renew {
				oldEvery, oldCheck := cursorRenewEvery, cursorCheckEvery
				cursorRenewEvery, cursorCheckEvery = 0, 1
				t.Cleanup(func() { cursorRenewEvery, cursorCheckEvery = oldEvery, oldCheck })
			}
			ctx := context.Background()
			s := openCompacting(t, t.TempDir())
			defer s.Close()
			v := defineView(t, s)
			writeBatches(t, s, v, 7, 40, 13) // 280 rows: some in runs, some in the tail
			if err := s.Compact(ctx); err != nil {
				t.Fatal(err)
			}
			writeBatches(t, s, v, 1, 30, 13)
			want := expectedEvents(t, s, v)

			c, err := s.Events(ctx, v)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Writes and compaction while the cursor reads must not change
			// what it returns: its snapshot is the store at open.
			got := readCursor(t, c, func(i int) {
				if i%60 == 0 {
					writeBatches(t, s, v, 2, 40, 13)
					if err := s.Compact(ctx); err != nil {
						t.Fatal(err)
					}
				}
			})
			if !slices.Equal(got, want) {
				t.Fatalf("cursor returned %d events, want %d\ngot  %v\nwant %v", len(got), len(want), got[:min(10, len(got))], want[:min(10, len(want))])
			}
			if c.Next() {
				t.Fatal("Next after the end returned true")
			}
		})
	}
}

func TestEvents_SeekKey(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	writeBatches(t, s, v, 5, 40, 10)
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	writeBatches(t, s, v, 1, 25, 10)
	want := expectedEvents(t, s, v)
	for _, target := range []string{"u0", "u5", "u55", "u9", "zzz", ""} {
		c, err := s.Events(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		key := ukey(target)
		if target == "" {
			key = nil
		}
		i := slices.IndexFunc(want, func(e cursorEvent) bool { return bytes.Compare([]byte(e.key), key) >= 0 })
		ok := c.SeekKey(key)
		if ok != (i >= 0) {
			t.Fatalf("SeekKey(%q) = %v, want %v", target, ok, i >= 0)
		}
		if ok {
			var vals []appliance.Value
			vals, _ = c.Values(vals)
			first := cursorEvent{string(c.Key()), c.EventTime(), c.Seq(), vals[0].Int}
			rest := readCursor(t, c, nil)
			if got := append([]cursorEvent{first}, rest...); !slices.Equal(got, want[i:]) {
				t.Fatalf("after SeekKey(%q): %d events, want %d", target, len(got), len(want)-i)
			}
		}
		c.Close()
	}
}

func TestWriteOnline_NewerOrEqualWins(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	row := func(key string, tm int64, seq uint64, val int64) appliance.SeqRow {
		return appliance.SeqRow{Row: appliance.Row{Key: ukey(key), EventTime: tm, Values: []appliance.Value{appliance.Int64Value(val)}}, Seq: seq}
	}
	steps := []struct {
		row     appliance.SeqRow
		applied int
		want    int64
	}{
		{row("a", 100, 5, 1), 1, 1},
		{row("a", 99, 9, 2), 0, 1},  // older: ignored
		{row("a", 100, 4, 3), 0, 1}, // same time, ingested earlier: ignored
		{row("a", 100, 5, 4), 0, 1}, // the same event again: nothing to do
		{row("a", 100, 6, 5), 1, 5}, // same time, ingested later: wins
		{row("a", 101, 1, 6), 1, 6}, // newer
	}
	for i, st := range steps {
		n, err := s.WriteOnline(ctx, &appliance.OnlineWrite{View: v, Rows: []appliance.SeqRow{st.row}})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]appliance.OnlineRow, 1)
		if err := s.ReadOnline(ctx, v, [][]byte{ukey("a")}, out); err != nil {
			t.Fatal(err)
		}
		if n != st.applied || out[0].Values[0].Int != st.want {
			t.Fatalf("step %d: applied %d value %d, want %d and %d", i, n, out[0].Values[0].Int, st.applied, st.want)
		}
	}
	vs, err := s.ViewStats(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if vs.OnlineRows != 1 {
		t.Fatalf("online rows %d, want 1", vs.OnlineRows)
	}
}

func TestEventsAfter_OnlyNewerEventsInOrder(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	writeBatches(t, s, v, 6, 40, 11)
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	writeBatches(t, s, v, 2, 30, 11)
	all := expectedEvents(t, s, v)
	for _, after := range []uint64{0, 1, 100, 239, 240, 250, 299, 300, 1000} {
		var want []cursorEvent
		for _, e := range all {
			if e.seq > after {
				want = append(want, e)
			}
		}
		c, err := s.EventsAfter(ctx, v, after)
		if err != nil {
			t.Fatal(err)
		}
		got := readCursor(t, c, nil)
		c.Close()
		if !slices.Equal(got, want) {
			t.Fatalf("after %d: %d events, want %d", after, len(got), len(want))
		}
	}
}

// A released cursor lets writes through (a write that grows the file waits
// for every read transaction) and carries on exactly where it was.
func TestEvents_ReleaseBetweenEventsKeepsTheSnapshot(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	writeBatches(t, s, v, 6, 40, 13)
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	writeBatches(t, s, v, 1, 20, 13)
	want := expectedEvents(t, s, v)
	c, err := s.Events(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []cursorEvent
	var vals []appliance.Value
	for i := 0; c.Next(); i++ {
		if i%3 == 0 {
			c.Release() // before reading the values: they come back with a new transaction
			writeBatches(t, s, v, 1, 40, 13)
			if i%9 == 0 {
				if err := s.Compact(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if vals, err = c.Values(vals); err != nil {
			t.Fatal(err)
		}
		got = append(got, cursorEvent{string(c.Key()), c.EventTime(), c.Seq(), vals[0].Int})
		if i%3 == 1 {
			c.Release() // after: the next move takes a new transaction
		}
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
}
