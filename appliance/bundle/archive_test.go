package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/bundle"
)

func TestOpen(t *testing.T) {
	b := open(t, tarGz(t, goodEntries([]byte(manifestJSON))...))
	if b.Manifest.Name != "churn-v2" || string(b.RawManifest) != manifestJSON || b.Signature != nil {
		t.Errorf("unexpected bundle: %+v", b.Manifest)
	}
	if len(b.Files) != 2 || !bytes.Equal(b.Files["model.wasm"], wasm) {
		t.Errorf("files: %v", b.Files)
	}
	// The manifest claimed no digests: Open fills them in.
	if len(b.Manifest.Modules) != 2 || b.Manifest.Modules["model.wasm"] != appliance.ModuleDigest(wasm) {
		t.Errorf("modules: %v", b.Manifest.Modules)
	}
}

// What `tar -czf b.tar.gz -C dir .` writes: "./" names and directory
// entries, in directory order.
func TestOpen_TarOfDirectory(t *testing.T) {
	archive := tarGz(t,
		entry{name: "./", typ: tar.TypeDir},
		entry{name: "./transforms/", typ: tar.TypeDir},
		file("./transforms/bucket.wasm", moduleFiles()["transforms/bucket.wasm"]),
		file("./model.wasm", wasm),
		file("./manifest.json", []byte(manifestJSON)),
	)
	b := open(t, archive)
	if _, ok := b.Files["transforms/bucket.wasm"]; !ok {
		t.Errorf("files: %v", b.Files)
	}
}

// git archive writes a pax global header with the commit id.
func TestOpen_GitArchiveCommentHeader(t *testing.T) {
	entries := append([]entry{{name: "pax_global_header", typ: tar.TypeXGlobalHeader, pax: map[string]string{"comment": "4f2a9c1"}}},
		goodEntries([]byte(manifestJSON))...)
	open(t, tarGz(t, entries...))
}

// A gzip file may be several members one after the other (RFC 1952 2.2);
// they read as one stream.
func TestOpen_MultiMemberGzip(t *testing.T) {
	var tarBuf bytes.Buffer
	writeTar(t, &tarBuf, goodEntries([]byte(manifestJSON))...)
	var out bytes.Buffer
	half := tarBuf.Len() / 2
	for _, part := range [][]byte{tarBuf.Bytes()[:half], tarBuf.Bytes()[half:]} {
		zw := gzip.NewWriter(&out)
		zw.Write(part)
		zw.Close()
	}
	open(t, out.Bytes())
}

