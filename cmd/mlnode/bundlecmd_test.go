package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlnode/mlnode/appliance/bundle"
)

// cli runs one of the commands in-process and returns exit code and output.
func cli(t *testing.T, cmd func(context.Context, []string, io.Writer, io.Writer) int, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cmd(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

const cliManifest = `{
  "name": "churn",
  "abi": "mlnode/v1",
  "module": "model.wasm",
  "inputs": ["user_stats:clicks", "request:basket_size"],
  "outputs": ["score"],
  "metrics": {"auc": 0.81},
  "training": {"dataset": "s3://lake/churn", "trained_at": "2024-05-01T12:00:00Z"}
}`

// bundleSource writes a bundle source directory.
func bundleSource(t *testing.T, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBundleCommand_BuildSignInspectVerify(t *testing.T) {
	src := bundleSource(t, cliManifest)
	work := t.TempDir()
	key := filepath.Join(work, "ci")

	code, out, errOut := cli(t, keygenCommand, "-o", key)
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut)
	}
	privPEM, _ := os.ReadFile(key + ".key")
	pubPEM, _ := os.ReadFile(key + ".pub")
	priv, err := bundle.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := bundle.ParsePublicKey(pubPEM)
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("public key: %v", err)
	}
	keyID := bundle.KeyID(pub)
	if !strings.Contains(out, "key id:      "+keyID) {
		t.Errorf("keygen printed %q, want key id %s", out, keyID)
	}
	if fi, _ := os.Stat(key + ".key"); fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", fi.Mode())
	}
	if code, _, errOut := cli(t, keygenCommand, "-o", key); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("keygen over existing keys: %d %q", code, errOut)
	}

	// Build, flags after the directory.
	file := filepath.Join(work, "churn.tar.gz")
	code, out, errOut = cli(t, bundleCommand, "build", src, "-o", file)
	if code != 0 {
		t.Fatalf("build: %d %s", code, errOut)
	}
	unsigned, _ := os.ReadFile(file)
	b, err := bundle.Open(bytes.NewReader(unsigned), bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	digest := bundle.Digest(b)
	if !strings.Contains(out, "digest: "+digest) || !strings.Contains(out, "name:   churn") {
		t.Errorf("build printed %q", out)
	}
	again := filepath.Join(work, "again.tar.gz")
	if code, _, _ := cli(t, bundleCommand, "build", "-o", again, src); code != 0 {
		t.Fatal("second build failed")
	}
	if second, _ := os.ReadFile(again); !bytes.Equal(second, unsigned) {
		t.Error("two builds differ")
	}

	// Sign to another file, then in place.
	signedCopy := filepath.Join(work, "signed.tar.gz")
	if code, _, errOut := cli(t, bundleCommand, "sign", "--key", key+".key", file, "-o", signedCopy); code != 0 {
		t.Fatalf("sign -o: %d %s", code, errOut)
	}
	if now, _ := os.ReadFile(file); !bytes.Equal(now, unsigned) {
		t.Error("sign -o changed the input")
	}
	code, out, errOut = cli(t, bundleCommand, "sign", "--key", key+".key", file)
	if code != 0 {
		t.Fatalf("sign: %d %s", code, errOut)
	}
	if !strings.Contains(out, "key id: "+keyID) || !strings.Contains(out, "digest: "+digest) {
		t.Errorf("sign printed %q", out)
	}
	signed, _ := os.ReadFile(file)
	sb, err := bundle.Open(bytes.NewReader(signed), bundle.Limits{})
	if err != nil || sb.Signature == nil || bundle.Digest(sb) != digest {
		t.Fatalf("signed bundle: %v", err)
	}
	if err := bundle.Verify(sb, sb.Signature, pub); err != nil {
		t.Fatal(err)
	}

	// Inspect, as text and as JSON.
	code, out, errOut = cli(t, bundleCommand, "inspect", file)
	if code != 0 {
		t.Fatalf("inspect: %d %s", code, errOut)
	}
	for _, want := range []string{
		"name:        churn\n", "digest:      " + digest, "module:      model.wasm (8 bytes, sha256 93a44bbb",
		"inputs:      user_stats:clicks, request:basket_size", "metrics:     auc=0.81", "training:    dataset s3://lake/churn, trained 2024-05-01T12:00:00Z",
		"signature:   key " + keyID + ", valid",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = cli(t, bundleCommand, "inspect", "--json", file)
	var in inspection
	if err := json.Unmarshal([]byte(out), &in); code != 0 || err != nil {
		t.Fatalf("inspect --json: %d %v\n%s", code, err, out)
	}
	if in.Digest != digest || in.Signature == nil || !in.Signature.Valid || in.Signature.KeyID != keyID || in.Files["model.wasm"].Size != 8 {
		t.Errorf("inspect --json: %+v", in)
	}
	if code, out, _ := cli(t, bundleCommand, "inspect", again); code != 0 || !strings.Contains(out, "signature:   none") {
		t.Errorf("inspect of an unsigned bundle: %d\n%s", code, out)
	}

	// Verify with the right key, another key, and on an unsigned bundle.
	if code, out, errOut := cli(t, bundleCommand, "verify", "--key", key+".pub", file); code != 0 || !strings.Contains(out, "valid signature by key "+keyID) {
		t.Errorf("verify: %d %q %q", code, out, errOut)
	}
	other := filepath.Join(work, "other")
	cli(t, keygenCommand, "-o", other)
	if code, _, errOut := cli(t, bundleCommand, "verify", "--key", other+".pub", file); code != 1 || !strings.Contains(errOut, "not by key") {
		t.Errorf("verify with another key: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, bundleCommand, "verify", "--key", key+".pub", again); code != 1 || !strings.Contains(errOut, "is not signed") {
		t.Errorf("verify of an unsigned bundle: %d %q", code, errOut)
	}
	// Re-signing with another key replaces the signature.
	if code, _, errOut := cli(t, bundleCommand, "sign", "--key", other+".key", file); code != 0 {
		t.Fatalf("re-sign: %s", errOut)
	}
	if code, _, _ := cli(t, bundleCommand, "verify", "--key", other+".pub", file); code != 0 {
		t.Error("the new signature does not verify")
	}
}

func TestBundleCommand_Errors(t *testing.T) {
	src := bundleSource(t, cliManifest)
	bad := bundleSource(t, strings.Replace(cliManifest, `"user_stats:clicks"`, `"clicks"`, 1))
	work := t.TempDir()
	notBundle := filepath.Join(work, "x.tar.gz")
	os.WriteFile(notBundle, []byte("hello"), 0o644)
	pubOnly := filepath.Join(work, "k")
	cli(t, keygenCommand, "-o", pubOnly)
	tests := []struct {
		name   string
		cmd    func(context.Context, []string, io.Writer, io.Writer) int
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no command", bundleCommand, nil, 2, "", "Usage: mlnode bundle"},
		{"help", bundleCommand, []string{"--help"}, 0, "Usage: mlnode bundle", ""},
		{"unknown command", bundleCommand, []string{"unpack"}, 2, "", `unknown command "unpack"`},
		{"build help", bundleCommand, []string{"build", "--help"}, 0, "Usage: mlnode bundle build DIR", ""},
		{"build without DIR", bundleCommand, []string{"build"}, 2, "", "missing DIR"},
		{"build with two DIRs", bundleCommand, []string{"build", src, src}, 2, "", "unexpected argument"},
		{"build unknown flag", bundleCommand, []string{"build", "--out", "x", src}, 2, "", "flag provided but not defined: -out"},
		{"build invalid manifest", bundleCommand, []string{"build", bad, "-o", filepath.Join(work, "bad.tar.gz")}, 1, "", "inputs[0]"},
		{"build missing directory", bundleCommand, []string{"build", filepath.Join(work, "nope")}, 1, "", "no such file"},
		{"sign without key", bundleCommand, []string{"sign", notBundle}, 2, "", "--key is required"},
		{"sign with a public key", bundleCommand, []string{"sign", "--key", pubOnly + ".pub", notBundle}, 1, "", "PRIVATE KEY"},
		{"sign not a bundle", bundleCommand, []string{"sign", "--key", pubOnly + ".key", notBundle}, 1, "", "not a gzip-compressed tar"},
		{"inspect not a bundle", bundleCommand, []string{"inspect", notBundle}, 1, "", "x.tar.gz: invalid: bundle"},
		{"inspect missing file", bundleCommand, []string{"inspect", filepath.Join(work, "nope")}, 1, "", "no such file"},
		{"verify without key", bundleCommand, []string{"verify", notBundle}, 2, "", "--key is required"},
		{"push without url", bundleCommand, []string{"push", notBundle, "--token", "t"}, 2, "", "--url"},
		{"push with a bad url", bundleCommand, []string{"push", notBundle, "--token", "t", "--url", "127.0.0.1:8080"}, 2, "", "base URL"},
		{"push without token", bundleCommand, []string{"push", notBundle, "--url", "http://127.0.0.1:1"}, 2, "", "token is required"},
		{"keygen help", keygenCommand, []string{"--help"}, 0, "Usage: mlnode keygen -o PREFIX", ""},
		{"keygen without -o", keygenCommand, nil, 2, "", "-o PREFIX is required"},
		{"keygen with an argument", keygenCommand, []string{"-o", "x", "y"}, 2, "", "unexpected argument"},
	}
	t.Setenv("MLNODE_TOKEN", "")
	t.Setenv("MLNODE_URL", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, tt.cmd, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("got %d\nstdout %q\nstderr %q\nwant %d, %q, %q", code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

func TestBundleCommand_Push(t *testing.T) {
	src := bundleSource(t, cliManifest)
	file := filepath.Join(t.TempDir(), "churn.tar.gz")
	if code, _, errOut := cli(t, bundleCommand, "build", src, "-o", file); code != 0 {
		t.Fatal(errOut)
	}
	archive, _ := os.ReadFile(file)

	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/node/api/v1/models":
			http.Error(w, "wrong method or path "+r.Method+" "+r.URL.Path, http.StatusTeapot)
		case r.Header.Get("Content-Type") != "application/gzip":
			http.Error(w, "wrong content type "+r.Header.Get("Content-Type"), http.StatusTeapot)
		case r.Header.Get("Authorization") == "Bearer bad":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":"unauthorized","message":"unknown token","field":"Authorization"}}`))
		case r.Header.Get("Authorization") != "Bearer s3cret":
			http.Error(w, "wrong token "+r.Header.Get("Authorization"), http.StatusTeapot)
		case !bytes.Equal(body, archive) || r.ContentLength != int64(len(archive)):
			http.Error(w, "wrong body", http.StatusTeapot)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"name":"churn","version":1,"sha256":"abc"}`))
		}
	}))
	defer srv.Close()
	base := srv.URL + "/node/"

	code, out, errOut := cli(t, bundleCommand, "push", file, "--url", base, "--token", "s3cret")
	if code != 0 || out != `{"name":"churn","version":1,"sha256":"abc"}`+"\n" {
		t.Errorf("push: %d %q %q", code, out, errOut)
	}
	// The token and the URL from the environment.
	t.Setenv("MLNODE_TOKEN", "s3cret")
	t.Setenv("MLNODE_URL", base)
	if code, out, errOut := cli(t, bundleCommand, "push", file); code != 0 || !strings.Contains(out, `"version":1`) {
		t.Errorf("push with env: %d %q %q", code, out, errOut)
	}
	// A refusal: the node's error envelope, exit 1.
	code, out, errOut = cli(t, bundleCommand, "push", "--token", "bad", file)
	if code != 1 || out != "" || !strings.Contains(errOut, "401 Unauthorized: unauthorized: Authorization: unknown token") {
		t.Errorf("refused push: %d %q %q", code, out, errOut)
	}
	// An answer that is not JSON is shown as it is.
	code, _, errOut = cli(t, bundleCommand, "push", "--url", srv.URL, file)
	if code != 1 || !strings.Contains(errOut, "418 I'm a teapot: wrong method or path POST /api/v1/models") {
		t.Errorf("push to the wrong path: %d %q", code, errOut)
	}
	if calls != 4 {
		t.Errorf("%d calls", calls)
	}
	// No server.
	srv.Close()
	if code, _, errOut := cli(t, bundleCommand, "push", file); code != 1 || !strings.Contains(errOut, "mlnode bundle push:") {
		t.Errorf("push to nothing: %d %q", code, errOut)
	}
}
