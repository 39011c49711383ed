package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/appliance/mock"
	"github.com/mlnode/mlnode/appliance/routing"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// newExperimentNode has three versions of model churn (v3 archived) and a
// production alias that requires signatures when signed is set.
func newExperimentNode(t *testing.T, signed bool) *testNode {
	t.Helper()
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	policies := map[string]appliance.AliasPolicy{"production": {RequireSignature: signed}}
	clock := func() time.Time { return n.now }
	n.srv = httpapi.New(httpapi.Config{Now: clock, AliasPolicies: policies},
		httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store, Models: n.store,
			Experiments: &appliance.Experiments{Store: n.store, Models: n.store, Policies: policies, Router: &routing.Router{Store: n.store}, Now: clock}})
	for _, c := range []string{"v1", "v2", "v3", "v4"} {
		n.modelVersion("churn", c, []string{"user_stats:clicks"}, nil)
	}
	status := appliance.StatusArchived
	if _, err := n.store.PatchModelVersion(context.Background(), "churn", 3, &appliance.ModelVersionPatch{Status: &status}); err != nil {
		t.Fatal(err)
	}
	return n
}

func experimentBody(name string, mutate func(m map[string]any)) map[string]any {
	m := map[string]any{"name": name, "model": "churn", "unit": "user_id",
		"arms": []map[string]any{{"name": "control", "version": 1, "weight": 0.5}, {"name": "treatment", "version": 2, "weight": 0.5}},
		"metrics": []map[string]any{{"name": "converted", "type": "binomial", "direction": "increase", "role": "goal"},
			{"name": "latency", "type": "mean", "direction": "decrease", "role": "guardrail"}}}
	if mutate != nil {
		mutate(m)
	}
	return m
}

func TestExperiments_Lifecycle(t *testing.T) {
	n := newExperimentNode(t, false)
	writer := n.token("writer")
	e := n.do("POST", "/api/v1/experiments", writer, "application/json", experimentBody("checkout", func(m map[string]any) {
		m["shadow"] = []map[string]any{{"version": 4, "percent": 20}}
	}))
	if e.status != 201 || e.json(t)["state"] != "draft" || e.json(t)["coverage"].(float64) != 1 {
		t.Fatalf("create: %d %s", e.status, e.body)
	}
	if r := n.do("POST", "/api/v1/experiments/checkout/start", writer, "", nil); r.status != 403 {
		t.Fatalf("a writer started an experiment: %d", r.status)
	}
	if r := n.admin("POST", "/api/v1/experiments/checkout/start", nil, 200).json(t); r["state"] != "running" || r["started_at"] == nil {
		t.Fatalf("start: %v", r)
	}
	// Raising coverage keeps every assigned unit: allowed while running.
	// Changing weights would move units: refused, unless with a new seed.
	body := experimentBody("checkout", func(m map[string]any) { m["coverage"] = 1.0; m["description"] = "now described" })
	n.admin("PUT", "/api/v1/experiments/checkout", body, 200)
	moved := experimentBody("checkout", func(m map[string]any) {
		m["arms"] = []map[string]any{{"name": "control", "version": 1, "weight": 0.3}, {"name": "treatment", "version": 2, "weight": 0.7}}
	})
	if r := n.do("PUT", "/api/v1/experiments/checkout", adminSecret, "application/json", moved); r.status != 409 {
		t.Fatalf("moving units while running: %d %s", r.status, r.body)
	} else if _, field := r.errorOf(t); field != "seed" {
		t.Fatalf("field %q", field)
	}
	// Counting a metric differently would mix old and new sums: refused too.
	remetric := experimentBody("checkout", func(m map[string]any) {
		m["metrics"] = []map[string]any{{"name": "converted", "type": "mean", "direction": "increase", "role": "goal"}}
	})
	if r := n.do("PUT", "/api/v1/experiments/checkout", adminSecret, "application/json", remetric); r.status != 409 {
		t.Fatalf("changing a metric while running: %d %s", r.status, r.body)
	}
	moved["seed"] = "checkout-2"
	n.admin("PUT", "/api/v1/experiments/checkout", moved, 200)
	// The audit log has every step, the reseed included.
	audit := string(n.admin("GET", "/api/v1/audit?object=experiment/checkout", nil, 200).body)
	for _, action := range []string{"experiment.create", "experiment.start", "experiment.update"} {
		if !strings.Contains(audit, action) {
			t.Fatalf("audit lacks %s: %s", action, audit)
		}
	}
	if !strings.Contains(audit, `"seed":"checkout-2"`) {
		t.Fatalf("audit lacks the new seed: %s", audit)
	}
	n.admin("POST", "/api/v1/experiments/checkout/stop", map[string]any{"reason": "enough data"}, 200)
	r := n.admin("POST", "/api/v1/experiments/checkout/conclude", map[string]any{"arm": "treatment"}, 200).json(t)
	if r["experiment"].(map[string]any)["state"] != "concluded" || r["alias_change"].(map[string]any)["version"].(float64) != 2 {
		t.Fatalf("conclude: %v", r)
	}
	if got := n.admin("GET", "/api/v1/models/churn", nil, 200).json(t)["aliases"].(map[string]any)["production"]; got.(float64) != 2 {
		t.Fatalf("production is %v after concluding", got)
	}
	if r := n.do("POST", "/api/v1/experiments/checkout/start", adminSecret, "", nil); r.status != 409 {
		t.Fatalf("restarting a concluded experiment: %d", r.status)
	}
}

