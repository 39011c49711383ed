package wasm

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"
)

var nativeOnce struct {
	sync.Once
	ns float64
}

// nativeNs is the cost of nativeLR in this run, for ns-over-native/op: the
// best of five timed loops (testing.Benchmark cannot run inside a benchmark).
func nativeNs() float64 {
	nativeOnce.Do(func() {
		x := lrInput(1)
		const n = 1 << 21
		best := math.MaxFloat64
		for range 5 {
			start := time.Now()
			for range n {
				sinkF = nativeLR(x)
			}
			best = min(best, float64(time.Since(start).Nanoseconds())/n)
		}
		nativeOnce.ns = best
	})
	return nativeOnce.ns
}

var sinkF float64

// BenchmarkPredictLR32 compares the 32-feature logistic regression in Go and
// through the pool, with each deadline mechanism and with none.
func BenchmarkPredictLR32(b *testing.B) {
	b.Run("native", func(b *testing.B) {
		x := lrInput(1)
		b.ReportAllocs()
		for b.Loop() {
			sinkF = nativeLR(x)
		}
	})
	for _, mode := range []Interrupt{InterruptInstrument, InterruptContext, interruptNone} {
		b.Run("wasm-"+mode.String(), func(b *testing.B) {
			native := nativeNs()
			r := openRuntime(b, Options{PoolSize: 1, Interrupt: mode})
			m := load(b, r, "lr32", Limits{}, 32, 1)
			ctx := context.Background()
			x, out := lrInput(1), make([]float64, 1)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if err := m.Predict(ctx, x, out); err != nil {
					b.Fatal(err)
				}
			}
			ns := float64(time.Since(start).Nanoseconds()) / float64(b.N)
			b.ReportMetric(ns-native, "ns-over-native/op")
		})
	}
}
