package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/appliance/mock"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// newTransformNode serves with a mock runtime: every module "is" a
// transform computing out[0] = in[0]*2 (numeric) or len(string)+in[1] (row).
func newTransformNode(t *testing.T) (*testNode, *[]string) {
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	n.store.BootstrapAdmin(context.Background(), adminSecret)
	var calls []string
	tr := &mock.Transformer{
		TransformFn: func(_ context.Context, module string, in, out []float64) error {
			calls = append(calls, "numeric")
			if in[0] < 0 {
				return appliance.Errorf(appliance.EUNPROCESSABLE, "module returned error code 7")
			}
			out[0] = in[0] * 2
			return nil
		},
		TransformRowFn: func(_ context.Context, module string, in []appliance.TransformValue, out []float64) error {
			calls = append(calls, "row")
			out[0] = float64(len(in[0].Str)) + in[1].Num
			if in[1].Null {
				out[0] = math.NaN()
			}
			return nil
		},
	}
	insp := &mock.ModuleInspector{InspectModuleFn: func(_ context.Context, wasm []byte) (*appliance.Module, error) {
		if !strings.HasPrefix(string(wasm), "\x00asm") {
			return nil, &appliance.Error{Code: appliance.EINVALID, Field: "module", Message: "not a WebAssembly module"}
		}
		return &appliance.Module{Kinds: []string{string(wasm[8:])}}, nil
	}}
	n.srv = httpapi.New(httpapi.Config{Now: func() time.Time { return n.now }}, httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store,
		Audit: n.store, Modules: n.store, Inspector: insp, Transforms: tr})
	return n, &calls
}

func (n *testNode) upload(kind string, want int) string {
	n.t.Helper()
	r := n.do("POST", "/api/v1/modules", adminSecret, "application/wasm", "\x00asm\x01\x00\x00\x00"+kind)
	if r.status != want {
		n.t.Fatalf("upload: %d %s", r.status, r.body)
	}
	return "sha256:" + r.json(n.t)["sha256"].(string)
}

func TestModules_UploadAndDownload(t *testing.T) {
	n, _ := newTransformNode(t)
	ref := n.upload("transform", 201)
	n.upload("transform", 200)
	digest := strings.TrimPrefix(ref, "sha256:")
	m := n.admin("GET", "/api/v1/modules/"+digest, nil, 200).json(t)
	if m["size"].(float64) != 17 || m["created_by"] != "admin" {
		t.Fatalf("module: %v", m)
	}
	if r := n.do("GET", "/api/v1/modules/"+digest+"/wasm", adminSecret, "", nil); string(r.body) != "\x00asm\x01\x00\x00\x00transform" {
		t.Fatalf("download: %q", r.body)
	}
	if r := n.do("POST", "/api/v1/modules", adminSecret, "application/wasm", "not wasm"); r.status != 400 {
		t.Fatalf("bad module: %d %s", r.status, r.body)
	}
	if r := n.do("POST", "/api/v1/modules", adminSecret, "application/json", "{}"); r.status != 415 {
		t.Fatalf("wrong type: %d", r.status)
	}
	n.admin("GET", "/api/v1/modules/"+strings.Repeat("0", 64), nil, 404)
	n.admin("GET", "/api/v1/modules/xyz", nil, 400)
	if len(n.admin("GET", "/api/v1/modules", nil, 200).json(t)["modules"].([]any)) != 1 {
		t.Fatal("list")
	}
	audit := n.admin("GET", "/api/v1/audit?action=module.create", nil, 200).json(t)
	if len(audit["entries"].([]any)) != 1 {
		t.Fatalf("upload not audited once: %v", audit)
	}
}

