package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// compileRaw compiles a binary with a plain wazero runtime, as the
// rewriter's oracle. Its yield import returns stop and counts its calls.
func compileRaw(tb testing.TB, bin []byte) (wazero.Runtime, wazero.CompiledModule, error) {
	tb.Helper()
	rt, cm, _, err := compileYield(tb, bin, 0)
	return rt, cm, err
}

func compileYield(tb testing.TB, bin []byte, stop uint64) (wazero.Runtime, wazero.CompiledModule, *int, error) {
	tb.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2))
	tb.Cleanup(func() { rt.Close(ctx) })
	calls := new(int)
	_, err := rt.NewHostModuleBuilder(yieldImport).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			*calls++
			s[0] = stop
		}), nil, []api.ValueType{api.ValueTypeI32}).
		Export(yieldName).Instantiate(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	cm, err := rt.CompileModule(ctx, bin)
	return rt, cm, calls, err
}

func TestInstrument_PreservesSemantics(t *testing.T) {
	ctx := context.Background()
	orig := fixture(t, "allops")
	bm, err := decodeModule(orig)
	if err != nil {
		t.Fatal(err)
	}
	bin, stats, err := rewriteModule(bm, rewriteOptions{memoryMax: 2, checks: true})
	if err != nil {
		t.Fatal(err)
	}
	if stats.loops != 4 || stats.functions != 5 {
		t.Errorf("instrumented %d loops in %d functions, want 4 in 5", stats.loops, stats.functions)
	}
	run := func(bin []byte) uint64 {
		rt, cm, err := compileRaw(t, bin)
		if err != nil {
			t.Fatal(err)
		}
		mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatal(err)
		}
		res, err := mod.ExportedFunction("run").Call(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	want, got := run(orig), run(bin)
	if got != want {
		t.Errorf("run() = %#x after instrumentation, %#x before", got, want)
	}
}

func TestInstrument_StopFlagTraps(t *testing.T) {
	ctx := context.Background()
	bm, err := decodeModule(fixture(t, "allops"))
	if err != nil {
		t.Fatal(err)
	}
	bin, _, err := rewriteModule(bm, rewriteOptions{memoryMax: 2, checks: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		stop      uint64
		budget    uint64
		wantTrap  bool
		wantYield int
	}{
		{"budget left", 1, yieldBudget, false, 0},
		{"budget zeroed, yield says go on", 0, 0, false, 1},
		{"budget zeroed, yield says stop", 1, 0, true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rt, cm, calls, err := compileYield(t, bin, tt.stop)
			if err != nil {
				t.Fatal(err)
			}
			mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
			if err != nil {
				t.Fatal(err)
			}
			mod.ExportedGlobal(budgetExport).(api.MutableGlobal).Set(tt.budget)
			_, err = mod.ExportedFunction("run").Call(ctx)
			if tt.wantTrap != (err != nil) || (err != nil && !strings.Contains(err.Error(), "unreachable")) {
				t.Fatalf("run() = %v, want a trap %v", err, tt.wantTrap)
			}
			if *calls != tt.wantYield {
				t.Errorf("yield called %d times, want %d", *calls, tt.wantYield)
			}
		})
	}
}

// Code without loops (fib(60) by recursion) still calls yield every
// yieldBudget checks: here the third yield stops it.
func TestInstrument_YieldsPeriodically(t *testing.T) {
	ctx := context.Background()
	bm, err := decodeModule(fixture(t, "hostile"))
	if err != nil {
		t.Fatal(err)
	}
	bin, _, err := rewriteModule(bm, rewriteOptions{memoryMax: 1, checks: true})
	if err != nil {
		t.Fatal(err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2))
	defer rt.Close(ctx)
	calls := 0
	_, err = rt.NewHostModuleBuilder(yieldImport).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			calls++
			s[0] = 0
			if calls == 3 {
				s[0] = 1
			}
		}), nil, []api.ValueType{api.ValueTypeI32}).
		Export(yieldName).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(mem(t, mod, 1024, 8), math.Float64bits(4))
	err = mod.ExportedFunction("mlnode_predict").CallWithStack(ctx, []uint64{1024, 1, 1032, 1})
	if err == nil || !strings.Contains(err.Error(), "unreachable") || calls != 3 {
		t.Fatalf("call = %v after %d yields, want a trap after 3", err, calls)
	}
}

func mem(t *testing.T, mod api.Module, off, n uint32) []byte {
	b, ok := mod.Memory().Read(off, n)
	if !ok {
		t.Fatal("out of bounds")
	}
	return b
}