func TestOpen_Refuses(t *testing.T) {
	good := goodEntries([]byte(manifestJSON))
	with := func(extra ...entry) []entry { return append(append([]entry{}, good...), extra...) }
	badClaim := withManifest(t, func(m map[string]any) {
		m["modules"] = map[string]any{"model.wasm": strings.Repeat("0", 64)}
	})
	tests := []struct {
		name    string
		entries []entry
		code    string
		field   string
		msg     string
	}{
		{"path traversal", with(file("../x", wasm)), appliance.EINVALID, "bundle", `"../x": the name has a '..' component`},
		{"traversal inside", with(file("a/../../x", wasm)), appliance.EINVALID, "bundle", "'..' component"},
		{"absolute path", with(file("/etc/passwd", wasm)), appliance.EINVALID, "bundle", "absolute"},
		{"backslash", with(file(`..\x`, wasm)), appliance.EINVALID, "bundle", "backslash"},
		{"control character", with(file("a\x1bb", wasm)), appliance.EINVALID, "bundle", "control character"},
		{"not UTF-8", with(entry{name: "caf\xe9", data: "x", pax: map[string]string{"path": "caf\xe9"}}), appliance.EINVALID, "bundle", "UTF-8"},
		{"empty component", with(file("a//b", wasm)), appliance.EINVALID, "bundle", "empty component"},
		{"symlink", with(entry{name: "link.wasm", typ: tar.TypeSymlink, linkname: "/etc/passwd"}), appliance.EINVALID, "bundle", `"link.wasm" is a symbolic link`},
		{"symlink as the module", []entry{good[0], {name: "model.wasm", typ: tar.TypeSymlink, linkname: "../../x"}, good[2]}, appliance.EINVALID, "bundle", "symbolic link"},
		{"hard link", with(entry{name: "copy.wasm", typ: tar.TypeLink, linkname: "model.wasm"}), appliance.EINVALID, "bundle", "hard link"},
		{"device", with(entry{name: "dev", typ: tar.TypeChar}), appliance.EINVALID, "bundle", "device"},
		{"fifo", with(entry{name: "fifo", typ: tar.TypeFifo}), appliance.EINVALID, "bundle", "named pipe"},
		{"duplicate file", with(file("model.wasm", wasm)), appliance.EINVALID, "bundle", "appears twice"},
		{"duplicate in another case", with(file("Model.wasm", wasm)), appliance.EINVALID, "bundle", "another case"},
		{"duplicate manifest", with(file("./manifest.json", []byte(manifestJSON))), appliance.EINVALID, "bundle", "appears twice"},
		{"file used as a directory", with(file("model.wasm/x", wasm)), appliance.EINVALID, "bundle", "which is a file"},
		{"directory named like a file", with(entry{name: "model.wasm/", typ: tar.TypeDir}), appliance.EINVALID, "bundle", "appears twice"},
		{"pax global header setting a path", append([]entry{{name: "g", typ: tar.TypeXGlobalHeader, pax: map[string]string{"path": "evil"}}}, good...), appliance.EINVALID, "bundle", "pax global header"},
		{"no manifest", good[1:], appliance.EINVALID, "bundle", "no manifest.json"},
		{"manifest in a directory", []entry{file("churn/manifest.json", []byte(manifestJSON))}, appliance.EINVALID, "bundle", "no manifest.json"},
		{"missing module", []entry{good[0], good[2]}, appliance.EINVALID, "module", `"model.wasm" is not in the archive`},
		{"missing transform", good[:2], appliance.EINVALID, "transforms[0]", "not in the archive"},
		{"module digest mismatch", []entry{file("manifest.json", badClaim), good[1], good[2]}, appliance.EINVALID, `modules["model.wasm"]`,
			"model.wasm: the manifest claims sha256 " + strings.Repeat("0", 64) + ", the file's is " + appliance.ModuleDigest(wasm)},
		{"extra file", with(file("README.md", []byte("hi"))), appliance.EINVALID, "bundle", `"README.md" is not named by the manifest`},
		{"bad manifest", []entry{file("manifest.json", []byte(`{"name":"x"}`)), good[1]}, appliance.EINVALID, "abi", "not a supported ABI"},
		{"signature not JSON", with(file("signature.ed25519", []byte("xx"))), appliance.EINVALID, "signature.ed25519", ""},
		{"signature too short", with(file("signature.ed25519", []byte(`{"public_key":"AAAA","signature":"AAAA"}`))), appliance.EINVALID, "signature.ed25519", "public_key is 3 bytes"},
		{"too many files", func() []entry {
			es := append([]entry{}, good...)
			for i := range 70 {
				es = append(es, entry{name: "d" + strings.Repeat("x", i) + "/", typ: tar.TypeDir})
			}
			return es
		}(), appliance.ETOOLARGE, "bundle", "more than 64 entries"},
		{"empty archive", nil, appliance.EINVALID, "bundle", "no manifest.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bundle.Open(bytes.NewReader(tarGz(t, tt.entries...)), bundle.Limits{})
			checkErr(t, err, tt.code, tt.field, tt.msg)
		})
	}
}

func TestOpen_Limits(t *testing.T) {
	archive := tarGz(t, goodEntries([]byte(manifestJSON))...)
	tests := []struct {
		name  string
		lim   bundle.Limits
		field string
		msg   string
	}{
		{"compressed", bundle.Limits{MaxCompressed: int64(len(archive)) - 1}, "bundle", "larger than"},
		{"uncompressed", bundle.Limits{MaxUncompressed: 2048}, "bundle", "uncompressed"},
		{"file size", bundle.Limits{MaxFileSize: 8}, "manifest.json", "limit is 8"},
		{"files", bundle.Limits{MaxFiles: 2}, "bundle", "more than 2 entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bundle.Open(bytes.NewReader(archive), tt.lim)
			checkErr(t, err, appliance.ETOOLARGE, tt.field, tt.msg)
		})
	}
	// Exactly at the compressed limit is fine.
	if _, err := bundle.Open(bytes.NewReader(archive), bundle.Limits{MaxCompressed: int64(len(archive))}); err != nil {
		t.Errorf("at the limit: %v", err)
	}
}

