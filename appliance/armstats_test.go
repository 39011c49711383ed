package appliance

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 30, 15, 0, time.UTC)

func TestArmStats_P99WithinABucket(t *testing.T) {
	for _, tc := range []struct {
		slow time.Duration // the slowest 2 % of requests
	}{{3 * time.Millisecond}, {40 * time.Millisecond}, {700 * time.Microsecond}} {
		var a ArmStats
		for i := range 1000 {
			d := 100 * time.Microsecond
			if i%50 == 0 || i%50 == 1 {
				d = tc.slow
			}
			a.record(t0, d, i%10 == 0)
		}
		req, errs, p99 := a.Snapshot(t0)
		if req != 1000 || errs != 100 {
			t.Fatalf("counts %d %d", req, errs)
		}
		// The p99 is in the slow group; the bucket's upper bound is at most
		// 25 % above the true value.
		if p99 < tc.slow || p99 > tc.slow*5/4 {
			t.Errorf("slow %v: p99 %v", tc.slow, p99)
		}
	}
	var empty ArmStats
	if _, _, p := empty.Snapshot(t0); p != 0 {
		t.Fatalf("empty p99 %v", p)
	}
}

// Guardrails judge the last ArmStatsWindow: older minutes leave the counts,
// and a slot reused for a new minute starts from zero.
func TestArmStats_SlidingWindow(t *testing.T) {
	var a ArmStats
	// Twenty minutes of a fast, healthy arm, then two bad minutes.
	for m := range 20 {
		for range 100 {
			a.record(t0.Add(time.Duration(m)*time.Minute), time.Millisecond, false)
		}
	}
	bad := t0.Add(20 * time.Minute)
	for m := range 2 {
		for range 100 {
			a.record(bad.Add(time.Duration(m)*time.Minute), 80*time.Millisecond, true)
		}
	}
	now := bad.Add(time.Minute + 30*time.Second)
	req, errs, p99 := a.Snapshot(now)
	// The window is the current minute and the five before it: 4 healthy
	// minutes and the 2 bad ones.
	if req != 600 || errs != 200 {
		t.Fatalf("window counts %d requests, %d errors; want 600 and 200", req, errs)
	}
	if p99 < 80*time.Millisecond {
		t.Fatalf("p99 %v: the bad minutes must dominate the tail", p99)
	}
	// Long after, nothing is left.
	if req, _, _ := a.Snapshot(now.Add(time.Hour)); req != 0 {
		t.Fatalf("an hour later the window holds %d requests", req)
	}
}
