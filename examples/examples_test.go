package examples_test

// These tests build the example modules from source and run them with wazero
// directly, the way the runtime does (docs/abi.md), checking every output
// against the same model computed natively. They import nothing from
// mlnode's wasm package: the examples must stand on the ABI alone.
//
// The Go modules need only the Go toolchain. The C module needs clang and
// wasm-ld; without them the C test uses examples/build/logreg_c.wasm if
// `make examples` (examples/build.sh, which installs clang and lld) has built
// it, and is skipped otherwise.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/mlnode/mlnode/examples/internal/guest"
	"github.com/mlnode/mlnode/examples/models/gbdt_go/gbdt"
	"github.com/mlnode/mlnode/examples/models/logreg_go/logreg"
	"github.com/mlnode/mlnode/examples/transforms/features_go/features"
)

// Shared by every test of this binary: each module is built and compiled once.
var (
	buildDir string
	cache    wazero.CompilationCache
	builds   = map[string]*build{
		"logreg_go":   {pkg: "./models/logreg_go"},
		"gbdt_go":     {pkg: "./models/gbdt_go"},
		"features_go": {pkg: "./transforms/features_go"},
		"logreg_c":    {src: "models/logreg_c/model.c", exports: []string{"mlnode_alloc", "mlnode_predict", "mlnode_predict_batch"}},
	}
)

type build struct {
	pkg     string   // a Go package, built for wasip1
	src     string   // or a C file, built with clang
	exports []string // of the C module
	once    sync.Once
	path    string
	skip    string // why the module cannot be had here
	err     error
}

func TestMain(m *testing.M) {
	var err error
	if buildDir, err = os.MkdirTemp("", "mlnode-examples-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cache = wazero.NewCompilationCache()
	code := m.Run()
	_ = cache.Close(context.Background())
	_ = os.RemoveAll(buildDir)
	os.Exit(code)
}

// wasmFile returns the path of the named example module, building it on first use.
func wasmFile(t testing.TB, name string) string {
	t.Helper()
	b := builds[name]
	b.once.Do(func() {
		b.path = filepath.Join(buildDir, name+".wasm")
		if b.pkg != "" {
			b.err = goBuild(b.pkg, b.path)
		} else {
			b.skip, b.err = clangBuild(b.src, b.path, b.exports)
		}
	})
	if b.err != nil {
		t.Fatalf("build %s: %v", name, b.err)
	}
	if b.skip != "" {
		t.Skip(b.skip)
	}
	return b.path
}

func goBuild(pkg, out string) error {
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, msg)
	}
	return nil
}

// clangBuild builds src as examples/build.sh does. Without clang or wasm-ld
// it falls back to the module build.sh left in examples/build, or returns a
// reason to skip.
func clangBuild(src, out string, exports []string) (skip string, err error) {
	clang, wasmLD := lookTool("clang"), lookTool("wasm-ld")
	if clang == "" || wasmLD == "" {
		prebuilt := filepath.Join("build", filepath.Base(filepath.Dir(src))+".wasm")
		if _, err := os.Stat(prebuilt); err == nil {
			return "", copyFile(prebuilt, out)
		}
		return "clang or wasm-ld not found: `make examples` (examples/build.sh) installs clang and lld; " +
			"CI runs it before the tests", nil
	}
	// clang runs the linker as plain "wasm-ld": give it one on PATH.
	shim := filepath.Join(buildDir, "bin")
	if err := os.MkdirAll(shim, 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(wasmLD, filepath.Join(shim, "wasm-ld")); err != nil && !os.IsExist(err) {
		return "", err
	}
	args := []string{"--target=wasm32", "-nostdlib", "-O2", "-Wall", "-Wextra", "-Werror", "-Wl,--no-entry"}
	for _, e := range exports {
		args = append(args, "-Wl,--export="+e)
	}
	args = append(args, "-o", out, src)
	cmd := exec.Command(clang, args...)
	cmd.Env = append(os.Environ(), "PATH="+shim+string(os.PathListSeparator)+os.Getenv("PATH"))
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, msg)
	}
	return "", nil
}

