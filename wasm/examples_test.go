package wasm_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/mlnode/mlnode/examples/models/gbdt_go/gbdt"
	"github.com/mlnode/mlnode/examples/models/logreg_go/logreg"
	"github.com/mlnode/mlnode/examples/transforms/features_go/features"
	"github.com/mlnode/mlnode/wasm"
)

// Every example of examples/ (built by `make examples`, which `make test`
// runs first) through the engine itself, against the native computation.
func TestEngine_RunsEveryExample(t *testing.T) {
	ctx := context.Background()
	// Generous deadlines: under -race on a busy machine a Go guest's
	// _initialize takes seconds. This test checks results, not speed.
	rt, err := wasm.Open(ctx, wasm.Options{CacheDir: t.TempDir(), InitTimeout: time.Minute, DefaultTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	load := func(name string, nIn, nOut int) *wasm.Module {
		t.Helper()
		raw, err := os.ReadFile("../examples/build/" + name + ".wasm")
		if err != nil {
			t.Fatalf("%v: run `make examples` first", err)
		}
		m, err := rt.Load(ctx, raw, wasm.Limits{}, nIn, nOut)
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		return m
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"logreg_go", "logreg_c"} {
		m := load(name, logreg.NumInputs, 1)
		in, out := make([]float64, logreg.NumInputs), make([]float64, 1)
		for range 200 {
			for i := range in {
				in[i] = rng.NormFloat64()
			}
			if err := m.Predict(ctx, in, out); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if want := logreg.Predict(in); math.Abs(out[0]-want) > 1e-12 {
				t.Fatalf("%s: %v, native %v", name, out[0], want)
			}
		}
		batch, bout := make([]float64, 8*logreg.NumInputs), make([]float64, 8)
		for i := range batch {
			batch[i] = rng.Float64()
		}
		if err := m.PredictBatch(ctx, batch, 8, bout); err != nil {
			t.Fatalf("%s batch: %v", name, err)
		}
		for r := range 8 {
			if want := logreg.Predict(batch[r*logreg.NumInputs : (r+1)*logreg.NumInputs]); math.Abs(bout[r]-want) > 1e-12 {
				t.Fatalf("%s batch row %d: %v, native %v", name, r, bout[r], want)
			}
		}
	}
	gb := load("gbdt_go", gbdt.NumFeatures, 1)
	in, out := make([]float64, gbdt.NumFeatures), make([]float64, 1)
	for range 200 {
		for i := range in {
			in[i] = rng.Float64()
		}
		if err := gb.Predict(ctx, in, out); err != nil {
			t.Fatal(err)
		}
		if want := gbdt.Predict(in); math.Abs(out[0]-want) > 1e-12 {
			t.Fatalf("gbdt: %v, native %v", out[0], want)
		}
	}
	tr := load("features_go", len(features.Inputs), len(features.Outputs))
	rows := []struct {
		amount  float64
		country string
		age     float64
	}{{99, "FR", 30}, {0, "JP", 17}, {1e6, "US", 80}}
	res := make([]float64, len(features.Outputs))
	want := make([]float64, len(features.Outputs))
	for _, r := range rows {
		err := tr.TransformRow(ctx, []wasm.RowValue{{Num: r.amount}, {IsStr: true, Str: r.country}, {Num: r.age}}, res)
		if err != nil {
			t.Fatal(err)
		}
		want[0], want[1] = features.LogAmount(r.amount), features.AgeBucket(r.age)
		for i, c := range features.Countries {
			want[2+i] = 0
			if c == r.country {
				want[2+i] = 1
			}
		}
		for i := range want {
			if res[i] != want[i] {
				t.Fatalf("transform %+v output %d: %v, native %v", r, i, res[i], want[i])
			}
		}
	}
}