func TestTransform_IngestMode(t *testing.T) {
	n, calls := newTransformNode(t)
	n.setupUserStats()
	ref := n.upload("transform", 201)
	view := map[string]any{"name": "user_stats", "entities": []string{"user"},
		"features":  []map[string]string{{"name": "clicks", "dtype": "int64"}, {"name": "score", "dtype": "float64"}, {"name": "country", "dtype": "string"}},
		"transform": map[string]any{"module": ref, "mode": "ingest", "inputs": []string{"clicks"}, "outputs": []map[string]string{{"name": "clicks_x2", "dtype": "int64"}}}}
	v := n.admin("POST", "/api/v1/feature-views", view, 201).json(t)
	if v["version"].(float64) != 2 || !strings.Contains(fmt.Sprint(v["features"]), "derived:true") {
		t.Fatalf("view with transform: %v", v)
	}
	n.admin("POST", "/api/v1/feature-views", view, 200) // same transform: same version
	ts := n.now.Format(time.RFC3339)
	n.ingest("user_stats", "application/x-ndjson", fmt.Sprintf(`{"user_id":"a","event_timestamp":%q,"clicks":21}`, ts), 200)
	// A derived column cannot be written directly; a failing transform is a row error.
	n.ingest("user_stats", "application/x-ndjson", fmt.Sprintf(`{"user_id":"b","event_timestamp":%q,"clicks":1,"clicks_x2":5}`, ts), 400)
	r := n.ingest("user_stats", "application/x-ndjson", fmt.Sprintf("{\"user_id\":\"c\",\"event_timestamp\":%q,\"clicks\":-1}\n{\"user_id\":\"d\",\"event_timestamp\":%q,\"clicks\":3}", ts, ts), 200, "mode=skip-invalid").json(t)
	if r["accepted"].(float64) != 1 || !strings.Contains(fmt.Sprint(r["rejected"]), "field:transform") {
		t.Fatalf("transform failure: %v", r)
	}
	got := n.admin("POST", "/get-online-features", map[string]any{"features": []string{"user_stats:clicks_x2"}, "entities": map[string]any{"user_id": []string{"a", "d"}}}, 200)
	if !strings.Contains(string(got.body), `{"values":[42,6],"statuses":["PRESENT","PRESENT"]`) {
		t.Fatalf("derived read: %s", got.body)
	}
	if len(*calls) != 3 || (*calls)[0] != "numeric" {
		t.Fatalf("transform calls: %v", *calls)
	}
	lineage := n.admin("GET", "/api/v1/feature-views/user_stats/versions/2", nil, 200).json(t)["transform"].(map[string]any)
	if lineage["module"] != ref {
		t.Fatalf("lineage: %v", lineage)
	}
}

func TestTransform_OnDemandWithRequestInputs(t *testing.T) {
	n, calls := newTransformNode(t)
	n.setupUserStats()
	ref := n.upload("row_transform", 201)
	view := map[string]any{"name": "user_stats", "entities": []string{"user"},
		"features":  []map[string]string{{"name": "clicks", "dtype": "int64"}, {"name": "score", "dtype": "float64"}, {"name": "country", "dtype": "string"}},
		"transform": map[string]any{"module": ref, "mode": "on_demand", "inputs": []string{"country", "request:basket"}, "outputs": []map[string]string{{"name": "mix", "dtype": "float64"}}}}
	n.admin("POST", "/api/v1/feature-views", view, 201)
	ts := n.now.Format(time.RFC3339)
	n.ingest("user_stats", "application/x-ndjson", fmt.Sprintf(`{"user_id":"a","event_timestamp":%q,"country":"GB"}`, ts), 200)
	if len(*calls) != 0 {
		t.Fatalf("an on-demand transform ran at ingest: %v", *calls)
	}
	body := map[string]any{"features": []string{"user_stats:mix", "user_stats:country"}, "entities": map[string]any{"user_id": []string{"a", "zz"}},
		"request_context": map[string]any{"basket": []any{3.5, 1}}}
	got := n.admin("POST", "/get-online-features", body, 200)
	if !strings.Contains(string(got.body), `{"values":[5.5,null],"statuses":["PRESENT","NOT_FOUND"]`) {
		t.Fatalf("on-demand read: %s", got.body)
	}
	// Feast's Python clients send request data inside entities.
	body = map[string]any{"features": []string{"user_stats:mix"}, "entities": map[string]any{"user_id": []string{"a"}, "basket": []any{1}}}
	got = n.admin("POST", "/get-online-features", body, 200)
	if !strings.Contains(string(got.body), `{"values":[3],"statuses":["PRESENT"]`) {
		t.Fatalf("request data in entities: %s", got.body)
	}
	body = map[string]any{"features": []string{"user_stats:mix"}, "entities": map[string]any{"user_id": []string{"a"}}}
	if r := n.do("POST", "/get-online-features", adminSecret, "application/json", body); r.status != 400 {
		t.Fatalf("missing request input: %d %s", r.status, r.body)
	}
	var parsed map[string]any
	json.Unmarshal(got.body, &parsed)
}

