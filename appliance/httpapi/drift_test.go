package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/featstats"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/appliance/jobs"
	"github.com/mlnode/mlnode/appliance/mock"
	"github.com/mlnode/mlnode/appliance/monitoring"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// Live inputs shifted away from the feature statistics raise a drift
// alert; the unshifted model does not.
func TestDrift_ShiftedInputsRaiseAnAlert(t *testing.T) {
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	tel := &memTelemetry{}
	runner := &mock.ModelRunner{PredictFn: func(_ context.Context, _ string, _ appliance.ModuleLimits, in, out []float64) error {
		out[0] = in[0] / 10
		return nil
	}}
	clock := func() time.Time { return n.now }
	var mu sync.Mutex
	var notified []appliance.Event
	d := &monitoring.Drift{Models: n.store, Views: n.store, Stats: n.store, Telemetry: tel, Store: n.store, Now: clock,
		Notifier: notifierFunc(func(_ context.Context, e appliance.Event) error {
			mu.Lock()
			notified = append(notified, e)
			mu.Unlock()
			return nil
		})}
	runnerJobs := jobs.New(n.store, []appliance.JobSpec{d.Spec()}, jobs.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = runnerJobs.Close(context.Background()) })
	n.srv = httpapi.New(httpapi.Config{Now: clock},
		httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store, Models: n.store, Drift: n.store, Jobs: runnerJobs,
			Predictor: &appliance.Predictor{Models: n.store, Views: n.store, Features: n.store, Runner: runner, Telemetry: tel, Now: clock}})
	n.setupUserStats()
	// Reference: the view's statistics over clicks ~ N(50, 10).
	view, err := n.store.FeatureView(context.Background(), "user_stats", 1)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	vs := featstats.New(view)
	for i := range 5000 {
		if err := vs.Add(uint64(i+1), []appliance.Value{appliance.Int64Value(int64(50 + r.NormFloat64()*10)), {}, {}}); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := vs.Record()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.store.PutStats(context.Background(), view, rec); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"steady", "shifted"} {
		n.modelVersion(c, c, []string{"user_stats:clicks"}, nil)
		n.admin("PUT", "/api/v1/models/"+c+"/aliases/production", map[string]any{"version": 1}, 200)
	}
	for range 600 {
		for model, mean := range map[string]float64{"steady": 50, "shifted": 80} {
			body := map[string]any{"entities": map[string]any{"user_id": "u"}, "features": map[string]any{"user_stats:clicks": mean + r.NormFloat64()*10}}
			n.admin("POST", "/api/v1/predict/"+model, body, 200)
		}
	}
	if r := n.admin("POST", "/api/v1/jobs", map[string]any{"kind": "drift", "args": map[string]any{"alias": "a.b"}}, 400); !strings.Contains(string(r.body), `"field":"alias"`) {
		t.Fatalf("drift job for an alias that cannot exist: %s", r.body)
	}
	j := n.admin("POST", "/api/v1/jobs", map[string]any{"kind": "drift", "args": map[string]any{"window": "1h"}}, 202).json(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := n.admin("GET", "/api/v1/jobs/"+j["id"].(string), nil, 200).json(t)
		if got["state"] == "succeeded" {
			break
		}
		if got["state"] == "failed" || time.Now().After(deadline) {
			t.Fatalf("drift job: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	input := func(model string) map[string]any {
		w := n.admin("GET", "/api/v1/models/"+model+"/drift", nil, 200).json(t)["windows"].([]any)[0].(map[string]any)
		for _, f := range w["features"].([]any) {
			if f.(map[string]any)["kind"] == "input" {
				return f.(map[string]any)
			}
		}
		t.Fatalf("no input in %v", w)
		return nil
	}
	// Every prediction of the window was counted (the scan reads each log's
	// time and model before deciding to decode it).
	if w := n.admin("GET", "/api/v1/models/shifted/drift", nil, 200).json(t)["windows"].([]any)[0].(map[string]any); w["requests"] != 600.0 {
		t.Fatalf("window requests: %v", w["requests"])
	}
	if f := input("shifted"); f["drifted"] != true || f["psi_alert"] != true {
		t.Fatalf("shifted input: %v", f)
	}
	if f := input("steady"); f["drifted"] == true || f["psi_alert"] == true {
		t.Fatalf("steady input drifted: %v", f)
	}
	alerts := n.admin("GET", "/api/v1/alerts", nil, 200).json(t)["alerts"].([]any)
	raw, _ := json.Marshal(alerts)
	if len(alerts) != 1 || alerts[0].(map[string]any)["subject"] != "model/shifted" {
		t.Fatalf("alerts: %s", raw)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notified) != 1 || notified[0].Type != appliance.EventDriftAlert {
		t.Fatalf("webhook events: %+v", notified)
	}
}
