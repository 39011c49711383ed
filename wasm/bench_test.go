package wasm

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/examples/models/gbdt_go/gbdt"
	"github.com/mlnode/mlnode/examples/models/logreg_go/logreg"
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

// BenchmarkPredictLR32Raw is the floor: mlnode_predict of an uninstrumented
// instance through wazero's CallWithStack, without pool, metrics or copies.
func BenchmarkPredictLR32Raw(b *testing.B) {
	r := openRuntime(b, Options{PoolSize: 1, Interrupt: interruptNone})
	m := load(b, r, "lr32", Limits{}, 32, 1)
	inst, err := m.acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer m.release(inst, faultNone)
	if err := m.writeFloats(inst, inst.inPtr, lrInput(1)); err != nil {
		b.Fatal(err)
	}
	ctx, fn, s := context.Background(), inst.predict, inst.stack[:4]
	b.ReportAllocs()
	for b.Loop() {
		s[0], s[1], s[2], s[3] = uint64(inst.inPtr), 32, uint64(inst.outPtr), 1
		if err := fn.CallWithStack(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPredictLR32Parallel is the throughput of 2 goroutines on a pool
// of 2, deadline by instrumentation.
func BenchmarkPredictLR32Parallel(b *testing.B) {
	r := openRuntime(b, Options{PoolSize: 2})
	m := load(b, r, "lr32", Limits{}, 32, 1)
	b.ReportAllocs()
	b.SetParallelism(1) // GOMAXPROCS goroutines
	b.RunParallel(func(pb *testing.PB) {
		ctx, x, out := context.Background(), lrInput(2), make([]float64, 1)
		for pb.Next() {
			if err := m.Predict(ctx, x, out); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPredictBatchLR32 predicts 256 rows per call, through
// mlnode_predict_batch and through mlnode_predict row by row; ns/row is the
// cost per prediction.
func BenchmarkPredictBatchLR32(b *testing.B) {
	const rows = 256
	in := make([]float64, 0, rows*32)
	for i := 0; i < rows; i++ {
		in = append(in, lrInput(i)...)
	}
	out := make([]float64, rows)
	for _, name := range []string{"lr32batch", "lr32"} {
		b.Run(name, func(b *testing.B) {
			r := openRuntime(b, Options{PoolSize: 1})
			m := load(b, r, name, Limits{}, 32, 1)
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if err := m.PredictBatch(ctx, in, rows, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}

// BenchmarkLoad measures Load of a fresh runtime: compiling cold, and from a
// warm on-disk cache (a restart), for the C-like lr32 and the Go guest.
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	modules := []struct {
		name string
		wasm func(testing.TB) []byte
		nIn  int
	}{
		{"lr32", func(tb testing.TB) []byte { return fixture(tb, "lr32") }, 32},
		{"goguest", goGuest, 3},
	}
	for _, mod := range modules {
		for _, warm := range []bool{false, true} {
			name := mod.name + "/cold"
			if warm {
				name = mod.name + "/cache"
			}
			b.Run(name, func(b *testing.B) {
				wasm := mod.wasm(b)
				dir := b.TempDir()
				if warm {
					r := openRuntime(b, Options{CacheDir: dir, PoolSize: 1})
					if _, err := r.Load(ctx, wasm, Limits{}, mod.nIn, 1); err != nil {
						b.Fatal(err)
					}
				}
				for b.Loop() {
					b.StopTimer()
					opts := Options{PoolSize: 1}
					if warm {
						opts.CacheDir = dir
					}
					r, err := Open(ctx, opts)
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if _, err := r.Load(ctx, wasm, Limits{}, mod.nIn, 1); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					r.Close(ctx)
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkInstantiate creates an instance (instantiation, start function,
// _initialize, buffers) and closes it.
func BenchmarkInstantiate(b *testing.B) {
	for _, name := range []string{"lr32", "goguest"} {
		b.Run(name, func(b *testing.B) {
			r := openRuntime(b, Options{PoolSize: 1})
			var m *Module
			var err error
			if name == "goguest" {
				m, err = r.Load(context.Background(), goGuest(b), Limits{}, 3, 1)
			} else {
				m, err = r.Load(context.Background(), fixture(b, name), Limits{}, 32, 1)
			}
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				inst, err := m.instantiate(ctx)
				if err != nil {
					b.Fatal(err)
				}
				r.closeInstance(inst)
				m.live.Add(-1)
			}
		})
	}
}

// BenchmarkExamples runs the models of examples/ (built by `make examples`;
// skipped when absent): the 32-feature logistic regression in C (clang) and
// in Go, and the ~200-tree GBDT in Go, natively and through the pool with
// each deadline mechanism; the GBDT also in batches of 256 copies of the
// same row.
func BenchmarkExamples(b *testing.B) {
	models := []struct {
		name   string
		nIn    int
		native func([]float64) float64
	}{
		{"logreg_c", logreg.NumInputs, logreg.Predict},
		{"logreg_go", logreg.NumInputs, logreg.Predict},
		{"gbdt_go", gbdt.NumFeatures, gbdt.Predict},
	}
	for _, mod := range models {
		wasm, err := os.ReadFile(filepath.Join("..", "examples", "build", mod.name+".wasm"))
		if err != nil {
			b.Logf("skip %s: %v (run make examples)", mod.name, err)
			continue
		}
		x := make([]float64, mod.nIn)
		for i := range x {
			x[i] = math.Sin(float64(i)) * 0.5
		}
		var native float64
		b.Run(mod.name+"/native", func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				sinkF = mod.native(x)
			}
			native = float64(time.Since(start).Nanoseconds()) / float64(b.N)
		})
		for _, mode := range []Interrupt{InterruptInstrument, InterruptContext, interruptNone} {
			b.Run(mod.name+"/wasm-"+mode.String(), func(b *testing.B) {
				r := openRuntime(b, Options{PoolSize: 1, Interrupt: mode})
				m, err := r.Load(context.Background(), wasm, Limits{}, mod.nIn, 1)
				if err != nil {
					b.Fatal(err)
				}
				ctx, out := context.Background(), make([]float64, 1)
				if err := m.Predict(ctx, x, out); err != nil || math.Abs(out[0]-mod.native(x)) > 1e-12 {
					b.Fatalf("predict = %v, %v; native %v", out, err, mod.native(x))
				}
				b.ReportAllocs()
				start := time.Now()
				for b.Loop() {
					if err := m.Predict(ctx, x, out); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)-native, "ns-over-native/op")
			})
		}
		if mod.name != "gbdt_go" {
			continue
		}
		b.Run(mod.name+"/batch256", func(b *testing.B) {
			const rows = 256
			r := openRuntime(b, Options{PoolSize: 1})
			m, err := r.Load(context.Background(), wasm, Limits{}, mod.nIn, 1)
			if err != nil {
				b.Fatal(err)
			}
			in, out := make([]float64, 0, rows*mod.nIn), make([]float64, rows)
			for range rows {
				in = append(in, x...) // the single-row benchmarks' row
			}
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if err := m.PredictBatch(ctx, in, rows, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}