func TestOpen_Corrupt(t *testing.T) {
	archive := tarGz(t, goodEntries([]byte(manifestJSON))...)
	var tarOnly bytes.Buffer
	writeTar(t, &tarOnly, goodEntries([]byte(manifestJSON))...)
	afterEnd := func() []byte { // a second archive after the end marker
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(tarOnly.Bytes())
		writeTar(t, zw, file("evil.wasm", wasm))
		zw.Close()
		return buf.Bytes()
	}()
	flipped := bytes.Clone(archive)
	flipped[len(flipped)-6] ^= 0xff // the CRC-32 in the trailer
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"not gzip", tarOnly.Bytes(), "not a gzip-compressed tar"},
		{"empty", nil, "the archive is empty"},
		{"short", []byte("hi"), "not a gzip-compressed tar"},
		{"truncated", archive[:len(archive)/2], "truncated"},
		{"bad checksum", flipped, "corrupt"},
		{"garbage after the gzip stream", append(bytes.Clone(archive), "garbage!!!!!"...), "not a gzip-compressed tar"},
		{"archive after the end marker", afterEnd, "data after the end of the tar archive"},
		{"gzip of text", func() []byte {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(bytes.Repeat([]byte("hello "), 200))
			zw.Close()
			return buf.Bytes()
		}(), "bad tar archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bundle.Open(bytes.NewReader(tt.in), bundle.Limits{})
			checkErr(t, err, appliance.EINVALID, "bundle", tt.msg)
		})
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// An error of the caller's reader (a dropped connection) is not the
// uploader's fault: it is returned as it is, not as EINVALID.
func TestOpen_ReaderError(t *testing.T) {
	boom := errors.New("connection reset")
	archive := tarGz(t, goodEntries([]byte(manifestJSON))...)
	r := io.MultiReader(bytes.NewReader(archive[:100]), failingReader{boom})
	_, err := bundle.Open(r, bundle.Limits{})
	if !errors.Is(err, boom) || appliance.ErrorCode(err) != appliance.EINTERNAL {
		t.Errorf("got %v", err)
	}
}

func TestBuild_Deterministic(t *testing.T) {
	dir := buildDir(t, []byte(manifestJSON), moduleFiles())
	a, err := bundle.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Different times and modes on disk change nothing.
	os.Chmod(filepath.Join(dir, "model.wasm"), 0o600)
	os.Chtimes(filepath.Join(dir, "model.wasm"), time.Unix(1e9, 0), time.Unix(1e9, 0))
	b, err := bundle.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same directory differ")
	}
	// Built elsewhere, the same content gives the same bytes.
	c, err := bundle.Build(buildDir(t, []byte(manifestJSON), moduleFiles()))
	if err != nil || !bytes.Equal(a, c) {
		t.Fatalf("a build in another directory differs: %v", err)
	}

	opened := open(t, a)
	want := map[string]string{}
	for p, data := range moduleFiles() {
		want[p] = appliance.ModuleDigest(data)
	}
	if len(opened.Manifest.Modules) != 2 || opened.Manifest.Modules["model.wasm"] != want["model.wasm"] ||
		opened.Manifest.Modules["transforms/bucket.wasm"] != want["transforms/bucket.wasm"] {
		t.Errorf("modules = %v, want %v", opened.Manifest.Modules, want)
	}
	// The archive: manifest first, then modules in order, fixed metadata.
	zr, _ := gzip.NewReader(bytes.NewReader(a))
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("gzip header has a time or a name: %v %q", zr.ModTime, zr.Name)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.ModTime.Unix() != 0 || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Mode != 0o644 || hdr.Uname != "" {
			t.Errorf("%s: metadata %v %d %d %o %q", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Mode, hdr.Uname)
		}
	}
	if strings.Join(names, " ") != "manifest.json model.wasm transforms/bucket.wasm" {
		t.Errorf("entries: %v", names)
	}
}

func TestBuild_KeepsManifestReadable(t *testing.T) {
	a, err := bundle.Build(buildDir(t, []byte(manifestJSON), moduleFiles()))
	if err != nil {
		t.Fatal(err)
	}
	raw := string(open(t, a).RawManifest)
	// Document order, the modules after the module, literals as written.
	for _, want := range []string{
		"{\n  \"name\": \"churn-v2\",\n  \"abi\": \"mlnode/v1\",\n  \"module\": \"model.wasm\",\n  \"modules\": {\n    \"model.wasm\": \"",
		`"edges": [0, 1, 5, 100]`, `"C": 1.0`, `"tolerance": 1e-6`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("built manifest lacks %q:\n%s", want, raw)
		}
	}
}