func TestExperiments_BadDefinitions(t *testing.T) {
	n := newExperimentNode(t, false)
	arms := func(a ...map[string]any) func(m map[string]any) { return func(m map[string]any) { m["arms"] = a } }
	arm := func(name string, version int, weight float64) map[string]any {
		return map[string]any{"name": name, "version": version, "weight": weight}
	}
	for _, tc := range []struct {
		name   string
		mutate func(m map[string]any)
		status int
		field  string
	}{
		{"weights sum to 0.9", arms(arm("a", 1, 0.5), arm("b", 2, 0.4)), 400, "arms"},
		{"weights sum to 1.0005 is fine", arms(arm("a", 1, 0.5), arm("b", 2, 0.5005)), 201, ""},
		{"archived version", arms(arm("a", 1, 0.5), arm("b", 3, 0.5)), 400, "arms[1].version"},
		{"missing version", arms(arm("a", 1, 0.5), arm("b", 9, 0.5)), 404, "arms[1].version"},
		{"duplicate version", arms(arm("a", 1, 0.5), arm("b", 1, 0.5)), 400, "arms[1].version"},
		{"duplicate arm name", arms(arm("a", 1, 0.5), arm("a", 2, 0.5)), 400, "arms[1].name"},
		{"one arm", arms(arm("a", 1, 1)), 400, "arms"},
		{"unknown model", func(m map[string]any) { m["model"] = "nope" }, 404, "model"},
		{"no unit", func(m map[string]any) { delete(m, "unit") }, 400, "unit"},
		{"bad metric type", func(m map[string]any) {
			m["metrics"] = []map[string]any{{"name": "x", "type": "median", "direction": "increase", "role": "goal"}}
		}, 400, "metrics[0].type"},
		{"shadow of an arm", func(m map[string]any) { m["shadow"] = []map[string]any{{"version": 2, "percent": 10}} }, 400, "shadow[0].version"},
		{"bad condition op", func(m map[string]any) {
			m["conditions"] = []map[string]any{{"attribute": "country", "op": "like", "value": "A%"}}
		}, 400, "conditions[0].op"},
		{"force to unknown arm", func(m map[string]any) { m["force"] = map[string]any{"qa-user": "nope"} }, 400, "force.qa-user"},
		{"coverage above 1", func(m map[string]any) { m["coverage"] = 1.5 }, 400, "coverage"},
		{"coverage 0 is not every unit", func(m map[string]any) { m["coverage"] = 0 }, 400, "coverage"},
		{"condition regex that cannot compile", func(m map[string]any) {
			m["conditions"] = []map[string]any{{"attribute": "country", "op": "regex", "value": "(("}}
		}, 400, "conditions[0].value"},
		{"condition in with a scalar", func(m map[string]any) {
			m["conditions"] = []map[string]any{{"attribute": "country", "op": "in", "value": "AE"}}
		}, 400, "conditions[0].value"},
		{"unknown field", func(m map[string]any) { m["colour"] = "red" }, 400, "colour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := experimentBody("e_"+strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "_"), ".", "_"), tc.mutate)
			r := n.do("POST", "/api/v1/experiments", adminSecret, "application/json", body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.field != "" {
				if _, field := r.errorOf(t); field != tc.field {
					t.Fatalf("field %q, want %q: %s", field, tc.field, r.body)
				}
			}
		})
	}
}

