package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/appliance/mock"
	"github.com/mlnode/mlnode/appliance/results"
	"github.com/mlnode/mlnode/appliance/routing"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

type notifierFunc func(ctx context.Context, e appliance.Event) error

func (f notifierFunc) Notify(ctx context.Context, e appliance.Event) error { return f(ctx, e) }

// A two-arm experiment from traffic to results: predictions expose units,
// events attribute to their arms, results show the lift, and a guardrail
// breach stops the experiment and tells the webhooks.
func TestExperiments_EventsResultsAndGuardrail(t *testing.T) {
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	tel := &memTelemetry{}
	runner := &mock.ModelRunner{PredictFn: func(_ context.Context, _ string, _ appliance.ModuleLimits, in, out []float64) error {
		out[0] = in[0]
		return nil
	}}
	clock := func() time.Time { return n.now }
	router := &routing.Router{Store: n.store}
	var mu sync.Mutex
	var notified []appliance.Event
	notifier := notifierFunc(func(_ context.Context, e appliance.Event) error {
		mu.Lock()
		notified = append(notified, e)
		mu.Unlock()
		return nil
	})
	x := &appliance.Experiments{Store: n.store, Models: n.store, Router: router, Now: clock, Notifier: notifier}
	mon := &results.Monitor{Telemetry: tel, Data: n.store, Experiments: x, Logger: slog.New(slog.DiscardHandler), Notifier: notifier}
	n.srv = httpapi.New(httpapi.Config{Now: clock},
		httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store, Models: n.store, Telemetry: tel,
			ExperimentData: n.store, Experiments: x,
			Predictor: &appliance.Predictor{Models: n.store, Views: n.store, Features: n.store, Runner: runner, Telemetry: tel, Router: router, Now: clock}})
	for _, c := range []string{"v1", "v2"} {
		n.modelVersion("churn", c, []string{"request:basket"}, map[string]float64{"request:basket": 1})
	}
	n.admin("PUT", "/api/v1/models/churn/aliases/production", map[string]any{"version": 1}, 200)
	n.admin("POST", "/api/v1/experiments", experimentBody("checkout", func(m map[string]any) { m["breakdowns"] = []string{"country"} }), 201)
	n.admin("POST", "/api/v1/experiments/checkout/start", nil, 200)

	arms := map[string]string{}
	for i := range 2000 {
		unit := fmt.Sprintf("u%d", i)
		r := n.admin("POST", "/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": unit},
			"attributes": map[string]any{"country": []string{"AE", "FR"}[i%2]}}, 200).json(t)
		arms[unit] = r["arm"].(string)
	}
	if err := mon.ConsumeExposures(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Treatment converts twice as often; its latency is three times worse.
	var ndjson bytes.Buffer
	for i := range 2000 {
		unit := fmt.Sprintf("u%d", i)
		rate, lat := 10, 100.0
		if arms[unit] == "treatment" {
			rate, lat = 5, 300.0
		}
		if i%rate == 0 {
			fmt.Fprintf(&ndjson, `{"unit":%q,"metric":"converted","event_id":"c-%d","timestamp":"2026-06-01T13:00:00Z"}`+"\n", unit, i)
		}
		fmt.Fprintf(&ndjson, `{"unit":%q,"metric":"latency","value":%g,"event_id":"l-%d"}`+"\n", unit, lat+float64(i%7), i)
	}
	fmt.Fprintf(&ndjson, `{"unit":"u1","metric":"clicks","value":1}`+"\n")
	r := n.do("POST", "/api/v1/events", adminSecret, "application/x-ndjson", ndjson.Bytes()).json(t)
	if r["accepted"].(float64) < 2000 || len(r["unknown_metrics"].([]any)) != 1 {
		t.Fatalf("events: %v", r)
	}
	if err := mon.Fold(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A retry of the same batch counts nothing twice.
	again := n.do("POST", "/api/v1/events", adminSecret, "application/x-ndjson", ndjson.Bytes()).json(t)
	if len(again["duplicates"].([]any)) < 2000 {
		t.Fatalf("retry: %v", again)
	}
	if err := mon.Fold(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Options out of range are the caller's mistake: 400 naming the option.
	for _, q := range []string{"alpha=NaN", "alpha=0.5", "alpha=-Inf", "sequential_tuning=NaN", "sequential_tuning=Inf", "sequential_tuning=0"} {
		field := strings.SplitN(q, "=", 2)[0]
		if e := n.admin("GET", "/api/v1/experiments/checkout/results?"+q, nil, 400).json(t)["error"].(map[string]any); e["field"] != field {
			t.Errorf("%s: %v", q, e)
		}
	}
	rep := n.admin("GET", "/api/v1/experiments/checkout/results", nil, 200).json(t)
	res := rep["result"].(map[string]any)
	var conv map[string]any
	for _, c := range res["comparisons"].([]any) {
		if c.(map[string]any)["metric"] == "converted" {
			conv = c.(map[string]any)
		}
	}
	if conv == nil || conv["significant"] != true || conv["relative"].(float64) < 0.5 {
		t.Fatalf("converted comparison: %v", conv)
	}
	if srm := res["srm"].(map[string]any); srm["mismatch"] == true {
		t.Fatalf("SRM flagged on a fair split: %v", srm)
	}
	if len(res["breakdowns"].([]any)) == 0 {
		t.Fatalf("no breakdown by country: %v", res)
	}
	if g := rep["breached_guardrails"]; g == nil {
		t.Fatalf("latency guardrail not reported as breached: %v", rep)
	}

	if err := mon.CheckGuardrails(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := n.admin("GET", "/api/v1/experiments/checkout", nil, 200).json(t)
	if e["state"] != "stopped" || e["stop_reason"] == "" {
		t.Fatalf("after the guardrail: %v", e)
	}
	if r := n.admin("POST", "/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": "u1"}}, 200).json(t); r["experiment"] != nil || r["version"].(float64) != 1 {
		t.Fatalf("a stopped experiment still routes: %v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	// The stop itself, then why: the guardrail.
	if len(notified) != 2 || notified[0].Type != appliance.EventExperimentStopped || notified[1].Type != appliance.EventExperimentGuardrail ||
		notified[0].Subject != "experiment/checkout" {
		t.Fatalf("webhook events: %+v", notified)
	}
	for _, bad := range []struct{ body, field string }{
		{`{"metric":"converted"}`, "events"},
		{`{"unit":"u1","metric":"converted","value":"x"}`, "events"},
		{`{"unit":"u1","metric":"converted","value":null}`, "events"},
		{`{"unit":5,"metric":"converted"}`, "events[0].unit"},
		{"{\"unit\":\"u\xff\",\"metric\":\"converted\"}", "events"},
		{`{"unit":"u1","metric":"converted","timestamp":"0000-01-01T00:00:00Z"}`, "events"},
		{`{"unit":"u1","metric":"converted","colour":1}`, "events[0].colour"},
		{`[{"unit":"u1","metric":"converted","timestamp":"noon"}]`, "events"},
		{`{"unit":"u1","metric":"revenue","value":1e200}`, "events"},
		{`{"unit":"u1","metric":"converted","timestamp":1e17}`, "events"},
	} {
		r := n.do("POST", "/api/v1/events", adminSecret, "application/json", bad.body)
		if _, field := r.errorOf(t); r.status != 400 || field != bad.field {
			t.Errorf("%s: %d %s", bad.body, r.status, r.body)
		}
	}
}

// An arm whose model fails more than the experiment allows is stopped.
func TestExperiments_ErrorRateGuardrail(t *testing.T) {
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	var badModule string
	runner := &mock.ModelRunner{PredictFn: func(_ context.Context, module string, _ appliance.ModuleLimits, in, out []float64) error {
		if module == badModule {
			return fmt.Errorf("trap: out of bounds memory access")
		}
		out[0] = in[0]
		return nil
	}}
	clock := func() time.Time { return n.now }
	router := &routing.Router{Store: n.store}
	x := &appliance.Experiments{Store: n.store, Models: n.store, Router: router, Now: clock}
	pred := &appliance.Predictor{Models: n.store, Views: n.store, Features: n.store, Runner: runner, Telemetry: &memTelemetry{}, Router: router, Now: clock}
	mon := &results.Monitor{Telemetry: &memTelemetry{}, Data: n.store, Experiments: x, Logger: slog.New(slog.DiscardHandler), Arms: pred.ArmStats}
	n.srv = httpapi.New(httpapi.Config{Now: clock},
		httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store, Models: n.store, Predictor: pred, Experiments: x})
	n.modelVersion("churn", "v1", []string{"request:basket"}, map[string]float64{"request:basket": 1})
	badModule = n.modelVersion("churn", "v2", []string{"request:basket"}, map[string]float64{"request:basket": 1}).Module
	n.admin("PUT", "/api/v1/models/churn/aliases/production", map[string]any{"version": 1}, 200)
	n.admin("POST", "/api/v1/experiments", experimentBody("checkout", func(m map[string]any) {
		m["guardrails"] = map[string]any{"max_error_rate": 0.05}
	}), 201)
	n.admin("POST", "/api/v1/experiments/checkout/start", nil, 200)
	failed := 0
	for i := range 400 {
		r := n.do("POST", "/api/v1/predict/churn", adminSecret, "application/json", map[string]any{"entities": map[string]any{"user_id": fmt.Sprintf("u%d", i)}})
		if r.status != 200 {
			failed++
		}
	}
	if failed < 100 {
		t.Fatalf("only %d of 400 predictions failed", failed)
	}
	if err := mon.CheckGuardrails(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := n.admin("GET", "/api/v1/experiments/checkout", nil, 200).json(t)
	if e["state"] != "stopped" || !strings.Contains(e["stop_reason"].(string), "error_rate breached by arm treatment") {
		t.Fatalf("after failures: %v", e)
	}
}

// A ramp starts at its first coverage and steps up each interval while the
// guardrails hold; a unit in the experiment never changes arm.
func TestExperiments_RampStepsUpKeepingArms(t *testing.T) {
	n := newExperimentNode(t, false)
	clock := func() time.Time { return n.now }
	router := &routing.Router{Store: n.store}
	x := &appliance.Experiments{Store: n.store, Models: n.store, Router: router, Now: clock}
	mon := &results.Monitor{Telemetry: &memTelemetry{}, Data: n.store, Experiments: x, Logger: slog.New(slog.DiscardHandler)}
	n.admin("POST", "/api/v1/experiments", experimentBody("rollout", func(m map[string]any) {
		m["ramp"] = map[string]any{"steps": []float64{0.05, 0.25, 1}, "interval": "1h"}
	}), 201)
	n.admin("POST", "/api/v1/experiments/rollout/start", nil, 200)
	assigned := func() map[string]string {
		e, err := n.store.Experiment(context.Background(), "rollout")
		if err != nil {
			t.Fatal(err)
		}
		c, err := routing.Compile(e)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for i := range 2000 {
			if v, in, _ := c.Assign(fmt.Sprintf("u%d", i), nil); in {
				out[fmt.Sprintf("u%d", i)] = e.Arms[v].Name
			}
		}
		return out
	}
	steps := []map[string]string{assigned()}
	for range 3 {
		if err := mon.AdvanceRamps(context.Background()); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, assigned())
		n.now = n.now.Add(61 * time.Minute)
	}
	// Nothing moved before the first interval passed; then 5 % → 25 % → 100 %.
	if len(steps[0]) < 60 || len(steps[0]) > 140 || len(steps[1]) != len(steps[0]) || len(steps[2]) < 400 || len(steps[3]) != 2000 {
		t.Fatalf("units in the experiment by step: %d %d %d %d", len(steps[0]), len(steps[1]), len(steps[2]), len(steps[3]))
	}
	for i := 1; i < len(steps); i++ {
		for unit, arm := range steps[i-1] {
			if steps[i][unit] != arm {
				t.Fatalf("step %d moved %s from %s to %s", i, unit, arm, steps[i][unit])
			}
		}
	}
	e := n.admin("GET", "/api/v1/experiments/rollout", nil, 200).json(t)
	if len(e["ramp_steps"].([]any)) != 3 || e["coverage"].(float64) != 1 {
		t.Fatalf("ramp record: %v", e)
	}
	audit := string(n.admin("GET", "/api/v1/audit?object=experiment/rollout", nil, 200).body)
	if strings.Count(audit, "experiment.ramp") != 2 {
		t.Fatalf("ramp steps not audited: %s", audit)
	}
}