// lookTool finds name on PATH, else name-<version> on PATH, else
// /usr/lib/llvm-<version>/bin/name (Debian's layouts), newest version first.
func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	var found []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		m, _ := filepath.Glob(filepath.Join(dir, name+"-[0-9]*"))
		found = append(found, m...)
	}
	m, _ := filepath.Glob("/usr/lib/llvm-*/bin/" + name)
	found = append(found, m...)
	version := func(p string) int {
		s := strings.TrimPrefix(filepath.Base(p), name+"-")
		if filepath.Base(p) == name {
			s = strings.TrimPrefix(filepath.Base(filepath.Dir(filepath.Dir(p))), "llvm-")
		}
		v, _ := strconv.Atoi(s)
		return v
	}
	slices.SortFunc(found, func(a, b string) int { return version(b) - version(a) })
	for _, p := range found {
		if version(p) > 0 {
			return p
		}
	}
	return ""
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// ---- running a module -------------------------------------------------------

// allowedImports is the WASI set docs/abi.md allows.
var allowedImports = []string{"sched_yield", "proc_exit", "args_get", "args_sizes_get", "clock_time_get",
	"environ_get", "environ_sizes_get", "fd_write", "random_get", "poll_oneoff"}

// compile compiles the named module in a fresh runtime (sharing the test
// binary's compilation cache) with WASI available.
func compile(t testing.TB, name string) (wazero.Runtime, wazero.CompiledModule) {
	t.Helper()
	bin, err := os.ReadFile(wasmFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
	t.Cleanup(func() { _ = r.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	compiled, err := r.CompileModule(ctx, bin)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return r, compiled
}

// instance is one instantiated module with the host's view of it.
type instance struct {
	t   testing.TB
	mod api.Module
	mem api.Memory
}

func instantiate(t testing.TB, name string) *instance {
	t.Helper()
	r, compiled := compile(t, name)
	mod, err := r.InstantiateModule(context.Background(), compiled,
		wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatalf("instantiate %s: %v", name, err)
	}
	return &instance{t: t, mod: mod, mem: mod.ExportedMemory("memory")}
}

// on returns in reporting to t: a subtest must not fail its parent's t.
func (in *instance) on(t testing.TB) *instance {
	c := *in
	c.t = t
	return &c
}

// call calls an export with i32 arguments and returns its i32 result.
func (in *instance) call(name string, args ...int32) int32 {
	in.t.Helper()
	fn := in.mod.ExportedFunction(name)
	if fn == nil {
		in.t.Fatalf("no export %s", name)
	}
	params := make([]uint64, len(args))
	for i, a := range args {
		params[i] = api.EncodeI32(a)
	}
	res, err := fn.Call(context.Background(), params...)
	if err != nil {
		in.t.Fatalf("%s%v: %v", name, args, err)
	}
	return api.DecodeI32(res[0])
}

func (in *instance) alloc(size int) int32 {
	in.t.Helper()
	p := in.call("mlnode_alloc", int32(size))
	if p == 0 || p%8 != 0 {
		in.t.Fatalf("mlnode_alloc(%d) = %d: want a non-zero, 8-byte aligned pointer", size, p)
	}
	return p
}

func (in *instance) write(ptr int32, b []byte) {
	in.t.Helper()
	if !in.mem.Write(uint32(ptr), b) {
		in.t.Fatalf("write %d bytes at %d: out of range", len(b), ptr)
	}
}

func (in *instance) writeFloats(ptr int32, v []float64) {
	in.t.Helper()
	b := make([]byte, 8*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(f))
	}
	in.write(ptr, b)
}

func (in *instance) readFloats(ptr int32, n int) []float64 {
	in.t.Helper()
	b, ok := in.mem.Read(uint32(ptr), uint32(8*n))
	if !ok {
		in.t.Fatalf("read %d floats at %d: out of range", n, ptr)
	}
	v := make([]float64, n) // copied: a Memory.Read view is borrowed
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return v
}

// ---- every module: imports and exports ----------------------------------------

func TestModules_ImportsAndExports(t *testing.T) {
	i32 := api.ValueTypeI32
	predict := map[string]int{"mlnode_alloc": 1, "mlnode_predict": 4, "mlnode_predict_batch": 5}
	tests := []struct {
		name    string
		exports map[string]int // export → number of i32 parameters; every result is one i32
	}{
		{"logreg_go", predict},
		{"gbdt_go", predict},
		{"logreg_c", predict},
		{"features_go", map[string]int{"mlnode_alloc": 1, "mlnode_transform_row": 4, "mlnode_transform": 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, compiled := compile(t, tt.name)
			for _, f := range compiled.ImportedFunctions() {
				mod, name, _ := f.Import()
				if mod != wasi_snapshot_preview1.ModuleName || !slices.Contains(allowedImports, name) {
					t.Errorf("imports %s.%s, outside the allowed WASI set", mod, name)
				}
			}
			if _, ok := compiled.ExportedMemories()["memory"]; !ok {
				t.Errorf("exports no memory")
			}
			got := compiled.ExportedFunctions()
			for name, n := range tt.exports {
				f, ok := got[name]
				if !ok {
					t.Errorf("missing export %s", name)
					continue
				}
				if want := slices.Repeat([]api.ValueType{i32}, n); !slices.Equal(f.ParamTypes(), want) ||
					!slices.Equal(f.ResultTypes(), []api.ValueType{i32}) {
					t.Errorf("%s%v -> %v, want %d i32 params -> i32", name, f.ParamTypes(), f.ResultTypes(), n)
				}
			}
			if f, ok := got["_initialize"]; ok && (len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 0) {
				t.Errorf("_initialize has a signature")
			}
		})
	}
}

// ---- models -------------------------------------------------------------------

// model describes a model module for testModel.
type model struct {
	name   string
	nIn    int
	native func([]float64) float64
	tol    float64 // the largest difference from native allowed
	input  func(*rand.Rand) []float64
}

var (
	logregGo = model{name: "logreg_go", nIn: logreg.NumInputs, native: logreg.Predict, tol: 1e-12, input: normalRow(logreg.NumInputs)}
	logregC  = model{name: "logreg_c", nIn: logreg.NumInputs, native: logreg.Predict, tol: 1e-9, input: normalRow(logreg.NumInputs)}
	gbdtGo   = model{name: "gbdt_go", nIn: gbdt.NumFeatures, native: gbdt.Predict, tol: 1e-12, input: uniformRow(gbdt.NumFeatures)}
)

func normalRow(n int) func(*rand.Rand) []float64 {
	return func(r *rand.Rand) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = 2 * r.NormFloat64()
		}
		return x
	}
}