func TestExperiments_LayersAndSigningPolicy(t *testing.T) {
	n := newExperimentNode(t, false)
	layer := func(start, end float64) func(m map[string]any) {
		return func(m map[string]any) { m["layer"] = map[string]any{"name": "checkout", "start": start, "end": end} }
	}
	n.admin("POST", "/api/v1/experiments", experimentBody("first", layer(0, 0.5)), 201)
	n.admin("POST", "/api/v1/experiments", experimentBody("overlapping", layer(0.4, 1)), 201)
	n.admin("POST", "/api/v1/experiments", experimentBody("disjoint", layer(0.5, 1)), 201)
	n.admin("POST", "/api/v1/experiments", experimentBody("unlayered", nil), 201)
	n.admin("POST", "/api/v1/experiments/first/start", nil, 200)
	if r := n.do("POST", "/api/v1/experiments/overlapping/start", adminSecret, "", nil); r.status != 409 {
		t.Fatalf("overlapping layer ranges both running: %d", r.status)
	} else if _, field := r.errorOf(t); field != "layer" {
		t.Fatalf("field %q", field)
	}
	n.admin("POST", "/api/v1/experiments/disjoint/start", nil, 200)
	if r := n.do("POST", "/api/v1/experiments/unlayered/start", adminSecret, "", nil); r.status != 409 {
		t.Fatalf("a second experiment on the model outside the layer: %d", r.status)
	}

	signed := newExperimentNode(t, true)
	signed.admin("POST", "/api/v1/experiments", experimentBody("e", nil), 201)
	r := signed.do("POST", "/api/v1/experiments/e/start", adminSecret, "", nil)
	if r.status != 409 || !strings.Contains(string(r.body), "trusted signature") {
		t.Fatalf("unsigned arms started under a signing policy: %d %s", r.status, r.body)
	}
	if _, field := r.errorOf(t); field != "arms[0].version" {
		t.Fatalf("field %q", field)
	}
}

