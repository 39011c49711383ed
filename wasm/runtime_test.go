package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mlnode/mlnode/appliance"
)

// wantError fails unless err is an *appliance.Error with that code whose
// message contains msg.
func wantError(tb testing.TB, err error, code, msg string) {
	tb.Helper()
	var e *appliance.Error
	if !errors.As(err, &e) {
		tb.Fatalf("err = %v, want an *appliance.Error %s %q", err, code, msg)
	}
	if e.Code != code || !strings.Contains(e.Message, msg) {
		tb.Fatalf("err = %v, want %s containing %q", err, code, msg)
	}
}

// checkIdle fails unless every slot of the pool is back and none is in use.
func checkIdle(tb testing.TB, m *Module) {
	tb.Helper()
	s := m.Stats()
	if s.InUse != 0 || s.Idle != s.Size || s.Live > s.Size || s.Live < 0 {
		tb.Fatalf("pool accounting %+v: want every slot idle", s)
	}
}

// checkGoroutines waits for the goroutine count to come back to base.
func checkGoroutines(tb testing.TB, base int) {
	tb.Helper()
	for i := 0; i < 200; i++ {
		if runtime.NumGoroutine() <= base {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	tb.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
}

func TestRuntime_Inspect(t *testing.T) {
	r := openRuntime(t, Options{})
	tests := []struct {
		name    string
		in      []byte
		want    []Kind
		wantErr string
	}{
		{"lr32", fixture(t, "lr32"), []Kind{KindModel}, ""},
		{"lr32batch", fixture(t, "lr32batch"), []Kind{KindModel}, ""},
		{"transform", fixture(t, "transform"), []Kind{KindTransform}, ""},
		{"rowtransform", fixture(t, "rowtransform"), []Kind{KindRowTransform}, ""},
		{"hostile (allowed WASI imports)", fixture(t, "hostile"), []Kind{KindModel}, ""},
		{"start", fixture(t, "start"), []Kind{KindModel}, ""},
		{"not wasm", fixture(t, "notwasm"), nil, "not a WebAssembly module"},
		{"empty", nil, nil, "not a WebAssembly module"},
		{"truncated", fixture(t, "lr32")[:100], nil, "malformed module"},
		{"missing export", fixture(t, "noexport"), nil, "exports none of mlnode_predict, mlnode_transform, mlnode_transform_row"},
		{"wrong signature", fixture(t, "badsig"), nil, `export "mlnode_predict" has signature (i32, i32, i32) -> (i32), want (i32, i32, i32, i32) -> (i32)`},
		{"env import", fixture(t, "import_env"), nil, "import env.socket is not allowed"},
		{"path_open import", fixture(t, "import_path_open"), nil, "import wasi_snapshot_preview1.path_open is not allowed"},
		{"start function loops", fixture(t, "startloop"), nil, "module failed to initialize: mlnode.start: call exceeded its 50ms deadline"},
	}
	r.opts.InitTimeout = 50 * time.Millisecond
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := r.Inspect(context.Background(), tt.in)
			if tt.wantErr != "" {
				wantError(t, err, appliance.EINVALID, tt.wantErr)
				if f := err.(*appliance.Error).Field; f != "module" {
					t.Errorf("field = %q, want module", f)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(info.Kinds) != len(tt.want) || info.Kinds[0] != tt.want[0] {
				t.Errorf("kinds = %v, want %v", info.Kinds, tt.want)
			}
			if len(info.SHA256) != 64 || info.Size != len(tt.in) {
				t.Errorf("info = %+v", info)
			}
		})
	}
}

func TestRuntime_Inspect_Info(t *testing.T) {
	r := openRuntime(t, Options{})
	info, err := r.Inspect(context.Background(), fixture(t, "lr32batch"))
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasBatch || !info.HasInitialize || info.HasStart || info.Loops != 2 || info.MinMemoryPages != 1 {
		t.Errorf("info = %+v", info)
	}
	info, err = r.Inspect(context.Background(), fixture(t, "hostile"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"wasi_snapshot_preview1.fd_write", "wasi_snapshot_preview1.proc_exit"}
	if strings.Join(info.Imports, " ") != strings.Join(want, " ") {
		t.Errorf("imports = %v, want %v", info.Imports, want)
	}
}

func TestRuntime_Load_Limits(t *testing.T) {
	r := openRuntime(t, Options{MaxMemoryPages: 8})
	ctx := context.Background()
	_, err := r.Load(ctx, fixture(t, "lr32"), Limits{MemoryPages: 9}, 32, 1)
	wantError(t, err, appliance.EINVALID, "above the node's maximum of 8 pages")

	// A module whose declared minimum is above its limit.
	big := rewriteMinPages(t, fixture(t, "lr32"), 5)
	_, err = r.Load(ctx, big, Limits{MemoryPages: 4}, 32, 1)
	wantError(t, err, appliance.EINVALID, "module needs 5 pages of memory at start, above its limit of 4 pages")

	_, err = r.Load(ctx, fixture(t, "lr32"), Limits{Timeout: -time.Second}, 32, 1)
	wantError(t, err, appliance.EINVALID, "negative")
	_, err = r.Load(ctx, fixture(t, "lr32"), Limits{}, 32, 0)
	wantError(t, err, appliance.EINVALID, "bad counts")
	_, err = r.Load(ctx, fixture(t, "trap"), Limits{}, 1, 1)
	if err != nil {
		t.Fatalf("a module that traps on call loads: %v", err)
	}
}

// rewriteMinPages returns b with its memory's minimum set to min.
func rewriteMinPages(t *testing.T, b []byte, min uint32) []byte {
	bm, err := decodeModule(b)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), wasmMagic...)
	for _, s := range bm.sections {
		c := s.content
		if s.id == secMemory {
			c = appendU32([]byte{1, 0x00}, min)
		}
		out = appendSection(out, s.id, c)
	}
	return out
}

