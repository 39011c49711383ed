package appliance

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestExposureSet(t *testing.T) {
	var s exposureSet
	a := exposureKey("exp", 1, "u1")
	if a == 0 {
		t.Fatal("a key is never 0, the empty slot")
	}
	if !s.first(a) || s.first(a) {
		t.Fatal("the first exposure of a unit must be first once")
	}
	if other := exposureKey("exp", 2, "u1"); other == a || !s.first(other) {
		t.Fatal("a new phase must see the unit afresh")
	}
	s.forget(a)
	if !s.first(a) {
		t.Fatal("a forgotten unit must be first again")
	}
	// Three keys on one line: the third evicts one, and none is ever
	// reported as seen without having been marked.
	base := uint64(7) << 33
	keys := []uint64{base | 2, base | 4, base | 5}
	for _, k := range keys {
		if !s.first(k) {
			t.Fatalf("key %x: first time must be first", k)
		}
	}
	seen := 0
	for _, k := range keys {
		if !s.first(k) {
			seen++
		}
	}
	if seen == 0 || seen == 3 {
		t.Fatalf("a line of two slots holding three keys: %d seen, want 1 or 2", seen)
	}
}

// Concurrent requests for one unit: exactly one logs its exposure.
func TestExposureSetConcurrentFirst(t *testing.T) {
	var s exposureSet
	for u := range 200 {
		h := exposureKey("exp", 1, "u"+strconv.Itoa(u))
		var firsts atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if s.first(h) {
					firsts.Add(1)
				}
			})
		}
		wg.Wait()
		if firsts.Load() != 1 {
			t.Fatalf("unit %d: %d requests took the first exposure", u, firsts.Load())
		}
	}
}

// The table grows while units keep coming, and a unit marked after the
// last growth stays seen.
func TestExposureSetGrows(t *testing.T) {
	var s exposureSet
	const units = 20_000
	for u := range units {
		s.first(exposureKey("exp", 1, "u"+strconv.Itoa(u)))
	}
	n := len(s.table.Load().slots)
	if n <= exposureSetMinSlots || n < units {
		t.Fatalf("after %d units the table has %d slots", units, n)
	}
	h := exposureKey("exp", 1, "late")
	if !s.first(h) || s.first(h) {
		t.Fatal("a unit marked in the grown table must be seen")
	}
}
