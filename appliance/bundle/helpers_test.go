package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/bundle"
)

// wasm is the smallest WebAssembly module: magic and version. The bundle
// package never looks inside modules; the node does at upload.
var wasm = []byte("\x00asm\x01\x00\x00\x00")

// manifestJSON is a manifest with every field.
const manifestJSON = `{
  "name": "churn-v2",
  "abi": "mlnode/v1",
  "module": "model.wasm",
  "transforms": ["transforms/bucket.wasm"],
  "inputs": ["user_stats:clicks", "user_stats@v2:age", "request:basket_size"],
  "outputs": ["score", "label"],
  "description": "Churn propensity, logistic regression",
  "framework": "scikit-learn 1.5",
  "metrics": {"auc": 0.81, "logloss": 0.42},
  "training": {"dataset": "s3://lake/churn/2024-05", "code_ref": "git:4f2a9c1", "trained_at": "2024-05-01T12:00:00Z",
               "params": {"C": 1.0, "penalty": "l2", "classes": [0, 1]}},
  "defaults": {"request:basket_size": 0},
  "reference": {
    "user_stats:clicks": {"type": "numeric", "count": 10, "mean": 2.5, "std": 1.2, "edges": [0, 1, 5, 100], "counts": [4, 5, 1]},
    "label": {"type": "categorical", "count": 7, "counts": {"churn": 2, "stay": 5}}
  },
  "sample": {"input": [3, 41, 2], "output": [0.73, 1], "tolerance": 1e-6},
  "limits": {"memory_pages": 32, "timeout_ms": 50}
}`

// moduleFiles are the modules manifestJSON names.
func moduleFiles() map[string][]byte {
	return map[string][]byte{"model.wasm": wasm, "transforms/bucket.wasm": append(append([]byte{}, wasm...), 0)}
}

// withManifest returns manifestJSON changed by edit, which gets it as a
// generic JSON object.
func withManifest(t testing.TB, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(manifestJSON), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// entry is one tar entry for hand-made archives.
type entry struct {
	name     string
	typ      byte // tar.TypeReg when zero
	data     string
	linkname string
	pax      map[string]string
}

func file(name string, data []byte) entry { return entry{name: name, data: string(data)} }

// tarGz writes entries as a .tar.gz exactly as given, unsafe ones included.
func tarGz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	writeTar(t, zw, entries...)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeTar(t testing.TB, w interface{ Write([]byte) (int, error) }, entries ...entry) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.linkname, Mode: 0o644, PAXRecords: e.pax}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.data))
		}
		if e.pax != nil {
			hdr.Format = tar.FormatPAX
		}
		if e.typ == tar.TypeXGlobalHeader {
			hdr = &tar.Header{Typeflag: e.typ, Name: e.name, PAXRecords: e.pax}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("header %q: %v", e.name, err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// goodEntries are the entries of a valid bundle of manifestJSON.
func goodEntries(manifest []byte) []entry {
	return []entry{
		file("manifest.json", manifest),
		file("model.wasm", wasm),
		file("transforms/bucket.wasm", moduleFiles()["transforms/bucket.wasm"]),
	}
}

// buildDir writes a bundle source directory and returns it.
func buildDir(t testing.TB, manifest []byte, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func open(t testing.TB, archive []byte) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Open(bytes.NewReader(archive), bundle.Limits{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return b
}

// checkErr reports whether err is an *appliance.Error with the code, field
// and a message containing msg.
func checkErr(t testing.TB, err error, code, field, msg string) {
	t.Helper()
	var e *appliance.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want an *appliance.Error %s field %q containing %q", err, err, code, field, msg)
	}
	if e.Code != code || e.Field != field || !strings.Contains(e.Message, msg) {
		t.Errorf("got %s field %q: %q\nwant %s field %q containing %q", e.Code, e.Field, e.Message, code, field, msg)
	}
}
