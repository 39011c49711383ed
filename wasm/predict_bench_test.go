package wasm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
	"github.com/mlnode/mlnode/wasm"
)

// BenchmarkPredictInProcess is the whole predict path without HTTP:
// resolve the alias, read 32 features of one entity from the online store,
// run the clang-built logistic regression through the pool, log the
// prediction to the telemetry buffer. Target: ≤ 20 µs median.
func BenchmarkPredictInProcess(b *testing.B) {
	ctx := context.Background()
	raw, err := os.ReadFile("../examples/build/logreg_c.wasm")
	if err != nil {
		b.Skipf("%v: run `make examples`", err)
	}
	s := storetest.Open(b, store.Options{})
	rt, err := wasm.Open(ctx, wasm.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	svc := wasm.NewService(rt, s, 0)
	defer svc.Close()
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}); err != nil {
		b.Fatal(err)
	}
	features := make([]appliance.Feature, 32)
	inputs := make([]string, 32)
	for i := range features {
		features[i] = appliance.Feature{Name: fmt.Sprintf("f%d", i), Dtype: appliance.DTypeFloat64}
		inputs[i] = fmt.Sprintf("feats:f%d", i)
	}
	view, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "feats", Entities: []string{"user"}, Features: features})
	if err != nil {
		b.Fatal(err)
	}
	const entities = 10000
	rows := make([]appliance.Row, entities)
	for e := range rows {
		vals := make([]appliance.Value, 32)
		for i := range vals {
			vals[i] = appliance.Float64Value(float64((e+i)%10) / 10)
		}
		rows[e] = appliance.Row{Key: appliance.AppendEntityKeyPart(nil, appliance.StringValue(fmt.Sprintf("u%d", e))), EventTime: time.Now().UnixMicro(), Values: vals}
	}
	if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: view, Rows: rows}); err != nil {
		b.Fatal(err)
	}
	mv, _, err := s.CreateModelVersion(ctx, &appliance.ModelVersion{Model: "churn", SHA256: "bench", Module: "sha256:" + appliance.ModuleDigest(raw),
		Inputs: inputs, Outputs: []string{"p"}, Lineage: appliance.Lineage{FeatureViews: map[string]int{"feats": 1}}}, raw, map[string][]byte{"model.wasm": raw})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.SetAlias(ctx, "churn", "production", mv.Version, appliance.AliasPolicy{}); err != nil {
		b.Fatal(err)
	}
	p := &appliance.Predictor{Models: s, Views: s, Features: s, Runner: svc, Transforms: svc}
	if os.Getenv("BENCH_TELEMETRY") != "off" {
		p.Telemetry = s.Telemetry()
	}
	reqs := make([]*appliance.PredictRequest, 1024)
	for i := range reqs {
		reqs[i] = &appliance.PredictRequest{Model: "churn", Entities: map[string]json.RawMessage{"user_id": json.RawMessage(fmt.Sprintf(`"u%d"`, (i*7919)%entities))}}
	}
	// The first call loads and compiles the module: not part of the path.
	if _, err := p.Predict(ctx, reqs[0]); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, 1<<20)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := p.Predict(ctx, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
		i++
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	}
}