func TestModule_Predict_LR32(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 2})
	m := load(t, r, "lr32", Limits{}, 32, 1)
	ctx := context.Background()
	out := make([]float64, 1)
	for seed := 0; seed < 200; seed++ {
		x := lrInput(seed)
		switch seed {
		case 1:
			clear(x)
		case 2:
			for i := range x {
				x[i] = 100 // z far positive: p → 1
			}
		case 3:
			for i := range x {
				x[i] = -1000 * lrWeights[i] // z far negative: p → 0, exp overflows
			}
		}
		if err := m.Predict(ctx, x, out); err != nil {
			t.Fatal(err)
		}
		if want := nativeLR(x); math.Abs(out[0]-want) > 1e-12 {
			t.Fatalf("seed %d: predict = %.17g, native Go = %.17g", seed, out[0], want)
		}
	}
	checkIdle(t, m)
}

func TestModule_Predict_Allocs(t *testing.T) {
	for _, mode := range []Interrupt{InterruptInstrument, interruptNone} {
		t.Run(mode.String(), func(t *testing.T) {
			r := openRuntime(t, Options{PoolSize: 1, Interrupt: mode})
			m := load(t, r, "lr32", Limits{}, 32, 1)
			ctx := context.Background()
			x, out := lrInput(7), make([]float64, 1)
			allocs := testing.AllocsPerRun(1000, func() {
				if err := m.Predict(ctx, x, out); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("Predict allocates %v times per call, want 0", allocs)
			}
		})
	}
}

func TestModule_Predict_NInMismatch(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1})
	m := load(t, r, "lr32", Limits{}, 31, 1) // built for 32
	err := m.Predict(context.Background(), make([]float64, 31), make([]float64, 1))
	wantError(t, err, appliance.EUNPROCESSABLE, "module returned error code 1")
	if s := m.Stats(); s.Live != 1 {
		t.Errorf("instance discarded after a clean error code: %+v", s)
	}
	err = m.Predict(context.Background(), make([]float64, 32), make([]float64, 1))
	wantError(t, err, appliance.EINVALID, "got 32 inputs and 1 outputs, module")
	checkIdle(t, m)
}

