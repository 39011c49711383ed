package upload_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/mock"
	"github.com/mlnode/mlnode/appliance/upload"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

type runnerFunc func(in, out []float64) error

func (f runnerFunc) PredictModule(_ context.Context, _ []byte, _ appliance.ModuleLimits, in, out []float64) error {
	return f(in, out)
}

func archive(t *testing.T, manifest map[string]any, files map[string][]byte) []byte {
	t.Helper()
	raw, _ := json.Marshal(manifest)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(name string, data []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	add("manifest.json", raw)
	for n, d := range files {
		add(n, d)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestUpload_Checks(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t, store.Options{})
	s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"})
	s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "u", Entities: []string{"user"},
		Features: []appliance.Feature{{Name: "n", Dtype: "float64"}, {Name: "s", Dtype: "string"}}})
	kinds := []string{appliance.KindModel}
	u := &upload.Uploader{Models: s, Views: s,
		Inspector: &mock.ModuleInspector{InspectModuleFn: func(_ context.Context, wasm []byte) (*appliance.Module, error) {
			return &appliance.Module{SHA256: appliance.ModuleDigest(wasm), Kinds: kinds}, nil
		}},
		Runner: runnerFunc(func(in, out []float64) error { out[0] = in[0] * 2; return nil })}
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	manifest := func(inputs []string, sample any) map[string]any {
		m := map[string]any{"name": "m", "abi": "mlnode/v1", "module": "model.wasm", "inputs": inputs, "outputs": []string{"y"}}
		if sample != nil {
			m["sample"] = sample
		}
		return m
	}
	tests := []struct {
		name   string
		inputs []string
		sample any
		kinds  []string
		code   string
		field  string
	}{
		{"numeric input, sample matches", []string{"u:n"}, map[string]any{"input": []float64{2}, "output": []float64{4}}, nil, "", ""},
		{"string input refused", []string{"u:s"}, nil, nil, appliance.EINVALID, "inputs[0]"},
		{"unknown view", []string{"ghost:n"}, nil, nil, appliance.ENOTFOUND, "inputs[0]"},
		{"unknown feature", []string{"u:ghost"}, nil, nil, appliance.ENOTFOUND, "inputs[0]"},
		{"not a model module", []string{"u:n"}, nil, []string{appliance.KindTransform}, appliance.EINVALID, "model.wasm"},
		{"sample does not match", []string{"u:n"}, map[string]any{"input": []float64{2}, "output": []float64{5}}, nil, appliance.EUNPROCESSABLE, "sample.output[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kinds = []string{appliance.KindModel}
			if tt.kinds != nil {
				kinds = tt.kinds
			}
			mv, _, err := u.Upload(ctx, archive(t, manifest(tt.inputs, tt.sample), map[string][]byte{"model.wasm": wasm}))
			if appliance.ErrorCode(err) != tt.code {
				t.Fatalf("err %v, want code %q", err, tt.code)
			}
			if err != nil {
				if e := err.(*appliance.Error); e.Field != tt.field {
					t.Fatalf("field %q, want %q: %v", e.Field, tt.field, err)
				}
				return
			}
			if mv.Lineage.FeatureViews["u"] != 1 || mv.Module != "sha256:"+appliance.ModuleDigest(wasm) {
				t.Fatalf("version %+v", mv)
			}
		})
	}
	if vs, _ := s.ModelVersions(ctx, "m"); len(vs) != 1 {
		t.Fatalf("%d versions stored; refused uploads must store nothing", len(vs))
	}
}