func TestTransform_BadDefinitions(t *testing.T) {
	n, _ := newTransformNode(t)
	n.setupUserStats()
	numeric := n.upload("transform", 201)
	model := n.upload("model", 201)
	base := func(tr map[string]any) map[string]any {
		return map[string]any{"name": "user_stats", "entities": []string{"user"},
			"features": []map[string]string{{"name": "clicks", "dtype": "int64"}, {"name": "country", "dtype": "string"}, {"name": "tags", "dtype": "list<string>"}}, "transform": tr}
	}
	out := []map[string]string{{"name": "o", "dtype": "float64"}}
	tests := []struct {
		name   string
		tr     map[string]any
		status int
		field  string
	}{
		{"bad module ref", map[string]any{"module": "abc", "mode": "ingest", "inputs": []string{"clicks"}, "outputs": out}, 400, "transform.module"},
		{"unknown module", map[string]any{"module": "sha256:" + strings.Repeat("1", 64), "mode": "ingest", "inputs": []string{"clicks"}, "outputs": out}, 404, "transform.module"},
		{"not a transform", map[string]any{"module": model, "mode": "ingest", "inputs": []string{"clicks"}, "outputs": out}, 400, "transform.module"},
		{"string input needs the row ABI", map[string]any{"module": numeric, "mode": "ingest", "inputs": []string{"country"}, "outputs": out}, 400, "transform.module"},
		{"bad mode", map[string]any{"module": numeric, "mode": "later", "inputs": []string{"clicks"}, "outputs": out}, 400, "transform.mode"},
		{"unknown input", map[string]any{"module": numeric, "mode": "ingest", "inputs": []string{"ghost"}, "outputs": out}, 400, "transform.inputs[0]"},
		{"list input", map[string]any{"module": numeric, "mode": "ingest", "inputs": []string{"tags"}, "outputs": out}, 400, "transform.inputs[0]"},
		{"request input at ingest", map[string]any{"module": numeric, "mode": "ingest", "inputs": []string{"request:x"}, "outputs": out}, 400, "transform.inputs[0]"},
		{"output shadows a feature", map[string]any{"module": numeric, "mode": "ingest", "inputs": []string{"clicks"}, "outputs": []map[string]string{{"name": "clicks", "dtype": "float64"}}}, 400, "transform.outputs[0].name"},
		{"string output", map[string]any{"module": numeric, "mode": "ingest", "inputs": []string{"clicks"}, "outputs": []map[string]string{{"name": "o", "dtype": "string"}}}, 400, "transform.outputs[0].dtype"},
		{"no outputs", map[string]any{"module": numeric, "mode": "ingest", "inputs": []string{"clicks"}}, 400, "transform.outputs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := n.do("POST", "/api/v1/feature-views", adminSecret, "application/json", base(tt.tr))
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if _, field := r.errorOf(t); field != tt.field {
				t.Fatalf("field %q, want %q: %s", field, tt.field, r.body)
			}
		})
	}
}