// Each fault fails its call with a clear error and the module keeps serving.
func TestModule_Predict_Faults(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1, MaxMemoryPages: 64})
	ctx := context.Background()
	limits := Limits{MemoryPages: 4, Timeout: 50 * time.Millisecond}
	tests := []struct {
		name        string
		fixture     string
		mode        float64 // hostile's first input
		code, msg   string
		wantDiscard bool
	}{
		{"infinite loop", "loop", 0, appliance.EUNPROCESSABLE, "call exceeded its 50ms deadline", true},
		{"trap", "trap", 0, appliance.EUNPROCESSABLE, "module trapped: unreachable", true},
		{"error code", "errcode", 0, appliance.EUNPROCESSABLE, "module returned error code 7", false},
		{"memory past the limit", "growmem", 0, appliance.EUNPROCESSABLE, "module trapped at its memory limit of 4 pages: unreachable", true},
		{"hostile loop", "hostile", 1, appliance.EUNPROCESSABLE, "call exceeded its 50ms deadline", true},
		{"loop calling a function", "hostile", 2, appliance.EUNPROCESSABLE, "call exceeded its 50ms deadline", true},
		{"exponential recursion without loops", "hostile", 4, appliance.EUNPROCESSABLE, "call exceeded its 50ms deadline", true},
		{"memory.grow loop", "hostile", 5, appliance.EUNPROCESSABLE, "memory limit of 4 pages", true},
		{"out of bounds store", "hostile", 6, appliance.EUNPROCESSABLE, "module trapped: out of bounds memory access", true},
		{"unreachable", "hostile", 7, appliance.EUNPROCESSABLE, "module trapped: unreachable", true},
		{"hostile error code", "hostile", 8, appliance.EUNPROCESSABLE, "module returned error code 9", false},
		{"proc_exit", "hostile", 9, appliance.EUNPROCESSABLE, "module exited with code 3", true},
		{"fd_write forever", "hostile", 11, appliance.EUNPROCESSABLE, "call exceeded its 50ms deadline", true},
		{"divide by zero", "hostile", 12, appliance.EUNPROCESSABLE, "module trapped: integer divide by zero", true},
	}
	good := load(t, r, "lr32", Limits{}, 32, 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := load(t, r, tt.fixture, limits, 1, 1)
			out := []float64{0}
			if tt.fixture == "hostile" {
				if err := m.Predict(ctx, []float64{0}, out); err != nil || out[0] != 42 {
					t.Fatalf("good call before: %v, %v", out, err)
				}
			}
			live := m.Stats().Live
			err := m.Predict(ctx, []float64{tt.mode}, out)
			wantError(t, err, tt.code, tt.msg)
			if s := m.Stats(); tt.wantDiscard != (s.Live == live-1) {
				t.Errorf("live instances %d → %d, want discarded %v", live, s.Live, tt.wantDiscard)
			}
			checkIdle(t, m)
			if tt.fixture == "hostile" {
				out[0] = 0
				if err := m.Predict(ctx, []float64{0}, out); err != nil || out[0] != 42 {
					t.Fatalf("good call after: %v, %v", out, err)
				}
			}
			// Other modules are unaffected.
			if err := good.Predict(ctx, lrInput(1), out); err != nil {
				t.Fatal(err)
			}
		})
	}
	if len(r.insts) > 2*len(tests)+1 {
		t.Errorf("%d instances registered with the watchdog", len(r.insts))
	}
}

// Code compiled by wazero cannot be preempted: without the periodic yield, a
// garbage collection started during a runaway call would wait for it, with
// the watchdog stopped too, forever.
func TestModule_GCDuringRunawayCall(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 2})
	m := load(t, r, "hostile", Limits{Timeout: 300 * time.Millisecond}, 1, 1)
	for _, mode := range []float64{1, 4} { // a loop; recursion without loops
		done := make(chan error)
		go func() { done <- m.Predict(context.Background(), []float64{mode}, []float64{0}) }()
		for m.Stats().InUse == 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond)
		runtime.GC() // returns only if the guest lets the world stop
		wantError(t, <-done, appliance.EUNPROCESSABLE, "call exceeded its 300ms deadline")
	}
	checkIdle(t, m)
}

// Infinite recursion ends in a stack overflow trap (wazero's stack ceiling)
// or at the deadline, whichever comes first.
func TestModule_Predict_Recursion(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1})
	m := load(t, r, "hostile", Limits{Timeout: 5 * time.Second}, 1, 1)
	err := m.Predict(context.Background(), []float64{3}, []float64{0})
	var e *appliance.Error
	if !errors.As(err, &e) || e.Code != appliance.EUNPROCESSABLE ||
		!(strings.Contains(e.Message, "stack overflow") || strings.Contains(e.Message, "deadline")) {
		t.Fatalf("err = %v, want a stack overflow trap", err)
	}
	if err := m.Predict(context.Background(), []float64{0}, []float64{0}); err != nil {
		t.Fatal(err)
	}
	checkIdle(t, m)
}

