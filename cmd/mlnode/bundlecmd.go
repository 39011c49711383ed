package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/bundle"
)

const bundleUsage = `Usage: mlnode bundle COMMAND [flags] ARGS

Model bundles are .tar.gz archives of manifest.json and WebAssembly modules
(the format: docs/bundle.md).

Commands:
  build DIR [-o FILE]               make a bundle of DIR/manifest.json and the modules it names
  sign --key KEY BUNDLE [-o FILE]   sign a bundle; the signature goes inside the archive
  verify --key PUB BUNDLE           check a bundle's signature against a public key
  inspect [--json] BUNDLE           show a bundle's manifest, digest and signature
  push BUNDLE --url URL [--token T] upload a bundle to a node (POST /api/v1/models)

Run 'mlnode bundle COMMAND --help' for a command's flags.

Example:
  mlnode keygen -o ci
  mlnode bundle build ./churn -o churn.tar.gz
  mlnode bundle sign --key ci.key churn.tar.gz
  MLNODE_TOKEN=... mlnode bundle push churn.tar.gz --url http://127.0.0.1:8080
`

// bundleCommand runs "mlnode bundle ..." and returns the exit code: 0 done,
// 1 failed, 2 bad usage.
func bundleCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, bundleUsage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, bundleUsage)
		return 0
	case "build":
		return bundleBuild(args[1:], stdout, stderr)
	case "sign":
		return bundleSign(args[1:], stdout, stderr)
	case "verify":
		return bundleVerify(args[1:], stdout, stderr)
	case "inspect":
		return bundleInspect(args[1:], stdout, stderr)
	case "push":
		return bundlePush(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "mlnode bundle: unknown command %q\n\n%s", args[0], bundleUsage)
	return 2
}

// command is one subcommand's flags and how it reports.
type command struct {
	name   string // "bundle build"
	fs     *flag.FlagSet
	stdout io.Writer
	stderr io.Writer
}

func newCommand(name, synopsis, about string, stdout, stderr io.Writer) *command {
	c := &command{name: name, fs: flag.NewFlagSet("mlnode "+name, flag.ContinueOnError), stdout: stdout, stderr: stderr}
	c.fs.Usage = func() {
		fmt.Fprintf(c.fs.Output(), "Usage: mlnode %s %s\n\n%s\n", name, synopsis, about)
		if hasFlags(c.fs) {
			fmt.Fprintf(c.fs.Output(), "\nFlags:\n")
			c.fs.PrintDefaults()
		}
	}
	return c
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parse parses flags before, between and after the positional arguments
// ("build DIR -o FILE"; after "--" everything is positional) and wants
// exactly the named positional arguments. It returns them, or an exit code
// (0 after --help, 2 for bad usage) and ok false.
func (c *command) parse(args []string, names ...string) (pos []string, code int, ok bool) {
	var msgs bytes.Buffer
	c.fs.SetOutput(&msgs)
	for {
		err := c.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.stdout.Write(msgs.Bytes())
			return nil, 0, false
		} else if err != nil {
			c.stderr.Write(msgs.Bytes())
			return nil, 2, false
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != len(names) {
		c.fs.SetOutput(c.stderr)
		if len(pos) < len(names) {
			fmt.Fprintf(c.stderr, "mlnode %s: missing %s\n", c.name, names[len(pos)])
		} else {
			fmt.Fprintf(c.stderr, "mlnode %s: unexpected argument %q\n", c.name, pos[len(names)])
		}
		c.fs.Usage()
		return nil, 2, false
	}
	return pos, 0, true
}

// fail reports err and returns exit code 1.
func (c *command) fail(err error) int {
	fmt.Fprintf(c.stderr, "mlnode %s: %v\n", c.name, err)
	return 1
}

// usageError reports a mistake in the command line and returns 2.
func (c *command) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "mlnode %s: %s\n", c.name, fmt.Sprintf(format, args...))
	return 2
}