func TestExperiments_PredictRoutesUnitsByArm(t *testing.T) {
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	kinds := map[string][]string{}
	sink := &mock.TelemetrySink{AppendFn: func(kind string, data []byte) bool {
		mu.Lock()
		kinds[kind] = append(kinds[kind], string(data))
		mu.Unlock()
		return true
	}}
	runner := &mock.ModelRunner{PredictFn: func(_ context.Context, _ string, _ appliance.ModuleLimits, in, out []float64) error {
		out[0] = in[0]
		return nil
	}}
	clock := func() time.Time { return n.now }
	router := &routing.Router{Store: n.store}
	n.srv = httpapi.New(httpapi.Config{Now: clock},
		httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store, Models: n.store,
			Predictor:   &appliance.Predictor{Models: n.store, Views: n.store, Features: n.store, Runner: runner, Telemetry: sink, Router: router, Now: clock},
			Experiments: &appliance.Experiments{Store: n.store, Models: n.store, Router: router, Now: clock}})
	for _, c := range []string{"v1", "v2"} {
		n.modelVersion("churn", c, []string{"request:basket"}, map[string]float64{"request:basket": 1})
	}
	n.admin("PUT", "/api/v1/models/churn/aliases/production", map[string]any{"version": 1}, 200)
	n.admin("POST", "/api/v1/experiments", experimentBody("checkout", func(m map[string]any) {
		m["force"] = map[string]any{"qa-1": "treatment"}
		m["breakdowns"] = []string{"country"}
	}), 201)
	predict := func(body map[string]any) map[string]any {
		return n.admin("POST", "/api/v1/predict/churn", body, 200).json(t)
	}
	if r := predict(map[string]any{"entities": map[string]any{"user_id": "u1"}}); r["experiment"] != nil || r["version"].(float64) != 1 {
		t.Fatalf("a draft experiment routed: %v", r)
	}
	n.admin("POST", "/api/v1/experiments/checkout/start", nil, 200)

	exp, err := n.store.Experiment(context.Background(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := routing.Compile(exp)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := range 400 {
		unit := fmt.Sprintf("u%d", i)
		r := predict(map[string]any{"entities": map[string]any{"user_id": unit}, "attributes": map[string]any{"country": "AE"}})
		v, in, _ := compiled.Assign(unit, nil)
		want := exp.Arms[v]
		if !in || r["experiment"] != "checkout" || r["arm"] != want.Name || int(r["version"].(float64)) != want.Version {
			t.Fatalf("unit %s: %v, want arm %s (the assignment reproduced outside the node)", unit, r, want.Name)
		}
		counts[want.Name]++
		// Sticky: the same unit gets the same arm again.
		if again := predict(map[string]any{"entities": map[string]any{"user_id": unit}}); again["arm"] != r["arm"] {
			t.Fatalf("unit %s moved from %v to %v", unit, r["arm"], again["arm"])
		}
	}
	if counts["control"] < 160 || counts["treatment"] < 160 {
		t.Fatalf("400 units split %v; want about half each", counts)
	}
	if r := predict(map[string]any{"entities": map[string]any{"user_id": "qa-1"}}); r["arm"] != "treatment" {
		t.Fatalf("forced unit: %v", r)
	}
	// An explicit version or alias bypasses the experiment.
	if r := predict(map[string]any{"entities": map[string]any{"user_id": "u1"}, "version": 2}); r["experiment"] != nil {
		t.Fatalf("explicit version routed: %v", r)
	}
	if r := predict(map[string]any{"entities": map[string]any{"user_id": "u1"}, "alias": "production"}); r["experiment"] != nil || r["version"].(float64) != 1 {
		t.Fatalf("explicit alias routed: %v", r)
	}
	mu.Lock()
	exposures := len(kinds["exposure"])
	first := kinds["exposure"][0]
	mu.Unlock()
	if exposures != 401 || !strings.Contains(first, `"experiment":"checkout"`) || !strings.Contains(first, `"attributes":{"country":"AE"}`) {
		t.Fatalf("%d exposures, first %s", exposures, first)
	}
	// Stopped: everyone is back on production at once.
	n.admin("POST", "/api/v1/experiments/checkout/stop", nil, 200)
	if r := predict(map[string]any{"entities": map[string]any{"user_id": "qa-1"}}); r["experiment"] != nil || r["version"].(float64) != 1 {
		t.Fatalf("after stop: %v", r)
	}
}

// memTelemetry keeps appended records by kind and reads them back.
type memTelemetry struct {
	mu   sync.Mutex
	recs map[string][][]byte
}

func (m *memTelemetry) Append(kind string, data []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs == nil {
		m.recs = map[string][][]byte{}
	}
	m.recs[kind] = append(m.recs[kind], append([]byte(nil), data...))
	return true
}

func (m *memTelemetry) FlushedBefore(string, time.Time) (uint64, error) { return 0, nil }

func (m *memTelemetry) Read(kind string, after uint64, fn func(uint64, []byte) bool) error {
	m.mu.Lock()
	recs := m.recs[kind]
	m.mu.Unlock()
	for i, r := range recs {
		if uint64(i+1) > after && !fn(uint64(i+1), r) {
			break
		}
	}
	return nil
}

// shadowNode is a node with a 3-version model in a running experiment that
// shadows version 3 on every request, and 50 requests made; the shadow's
// module answers 0.9 where the others answer 0.2. slowShadow makes the
// shadow's module wait for its context to end.
func shadowNode(t *testing.T, slowShadow bool) (*testNode, *appliance.ShadowRunner) {
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	tel := &memTelemetry{}
	var shadowModule string
	runner := &mock.ModelRunner{PredictFn: func(ctx context.Context, module string, _ appliance.ModuleLimits, in, out []float64) error {
		out[0] = 0.2
		if module == shadowModule {
			if slowShadow {
				<-ctx.Done()
				return ctx.Err()
			}
			out[0] = 0.9 // the shadow disagrees on every request
		}
		return nil
	}}
	clock := func() time.Time { return n.now }
	router := &routing.Router{Store: n.store}
	pred := &appliance.Predictor{Models: n.store, Views: n.store, Features: n.store, Runner: runner, Telemetry: tel, Router: router, Now: clock}
	shadows := &appliance.ShadowRunner{Predictor: pred, Workers: 1}
	shadows.Start()
	pred.Shadows = shadows
	n.srv = httpapi.New(httpapi.Config{Now: clock},
		httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store, Models: n.store, Telemetry: tel,
			Predictor: pred, Experiments: &appliance.Experiments{Store: n.store, Models: n.store, Router: router, Now: clock}})
	for _, c := range []string{"v1", "v2", "v3"} {
		mv := n.modelVersion("churn", c, []string{"request:basket"}, map[string]float64{"request:basket": 1})
		if c == "v3" {
			shadowModule = mv.Module
		}
	}
	n.admin("POST", "/api/v1/experiments", experimentBody("checkout", func(m map[string]any) {
		m["shadow"] = []map[string]any{{"version": 3, "percent": 100}}
	}), 201)
	n.admin("POST", "/api/v1/experiments/checkout/start", nil, 200)
	for i := range 50 {
		r := n.admin("POST", "/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": fmt.Sprintf("u%d", i)}}, 200).json(t)
		if r["outputs"].(map[string]any)["score"].(float64) != 0.2 {
			t.Fatalf("the response carries the shadow's answer: %v", r)
		}
	}
	return n, shadows
}