func TestModule_Predict_Context(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1})
	m := load(t, r, "loop", Limits{Timeout: time.Minute}, 1, 1)

	t.Run("already done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := m.Predict(ctx, []float64{0}, []float64{0})
		wantError(t, err, appliance.EUNAVAILABLE, "call canceled")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if m.Stats().Live != 1 {
			t.Error("an instance was used")
		}
	})
	t.Run("canceled during the call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		err := m.Predict(ctx, []float64{0}, []float64{0})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("context deadline before the module's", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := m.Predict(ctx, []float64{0}, []float64{0})
		wantError(t, err, appliance.EUNAVAILABLE, "call canceled")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("waiting for a busy pool", func(t *testing.T) {
		slow := load(t, r, "loop", Limits{Timeout: 300 * time.Millisecond}, 1, 1)
		done := make(chan error)
		go func() { done <- slow.Predict(context.Background(), []float64{0}, []float64{0}) }()
		for slow.Stats().InUse == 0 {
			time.Sleep(time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		err := slow.Predict(ctx, []float64{0}, []float64{0})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		wantError(t, <-done, appliance.EUNPROCESSABLE, "deadline")
		checkIdle(t, slow)
	})
	checkIdle(t, m)
}

func TestModule_PredictBatch(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1})
	ctx := context.Background()
	for _, name := range []string{"lr32batch", "lr32"} { // the export, and the row-by-row loop
		t.Run(name, func(t *testing.T) {
			m := load(t, r, name, Limits{}, 32, 1)
			for _, rows := range []int{0, 1, 7, batchRowsFor(32, 1) + 3, 1000} {
				in := make([]float64, 0, rows*32)
				for i := 0; i < rows; i++ {
					in = append(in, lrInput(i)...)
				}
				out := make([]float64, rows)
				if err := m.PredictBatch(ctx, in, rows, out); err != nil {
					t.Fatal(err)
				}
				for i := 0; i < rows; i++ {
					if want := nativeLR(in[i*32:]); math.Abs(out[i]-want) > 1e-12 {
						t.Fatalf("%d rows: row %d = %v, want %v", rows, i, out[i], want)
					}
				}
			}
			err := m.PredictBatch(ctx, make([]float64, 31), 1, make([]float64, 1))
			wantError(t, err, appliance.EINVALID, "batch of 1 rows needs 32 inputs")
			checkIdle(t, m)
		})
	}
	t.Run("error names the row", func(t *testing.T) {
		m := load(t, r, "hostile", Limits{}, 1, 1)
		err := m.PredictBatch(ctx, []float64{0, 0, 8}, 3, make([]float64, 3))
		wantError(t, err, appliance.EUNPROCESSABLE, "row 2: module returned error code 9")
	})
}

