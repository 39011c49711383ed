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
	"github.com/mlnode/mlnode/appliance/routing"
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
	// A second version of the same module, for the experiment's treatment.
	if _, _, err := s.CreateModelVersion(ctx, &appliance.ModelVersion{Model: "churn", SHA256: "bench-2", Module: "sha256:" + appliance.ModuleDigest(raw),
		Inputs: inputs, Outputs: []string{"p"}, Lineage: appliance.Lineage{FeatureViews: map[string]int{"feats": 1}}}, append(raw[:len(raw):len(raw)], 0), map[string][]byte{"model.wasm": raw}); err != nil {
		b.Fatal(err)
	}
	router := &routing.Router{Store: s}
	x := &appliance.Experiments{Store: s, Models: s, Router: router}
	exp := &appliance.Experiment{Name: "bench", Model: "churn", Unit: "user_id",
		Arms: []appliance.Arm{{Name: "control", Version: 1, Weight: 0.5}, {Name: "treatment", Version: 2, Weight: 0.5}}}
	if _, err := x.Create(ctx, exp); err != nil {
		b.Fatal(err)
	}
	// Same run, same store: the predictor without the experiment routes by
	// the alias; with it, every request is assigned an arm and logs an
	// exposure besides its prediction.
	b.Run("alias", func(b *testing.B) {
		p := &appliance.Predictor{Models: s, Views: s, Features: s, Runner: svc, Transforms: svc}
		benchPredict(ctx, b, s, p, entities)
	})
	if _, err := x.Start(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	b.Run("experiment", func(b *testing.B) {
		p := &appliance.Predictor{Models: s, Views: s, Features: s, Runner: svc, Transforms: svc, Router: router}
		benchPredict(ctx, b, s, p, entities)
	})
	// Both in one loop, alternating request by request, on the same store,
	// runtime and heap: the sub-benchmarks above run one after the other,
	// and on this machine the place of the heap and the store's pages alone
	// moves a run by ±10 %, more than the experiment costs.
	b.Run("paired", func(b *testing.B) {
		alias := &appliance.Predictor{Models: s, Views: s, Features: s, Runner: svc, Transforms: svc}
		inExp := &appliance.Predictor{Models: s, Views: s, Features: s, Runner: svc, Transforms: svc, Router: router}
		benchPaired(ctx, b, s, alias, inExp, entities)
	})
	// The alias again, after the experiment: how much of a difference is
	// the store and heap having grown in between.
	b.Run("alias-after", func(b *testing.B) {
		p := &appliance.Predictor{Models: s, Views: s, Features: s, Runner: svc, Transforms: svc}
		benchPredict(ctx, b, s, p, entities)
	})
}

func benchPredict(ctx context.Context, b *testing.B, s *store.Store, p *appliance.Predictor, entities int) {
	tel := s.Telemetry()
	if os.Getenv("BENCH_TELEMETRY") != "off" {
		p.Telemetry = tel
	}
	droppedBefore := tel.Dropped("prediction") + tel.Dropped("exposure")
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
	// Drops are part of the cost: this loop logs faster than the flusher
	// writes, so about half the prediction logs are dropped.
	b.ReportMetric(float64(tel.Dropped("prediction")+tel.Dropped("exposure")-droppedBefore)/float64(i), "dropped/op")
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	}
}

// benchPaired runs the alias predictor and the experiment predictor on the
// same request, in alternating order, and reports each one's mean and
// median and the ratio alias/experiment of both (the issue's "predict
// inside an experiment vs without, same run"). ns/op is the pair.
func benchPaired(ctx context.Context, b *testing.B, s *store.Store, alias, inExp *appliance.Predictor, entities int) {
	if os.Getenv("BENCH_TELEMETRY") != "off" {
		alias.Telemetry, inExp.Telemetry = s.Telemetry(), s.Telemetry()
	}
	reqs := make([]*appliance.PredictRequest, 1024)
	for i := range reqs {
		reqs[i] = &appliance.PredictRequest{Model: "churn", Entities: map[string]json.RawMessage{"user_id": json.RawMessage(fmt.Sprintf(`"u%d"`, (i*7919)%entities))}}
	}
	for _, p := range []*appliance.Predictor{alias, inExp} {
		if _, err := p.Predict(ctx, reqs[0]); err != nil {
			b.Fatal(err)
		}
	}
	var lat [2][]time.Duration
	var sum [2]time.Duration
	predictors := [2]*appliance.Predictor{alias, inExp}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := reqs[i%len(reqs)]
		for k := range 2 {
			which := (i + k) % 2
			t0 := time.Now()
			if _, err := predictors[which].Predict(ctx, req); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			sum[which] += d
			if len(lat[which]) < 1<<20 {
				lat[which] = append(lat[which], d)
			}
		}
		i++
	}
	if i == 0 {
		return
	}
	var p50 [2]float64
	for k := range 2 {
		slices.Sort(lat[k])
		p50[k] = float64(lat[k][len(lat[k])/2].Nanoseconds())
	}
	b.ReportMetric(float64(sum[0].Nanoseconds())/float64(i), "alias-ns")
	b.ReportMetric(float64(sum[1].Nanoseconds())/float64(i), "experiment-ns")
	b.ReportMetric(p50[0], "alias-p50-ns")
	b.ReportMetric(p50[1], "experiment-p50-ns")
	b.ReportMetric(float64(sum[0])/float64(sum[1]), "ratio-mean")
	b.ReportMetric(p50[0]/p50[1], "ratio-p50")
}