// Every fixture that decodes is still valid after rewriting, with the same
// imports and exports plus the stop flag.
func TestInstrument_Fixtures(t *testing.T) {
	paths, _ := filepath.Glob("testdata/*.wasm")
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".wasm")
		t.Run(name, func(t *testing.T) {
			orig, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			bm, err := decodeModule(orig)
			if name == "notwasm" {
				if err != errNotWasm {
					t.Fatalf("decode: %v, want errNotWasm", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bin, _, err := rewriteModule(bm, rewriteOptions{memoryMax: 16, checks: true})
			if err != nil {
				t.Fatal(err)
			}
			rt, before, err := compileRaw(t, orig)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := wasi_snapshot_preview1.Instantiate(context.Background(), rt); err != nil {
				t.Fatal(err)
			}
			_, after, err := compileRaw(t, bin)
			if err != nil {
				t.Fatalf("rewritten module does not compile: %v", err)
			}
			for name, d := range before.ExportedFunctions() {
				a := after.ExportedFunctions()[name]
				if a == nil || !bytes.Equal(a.ParamTypes(), d.ParamTypes()) || !bytes.Equal(a.ResultTypes(), d.ResultTypes()) {
					t.Errorf("export %s changed", name)
				}
			}
			ib, ia := before.ImportedFunctions(), after.ImportedFunctions()
			if len(ia) != len(ib)+1 {
				t.Fatalf("%d imports after, %d before: want one more", len(ia), len(ib))
			}
			for i, d := range ib {
				m, n, _ := ia[i].Import()
				if m0, n0, _ := d.Import(); m != m0 || n != n0 {
					t.Errorf("import %d is %s.%s, was %s.%s", i, m, n, m0, n0)
				}
			}
			if m, n, _ := ia[len(ib)].Import(); m != yieldImport || n != yieldName {
				t.Errorf("last import is %s.%s, want %s.%s", m, n, yieldImport, yieldName)
			}
			if bm.hasStart {
				if after.ExportedFunctions()[startExport] == nil {
					t.Errorf("start function not exported as %s", startExport)
				}
			}
		})
	}
}

// Indexes past the module's own globals and types would name what the
// rewrite appends: a module could refill its budget. They are refused.
func TestRewrite_RefusesIndexesOfAppendedEntities(t *testing.T) {
	// One type () -> (), one function, no globals; the body is given.
	module := func(body ...byte) []byte {
		b := append([]byte(nil), wasmMagic...)
		b = appendSection(b, secType, []byte{1, 0x60, 0, 0})
		b = appendSection(b, secFunction, []byte{1, 0})
		b = appendSection(b, secMemory, []byte{1, 0, 1})
		code := append([]byte{0}, body...) // no locals
		return appendSection(b, secCode, append([]byte{1, byte(len(code))}, code...))
	}
	tests := []struct {
		name string
		bin  []byte
		want string
	}{
		{"global.set of the budget", module(0x41, 0x00, 0x24, 0x00, 0x0b), "global index 0 out of range"},
		{"global.get of the budget", module(0x23, 0x00, 0x1a, 0x0b), "global index 0 out of range"},
		{"block of the yield type", module(0x02, 0x01, 0x1a, 0x0b, 0x0b), "type index 1 out of range"},
		{"call_indirect of the yield type", module(0x41, 0x00, 0x11, 0x01, 0x00, 0x1a, 0x0b), "type index 1 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bm, err := decodeModule(tt.bin)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = rewriteModule(bm, rewriteOptions{memoryMax: 1, checks: true})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("rewrite: %v, want %q", err, tt.want)
			}
		})
	}
	// The same body with the budget's index in range is fine.
	bm, err := decodeModule(module(0x41, 0x00, 0x1a, 0x0b))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := rewriteModule(bm, rewriteOptions{memoryMax: 1, checks: true}); err != nil {
		t.Fatal(err)
	}
}