func TestModule_Transform(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1})
	m := load(t, r, "transform", Limits{}, 2, 3)
	ctx := context.Background()
	tests := []struct {
		in   []float64
		want []float64
	}{
		{[]float64{4, 5}, []float64{20, 2, 1}},
		{[]float64{-9, -1}, []float64{9, 3, 0}},
		{[]float64{0, 100}, []float64{0, 0, 3}},
	}
	for _, tt := range tests {
		out := make([]float64, 3)
		if err := m.Transform(ctx, tt.in, out); err != nil {
			t.Fatal(err)
		}
		if !equalFloats(out, tt.want) {
			t.Errorf("transform(%v) = %v, want %v", tt.in, out, tt.want)
		}
	}
	err := m.Predict(ctx, []float64{1, 2}, make([]float64, 3))
	wantError(t, err, appliance.EINVALID, "does not export mlnode_predict")
	err = m.TransformRow(ctx, []RowValue{{}, {}}, make([]float64, 3))
	wantError(t, err, appliance.EINVALID, "does not export mlnode_transform_row")
	checkIdle(t, m)
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestModule_TransformRow(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1})
	m := load(t, r, "rowtransform", Limits{}, 2, 4)
	ctx := context.Background()
	str := func(s string) RowValue { return RowValue{Str: s, IsStr: true} }
	num := func(f float64) RowValue { return RowValue{Num: f} }
	null := RowValue{Null: true}
	tests := []struct {
		name    string
		in      []RowValue
		want    []float64
		wantErr string
	}{
		{"red", []RowValue{str("red"), num(2.5)}, []float64{1, 0, 0, 2.5}, ""},
		{"green", []RowValue{str("green"), num(-1)}, []float64{0, 1, 0, -1}, ""},
		{"blue, null amount", []RowValue{str("blue"), null}, []float64{0, 0, 1, 0}, ""},
		{"unknown color", []RowValue{str("purple"), num(1)}, []float64{0, 0, 0, 1}, ""},
		{"empty string", []RowValue{str(""), num(1)}, []float64{0, 0, 0, 1}, ""},
		{"utf-8", []RowValue{str("rød"), num(1)}, []float64{0, 0, 0, 1}, ""},
		{"null color", []RowValue{null, num(3)}, []float64{0, 0, 0, 3}, ""},
		{"long string grows the buffer", []RowValue{str(strings.Repeat("x", 100000)), num(4)}, []float64{0, 0, 0, 4}, ""},
		{"red after growth", []RowValue{str("red"), num(5)}, []float64{1, 0, 0, 5}, ""},
		{"number as color", []RowValue{num(1), num(1)}, nil, "module returned error code 2"},
		{"string as amount", []RowValue{str("red"), str("1")}, nil, "module returned error code 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make([]float64, 4)
			err := m.TransformRow(ctx, tt.in, out)
			if tt.wantErr != "" {
				wantError(t, err, appliance.EUNPROCESSABLE, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalFloats(out, tt.want) {
				t.Errorf("out = %v, want %v", out, tt.want)
			}
		})
	}
	in, out := []RowValue{str("green"), num(1)}, make([]float64, 4)
	allocs := testing.AllocsPerRun(100, func() {
		if err := m.TransformRow(ctx, in, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("TransformRow allocates %v times per call, want 0", allocs)
	}
	checkIdle(t, m)
}

func TestEncodeRow(t *testing.T) {
	in := []RowValue{{Null: true}, {Num: 1.5}, {Str: "ab", IsStr: true}}
	b := make([]byte, rowSize(in))
	encodeRow(b, in)
	want := []byte{0, 1, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 2, 2, 0, 0, 0, 'a', 'b'}
	if !bytes.Equal(b, want) {
		t.Errorf("encodeRow = % x, want % x", b, want)
	}
}

func TestModule_Start(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1, InitTimeout: 50 * time.Millisecond})
	m := load(t, r, "start", Limits{}, 1, 1)
	out := []float64{0}
	if err := m.Predict(context.Background(), []float64{0}, out); err != nil || out[0] != 42 {
		t.Fatalf("predict = %v, %v; want 42 set by the start function", out, err)
	}
	_, err := r.Load(context.Background(), fixture(t, "startloop"), Limits{}, 1, 1)
	wantError(t, err, appliance.EINVALID, "module failed to initialize: mlnode.start: call exceeded its 50ms deadline")
	if len(r.insts) != 1 {
		t.Errorf("%d instances registered, want 1", len(r.insts))
	}
}

func TestModule_Output(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1, OutputLimit: 100})
	m := load(t, r, "hostile", Limits{Timeout: 20 * time.Millisecond}, 1, 1)
	ctx := context.Background()
	if err := m.Predict(ctx, []float64{10}, []float64{0}); err != nil {
		t.Fatal(err)
	}
	if got := string(m.Output()); got != "hello from wasm\n" {
		t.Errorf("output = %q", got)
	}
	_ = m.Predict(ctx, []float64{11}, []float64{0}) // writes until its deadline
	if got := len(m.Output()); got != 100 {
		t.Errorf("output of %d bytes, want the limit of 100", got)
	}
}

// 100 goroutines share a pool of 4 (and 20 a pool of 1) under the race
// detector: good calls, clean errors and traps mixed; afterwards every
// instance is back and the goroutines are gone.
func TestModule_Hammer(t *testing.T) {
	for _, tt := range []struct{ pool, callers int }{{4, 100}, {1, 20}} {
		t.Run(fmt.Sprintf("pool %d, %d callers", tt.pool, tt.callers), func(t *testing.T) {
			hammer(t, tt.pool, tt.callers)
		})
	}
}

