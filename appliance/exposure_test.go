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
	// One key more than the probes with the same start: the last evicts
	// the one at the start, and no key is ever reported as seen without
	// having been marked.
	base := uint64(7) << 33
	for k := uint64(1); k <= exposureProbes+1; k++ {
		if !s.first(base | k) {
			t.Fatalf("key %d: first time must be first", k)
		}
	}
	if s.first(base | (exposureProbes + 1)) {
		t.Fatal("the key that evicted must be seen")
	}
	if !s.first(base | 1) {
		t.Fatal("the evicted key must be first again")
	}
}

// Below half full nothing is evicted: every marked unit stays seen, so a
// unit's exposure is logged once.
func TestExposureSetNoRepeatsBelowCapacity(t *testing.T) {
	var s exposureSet
	const units = 50_000
	for u := range units {
		if !s.first(exposureKey("exp", 1, "u"+strconv.Itoa(u))) {
			t.Fatalf("unit %d taken as seen before it was marked", u)
		}
	}
	for u := range units {
		if s.first(exposureKey("exp", 1, "u"+strconv.Itoa(u))) {
			t.Fatalf("unit %d first again with the table %d%% full", u, 100*s.table.Load().used.Load()/int64(len(s.table.Load().slots)))
		}
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

// Goroutines marking their own units while the table grows under them:
// a unit's first call is always first (never wrongly seen).
func TestExposureSetConcurrentGrowth(t *testing.T) {
	var s exposureSet
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Go(func() {
			for u := range 20_000 {
				if !s.first(exposureKey("exp", 1, strconv.Itoa(g)+"-"+strconv.Itoa(u))) {
					errs <- "unit " + strconv.Itoa(g) + "-" + strconv.Itoa(u) + " taken as seen before it was marked"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	// Marks that raced a copy may be missing from the grown table (they are
	// logged again); the table still grew with the units.
	if n := len(s.table.Load().slots); n < 16*exposureSetMinSlots {
		t.Fatalf("the table has %d slots for 80,000 units", n)
	}
}