// wazero allocates vectors and locals from their declared counts: the
// decoder refuses counts the input cannot hold, before wazero sees them.
func TestDecode_RefusesHugeCounts(t *testing.T) {
	mod := func(sections ...[]byte) []byte {
		b := append([]byte(nil), wasmMagic...)
		for _, s := range sections {
			b = appendSection(b, s[0], s[1:])
		}
		return b
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	tests := []struct {
		name string
		bin  []byte
		want string
	}{
		{"tables", mod(append([]byte{secTable}, append(huge, 0x70, 0, 1)...)), "module defines 4294967295 tables"},
		{"globals", mod(append([]byte{secGlobal}, huge...)), "vector of"},
		{"elements", mod(append([]byte{secElement}, huge...)), "vector of"},
		{"data", mod(append([]byte{secData}, huge...)), "vector of"},
		{"data bytes", mod([]byte{secData, 1, 1, 0xff, 0xff, 0x03}), "unexpected end"},
		{"code bodies", mod(append([]byte{secCode}, huge...)), "vector of"},
		{"locals", mod([]byte{secType, 1, 0x60, 0, 0}, []byte{secFunction, 1, 0},
			[]byte{secCode, 1, 9, 2, 0xff, 0xff, 0x03, valI32, 0xff, 0xff, 0x03, valI64, 0x0b}),
			"more than 50000 locals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeModule(tt.bin)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decode: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRewriteMemory(t *testing.T) {
	tests := []struct {
		name    string
		l       limits
		limit   uint32
		want    limits
		wantErr string
	}{
		{"no max takes the limit", limits{min: 1}, 16, limits{min: 1, max: 16, hasMax: true}, ""},
		{"lower max is kept", limits{min: 1, max: 4, hasMax: true}, 16, limits{min: 1, max: 4, hasMax: true}, ""},
		{"higher max is capped", limits{min: 2, max: 100, hasMax: true}, 16, limits{min: 2, max: 16, hasMax: true}, ""},
		{"min above the limit", limits{min: 17}, 16, limits{}, "above the limit"},
		{"shared", limits{min: 1, max: 2, hasMax: true, shared: true}, 16, limits{}, "shared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := rewriteMemory(&binaryModule{memories: []limits{tt.l}}, tt.limit)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := &reader{b: out}
			if n, _ := r.u32(); n != 1 {
				t.Fatalf("%d memories", n)
			}
			got, err := r.limits()
			if err != nil || got != tt.want {
				t.Fatalf("limits = %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
}

func TestReader_U32(t *testing.T) {
	tests := []struct {
		in      []byte
		want    uint32
		wantErr bool
	}{
		{[]byte{0x00}, 0, false},
		{[]byte{0x7f}, 127, false},
		{[]byte{0x80, 0x01}, 128, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 0xffffffff, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, 0, true}, // 33 bits
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 0, true},
		{[]byte{0x80}, 0, true},
	}
	for _, tt := range tests {
		r := &reader{b: tt.in}
		got, err := r.u32()
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("u32(% x) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && !bytes.Equal(appendU32(nil, got), tt.in) {
			t.Errorf("appendU32(%d) = % x, want % x", got, appendU32(nil, got), tt.in)
		}
	}
}

// FuzzRewrite feeds arbitrary bytes to the decoder and the rewriter. Neither
// may panic; what wazero accepts must still compile once rewritten; and the
// rewrite must never make an invalid module valid (it could smuggle in
// references to what it appends) — the capping of a memory maximum aside,
// and wazero's failure to read a custom section that ends the input, which
// the rewrite moves away from the end.
func FuzzRewrite(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.wasm")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		bm, err := decodeModule(b)
		if err != nil {
			return
		}
		bin, _, err := rewriteModule(bm, rewriteOptions{memoryMax: 4, checks: true})
		if err != nil {
			return
		}
		_, _, origErr := compileRaw(t, b)
		_, _, binErr := compileRaw(t, bin)
		switch {
		case origErr == nil && binErr != nil:
			t.Fatalf("wazero accepts the module but not its rewrite: %v", binErr)
		case origErr != nil && binErr == nil && !strings.Contains(origErr.Error(), "max ") &&
			!strings.Contains(origErr.Error(), "custom section"):
			t.Fatalf("the rewrite made an invalid module valid: %v", origErr)
		}
	})
}

// A table cannot grow past maxTableElements: the memory limit bounds only
// linear memory, and a module that grew its table by 16M references
// allocated 128 MiB against a 32 MiB limit.
func TestInstrument_TablesAreBounded(t *testing.T) {
	ctx := context.Background()
	mod := func(sections ...[]byte) []byte {
		b := append([]byte(nil), wasmMagic...)
		for _, s := range sections {
			b = appendSection(b, s[0], s[1:])
		}
		return b
	}
	// grow() = table.grow(ref.null func, 16M) on table 0, which starts at 1.
	body := []byte{0x00, 0xd0, 0x70, 0x41, 0x80, 0x80, 0x80, 0x08, 0xfc, 0x0f, 0x00, 0x0b}
	bin := mod([]byte{secType, 1, 0x60, 0, 1, valI32},
		[]byte{secFunction, 1, 0},
		[]byte{secTable, 1, 0x70, 0x00, 1},
		[]byte{secMemory, 1, 0x00, 1},
		[]byte{secExport, 1, 4, 'g', 'r', 'o', 'w', 0x00, 0},
		append([]byte{secCode, 1, byte(len(body))}, body...))
	bm, err := decodeModule(bin)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := rewriteModule(bm, rewriteOptions{memoryMax: 2})
	if err != nil {
		t.Fatal(err)
	}
	rt, cm, err := compileRaw(t, out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.ExportedFunction("grow").Call(ctx)
	if err != nil || uint32(res[0]) != 0xffffffff {
		t.Fatalf("table.grow by 16M: %v %v, want -1 (refused)", res, err)
	}
	// A table declared above the bound is refused outright.
	big, err := decodeModule(mod([]byte{secTable, 1, 0x70, 0x00, 0x80, 0x80, 0x80, 0x01}))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := rewriteModule(big, rewriteOptions{memoryMax: 2}); err == nil || !strings.Contains(err.Error(), "above the limit") {
		t.Fatalf("a table of 2M elements: %v", err)
	}
}