func hammer(t *testing.T, pool, callers int) {
	base := runtime.NumGoroutine()
	set := metrics.NewSet()
	r, err := Open(context.Background(), Options{PoolSize: pool, Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	m := load(t, r, "hostile", Limits{Timeout: time.Second}, 1, 1)
	lr := load(t, r, "lr32", Limits{}, 32, 1)
	const calls = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ctx := context.Background()
			out := []float64{0}
			for i := 0; i < calls; i++ {
				mode := 0.0
				switch (g + i) % 10 {
				case 3:
					mode = 7 // trap
				case 6:
					mode = 8 // error code
				}
				err := m.Predict(ctx, []float64{mode}, out)
				if (mode == 0) != (err == nil) || (mode == 0 && out[0] != 42) {
					errs <- err
					return
				}
				if i%5 == 0 {
					x, y := lrInput(g), []float64{0}
					if err := lr.Predict(ctx, x, y); err != nil || math.Abs(y[0]-nativeLR(x)) > 1e-12 {
						errs <- err
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("unexpected result: %v", err)
	}
	checkIdle(t, m)
	checkIdle(t, lr)
	if s := m.Stats(); s.Size != pool {
		t.Errorf("pool size %d, want %d", s.Size, pool)
	}
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	label := `{module="` + m.SHA256()[:12] + `"}`
	n := callers * calls
	for _, want := range []string{
		fmt.Sprintf("mlnode_wasm_calls_total%s %d", label, n),
		fmt.Sprintf("mlnode_wasm_traps_total%s %d", label, n/10),
		fmt.Sprintf("mlnode_wasm_errors_total%s %d", label, n/5),
		"mlnode_wasm_timeouts_total" + label + " 0",
		fmt.Sprintf("mlnode_wasm_pool_size%s %d", label, pool),
		"mlnode_wasm_instances_in_use" + label + " 0",
		fmt.Sprintf("mlnode_wasm_call_duration_seconds_count%s %d", label, n),
		fmt.Sprintf(`mlnode_wasm_call_duration_seconds_bucket{module="%s",le="+Inf"} %d`, m.SHA256()[:12], n),
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, buf.String())
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(r.insts) != 0 {
		t.Errorf("%d instances left after Close", len(r.insts))
	}
	checkGoroutines(t, base)
}

func TestRuntime_Unload(t *testing.T) {
	set := metrics.NewSet()
	r := openRuntime(t, Options{PoolSize: 2, Metrics: set})
	ctx := context.Background()
	m := load(t, r, "lr32", Limits{}, 32, 1)
	if again := load(t, r, "lr32", Limits{}, 32, 1); again != m {
		t.Error("loading the same module twice made two pools")
	}
	other := load(t, r, "lr32", Limits{}, 31, 1)
	if err := m.Predict(ctx, lrInput(1), []float64{0}); err != nil {
		t.Fatal(err)
	}
	r.Unload(m.SHA256())
	err := m.Predict(ctx, lrInput(1), []float64{0})
	wantError(t, err, appliance.EUNAVAILABLE, "module was unloaded")
	wantError(t, other.Predict(ctx, make([]float64, 31), []float64{0}), appliance.EUNAVAILABLE, "unloaded")
	r.drains.Wait()
	if n := len(r.insts); n != 0 {
		t.Errorf("%d instances left after Unload", n)
	}
	if len(r.compiled) != 0 {
		t.Errorf("compiled modules left after Unload: %d", len(r.compiled))
	}
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	if strings.Contains(buf.String(), "mlnode_wasm_") {
		t.Errorf("metrics left after Unload:\n%s", buf.String())
	}
	m2 := load(t, r, "lr32", Limits{}, 32, 1)
	if err := m2.Predict(ctx, lrInput(1), []float64{0}); err != nil {
		t.Fatal(err)
	}
}

// Inspect compiles and closes the same code a loaded module uses (wazero
// counts references to compiled code): the loaded module still creates
// instances afterwards.
func TestRuntime_InspectWhileLoaded(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1})
	ctx := context.Background()
	m := load(t, r, "hostile", Limits{}, 1, 1)
	if _, err := r.Inspect(ctx, fixture(t, "hostile")); err != nil {
		t.Fatal(err)
	}
	wantError(t, m.Predict(ctx, []float64{7}, []float64{0}), appliance.EUNPROCESSABLE, "unreachable")
	if err := m.Predict(ctx, []float64{0}, []float64{0}); err != nil { // a new instance
		t.Fatal(err)
	}
}

func TestRuntime_CompilationCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wasm-cache")
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		r, err := Open(ctx, Options{CacheDir: dir, PoolSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		m := load(t, r, "lr32", Limits{}, 32, 1)
		x, out := lrInput(i), []float64{0}
		if err := m.Predict(ctx, x, out); err != nil || math.Abs(out[0]-nativeLR(x)) > 1e-12 {
			t.Fatalf("run %d: %v, %v", i, out, err)
		}
		if err := r.Close(ctx); err != nil {
			t.Fatal(err)
		}
		files := 0
		filepath.Walk(dir, func(_ string, fi os.FileInfo, _ error) error {
			if fi != nil && !fi.IsDir() {
				files++
			}
			return nil
		})
		if files == 0 {
			t.Fatalf("run %d: nothing in the compilation cache %s", i, dir)
		}
	}
}

func TestRuntime_InterruptContext(t *testing.T) {
	r := openRuntime(t, Options{PoolSize: 1, Interrupt: InterruptContext})
	ctx := context.Background()
	m := load(t, r, "hostile", Limits{Timeout: 30 * time.Millisecond}, 1, 1)
	wantError(t, m.Predict(ctx, []float64{1}, []float64{0}), appliance.EUNPROCESSABLE, "call exceeded its 30ms deadline")
	wantError(t, m.Predict(ctx, []float64{7}, []float64{0}), appliance.EUNPROCESSABLE, "module trapped: unreachable")
	if err := m.Predict(ctx, []float64{0}, []float64{0}); err != nil {
		t.Fatal(err)
	}
	lr := load(t, r, "lr32", Limits{}, 32, 1)
	x, out := lrInput(3), []float64{0}
	if err := lr.Predict(ctx, x, out); err != nil || math.Abs(out[0]-nativeLR(x)) > 1e-12 {
		t.Fatalf("%v, %v", out, err)
	}
	checkIdle(t, m)
}

func TestRuntime_Close_StopsCalls(t *testing.T) {
	base := runtime.NumGoroutine()
	r, err := Open(context.Background(), Options{PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := load(t, r, "loop", Limits{Timeout: time.Hour}, 1, 1)
	done := make(chan error)
	go func() { done <- m.Predict(context.Background(), []float64{0}, []float64{0}) }()
	for m.Stats().InUse == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want its context's error", err)
	}
	wantError(t, <-done, appliance.EUNAVAILABLE, "runtime is closed")
	_, err = r.Load(context.Background(), fixture(t, "lr32"), Limits{}, 32, 1)
	wantError(t, err, appliance.EUNAVAILABLE, "runtime is closed")
	checkGoroutines(t, base)
}

// A Go reactor (GOOS=wasip1 -buildmode=c-shared), built from
// testdata/goguest: the instrumenter handles real compiler output, and the
// faults of a real runtime (an infinite loop, out of memory, a panic) fail
// their call only.
func TestModule_GoGuest(t *testing.T) {
	wasm := goGuest(t)
	// The cache lets Load reuse what Inspect compiled (at the node's maximum
	// memory, which is what Load asks for).
	r := openRuntime(t, Options{PoolSize: 2, CacheDir: t.TempDir(), MaxMemoryPages: 128})
	ctx := context.Background()
	info, err := r.Inspect(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasInitialize || info.Loops == 0 {
		t.Errorf("info = %+v", info)
	}
	// Two pools of one compiled module: a generous deadline (the race
	// detector slows the guest's own GC down), and a short one.
	m, err := r.Load(ctx, wasm, Limits{MemoryPages: 128, Timeout: 5 * time.Second}, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	short, err := r.Load(ctx, wasm, Limits{MemoryPages: 128, Timeout: 100 * time.Millisecond}, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	sum := func() {
		t.Helper()
		out := []float64{0}
		if err := m.Predict(ctx, []float64{0, 2, 3.5}, out); err != nil || out[0] != 5.5 {
			t.Fatalf("predict = %v, %v; want 5.5", out, err)
		}
	}
	sum()
	tests := []struct {
		m    *Module
		mode float64
		msg  string
	}{
		{short, 1, "call exceeded its 100ms deadline"},
		{m, 2, "module trapped at its memory limit of 128 pages"}, // the Go runtime aborts
		{m, 3, "module trapped: unreachable"},                     // a panic in a reactor
	}
	for _, tt := range tests {
		wantError(t, tt.m.Predict(ctx, []float64{tt.mode, 0, 0}, []float64{0}), appliance.EUNPROCESSABLE, tt.msg)
		sum()
	}
	if err := m.Predict(ctx, []float64{4, 1, 1}, []float64{0}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m.Output()), "hello from Go") {
		t.Errorf("output = %q", m.Output())
	}
	checkIdle(t, m)
	checkIdle(t, short)
}
