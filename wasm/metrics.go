package wasm

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// moduleMetrics are the series of one module (sha256), shared by its pools.
// They live in a set of their own, written by Runtime.writeMetrics while the
// module is loaded: Unload drops the set. Names follow
// mlnode_wasm_<what>{module="<first 12 hex of the sha256>"}.
type moduleMetrics struct {
	label string // `{module="…"}`
	set   *metrics.Set

	errors, traps, timeouts *metrics.Counter
	latency                 latencyHistogram // also counts the calls

	mu    sync.Mutex
	pools []*Module
}

func newModuleMetrics(sha string) *moduleMetrics {
	s := &moduleMetrics{label: fmt.Sprintf("{module=%q}", shortSHA(sha)), set: metrics.NewSet()}
	name := func(n string) string { return "mlnode_wasm_" + n + s.label }
	s.errors = s.set.NewCounter(name("errors_total"))
	s.traps = s.set.NewCounter(name("traps_total"))
	s.timeouts = s.set.NewCounter(name("timeouts_total"))
	s.set.NewGauge(name("pool_size"), func() float64 { return s.sum(func(p PoolStats) int { return p.Size }) })
	s.set.NewGauge(name("instances"), func() float64 { return s.sum(func(p PoolStats) int { return p.Live }) })
	s.set.NewGauge(name("instances_in_use"), func() float64 { return s.sum(func(p PoolStats) int { return p.InUse }) })
	s.set.RegisterMetricsWriter(func(w io.Writer) {
		s.latency.write(w, "mlnode_wasm_call_duration_seconds", "mlnode_wasm_calls_total", shortSHA(sha))
	})
	return s
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

// observe records the outcome of one call into the module.
func (s *moduleMetrics) observe(f fault, nanos int64) {
	s.latency.observe(nanos)
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

// latencyBounds are the upper bounds of mlnode_wasm_call_duration_seconds in
// nanoseconds: 1 µs to 262 ms by powers of 4.
var latencyBounds = [...]int64{1e3, 4e3, 16e3, 64e3, 256e3, 1024e3, 4096e3, 16384e3, 65536e3, 262144e3}

// latencyHistogram is a Prometheus histogram of atomic counters: calls on
// several cores contend on no lock (metrics.PrometheusHistogram takes a
// mutex per update, which halved the throughput of two goroutines).
type latencyHistogram struct {
	buckets [len(latencyBounds) + 1]atomic.Uint64 // the last is +Inf
	nanos   atomic.Uint64
}

func (h *latencyHistogram) observe(ns int64) {
	i := 0
	for i < len(latencyBounds) && ns > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.nanos.Add(uint64(max(ns, 0)))
}

// write renders the histogram, and the count as a counter, in the Prometheus
// text format.
func (h *latencyHistogram) write(w io.Writer, name, countName, module string) {
	var b []byte
	cum := uint64(0)
	for i := range h.buckets {
		cum += h.buckets[i].Load()
		le := "+Inf"
		if i < len(latencyBounds) {
			le = strconv.FormatFloat(float64(latencyBounds[i])*1e-9, 'g', -1, 64)
		}
		b = fmt.Appendf(b, "%s_bucket{module=%q,le=%q} %d\n", name, module, le, cum)
	}
	b = fmt.Appendf(b, "%s_sum{module=%q} %s\n", name, module,
		strconv.FormatFloat(float64(h.nanos.Load())*1e-9, 'g', -1, 64))
	b = fmt.Appendf(b, "%s_count{module=%q} %d\n", name, module, cum)
	b = fmt.Appendf(b, "%s{module=%q} %d\n", countName, module, cum)
	w.Write(b)
}
