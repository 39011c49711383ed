package bundle_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/bundle"
)

func TestParseManifest_Valid(t *testing.T) {
	m, err := bundle.ParseManifest([]byte(manifestJSON))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "churn-v2" || len(m.Inputs) != 3 || m.Reference["label"].Counts.Values["stay"] != 5 ||
		len(m.Reference["user_stats:clicks"].Counts.Bins) != 3 || m.Limits.TimeoutMS != 50 || m.Sample.Tol() != 1e-6 {
		t.Errorf("unexpected manifest: %+v", m)
	}
	if got := m.ModulePaths(); len(got) != 2 || got[0] != "model.wasm" || got[1] != "transforms/bucket.wasm" {
		t.Errorf("ModulePaths = %v", got)
	}
	in, err := m.SampleInput()
	if err != nil || len(in) != 3 || in[1] != 41 {
		t.Errorf("SampleInput = %v, %v", in, err)
	}
	// The struct round-trips through JSON.
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := bundle.ParseManifest(out)
	if err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	again, _ := json.Marshal(m2)
	if string(again) != string(out) {
		t.Errorf("round trip:\n%s\n%s", out, again)
	}
}

func TestParseManifest_Minimal(t *testing.T) {
	m, err := bundle.ParseManifest([]byte(`{"name":"m","abi":"mlnode/v1","module":"m.wasm","inputs":["v:f"],"outputs":["y"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if in, err := m.SampleInput(); in != nil || err != nil {
		t.Errorf("SampleInput without a sample = %v, %v", in, err)
	}
	if err := m.CheckSample([]float64{1}); err != nil {
		t.Errorf("CheckSample without a sample: %v", err)
	}
}

func TestParseManifest_Invalid(t *testing.T) {
	type obj = map[string]any
	clicks := func(m obj) obj { return m["reference"].(obj)["user_stats:clicks"].(obj) }
	tests := []struct {
		name  string
		edit  func(m obj)
		field string
		msg   string
	}{
		{"no name", func(m obj) { delete(m, "name") }, "name", "required"},
		{"upper-case name", func(m obj) { m["name"] = "Churn" }, "name", "[a-z][a-z0-9_-]*"},
		{"name starting with a dash", func(m obj) { m["name"] = "-churn" }, "name", "[a-z]"},
		{"name with a dot", func(m obj) { m["name"] = "churn.v2" }, "name", "[a-z]"},
		{"long name", func(m obj) { m["name"] = strings.Repeat("a", 129) }, "name", "longer than 128"},
		{"other ABI", func(m obj) { m["abi"] = "mlnode/v2" }, "abi", "not a supported ABI"},
		{"no module", func(m obj) { delete(m, "module") }, "module", "required"},
		{"module outside", func(m obj) { m["module"] = "../model.wasm" }, "module", "'..'"},
		{"module absolute", func(m obj) { m["module"] = "/model.wasm" }, "module", "absolute"},
		{"module with ./", func(m obj) { m["module"] = "./model.wasm" }, "module", "'.'"},
		{"module with a backslash", func(m obj) { m["module"] = `dir\model.wasm` }, "module", "backslash"},
		{"module is the manifest", func(m obj) { m["module"] = "manifest.json" }, "module", "reserved"},
		{"transform is the module", func(m obj) { m["transforms"] = []any{"model.wasm"} }, "transforms[0]", "already named by module"},
		{"claim for another file", func(m obj) { m["modules"] = obj{"other.wasm": strings.Repeat("a", 64)} }, `modules["other.wasm"]`, "neither the module nor a transform"},
		{"claim not hex", func(m obj) { m["modules"] = obj{"model.wasm": "sha256:" + strings.Repeat("a", 64)} }, `modules["model.wasm"]`, "64 lower-case hex"},
		{"no inputs", func(m obj) { m["inputs"] = []any{} }, "inputs", "at least one"},
		{"inputs not a list", func(m obj) { m["inputs"] = "v:f" }, "inputs", "expected []string"},
		{"duplicate input", func(m obj) { m["inputs"] = []any{"v:f", "v:f"} }, "inputs[1]", "duplicate"},
		{"bad input", func(m obj) { m["inputs"] = []any{"v:f", "u:g", "clicks"} }, "inputs[2]", "not \"view:feature\""},
		{"bad version", func(m obj) { m["inputs"] = []any{"v@2:f"} }, "inputs[0]", "not \"view:feature\""},
		{"empty request input", func(m obj) { m["inputs"] = []any{"request:"} }, "inputs[0]", "bad request input"},
		{"no outputs", func(m obj) { delete(m, "outputs") }, "outputs", "at least one"},
		{"duplicate output", func(m obj) { m["outputs"] = []any{"score", "score"} }, "outputs[1]", "duplicate"},
		{"bad output", func(m obj) { m["outputs"] = []any{"score", "Label"} }, "outputs[1]", "must match"},
		{"unknown field", func(m obj) { m["nmae"] = "x" }, "nmae", "unknown field"},
		{"unknown training field", func(m obj) { m["training"].(obj)["seed"] = 1 }, "training.seed", "unknown field"},
		{"unknown reference field", func(m obj) { clicks(m)["median"] = 1 }, "reference.user_stats:clicks.median", "unknown field"},
		{"unknown sample field", func(m obj) { m["sample"].(obj)["inputs"] = []any{} }, "sample.inputs", "unknown field"},
		{"unknown limits field", func(m obj) { m["limits"].(obj)["cpu"] = 1 }, "limits.cpu", "unknown field"},
		{"control character in framework", func(m obj) { m["framework"] = "a\nb" }, "framework", "control character"},
		{"empty metric name", func(m obj) { m["metrics"] = obj{"": 1} }, "metrics", "empty"},
		{"bad trained_at", func(m obj) { m["training"].(obj)["trained_at"] = "2024-05-01 12:00" }, "training.trained_at", "RFC 3339"},
		{"params not an object", func(m obj) { m["training"].(obj)["params"] = []any{1} }, "training.params", "JSON object"},
		{"default for no input", func(m obj) { m["defaults"] = obj{"request:other": 1} }, "defaults.request:other", "not one of the inputs"},
		{"reference for nothing", func(m obj) { m["reference"].(obj)["nope"] = clicks(m) }, "reference.nope", "neither an input nor an output"},
		{"reference type", func(m obj) { clicks(m)["type"] = "ordinal" }, "reference.user_stats:clicks.type", "not \"numeric\""},
		{"edges not increasing", func(m obj) { clicks(m)["edges"] = []any{0, 1, 1, 2} }, "reference.user_stats:clicks.edges[2]", "strictly increasing"},
		{"too few edges", func(m obj) { clicks(m)["edges"] = []any{0} }, "reference.user_stats:clicks.edges", "at least 2"},
		{"counts and edges disagree", func(m obj) { clicks(m)["counts"] = []any{4, 6} }, "reference.user_stats:clicks.counts", "has 2 bins; 4 edges make 3"},
		{"negative count", func(m obj) { clicks(m)["counts"] = []any{-1, 10, 1} }, "reference.user_stats:clicks.counts[0]", "negative"},
		{"count is not the sum", func(m obj) { clicks(m)["count"] = 11 }, "reference.user_stats:clicks.count", "add up to 10"},
		{"negative std", func(m obj) { clicks(m)["std"] = -1 }, "reference.user_stats:clicks.std", "negative"},
		{"counts missing", func(m obj) { delete(clicks(m), "counts") }, "reference.user_stats:clicks.counts", "required"},
		{"numeric counts as object", func(m obj) { clicks(m)["counts"] = obj{"a": 10} }, "reference.user_stats:clicks.counts", "array of bin counts"},
		{"categorical counts as array", func(m obj) { m["reference"].(obj)["label"].(obj)["counts"] = []any{7} }, "reference.label.counts", "object of counts"},
		{"categorical with edges", func(m obj) { m["reference"].(obj)["label"].(obj)["edges"] = []any{0, 1} }, "reference.label", "no edges"},
		{"categorical sum", func(m obj) { m["reference"].(obj)["label"].(obj)["count"] = 8 }, "reference.label.count", "add up to 7"},
		{"huge count", func(m obj) { clicks(m)["count"] = json.Number("9007199254740993") }, "reference.user_stats:clicks.count", "2^53"},
		{"sample input too short", func(m obj) { m["sample"].(obj)["input"] = []any{1, 2} }, "sample.input", "2 values for 3 names"},
		{"sample output too long", func(m obj) { m["sample"].(obj)["output"] = []any{1, 2, 3} }, "sample.output", "3 values for 2 names"},
		{"sample input not a vector", func(m obj) { m["sample"].(obj)["input"] = "1,2,3" }, "sample.input", "array in manifest order"},
		{"sample input missing", func(m obj) { delete(m["sample"].(obj), "input") }, "sample.input", "required"},
		{"sample by name, unknown", func(m obj) {
			m["sample"].(obj)["input"] = obj{"user_stats:clicks": 1, "user_stats@v2:age": 2, "request:x": 3}
		}, "sample.input.request:x", "not one of"},
		{"sample by name, missing", func(m obj) { m["sample"].(obj)["input"] = obj{"user_stats:clicks": 1} }, "sample.input.user_stats@v2:age", "no default"},
		{"negative tolerance", func(m obj) { m["sample"].(obj)["tolerance"] = -0.1 }, "sample.tolerance", "negative"},
		{"negative memory", func(m obj) { m["limits"].(obj)["memory_pages"] = -1 }, "limits.memory_pages", "not between"},
		{"memory beyond wasm32", func(m obj) { m["limits"].(obj)["memory_pages"] = 65537 }, "limits.memory_pages", "not between"},
		{"timeout too long", func(m obj) { m["limits"].(obj)["timeout_ms"] = 3_600_001 }, "limits.timeout_ms", "not between"},
		{"limits wrong type", func(m obj) { m["limits"].(obj)["timeout_ms"] = "5s" }, "limits.timeout_ms", "expected int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := withManifest(t, tt.edit)
			_, err := bundle.ParseManifest(raw)
			checkErr(t, err, appliance.EINVALID, tt.field, tt.msg)
		})
	}
}

func TestParseManifest_NotJSON(t *testing.T) {
	tests := []struct{ name, in, field, msg string }{
		{"array", `[]`, "manifest.json", "JSON object"},
		{"duplicate key", `{"name":"a","name":"b"}`, "name", "duplicate key"},
		{"duplicate nested key", `{"metrics":{"auc":1,"auc":2}}`, "metrics.auc", "duplicate key"},
		{"not UTF-8", "{\"name\":\"\xc3\"}", "manifest.json", "UTF-8"},
		{"truncated", `{"name":`, "manifest.json", "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bundle.ParseManifest([]byte(tt.in))
			checkErr(t, err, appliance.EINVALID, tt.field, tt.msg)
		})
	}
	_, err := bundle.ParseManifest([]byte(`{"description":"` + strings.Repeat("x", bundle.MaxManifestSize) + `"}`))
	checkErr(t, err, appliance.ETOOLARGE, "manifest.json", "larger than")
}

func TestManifest_SampleByName(t *testing.T) {
	raw := withManifest(t, func(m map[string]any) {
		// basket_size left out: it has a default of 0.
		m["sample"] = map[string]any{"input": map[string]any{"user_stats:clicks": 3, "user_stats@v2:age": 41}, "output": map[string]any{"label": 1, "score": 0.73}}
	})
	m, err := bundle.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.SampleInput()
	if err != nil || len(in) != 3 || in[0] != 3 || in[1] != 41 || in[2] != 0 {
		t.Errorf("SampleInput = %v, %v", in, err)
	}
	if err := m.CheckSample([]float64{0.73, 1}); err != nil {
		t.Errorf("CheckSample: %v", err)
	}
}

func TestManifest_CheckSample(t *testing.T) {
	m, err := bundle.ParseManifest([]byte(manifestJSON))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		got   []float64
		field string
	}{
		{"exact", []float64{0.73, 1}, ""},
		{"within tolerance", []float64{0.73 + 5e-7, 1 - 5e-7}, ""},
		{"outside", []float64{0.73, 1.00001}, "sample.output[1]"},
		{"too few", []float64{0.73}, "sample.output"},
	}
	for _, tt := range tests {
		err := m.CheckSample(tt.got)
		if tt.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		checkErr(t, err, appliance.EUNPROCESSABLE, tt.field, "")
	}
}

func TestParseInput(t *testing.T) {
	in, err := bundle.ParseInput("f", "request:basket_size")
	if err != nil || in.Request != "basket_size" {
		t.Errorf("request input: %+v, %v", in, err)
	}
	in, err = bundle.ParseInput("f", "user_stats@v2:age")
	if err != nil || in.Feature != (appliance.FeatureRef{View: "user_stats", Version: 2, Feature: "age"}) {
		t.Errorf("feature input: %+v, %v", in, err)
	}
}