func uniformRow(n int) func(*rand.Rand) []float64 {
	return func(r *rand.Rand) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = r.Float64()
		}
		return x
	}
}

func TestLogregGo(t *testing.T) { testModel(t, logregGo) }
func TestGBDTGo(t *testing.T)   { testModel(t, gbdtGo) }

// TestLogregC runs the C module through the same checks as the Go one, to
// within 1e-9 of the native Go model.
func TestLogregC(t *testing.T) { testModel(t, logregC) }

// testModel checks single and batch predictions against the native model,
// the error codes, and that a failed call leaves the instance usable.
func testModel(t *testing.T, m model) {
	in := instantiate(t, m.name)
	const batch = 64
	inPtr, outPtr := in.alloc(8*m.nIn), in.alloc(8)
	bIn, bOut := in.alloc(8*m.nIn*batch), in.alloc(8*batch)
	r := rand.New(rand.NewPCG(1, uint64(m.nIn)))

	maxDiff := 0.0
	check := func(t *testing.T, x []float64, got float64) {
		t.Helper()
		want := m.native(x)
		d := math.Abs(got - want)
		maxDiff = max(maxDiff, d)
		if !(d <= m.tol) {
			t.Fatalf("predict(%v) = %v, native %v: differ by %g > %g", x, got, want, d, m.tol)
		}
	}

	t.Run("predict", func(t *testing.T) {
		in := in.on(t)
		for range 500 {
			x := m.input(r)
			in.writeFloats(inPtr, x)
			if code := in.call("mlnode_predict", inPtr, int32(m.nIn), outPtr, 1); code != 0 {
				t.Fatalf("mlnode_predict returned %d", code)
			}
			check(t, x, in.readFloats(outPtr, 1)[0])
		}
		// Extremes: saturated probabilities, and NaN propagating, not trapping.
		for _, v := range []float64{1e6, -1e6, math.Inf(1), math.NaN()} {
			x := slices.Repeat([]float64{v}, m.nIn)
			in.writeFloats(inPtr, x)
			if code := in.call("mlnode_predict", inPtr, int32(m.nIn), outPtr, 1); code != 0 {
				t.Fatalf("mlnode_predict(%v...) returned %d", v, code)
			}
			got, want := in.readFloats(outPtr, 1)[0], m.native(x)
			if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Errorf("predict(%v...) = %v, native %v", v, got, want)
			}
		}
		t.Logf("%s: largest difference from native Go over 500 rows: %g", m.name, maxDiff)
	})

	t.Run("batch", func(t *testing.T) {
		in := in.on(t)
		for _, rows := range []int{0, 1, 7, batch} {
			x := make([]float64, 0, rows*m.nIn)
			for range rows {
				x = append(x, m.input(r)...)
			}
			in.writeFloats(bIn, x)
			if code := in.call("mlnode_predict_batch", bIn, int32(rows), int32(m.nIn), bOut, 1); code != 0 {
				t.Fatalf("mlnode_predict_batch(%d rows) returned %d", rows, code)
			}
			for i, got := range in.readFloats(bOut, rows) {
				check(t, x[i*m.nIn:(i+1)*m.nIn], got)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		in := in.on(t)
		tests := []struct {
			name string
			fn   string
			args []int32
			want int32
		}{
			{"n_in short", "mlnode_predict", []int32{inPtr, int32(m.nIn - 1), outPtr, 1}, guest.ErrInputCount},
			{"n_in long", "mlnode_predict", []int32{inPtr, int32(m.nIn + 1), outPtr, 1}, guest.ErrInputCount},
			{"n_out", "mlnode_predict", []int32{inPtr, int32(m.nIn), outPtr, 2}, guest.ErrOutputCount},
			{"n_out zero", "mlnode_predict", []int32{inPtr, int32(m.nIn), outPtr, 0}, guest.ErrOutputCount},
			{"input not allocated", "mlnode_predict", []int32{8, int32(m.nIn), outPtr, 1}, guest.ErrBuffer},
			{"output past memory", "mlnode_predict", []int32{inPtr, int32(m.nIn), math.MaxInt32 - 7, 1}, guest.ErrBuffer},
			{"input misaligned", "mlnode_predict", []int32{bIn + 4, int32(m.nIn), outPtr, 1}, guest.ErrBuffer},
			{"negative pointer", "mlnode_predict", []int32{-8, int32(m.nIn), outPtr, 1}, guest.ErrBuffer},
			{"batch n_in", "mlnode_predict_batch", []int32{bIn, 1, int32(m.nIn - 1), bOut, 1}, guest.ErrInputCount},
			{"batch rows negative", "mlnode_predict_batch", []int32{bIn, -1, int32(m.nIn), bOut, 1}, guest.ErrRowCount},
			{"batch rows huge", "mlnode_predict_batch", []int32{bIn, math.MaxInt32, int32(m.nIn), bOut, 1}, guest.ErrBuffer},
		}
		for _, tt := range tests {
			if got := in.call(tt.fn, tt.args...); got != tt.want {
				t.Errorf("%s: %s%v = %d, want %d", tt.name, tt.fn, tt.args, got, tt.want)
			}
		}
		// The instance still works after refusing.
		x := m.input(r)
		in.writeFloats(inPtr, x)
		if code := in.call("mlnode_predict", inPtr, int32(m.nIn), outPtr, 1); code != 0 {
			t.Fatalf("mlnode_predict after errors returned %d", code)
		}
		check(t, x, in.readFloats(outPtr, 1)[0])
	})
}

// TestLogregC_WeightsMatchGo reads the weights out of model.c: the two
// modules must be the same model, literal for literal. No clang needed.
func TestLogregC_WeightsMatchGo(t *testing.T) {
	src, err := os.ReadFile("models/logreg_c/model.c")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)static const double weights\[N_IN\] = \{(.*?)\};`).FindSubmatch(src)
	if m == nil {
		t.Fatal("no weights array in model.c")
	}
	var weights []float64
	for _, f := range strings.FieldsFunc(string(m[1]), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		w, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("weight %q: %v", f, err)
		}
		weights = append(weights, w)
	}
	if !slices.Equal(weights, logreg.Weights[:]) {
		t.Errorf("model.c weights\n %v\nGo weights\n %v", weights, logreg.Weights)
	}
	b := regexp.MustCompile(`static const double bias = ([-+0-9.eE]+);`).FindSubmatch(src)
	if b == nil {
		t.Fatal("no bias in model.c")
	}
	if bias, err := strconv.ParseFloat(string(b[1]), 64); err != nil || bias != logreg.Bias {
		t.Errorf("model.c bias %s, Go bias %v", b[1], logreg.Bias)
	}
}

// TestLogregC_AgreesWithGoModule runs both modules on the same rows.
func TestLogregC_AgreesWithGoModule(t *testing.T) {
	c, g := instantiate(t, "logreg_c"), instantiate(t, "logreg_go")
	const rows = 256
	cIn, cOut := c.alloc(8*logreg.NumInputs*rows), c.alloc(8*rows)
	gIn, gOut := g.alloc(8*logreg.NumInputs*rows), g.alloc(8*rows)
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float64, logreg.NumInputs*rows)
	for i := range x {
		x[i] = 3 * r.NormFloat64()
	}
	c.writeFloats(cIn, x)
	g.writeFloats(gIn, x)
	if code := c.call("mlnode_predict_batch", cIn, rows, logreg.NumInputs, cOut, 1); code != 0 {
		t.Fatalf("C module returned %d", code)
	}
	if code := g.call("mlnode_predict_batch", gIn, rows, logreg.NumInputs, gOut, 1); code != 0 {
		t.Fatalf("Go module returned %d", code)
	}
	cp, gp := c.readFloats(cOut, rows), g.readFloats(gOut, rows)
	same := 0
	for i := range cp {
		if d := math.Abs(cp[i] - gp[i]); !(d <= 1e-9) {
			t.Fatalf("row %d: C %v, Go %v", i, cp[i], gp[i])
		}
		if cp[i] == gp[i] {
			same++
		}
	}
	t.Logf("%d of %d predictions bit-identical between the C and Go modules", same, rows)
}

// TestGBDTGo_ManifestSample checks the sample the trainer computed natively
// against the generated trees, natively and in the module.
func TestGBDTGo_ManifestSample(t *testing.T) {
	var man struct {
		NumInputs  int `json:"n_inputs"`
		NumOutputs int `json:"n_outputs"`
		Trees      int `json:"trees"`
		Inputs     []struct {
			Name string `json:"name"`
		} `json:"inputs"`
		Sample struct {
			Input  []float64 `json:"input"`
			Output []float64 `json:"output"`
		} `json:"sample"`
	}
	b, err := os.ReadFile("models/gbdt_go/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	if man.NumInputs != gbdt.NumFeatures || len(man.Inputs) != gbdt.NumFeatures || man.NumOutputs != 1 ||
		man.Trees != gbdt.NumTrees || len(man.Sample.Input) != gbdt.NumFeatures || len(man.Sample.Output) != 1 {
		t.Fatalf("manifest does not describe the generated model: %+v", man)
	}
	want := man.Sample.Output[0]
	if got := gbdt.Predict(man.Sample.Input); got != want {
		t.Errorf("native Predict(sample) = %v, manifest says %v", got, want)
	}
	in := instantiate(t, "gbdt_go")
	inPtr, outPtr := in.alloc(8*gbdt.NumFeatures), in.alloc(8)
	in.writeFloats(inPtr, man.Sample.Input)
	if code := in.call("mlnode_predict", inPtr, gbdt.NumFeatures, outPtr, 1); code != 0 {
		t.Fatalf("mlnode_predict returned %d", code)
	}
	if got := in.readFloats(outPtr, 1)[0]; math.Abs(got-want) > 1e-12 {
		t.Errorf("module predict(sample) = %v, manifest says %v", got, want)
	}
}

// TestGBDTGo_TrainerReproducible reruns the trainer and compares its output
// with the committed trees_gen.go and manifest.json.
func TestGBDTGo_TrainerReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 200 rounds")
	}
	dir := t.TempDir()
	out, man := filepath.Join(dir, "trees_gen.go"), filepath.Join(dir, "manifest.json")
	cmd := exec.Command("go", "run", "./models/gbdt_go/train", "-out", out, "-manifest", man)
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	t.Logf("trainer: %s", bytes.TrimSpace(log))
	for _, f := range []struct{ got, committed string }{
		{out, "models/gbdt_go/gbdt/trees_gen.go"},
		{man, "models/gbdt_go/manifest.json"},
	} {
		got, err := os.ReadFile(f.got)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(f.committed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from a fresh training run: run go generate ./examples/models/gbdt_go/... and commit", f.committed)
		}
	}
}

// TestGoModules_BuffersSurviveGC allocates enough to make the guest collect
// garbage, then checks that every buffer the host wrote still holds its bytes.
func TestGoModules_BuffersSurviveGC(t *testing.T) {
	in := instantiate(t, "logreg_go")
	const n, size = 64, 256 << 10 // 16 MiB in all: several guest GC cycles
	ptrs := make([]int32, n)
	for i := range ptrs {
		ptrs[i] = in.alloc(size)
		in.write(ptrs[i], bytes.Repeat([]byte{byte(i + 1)}, size))
	}
	for i, p := range ptrs {
		b, ok := in.mem.Read(uint32(p), size)
		if !ok || !bytes.Equal(b, bytes.Repeat([]byte{byte(i + 1)}, size)) {
			t.Fatalf("buffer %d at %d was overwritten: the guest freed memory it handed to the host", i, p)
		}
	}
	// And predictions still work with the first buffers.
	in.writeFloats(ptrs[0], make([]float64, logreg.NumInputs))
	if code := in.call("mlnode_predict", ptrs[0], logreg.NumInputs, ptrs[1], 1); code != 0 {
		t.Fatalf("mlnode_predict returned %d", code)
	}
	if got, want := in.readFloats(ptrs[1], 1)[0], logreg.Predict(make([]float64, logreg.NumInputs)); got != want {
		t.Errorf("predict(0) = %v, want %v", got, want)
	}
}

// BenchmarkPredict measures one prediction through wazero (CallWithStack, no
// deadline) against the same model in native Go, and the batch export per row.
func BenchmarkPredict(b *testing.B) {
	ctx := context.Background()
	for _, m := range []model{logregGo, logregC, gbdtGo} {
		x := m.input(rand.New(rand.NewPCG(5, 6)))
		b.Run(m.name+"/native", func(b *testing.B) {
			var sink float64
			for b.Loop() {
				sink += m.native(x)
			}
			_ = sink
		})
		b.Run(m.name+"/wasm", func(b *testing.B) {
			in := instantiate(b, m.name)
			inPtr, outPtr := in.alloc(8*m.nIn), in.alloc(8)
			in.writeFloats(inPtr, x)
			fn := in.mod.ExportedFunction("mlnode_predict")
			stack := make([]uint64, 4)
			for b.Loop() {
				stack[0], stack[1], stack[2], stack[3] = uint64(inPtr), uint64(m.nIn), uint64(outPtr), 1
				if err := fn.CallWithStack(ctx, stack); err != nil || stack[0] != 0 {
					b.Fatalf("mlnode_predict: %v, code %d", err, stack[0])
				}
			}
		})
		b.Run(m.name+"/wasm_batch64", func(b *testing.B) {
			const rows = 64
			in := instantiate(b, m.name)
			inPtr, outPtr := in.alloc(8*m.nIn*rows), in.alloc(8*rows)
			in.writeFloats(inPtr, slices.Repeat(x, rows))
			fn := in.mod.ExportedFunction("mlnode_predict_batch")
			stack := make([]uint64, 5)
			for b.Loop() {
				stack[0], stack[1], stack[2], stack[3], stack[4] = uint64(inPtr), rows, uint64(m.nIn), uint64(outPtr), 1
				if err := fn.CallWithStack(ctx, stack); err != nil || stack[0] != 0 {
					b.Fatalf("mlnode_predict_batch: %v, code %d", err, stack[0])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}

// ---- the transform ------------------------------------------------------------

// cell is one input of a transform row as the host encodes it.
type cell struct {
	kind byte // 0 null, 1 number, 2 string
	num  float64
	str  string
}

var null = cell{}

func num(f float64) cell { return cell{kind: 1, num: f} }
func str(s string) cell  { return cell{kind: 2, str: s} }
func encodeRow(cells ...cell) []byte {
	var b []byte
	for _, c := range cells {
		b = append(b, c.kind)
		switch c.kind {
		case 1:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.num))
		case 2:
			b = binary.LittleEndian.AppendUint32(b, uint32(len(c.str)))
			b = append(b, c.str...)
		}
	}
	return b
}

func TestFeaturesGo_TransformRow(t *testing.T) {
	in := instantiate(t, "features_go")
	nOut := len(features.Outputs)
	inCap := 64
	inPtr, outPtr := in.alloc(inCap), in.alloc(8*nOut)
	l := math.Log1p
	tests := []struct {
		name string
		row  []cell // amount, country, age
		want []float64
	}{
		{"all set", []cell{num(100), str("US"), num(30)}, []float64{l(100), 2, 0, 0, 0, 0, 1}},
		{"each country", []cell{num(0), str("AE"), num(0)}, []float64{0, 0, 1, 0, 0, 0, 0}},
		{"DE", []cell{num(0), str("DE"), num(18)}, []float64{0, 1, 0, 1, 0, 0, 0}},
		{"FR", []cell{num(0), str("FR"), num(24.999)}, []float64{0, 1, 0, 0, 1, 0, 0}},
		{"GB", []cell{num(0), str("GB"), num(25)}, []float64{0, 2, 0, 0, 0, 1, 0}},
		{"other country", []cell{num(1), str("JP"), num(49.5)}, []float64{l(1), 3, 0, 0, 0, 0, 0}},
		{"lower case is another country", []cell{num(1), str("us"), num(50)}, []float64{l(1), 4, 0, 0, 0, 0, 0}},
		{"empty country", []cell{num(1), str(""), num(64.9)}, []float64{l(1), 4, 0, 0, 0, 0, 0}},
		{"age 65 and over", []cell{num(1), str("GB"), num(65)}, []float64{l(1), 5, 0, 0, 0, 1, 0}},
		{"age infinite", []cell{num(1), str("GB"), num(math.Inf(1))}, []float64{l(1), 5, 0, 0, 0, 1, 0}},
		{"age 17.9", []cell{num(1), str("GB"), num(17.9)}, []float64{l(1), 0, 0, 0, 0, 1, 0}},
		{"age negative", []cell{num(1), str("GB"), num(-1)}, []float64{l(1), -1, 0, 0, 0, 1, 0}},
		{"negative amount", []cell{num(-50), str("FR"), num(40)}, []float64{0, 3, 0, 0, 1, 0, 0}},
		{"nulls", []cell{null, null, null}, []float64{0, -1, 0, 0, 0, 0, 0}},
		{"NaN is null", []cell{num(math.NaN()), str("AE"), num(math.NaN())}, []float64{0, -1, 1, 0, 0, 0, 0}},
		{"long string grows the buffer", []cell{num(1e6), str(strings.Repeat("x", 1000)), num(33)}, []float64{l(1e6), 2, 0, 0, 0, 0, 0}},
		{"multibyte string", []cell{num(2), str("Ü€"), null}, []float64{l(2), -1, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := in.on(t)
			row := encodeRow(tt.row...)
			if len(row) > inCap { // as the host does: a new, larger buffer
				inCap = len(row)
				inPtr = in.alloc(inCap)
			}
			in.write(inPtr, row)
			if code := in.call("mlnode_transform_row", inPtr, int32(len(row)), outPtr, int32(nOut)); code != 0 {
				t.Fatalf("mlnode_transform_row returned %d", code)
			}
			got := in.readFloats(outPtr, nOut)
			if !slices.Equal(got, tt.want) {
				t.Errorf("outputs %v\n got %v\nwant %v", features.Outputs, got, tt.want)
			}
			// And the native reference agrees.
			vals := make([]guest.Value, 3)
			if code := guest.ParseRow(row, vals); code != 0 {
				t.Fatalf("ParseRow returned %d", code)
			}
			native := make([]float64, nOut)
			if code := features.Row(vals[0], vals[1], vals[2], native); code != 0 || !slices.Equal(native, tt.want) {
				t.Errorf("native Row = %v (code %d), want %v", native, code, tt.want)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		in := in.on(t)
		good := encodeRow(num(1), str("US"), num(30))
		tests := []struct {
			name       string
			row        []byte
			inLen, out int32 // overrides when non-zero
			ptr        int32
			want       int32
		}{
			{name: "string amount", row: encodeRow(str("1"), str("US"), num(30)), want: guest.ErrInputType},
			{name: "string age", row: encodeRow(num(1), str("US"), str("30")), want: guest.ErrInputType},
			{name: "number country", row: encodeRow(num(1), num(1), num(30)), want: guest.ErrInputType},
			{name: "too few inputs", row: encodeRow(num(1), str("US")), want: guest.ErrRowFormat},
			{name: "trailing input", row: encodeRow(num(1), str("US"), num(30), null), want: guest.ErrRowFormat},
			{name: "unknown tag", row: []byte{7, 0, 0}, want: guest.ErrRowFormat},
			{name: "truncated", row: good, inLen: int32(len(good) - 1), want: guest.ErrRowFormat},
			{name: "string length past end", row: encodeRow(num(1), cell{kind: 2, str: "US"}, num(30))[:13], want: guest.ErrRowFormat},
			{name: "n_out", row: good, out: int32(nOut - 1), want: guest.ErrOutputCount},
			{name: "in_len past buffer", row: good, inLen: int32(inCap + 64), want: guest.ErrBuffer},
			{name: "unallocated input", row: good, ptr: 16, want: guest.ErrBuffer},
		}
		for _, tt := range tests {
			in.write(inPtr, tt.row)
			inLen, out, ptr := int32(len(tt.row)), int32(nOut), inPtr
			if tt.inLen != 0 {
				inLen = tt.inLen
			}
			if tt.out != 0 {
				out = tt.out
			}
			if tt.ptr != 0 {
				ptr = tt.ptr
			}
			if got := in.call("mlnode_transform_row", ptr, inLen, outPtr, out); got != tt.want {
				t.Errorf("%s: got code %d, want %d", tt.name, got, tt.want)
			}
		}
	})
}

func TestFeaturesGo_Transform(t *testing.T) {
	in := instantiate(t, "features_go")
	inPtr, outPtr := in.alloc(16), in.alloc(16)
	tests := []struct {
		name        string
		amount, age float64
		want        []float64
	}{
		{"set", 99, 70, []float64{math.Log1p(99), 5}},
		{"zero", 0, 0, []float64{0, 0}},
		{"negative", -3, -3, []float64{0, -1}},
		{"NaN is null", math.NaN(), math.NaN(), []float64{0, -1}},
		{"bucket edge", 1, 35, []float64{math.Log1p(1), 3}},
	}
	for _, tt := range tests {
		in.writeFloats(inPtr, []float64{tt.amount, tt.age})
		if code := in.call("mlnode_transform", inPtr, 2, outPtr, 2); code != 0 {
			t.Fatalf("%s: mlnode_transform returned %d", tt.name, code)
		}
		if got := in.readFloats(outPtr, 2); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, c := range []struct{ nIn, nOut, want int32 }{{3, 2, guest.ErrInputCount}, {2, 7, guest.ErrOutputCount}} {
		if got := in.call("mlnode_transform", inPtr, c.nIn, outPtr, c.nOut); got != c.want {
			t.Errorf("mlnode_transform(n_in %d, n_out %d) = %d, want %d", c.nIn, c.nOut, got, c.want)
		}
	}
}
