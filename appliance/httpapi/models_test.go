package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/appliance/mock"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// newModelNode serves with a mock model runner whose single output is the
// sum of its inputs, and a mock telemetry sink that records what it gets.
func newModelNode(t *testing.T) (*testNode, *[]appliance.PredictionLog) {
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	n.store.BootstrapAdmin(context.Background(), adminSecret)
	var mu sync.Mutex
	var logs []appliance.PredictionLog
	runner := &mock.ModelRunner{PredictFn: func(_ context.Context, module string, _ appliance.ModuleLimits, in, out []float64) error {
		sum := 0.0
		for _, x := range in {
			sum += x
		}
		out[0] = sum
		return nil
	}}
	sink := &mock.TelemetrySink{AppendFn: func(kind string, data []byte) bool {
		var l appliance.PredictionLog
		json.Unmarshal(data, &l)
		mu.Lock()
		logs = append(logs, l)
		mu.Unlock()
		return true
	}}
	clock := func() time.Time { return n.now }
	n.srv = httpapi.New(httpapi.Config{Now: clock, AliasPolicies: map[string]appliance.AliasPolicy{"production": {RequireSignature: false}}},
		httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store, Modules: n.store, Models: n.store,
			Predictor: &appliance.Predictor{Models: n.store, Views: n.store, Features: n.store, Runner: runner, Telemetry: sink, Now: clock}})
	return n, &logs
}

func (n *testNode) modelVersion(name, content string, inputs []string, defaults map[string]float64) *appliance.ModelVersion {
	n.t.Helper()
	wasm := []byte("\x00asm\x01\x00\x00\x00" + content)
	mv, _, err := n.store.CreateModelVersion(context.Background(), &appliance.ModelVersion{Model: name, SHA256: appliance.ModuleDigest([]byte(content)),
		Module: "sha256:" + appliance.ModuleDigest(wasm), Inputs: inputs, Outputs: []string{"score"}, Defaults: defaults,
		Lineage: appliance.Lineage{FeatureViews: map[string]int{"user_stats": 1}}}, []byte("bundle-"+content), map[string][]byte{"m.wasm": wasm})
	if err != nil {
		n.t.Fatal(err)
	}
	return mv
}

func TestPredict_AliasesInputsAndDefaults(t *testing.T) {
	n, logs := newModelNode(t)
	n.setupUserStats()
	ts := n.now.Add(-time.Hour).Format(time.RFC3339)
	n.ingest("user_stats", "application/x-ndjson", fmt.Sprintf(`{"user_id":"a","event_timestamp":%q,"clicks":3,"score":0.5}`, ts), 200)
	n.modelVersion("churn", "v1", []string{"user_stats:clicks", "user_stats:score"}, nil)
	n.modelVersion("churn", "v2", []string{"user_stats:clicks", "request:basket"}, map[string]float64{"request:basket": 100})

	body := map[string]any{"entities": map[string]any{"user_id": "a"}}
	if r := n.do("POST", "/api/v1/predict/churn", adminSecret, "application/json", body); r.status != 404 {
		t.Fatalf("no production alias yet: %d %s", r.status, r.body)
	}
	n.admin("PUT", "/api/v1/models/churn/aliases/production", map[string]any{"version": 1}, 200)
	r := n.admin("POST", "/api/v1/predict/churn", body, 200).json(t)
	if r["version"].(float64) != 1 || r["outputs"].(map[string]any)["score"].(float64) != 3.5 || r["alias"] != "production" || r["request_id"] == "" {
		t.Fatalf("predict v1: %v", r)
	}
	// An explicit version bypasses the alias; a default fills a missing request input.
	r = n.admin("POST", "/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": "a"}, "version": 2}, 200).json(t)
	if r["outputs"].(map[string]any)["score"].(float64) != 103 {
		t.Fatalf("predict v2 with default: %v", r)
	}
	r = n.admin("POST", "/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": "a"}, "alias": "latest", "request": map[string]any{"basket": 7}}, 200).json(t)
	if r["outputs"].(map[string]any)["score"].(float64) != 10 {
		t.Fatalf("predict latest with request input: %v", r)
	}
	// Caller-supplied features win over stored values.
	r = n.admin("POST", "/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": "a"}, "features": map[string]any{"user_stats:clicks": 10}}, 200).json(t)
	if r["outputs"].(map[string]any)["score"].(float64) != 10.5 {
		t.Fatalf("override: %v", r)
	}
	// No stored features and no defaults: 422 naming them.
	miss := n.do("POST", "/api/v1/predict/churn", adminSecret, "application/json", map[string]any{"entities": map[string]any{"user_id": "nobody"}})
	if miss.status != 422 || !strings.Contains(string(miss.body), "user_stats:clicks") || !strings.Contains(string(miss.body), "user_stats:score") {
		t.Fatalf("missing features: %d %s", miss.status, miss.body)
	}
	if r := n.do("POST", "/api/v1/predict/churn", adminSecret, "application/json", map[string]any{"entities": map[string]any{}}); r.status != 400 {
		t.Fatalf("missing join key: %d %s", r.status, r.body)
	}
	if r := n.do("POST", "/api/v1/predict/churn", adminSecret, "application/json", map[string]any{"entities": map[string]any{"user_id": "a"}, "alias": "nope"}); r.status != 404 {
		t.Fatalf("unknown alias: %d", r.status)
	}
	// Expired values (TTL 24h) count as missing.
	n.now = n.now.Add(48 * time.Hour)
	if r := n.do("POST", "/api/v1/predict/churn", adminSecret, "application/json", body); r.status != 422 {
		t.Fatalf("expired inputs: %d %s", r.status, r.body)
	}
	if len(*logs) != 4 || (*logs)[0].Inputs[0] != 3 || (*logs)[0].Model != "churn" || (*logs)[0].EntityKey["user_id"] != "a" {
		t.Fatalf("prediction logs: %+v", *logs)
	}
	// Spellings of one version reference make one series.
	for _, alias := range []string{"v1", "v01", "v+1", "v001"} {
		n.admin("POST", "/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": "a"}, "alias": alias,
			"features": map[string]any{"user_stats:clicks": 1, "user_stats:score": 1}}, 200)
	}
	metrics := n.do("GET", "/metrics", adminSecret, "", nil)
	if !strings.Contains(string(metrics.body), `mlnode_predictions_total{model="churn",version="1",alias="production"}`) {
		t.Fatalf("prediction metrics missing:\n%s", metrics.body)
	}
	if got := strings.Count(string(metrics.body), `mlnode_predictions_total{model="churn",version="1",alias="v`); got != 1 {
		t.Fatalf("%d series for version 1 by reference, want 1:\n%s", got, metrics.body)
	}
}

