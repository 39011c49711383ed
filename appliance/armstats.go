package appliance

import (
	"maps"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// ArmStats counts one experiment arm's predictions in this process over a
// sliding window of the last ArmStatsWindow (whole minutes, the current
// one included): requests, failures of the model, and latencies in a
// log-scale histogram (four buckets per power of two of microseconds, so a
// percentile is known within about 19 %). Guardrails on error rate and p99
// latency read them: an arm that turns bad after a good day is judged on
// what it does now, not diluted by its past.
type ArmStats struct {
	mu    sync.Mutex // rotates a slot to a new minute
	slots [armStatsSlots]armSlot
}

// ArmStatsWindow is how far back guardrails look at an arm's live requests.
const ArmStatsWindow = 5 * time.Minute

const armStatsSlots = int(ArmStatsWindow/time.Minute) + 1

type armSlot struct {
	minute   atomic.Int64 // unix minute the counts belong to
	requests atomic.Int64
	errors   atomic.Int64
	buckets  [latencyBuckets]atomic.Int64
}

const latencyBuckets = 64 * 4

func latencyBucket(d time.Duration) int {
	us := uint64(max(d.Microseconds(), 1))
	exp := bits.Len64(us) - 1 // us in [2^exp, 2^(exp+1))
	sub := 0
	if exp >= 2 {
		sub = int(us>>(exp-2)) & 3
	} else if exp == 1 {
		sub = int(us&1) << 1
	}
	return min(exp*4+sub, latencyBuckets-1)
}

// bucketUpper is the upper bound of a bucket, in microseconds.
func bucketUpper(i int) float64 {
	exp, sub := i/4, i%4
	return math.Ldexp(1+float64(sub+1)/4, exp)
}

// record counts a prediction that started at, took took and failed or not.
func (a *ArmStats) record(at time.Time, took time.Duration, failed bool) {
	minute := at.Unix() / 60
	s := &a.slots[minute%int64(armStatsSlots)]
	if s.minute.Load() != minute {
		a.mu.Lock()
		if s.minute.Load() != minute {
			// A request racing the reset may land on either side of it:
			// a count or two at a minute's edge, no older data.
			s.requests.Store(0)
			s.errors.Store(0)
			for i := range s.buckets {
				s.buckets[i].Store(0)
			}
			s.minute.Store(minute)
		}
		a.mu.Unlock()
	}
	s.requests.Add(1)
	if failed {
		s.errors.Add(1)
	}
	s.buckets[latencyBucket(took)].Add(1)
}

// Snapshot returns requests, model failures and the p99 latency over the
// window ending at now.
func (a *ArmStats) Snapshot(now time.Time) (requests, errors int64, p99 time.Duration) {
	current := now.Unix() / 60
	var counts [latencyBuckets]int64
	var total int64
	for i := range a.slots {
		s := &a.slots[i]
		if m := s.minute.Load(); m > current || m <= current-int64(armStatsSlots) {
			continue // outside the window (or never used)
		}
		requests += s.requests.Load()
		errors += s.errors.Load()
		for j := range counts {
			c := s.buckets[j].Load()
			counts[j] += c
			total += c
		}
	}
	if total == 0 {
		return requests, errors, 0
	}
	rank := int64(math.Ceil(0.99 * float64(total)))
	var seen int64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			return requests, errors, time.Duration(bucketUpper(i) * float64(time.Microsecond))
		}
	}
	return requests, errors, 0
}

// armStatsMap holds the ArmStats of every experiment arm seen. Lookups on
// the predict path read an immutable map through an atomic pointer (no
// lock, no allocation); a new arm copies the map, which happens once per
// arm and phase.
type armStatsMap struct {
	m  atomic.Pointer[map[armKey]*ArmStats]
	mu sync.Mutex // one copy at a time
}

type armKey struct {
	experiment, arm string
	phase           int64
}

func (s *armStatsMap) get(experiment, arm string, phase int64) *ArmStats {
	k := armKey{experiment, arm, phase}
	if m := s.m.Load(); m != nil {
		if a := (*m)[k]; a != nil {
			return a
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var next map[armKey]*ArmStats
	if m := s.m.Load(); m != nil {
		if a := (*m)[k]; a != nil {
			return a
		}
		next = maps.Clone(*m)
	} else {
		next = map[armKey]*ArmStats{}
	}
	a := &ArmStats{}
	next[k] = a
	s.m.Store(&next)
	return a
}

// ArmStats returns the live counts of an experiment's arm in its current
// phase: a restarted or reseeded experiment starts from zero.
func (p *Predictor) ArmStats(e *Experiment, arm string) *ArmStats {
	return p.arms.get(e.Name, arm, e.Phase())
}