func TestExperiments_ShadowRunsAfterTheResponseAndReports(t *testing.T) {
	n, shadows := shadowNode(t, false)
	shadows.Close(context.Background()) // drains the queue
	if shadows.Ran()+shadows.Dropped() != 50 {
		t.Fatalf("ran %d, dropped %d of 50", shadows.Ran(), shadows.Dropped())
	}
	rep := n.admin("GET", "/api/v1/experiments/checkout/shadow", nil, 200).json(t)
	s := rep["shadows"].([]any)[0].(map[string]any)
	if s["version"].(float64) != 3 || s["count"].(float64) != float64(shadows.Ran()) || s["agreement_rate"].(float64) != 0 ||
		s["mean_absolute_difference"].(float64) < 0.69 || s["mean_absolute_difference"].(float64) > 0.71 {
		t.Fatalf("shadow report: %v", rep)
	}
}

// A shutdown does not wait for a queue of slow shadows (each may take 5 s):
// past Close's deadline the one running is cancelled and the rest dropped.
func TestExperiments_ShadowCloseKeepsItsDeadline(t *testing.T) {
	_, shadows := shadowNode(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { shadows.Close(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(4 * time.Second): // draining would take 50 × 5 s
		t.Fatal("Close did not return after its deadline")
	}
	if shadows.Ran() != 0 || shadows.Dropped() < 48 {
		t.Fatalf("ran %d, dropped %d of 50 slow shadows", shadows.Ran(), shadows.Dropped())
	}
}

// Offline evaluation scores a labelled file through the module, with the
// columns historical retrieval names, and reports per segment.
func TestEvaluate_ScoresALabelledSet(t *testing.T) {
	n, _ := newModelNode(t)
	// The mock model's output is the sum of its inputs: here the clicks.
	n.modelVersion("churn", "v1", []string{"user_stats:clicks", "request:basket"}, map[string]float64{"request:basket": 0})
	csvBody := "user_id,clicks,label,country\n" +
		"a,0.9,1,AE\nb,0.8,1,AE\nc,0.2,0,AE\nd,0.1,0,FR\ne,0.7,0,FR\nf,0.6,1,FR\ng,,1,FR\n"
	r := n.do("POST", "/api/v1/models/churn/versions/1/evaluate?label=label&segment=country", adminSecret, "text/csv", csvBody)
	if r.status != 200 {
		t.Fatalf("evaluate: %d %s", r.status, r.body)
	}
	m := r.json(t)
	met := m["metrics"].(map[string]any)
	overall := met["overall"].(map[string]any)
	// Row g has no clicks and no default for them: skipped. Of the other 6,
	// ranking by score puts 1 of 9 positive/negative pairs wrong (0.6 below
	// 0.7): AUC 8/9.
	if m["rows"].(float64) != 6 || m["skipped"].(float64) != 1 || fmt.Sprintf("%.6f", overall["auc"].(float64)) != "0.888889" {
		t.Fatalf("evaluation: %v", m)
	}
	if len(met["segments"].([]any)) != 2 {
		t.Fatalf("segments: %v", met["segments"])
	}
	// The same rows as NDJSON with historical retrieval's full names, as a regression.
	nd := `{"user_stats__clicks":0.5,"y":1}` + "\n" + `{"user_stats__clicks":1.5,"y":1}` + "\n"
	r = n.do("POST", "/api/v1/models/churn/versions/1/evaluate?label=y&task=regression", adminSecret, "application/x-ndjson", nd)
	if r.status != 200 || fmt.Sprint(r.json(t)["metrics"].(map[string]any)["overall"].(map[string]any)["mae"]) != "0.5" {
		t.Fatalf("regression: %d %s", r.status, r.body)
	}
	if r := n.do("POST", "/api/v1/models/churn/versions/1/evaluate", adminSecret, "text/csv", csvBody); r.status != 400 {
		t.Fatalf("no label: %d", r.status)
	}
	r = n.do("POST", "/api/v1/models/churn/versions/1/evaluate?label=nope", adminSecret, "text/csv", csvBody)
	if _, field := r.errorOf(t); r.status != 400 || field != "label" {
		t.Fatalf("a label column no row has: %d %s", r.status, r.body)
	}
}