func TestPredict_Batch(t *testing.T) {
	n, _ := newModelNode(t)
	n.setupUserStats()
	ts := n.now.Format(time.RFC3339)
	n.ingest("user_stats", "application/x-ndjson", fmt.Sprintf("{\"user_id\":\"a\",\"event_timestamp\":%q,\"clicks\":1,\"score\":1}\n{\"user_id\":\"b\",\"event_timestamp\":%q,\"clicks\":2,\"score\":2}", ts, ts), 200)
	n.modelVersion("churn", "v1", []string{"user_stats:clicks", "user_stats:score"}, nil)
	n.admin("PUT", "/api/v1/models/churn/aliases/production", map[string]any{"version": 1}, 200)
	r := n.admin("POST", "/api/v1/predict/churn/batch", map[string]any{"entities": []any{map[string]any{"user_id": "a"}, map[string]any{"user_id": "zz"}, map[string]any{"user_id": "b"}}}, 200)
	var res struct {
		Results []struct {
			Outputs map[string]float64 `json:"outputs"`
			Error   *struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"results"`
	}
	json.Unmarshal(r.body, &res)
	if len(res.Results) != 3 || res.Results[0].Outputs["score"] != 2 || res.Results[1].Error == nil || res.Results[1].Error.Code != "unprocessable" || res.Results[2].Outputs["score"] != 4 {
		t.Fatalf("batch: %s", r.body)
	}
	// A named alias is resolved once for the whole batch, and named in
	// each answer.
	pinned := n.admin("POST", "/api/v1/predict/churn/batch", map[string]any{"alias": "production",
		"entities": []any{map[string]any{"user_id": "a"}, map[string]any{"user_id": "b"}}}, 200).json(t)["results"].([]any)
	for _, it := range pinned {
		if m := it.(map[string]any); m["alias"] != "production" || m["version"] != 1.0 {
			t.Fatalf("batch by alias: %v", pinned)
		}
	}
	// A version or alias that cannot be served is the request's error.
	one := []any{map[string]any{"user_id": "a"}}
	for _, tc := range []struct {
		path   string
		body   map[string]any
		status int
		field  string
	}{
		{"/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": "a"}, "version": 0}, 400, "version"},
		{"/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": "a"}, "version": -1}, 400, "version"},
		{"/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": "a"}, "version": 1, "alias": "production"}, 400, "alias"},
		{"/api/v1/predict/churn/batch", map[string]any{"entities": one, "version": 0}, 400, "version"},
		{"/api/v1/predict/churn/batch", map[string]any{"entities": one, "version": 99}, 404, ""},
		{"/api/v1/predict/churn/batch", map[string]any{"entities": one, "alias": "nope"}, 404, ""},
	} {
		r := n.do("POST", tc.path, adminSecret, "application/json", tc.body)
		if r.status != tc.status {
			t.Errorf("%s %v: %d %s", tc.path, tc.body, r.status, r.body)
		} else if _, field := r.errorOf(t); tc.field != "" && field != tc.field {
			t.Errorf("%s %v: field %q: %s", tc.path, tc.body, field, r.body)
		}
	}
}

func TestModels_RegistryEndpoints(t *testing.T) {
	n, _ := newModelNode(t)
	n.modelVersion("churn", "v1", []string{"request:x"}, nil)
	n.modelVersion("churn", "v2", []string{"request:x"}, nil)
	writer := n.token("writer")
	if len(n.admin("GET", "/api/v1/models", nil, 200).json(t)["models"].([]any)) != 1 {
		t.Fatal("list")
	}
	if v := n.admin("GET", "/api/v1/models/churn/versions/2", nil, 200).json(t); v["status"] != "active" || v["bundle_size"].(float64) != 9 {
		t.Fatalf("version: %v", v)
	}
	if r := n.do("GET", "/api/v1/models/churn/versions/1/bundle", adminSecret, "", nil); string(r.body) != "bundle-v1" || r.header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("bundle: %q %v", r.body, r.header)
	}
	if r := n.do("PATCH", "/api/v1/models/churn/versions/1", writer, "application/json", map[string]any{"tags": map[string]string{"team": "growth"}}); r.status != 200 {
		t.Fatalf("writer tags: %d %s", r.status, r.body)
	}
	if r := n.do("PATCH", "/api/v1/models/churn/versions/1", writer, "application/json", map[string]any{"status": "archived"}); r.status != 403 {
		t.Fatalf("writer archives: %d %s", r.status, r.body)
	}
	if r := n.do("PUT", "/api/v1/models/churn/aliases/production", writer, "application/json", map[string]any{"version": 1}); r.status != 403 {
		t.Fatalf("writer sets an alias: %d", r.status)
	}
	n.admin("PUT", "/api/v1/models/churn/aliases/production", map[string]any{"version": 1}, 200)
	n.admin("PUT", "/api/v1/models/churn/aliases/production", map[string]any{"version": 2}, 200)
	n.admin("PATCH", "/api/v1/models/churn/versions/2", map[string]any{"status": "archived"}, 409)
	if r := n.admin("POST", "/api/v1/models/churn/aliases/production/rollback", nil, 200).json(t); r["version"].(float64) != 1 || r["previous"].(float64) != 2 {
		t.Fatalf("rollback: %v", r)
	}
	hist := n.admin("GET", "/api/v1/models/churn/aliases/production/history", nil, 200).json(t)["history"].([]any)
	if len(hist) != 3 || hist[2].(map[string]any)["action"] != "rollback" || hist[0].(map[string]any)["actor"] != "admin" {
		t.Fatalf("history: %v", hist)
	}
	n.admin("PATCH", "/api/v1/models/churn/versions/2", map[string]any{"status": "archived"}, 200)
	n.admin("PUT", "/api/v1/models/churn/aliases/staging", map[string]any{"version": 2}, 409)
	n.admin("PUT", "/api/v1/models/churn/aliases/latest", map[string]any{"version": 1}, 400)
	n.admin("PUT", "/api/v1/models/churn/aliases/v3", map[string]any{"version": 1}, 400)
	n.admin("PUT", "/api/v1/models/churn/aliases/canary", map[string]any{"version": 9}, 404)
	n.admin("GET", "/api/v1/models/ghost", nil, 404)
	n.admin("DELETE", "/api/v1/models/churn/aliases/production", nil, 204)
	n.admin("DELETE", "/api/v1/models/churn/aliases/production", nil, 404)
	if m := n.admin("GET", "/api/v1/models/churn", nil, 200).json(t); len(m["aliases"].(map[string]any)) != 0 || m["latest_version"].(float64) != 2 {
		t.Fatalf("model: %v", m)
	}
}

// A shutdown that runs out of time cancels the requests still running, so
// that a call into a slow module ends instead of holding the node's stop.
func TestServer_ShutdownCancelsRequestsPastItsDeadline(t *testing.T) {
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	n.store.BootstrapAdmin(context.Background(), adminSecret)
	entered := make(chan struct{}, 1)
	runner := &mock.ModelRunner{PredictFn: func(ctx context.Context, _ string, _ appliance.ModuleLimits, _, _ []float64) error {
		entered <- struct{}{}
		<-ctx.Done() // a module that runs until stopped
		return ctx.Err()
	}}
	sink := &mock.TelemetrySink{AppendFn: func(string, []byte) bool { return true }}
	clock := func() time.Time { return n.now }
	n.srv = httpapi.New(httpapi.Config{Now: clock}, httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store,
		Models: n.store, Predictor: &appliance.Predictor{Models: n.store, Views: n.store, Features: n.store, Runner: runner, Telemetry: sink, Now: clock}})
	n.modelVersion("churn", "v1", []string{"request:basket"}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.srv.App().Listener(ln)
	answered := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/api/v1/predict/churn", strings.NewReader(`{"version":1,"request":{"basket":2}}`))
		req.Header.Set("Authorization", "Bearer "+adminSecret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- err.Error()
			return
		}
		resp.Body.Close()
		answered <- resp.Status
	}()
	select {
	case <-entered:
	case got := <-answered:
		t.Fatalf("the request ended before the module ran: %s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err == nil {
		t.Fatal("a shutdown with a request held ran out of time, but reported no error")
	}
	select {
	case <-answered: // an answer or a closed connection: the handler ended
	case <-time.After(5 * time.Second):
		t.Fatal("the request still runs after the shutdown's deadline")
	}
}