func TestBuild_Refuses(t *testing.T) {
	t.Run("claim differs", func(t *testing.T) {
		raw := withManifest(t, func(m map[string]any) {
			m["modules"] = map[string]any{"model.wasm": strings.Repeat("0", 64)}
		})
		_, err := bundle.Build(buildDir(t, raw, moduleFiles()))
		checkErr(t, err, appliance.EINVALID, `modules["model.wasm"]`, "the manifest claims")
	})
	t.Run("missing module", func(t *testing.T) {
		_, err := bundle.Build(buildDir(t, []byte(manifestJSON), map[string][]byte{"model.wasm": wasm}))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("bad manifest", func(t *testing.T) {
		_, err := bundle.Build(buildDir(t, []byte(`{"name":"x","abi":"mlnode/v1"}`), nil))
		checkErr(t, err, appliance.EINVALID, "module", "required")
	})
	t.Run("symlink out of the directory", func(t *testing.T) {
		outside := filepath.Join(t.TempDir(), "secret.wasm")
		os.WriteFile(outside, wasm, 0o644)
		dir := buildDir(t, []byte(manifestJSON), map[string][]byte{"transforms/bucket.wasm": wasm})
		if err := os.Symlink(outside, filepath.Join(dir, "model.wasm")); err != nil {
			t.Skip(err)
		}
		if _, err := bundle.Build(dir); err == nil || !strings.Contains(err.Error(), "escapes") && !strings.Contains(err.Error(), "outside") {
			t.Errorf("got %v", err)
		}
	})
}

// A bundle written by hand, without "modules", in another order and layout,
// has the same identity as the one Build makes of the same content.
func TestOpen_HandWrittenDigestsLikeBuild(t *testing.T) {
	built, err := bundle.Build(buildDir(t, []byte(manifestJSON), moduleFiles()))
	if err != nil {
		t.Fatal(err)
	}
	// Compact, keys in another order, numbers written differently.
	hand := `{"outputs":["score","label"],"inputs":["user_stats:clicks","user_stats@v2:age","request:basket_size"],` +
		`"abi":"mlnode/v1","name":"churn-v2","module":"model.wasm","transforms":["transforms/bucket.wasm"],` +
		`"description":"Churn propensity, logistic regression","framework":"scikit-learn 1.5","metrics":{"logloss":42e-2,"auc":0.810},` +
		`"training":{"params":{"penalty":"l2","classes":[0,1],"C":1},"trained_at":"2024-05-01T12:00:00Z","code_ref":"git:4f2a9c1","dataset":"s3://lake/churn/2024-05"},` +
		`"defaults":{"request:basket_size":0.0},"reference":{"label":{"counts":{"stay":5,"churn":2},"count":7,"type":"categorical"},` +
		`"user_stats:clicks":{"type":"numeric","count":10,"mean":2.50,"std":1.2,"edges":[0,1,5,1E2],"counts":[4,5,1]}},` +
		`"sample":{"input":[3,41,2],"output":[0.73,1],"tolerance":0.000001},"limits":{"timeout_ms":50,"memory_pages":32}}`
	handArchive := tarGz(t,
		entry{name: "./", typ: tar.TypeDir},
		file("./model.wasm", wasm),
		entry{name: "./transforms/", typ: tar.TypeDir},
		file("./transforms/bucket.wasm", moduleFiles()["transforms/bucket.wasm"]),
		file("./manifest.json", []byte(hand)),
	)
	a, b := open(t, built), open(t, handArchive)
	if da, db := bundle.Digest(a), bundle.Digest(b); da != db {
		ca, _ := bundle.Canonical(a)
		cb, _ := bundle.Canonical(b)
		t.Errorf("digests differ: %s %s\n%s\n%s", da, db, ca, cb)
	}
	// A different module is a different version.
	changed := tarGz(t, file("manifest.json", []byte(hand)), file("model.wasm", append(bytes.Clone(wasm), 1)),
		file("transforms/bucket.wasm", moduleFiles()["transforms/bucket.wasm"]))
	if bundle.Digest(open(t, changed)) == bundle.Digest(a) {
		t.Error("a different module gives the same digest")
	}
}
