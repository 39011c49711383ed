package appliance

import (
	"testing"
	"time"
)

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
			a.record(d, i%10 == 0)
		}
		req, errs, p99 := a.Snapshot()
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
	if _, _, p := empty.Snapshot(); p != 0 {
		t.Fatalf("empty p99 %v", p)
	}
}
