package wasm

import (
	"fmt"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// latencyBuckets are the upper bounds of mlnode_wasm_call_duration_seconds:
// 1 µs to 262 ms by powers of 4.
var latencyBuckets = metrics.ExponentialBuckets(1e-6, 4, 10)

// moduleMetrics are the series of one module (sha256), shared by its pools.
// They live in a set of their own, written by Runtime.writeMetrics while the
// module is loaded: Unload drops the set.
type moduleMetrics struct {
	label string // the module label: first 12 hex digits of the sha256
	set   *metrics.Set

	calls, errors, traps, timeouts *metrics.Counter
	latency                        *metrics.PrometheusHistogram

	mu    sync.Mutex
	pools []*Module
}

func (s *moduleMetrics) add(m *Module) {
	s.mu.Lock()
	s.pools = append(s.pools, m)
	s.mu.Unlock()
}

func (s *moduleMetrics) remove(m *Module) {
	s.mu.Lock()
	for i, p := range s.pools {
		if p == m {
			s.pools = append(s.pools[:i], s.pools[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
}

// sum adds up a figure over the module's pools.
func (s *moduleMetrics) sum(f func(PoolStats) int) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.pools {
		n += f(p.Stats())
	}
	return float64(n)
}

func newModuleMetrics(sha string) *moduleMetrics {
	s := &moduleMetrics{label: shortSHA(sha), set: metrics.NewSet()}
	name := func(n string) string { return fmt.Sprintf("mlnode_wasm_%s{module=%q}", n, s.label) }
	s.calls = s.set.NewCounter(name("calls_total"))
	s.errors = s.set.NewCounter(name("errors_total"))
	s.traps = s.set.NewCounter(name("traps_total"))
	s.timeouts = s.set.NewCounter(name("timeouts_total"))
	s.latency = s.set.NewPrometheusHistogramExt(name("call_duration_seconds"), latencyBuckets)
	s.set.NewGauge(name("pool_size"), func() float64 { return s.sum(func(p PoolStats) int { return p.Size }) })
	s.set.NewGauge(name("instances"), func() float64 { return s.sum(func(p PoolStats) int { return p.Live }) })
	s.set.NewGauge(name("instances_in_use"), func() float64 { return s.sum(func(p PoolStats) int { return p.InUse }) })
	return s
}

// observe records the outcome of one call into the module.
func (s *moduleMetrics) observe(f fault, nanos int64) {
	s.calls.Inc()
	s.latency.Update(float64(nanos) * 1e-9)
	if f == faultNone {
		return
	}
	s.errors.Inc()
	switch f {
	case faultTrap, faultExit:
		s.traps.Inc()
	case faultTimeout:
		s.timeouts.Inc()
	}
}
