package bundle_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/mlnode/mlnode/appliance/bundle"
)

// The worked example of docs/bundle.md: a hand-written manifest without
// "modules", the canonical form and the digest another toolchain must get.
const (
	docManifest = `{
  "name": "churn",
  "abi": "mlnode/v1",
  "module": "model.wasm",
  "inputs": ["user_stats:clicks", "request:basket_size"],
  "outputs": ["score"],
  "metrics": {"auc": 0.810},
  "sample": {"input": [3, 2.0], "output": [0.5]}
}
`
	docModuleDigest = "93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"
	docCanonical    = `{"abi":"mlnode/v1","inputs":["user_stats:clicks","request:basket_size"],"metrics":{"auc":0.81},"module":"model.wasm",` +
		`"modules":{"model.wasm":"93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"},"name":"churn","outputs":["score"],` +
		`"sample":{"input":[3,2],"output":[0.5]}}`
	docDigest = "9aaf6d31ca69a090a1f06129d8ba823791515b68a8082fff06984e9263e47ef5"
)

func TestDocExample(t *testing.T) {
	b := open(t, tarGz(t, file("manifest.json", []byte(docManifest)), file("model.wasm", wasm)))
	sum := sha256.Sum256(wasm)
	if got := hex.EncodeToString(sum[:]); got != docModuleDigest {
		t.Errorf("module digest %s", got)
	}
	canon, err := bundle.Canonical(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(canon) != docCanonical {
		t.Errorf("canonical manifest:\n%s\nwant\n%s", canon, docCanonical)
	}
	if got := bundle.Digest(b); got != docDigest {
		t.Errorf("digest %s, want %s", got, docDigest)
	}
	doc, err := os.ReadFile("../../docs/bundle.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{docManifest, docCanonical, docDigest, docModuleDigest} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/bundle.md does not show %q", want)
		}
	}
}
