package wasm

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// lrWeights and lrBias are the model of testdata/lr32.wat.
var lrWeights = [32]float64{
	0.266, 0.8184, -0.4769, -0.6955, 0.6561, 0.5264, -0.7917, -0.3224,
	0.8748, 0.097, -0.8998, 0.1349, 0.865, -0.3578, -0.7728, 0.557,
	0.6293, -0.7191, -0.444, 0.8335, 0.2292, -0.8926, 0.0008, 0.8924,
	-0.2308, -0.8329, 0.4454, 0.7182, -0.6305, -0.5557, 0.7737, 0.3563,
}

const lrBias = -0.125

// nativeLR is the model of testdata/lr32.wat in Go.
func nativeLR(x []float64) float64 {
	acc := lrBias
	for i, v := range x[:32] {
		acc += lrWeights[i] * v
	}
	return 1 / (1 + math.Exp(-acc))
}

// fixture reads testdata/<name>.wasm.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".wasm"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// openRuntime opens a runtime closed at the end of the test.
func openRuntime(tb testing.TB, opts Options) *Runtime {
	tb.Helper()
	r, err := Open(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return r
}

// load loads a fixture or fails the test.
func load(tb testing.TB, r *Runtime, name string, limits Limits, nIn, nOut int) *Module {
	tb.Helper()
	m, err := r.Load(context.Background(), fixture(tb, name), limits, nIn, nOut)
	if err != nil {
		tb.Fatalf("load %s: %v", name, err)
	}
	return m
}

func lrInput(seed int) []float64 {
	x := make([]float64, 32)
	for i := range x {
		x[i] = math.Sin(float64(seed*32+i)) * 2
	}
	return x
}

var goGuestOnce struct {
	sync.Once
	wasm []byte
	err  error
	out  []byte
}

// goGuest builds testdata/goguest, a Go reactor, once per test binary; it
// skips with -short or without a Go toolchain.
func goGuest(tb testing.TB) []byte {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds a Go guest")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		tb.Skip("no Go toolchain")
	}
	g := &goGuestOnce
	g.Do(func() {
		dir, err := os.MkdirTemp("", "goguest")
		if err != nil {
			g.err = err
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "goguest.wasm")
		cmd := exec.Command(gobin, "build", "-buildmode=c-shared", "-o", bin, ".")
		cmd.Dir = filepath.Join("testdata", "goguest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "GOWORK=off")
		if g.out, g.err = cmd.CombinedOutput(); g.err == nil {
			g.wasm, g.err = os.ReadFile(bin)
		}
	})
	if g.err != nil {
		tb.Fatalf("build goguest: %v\n%s", g.err, g.out)
	}
	return g.wasm
}