func bundleBuild(args []string, stdout, stderr io.Writer) int {
	c := newCommand("bundle build", "DIR [-o FILE]",
		"Makes a bundle of DIR/manifest.json and the modules it names (paths relative to DIR),\n"+
			"filling in their sha256 under \"modules\". The same directory always gives the same bytes.", stdout, stderr)
	out := c.fs.String("o", "", "write the bundle to `FILE` (default NAME.tar.gz, NAME from the manifest)")
	pos, code, ok := c.parse(args, "DIR")
	if !ok {
		return code
	}
	data, err := bundle.Build(pos[0])
	if err != nil {
		return c.fail(err)
	}
	b, err := bundle.Open(bytes.NewReader(data), bundle.Limits{})
	if err != nil {
		return c.fail(err)
	}
	if *out == "" {
		*out = b.Manifest.Name + ".tar.gz"
	}
	if err := replaceFile(*out, data, 0o644); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes)\nname:   %s\ndigest: %s\n", *out, len(data), b.Manifest.Name, bundle.Digest(b))
	return 0
}

func bundleSign(args []string, stdout, stderr io.Writer) int {
	c := newCommand("bundle sign", "--key KEY BUNDLE [-o FILE]",
		"Signs the bundle's digest with an ed25519 private key and puts the signature in the\n"+
			"archive as signature.ed25519 (replacing one that is there), in place unless -o is given.", stdout, stderr)
	keyFile := c.fs.String("key", "", "private key `FILE`: PEM PKCS #8, as 'mlnode keygen' or 'openssl genpkey -algorithm ed25519' write")
	out := c.fs.String("o", "", "write the signed bundle to `FILE` instead of replacing BUNDLE")
	pos, code, ok := c.parse(args, "BUNDLE")
	if !ok {
		return code
	}
	if *keyFile == "" {
		return c.usageError("--key is required")
	}
	keyPEM, err := os.ReadFile(*keyFile)
	if err != nil {
		return c.fail(err)
	}
	priv, err := bundle.ParsePrivateKey(keyPEM)
	if err != nil {
		return c.fail(fmt.Errorf("%s: %w", *keyFile, err))
	}
	data, b, err := readBundle(pos[0])
	if err != nil {
		return c.fail(err)
	}
	signed, err := bundle.WithSignature(data, bundle.Sign(b, priv))
	if err != nil {
		return c.fail(err)
	}
	target := pos[0]
	if *out != "" {
		target = *out
	}
	if err := replaceFile(target, signed, 0o644); err != nil {
		return c.fail(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	fmt.Fprintf(stdout, "signed %s\ndigest: %s\nkey id: %s\n", target, bundle.Digest(b), bundle.KeyID(pub))
	return 0
}

func bundleVerify(args []string, stdout, stderr io.Writer) int {
	c := newCommand("bundle verify", "--key PUB BUNDLE",
		"Checks that the bundle carries a valid signature by the public key. Exit status 1 if not.", stdout, stderr)
	keyFile := c.fs.String("key", "", "public key `FILE`: PEM PKIX (\"PUBLIC KEY\") or the base64 of the 32 raw bytes")
	pos, code, ok := c.parse(args, "BUNDLE")
	if !ok {
		return code
	}
	if *keyFile == "" {
		return c.usageError("--key is required")
	}
	keyData, err := os.ReadFile(*keyFile)
	if err != nil {
		return c.fail(err)
	}
	pub, err := bundle.ParsePublicKey(keyData)
	if err != nil {
		return c.fail(fmt.Errorf("%s: %w", *keyFile, err))
	}
	_, b, err := readBundle(pos[0])
	if err != nil {
		return c.fail(err)
	}
	if b.Signature == nil {
		return c.fail(fmt.Errorf("%s is not signed", pos[0]))
	}
	if err := bundle.Verify(b, b.Signature, pub); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(stdout, "%s: valid signature by key %s\ndigest: %s\n", pos[0], bundle.KeyID(pub), bundle.Digest(b))
	return 0
}

// inspection is what 'bundle inspect --json' prints.
type inspection struct {
	Name      string                 `json:"name"`
	Digest    string                 `json:"digest"`
	Size      int                    `json:"size"`
	Files     map[string]fileSummary `json:"files"`
	Signature *signatureSummary      `json:"signature"`
	Manifest  json.RawMessage        `json:"manifest"`
}

type fileSummary struct {
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

type signatureSummary struct {
	KeyID string `json:"key_id"`
	Valid bool   `json:"valid"` // for this digest, by the key it names
	Error string `json:"error,omitempty"`
}

func bundleInspect(args []string, stdout, stderr io.Writer) int {
	c := newCommand("bundle inspect", "[--json] BUNDLE",
		"Checks a bundle as a node would before anything else (archive, manifest, module digests)\n"+
			"and shows its manifest, digest and signature.", stdout, stderr)
	asJSON := c.fs.Bool("json", false, "print one JSON object")
	pos, code, ok := c.parse(args, "BUNDLE")
	if !ok {
		return code
	}
	data, b, err := readBundle(pos[0])
	if err != nil {
		return c.fail(err)
	}
	in := inspection{Name: b.Manifest.Name, Digest: bundle.Digest(b), Size: len(data), Files: map[string]fileSummary{}, Manifest: b.RawManifest}
	for p, f := range b.Files {
		in.Files[p] = fileSummary{Size: len(f), SHA256: appliance.ModuleDigest(f)}
	}
	if b.Signature != nil {
		s, err := bundle.ParseSignature(b.Signature)
		if err != nil {
			return c.fail(err) // Open checked its form
		}
		in.Signature = &signatureSummary{KeyID: s.KeyID(), Valid: true}
		if err := bundle.Verify(b, b.Signature, s.PublicKey); err != nil {
			in.Signature.Valid, in.Signature.Error = false, err.Error()
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(in); err != nil {
			return c.fail(err)
		}
		return 0
	}
	printInspection(stdout, b, &in)
	return 0
}

func printInspection(w io.Writer, b *bundle.Bundle, in *inspection) {
	m := &b.Manifest
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-12s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	line("name", "%s", m.Name)
	line("digest", "%s", in.Digest)
	line("size", "%d bytes", in.Size)
	line("abi", "%s", m.ABI)
	for i, p := range m.ModulePaths() {
		label := "module"
		if i > 0 {
			label = "transform"
		}
		line(label, "%s (%d bytes, sha256 %s)", p, in.Files[p].Size, in.Files[p].SHA256)
	}
	line("inputs", "%s", strings.Join(m.Inputs, ", "))
	line("outputs", "%s", strings.Join(m.Outputs, ", "))
	if m.Description != "" {
		line("description", "%s", m.Description)
	}
	if m.Framework != "" {
		line("framework", "%s", m.Framework)
	}
	if len(m.Metrics) > 0 {
		line("metrics", "%s", joinMap(m.Metrics))
	}
	if t := m.Training; t != nil {
		var parts []string
		for _, kv := range [][2]string{{"dataset", t.Dataset}, {"code", t.CodeRef}, {"trained", t.TrainedAt}} {
			if kv[1] != "" {
				parts = append(parts, kv[0]+" "+kv[1])
			}
		}
		if len(t.Params) > 0 {
			parts = append(parts, "params "+string(t.Params))
		}
		line("training", "%s", strings.Join(parts, ", "))
	}
	if len(m.Defaults) > 0 {
		line("defaults", "%s", joinMap(m.Defaults))
	}
	if len(m.Reference) > 0 {
		var parts []string
		for _, k := range sortedNames(m.Reference) {
			parts = append(parts, fmt.Sprintf("%s (%s, n=%d)", k, m.Reference[k].Type, m.Reference[k].Count))
		}
		line("reference", "%s", strings.Join(parts, ", "))
	}
	if s := m.Sample; s != nil {
		line("sample", "%d inputs -> %d outputs, tolerance %g", len(m.Inputs), len(m.Outputs), s.Tol())
	}
	if l := m.Limits; l != nil {
		line("limits", "memory_pages %d, timeout_ms %d (0: the node's default)", l.MemoryPages, l.TimeoutMS)
	}
	switch s := in.Signature; {
	case s == nil:
		line("signature", "none")
	case s.Valid:
		line("signature", "key %s, valid for this digest (whether the key is trusted is the node's decision)", s.KeyID)
	default:
		line("signature", "key %s, INVALID: %s", s.KeyID, s.Error)
	}
}

func joinMap(m map[string]float64) string {
	var parts []string
	for _, k := range sortedNames(m) {
		parts = append(parts, fmt.Sprintf("%s=%g", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sortedNames[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func bundlePush(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("bundle push", "BUNDLE --url URL [--token TOKEN]",
		"Uploads a bundle to a node: POST URL/api/v1/models with the archive as the body\n"+
			"(Content-Type application/gzip), and prints the node's JSON answer.", stdout, stderr)
	baseURL := c.fs.String("url", os.Getenv("MLNODE_URL"), "the node's base `URL`, e.g. http://127.0.0.1:8080 (default $MLNODE_URL)")
	token := c.fs.String("token", "", "API `TOKEN` with the right to upload models (default $MLNODE_TOKEN)")
	timeout := c.fs.Duration("timeout", 5*time.Minute, "give up after this long")
	pos, code, ok := c.parse(args, "BUNDLE")
	if !ok {
		return code
	}
	if *token == "" {
		*token = os.Getenv("MLNODE_TOKEN")
	}
	if *token == "" {
		return c.usageError("a token is required: --token or MLNODE_TOKEN")
	}
	u, err := url.Parse(*baseURL)
	if *baseURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c.usageError("--url (or MLNODE_URL) must be the node's base URL, like http://127.0.0.1:8080")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return c.fail(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return c.fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*baseURL, "/")+"/api/v1/models", f)
	if err != nil {
		return c.fail(err)
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+*token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return c.fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return c.fail(fmt.Errorf("read the answer: %w", err))
	}
	if resp.StatusCode/100 != 2 {
		return c.fail(fmt.Errorf("%s: %s", resp.Status, errorMessage(body)))
	}
	stdout.Write(body)
	if !bytes.HasSuffix(body, []byte("\n")) {
		fmt.Fprintln(stdout)
	}
	return 0
}

// errorMessage renders the node's error envelope
// {"error":{"code","message","field"}}, or the body as it is.
func errorMessage(body []byte) string {
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error.Message == "" {
		return strings.TrimSpace(string(body))
	}
	e := env.Error
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

const keygenUsage = "-o PREFIX [--force]"

// keygenCommand runs "mlnode keygen": a new ed25519 key pair for signing
// bundles.
func keygenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("keygen", keygenUsage,
		"Makes an ed25519 key pair for signing bundles: PREFIX.key, the private key (PEM PKCS #8,\n"+
			"mode 0600; keep it secret, e.g. in CI's secret store), and PREFIX.pub, the public key\n"+
			"(PEM PKIX) that nodes list as trusted. Prints the key id.", stdout, stderr)
	prefix := c.fs.String("o", "", "write `PREFIX`.key and PREFIX.pub (required)")
	force := c.fs.Bool("force", false, "overwrite existing key files")
	if _, code, ok := c.parse(args); !ok {
		return code
	}
	if *prefix == "" {
		return c.usageError("-o PREFIX is required")
	}
	keyFile, pubFile := *prefix+".key", *prefix+".pub"
	if !*force {
		for _, f := range []string{keyFile, pubFile} {
			if _, err := os.Lstat(f); err == nil {
				return c.fail(fmt.Errorf("%s exists; use --force to overwrite it", f))
			}
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return c.fail(err)
	}
	privPEM, err := bundle.MarshalPrivateKey(priv)
	if err != nil {
		return c.fail(err)
	}
	pubPEM, err := bundle.MarshalPublicKey(pub)
	if err != nil {
		return c.fail(err)
	}
	if err := replaceFile(keyFile, privPEM, 0o600); err != nil {
		return c.fail(err)
	}
	if err := replaceFile(pubFile, pubPEM, 0o644); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(stdout, "key id:      %s\nprivate key: %s (keep it secret)\npublic key:  %s (list it in the nodes' trusted keys)\n",
		bundle.KeyID(pub), keyFile, pubFile)
	return 0
}

// readBundle reads and opens a bundle file within the default limits.
func readBundle(path string) ([]byte, *bundle.Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	b, err := bundle.Open(bytes.NewReader(data), bundle.Limits{})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, b, nil
}

// replaceFile writes data to a temporary file beside path and renames
// it into place, so that path is never half-written (a bundle signed in
// place stays readable if the command is interrupted).
func replaceFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
