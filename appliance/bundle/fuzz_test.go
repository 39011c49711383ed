package bundle_test

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/bundle"
)

// Arbitrary bytes as an archive: Open never panics, answers only typed
// errors (the reader never fails), and what it accepts is within the limits
// and has a digest that does not depend on the archive. When gzipTar is
// set, data is a tar stream that the fuzzer can mutate behind gzip's
// checksums.
func FuzzOpen(f *testing.F) {
	good := goodEntries([]byte(manifestJSON))
	tarOf := func(entries ...entry) []byte {
		var buf bytes.Buffer
		writeTar(f, &buf, entries...)
		return buf.Bytes()
	}
	f.Add(tarGz(f, good...), false)
	f.Add(tarOf(good...), true)
	f.Add(tarOf(append(good, entry{name: "l", typ: tar.TypeSymlink, linkname: "../x"})...), true)
	f.Add(tarOf(append([]entry{{name: "./", typ: tar.TypeDir}, {name: "g", typ: tar.TypeXGlobalHeader, pax: map[string]string{"comment": "x"}}}, good...)...), true)
	f.Add(tarOf(file("manifest.json", []byte(`{"name":"m","abi":"mlnode/v1","module":"m","inputs":["v:f"],"outputs":["y"]}`)), file("m", nil)), true)
	f.Add(tarOf(append(good, entry{name: "caf\xe9", data: "x", pax: map[string]string{"path": "caf\xe9"}})...), true)
	f.Add(tarGz(f), false)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, false)
	f.Add([]byte("not a bundle"), false)
	if built, err := bundle.Build(fuzzDir(f)); err == nil {
		f.Add(built, false)
	}
	lim := bundle.Limits{MaxCompressed: 1 << 20, MaxUncompressed: 1 << 20, MaxFiles: 16, MaxFileSize: 256 << 10}
	f.Fuzz(func(t *testing.T, data []byte, gzipTar bool) {
		if gzipTar {
			data = storedGzip(fixTarChecksums(data))
		}
		b, err := bundle.Open(bytes.NewReader(data), lim)
		if err != nil {
			if appliance.ErrorCode(err) == appliance.EINTERNAL {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		total := int64(len(b.RawManifest) + len(b.Signature))
		for _, data := range b.Files {
			if int64(len(data)) > lim.MaxFileSize {
				t.Fatalf("a file of %d bytes", len(data))
			}
			total += int64(len(data))
		}
		if total > lim.MaxUncompressed || len(b.Files)+2 > lim.MaxFiles {
			t.Fatalf("%d bytes in %d files", total, len(b.Files))
		}
		d := bundle.Digest(b)
		// The same content in another archive has the same digest.
		entries := []entry{file("manifest.json", b.RawManifest)}
		for p, data := range b.Files {
			entries = append(entries, file(p, data))
		}
		again, err := bundle.Open(bytes.NewReader(tarGz(t, entries...)), lim)
		if err != nil {
			t.Fatalf("re-archived bundle refused: %v", err)
		}
		if bundle.Digest(again) != d {
			t.Fatal("the digest changed with the archive")
		}
	})
}

// storedGzip wraps data in a gzip member of stored (uncompressed) deflate
// blocks: cheaper per run than a gzip.Writer, which allocates its tables.
func storedGzip(data []byte) []byte {
	crc, size := crc32.ChecksumIEEE(data), uint32(len(data))
	out := append([]byte{}, gzipHeader...)
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), 0xffff)
		final := byte(0)
		if n == len(data) {
			final = 1
		}
		out = append(out, final, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		out = append(out, data[:n]...)
		data = data[n:]
	}
	return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(out, crc), size)
}

// fixTarChecksums returns data with the checksum of every tar header it
// finds recomputed, so that mutated names, types and sizes get past the
// checksum to the checks behind it.
func fixTarChecksums(data []byte) []byte {
	data = bytes.Clone(data)
	for off := 0; off+512 <= len(data); {
		blk := data[off : off+512]
		if bytes.Count(blk, []byte{0}) == 512 {
			off += 512
			continue
		}
		copy(blk[148:156], "        ")
		sum := 0
		for _, c := range blk {
			sum += int(c)
		}
		copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
		size, err := strconv.ParseInt(strings.Trim(string(blk[124:136]), " \x00"), 8, 64)
		if err != nil || size < 0 || size > int64(len(data)) {
			break
		}
		off += 512 + int(size+511)/512*512
	}
	return data
}

func fuzzDir(f *testing.F) string {
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifestJSON), 0o644)
	for p, data := range moduleFiles() {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), data, 0o644)
	}
	return dir
}

// Arbitrary manifests: ParseManifest never panics and answers typed
// errors; a valid manifest's digest is the same however its JSON is
// written, and its struct survives a JSON round trip.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(manifestJSON))
	f.Add([]byte(`{"name":"m","abi":"mlnode/v1","module":"m.wasm","inputs":["v:f","request:r"],"outputs":["y"],"training":{"params":{"a":[1e300,-0,0.1,{"\u00e9":"\ud83d\ude00"}]}}}`))
	f.Add([]byte(`{"name":"m","abi":"mlnode/v1","module":"m.wasm","inputs":["v:f"],"outputs":["y"],"sample":{"input":{"v:f":1},"output":{"y":2},"tolerance":0}}`))
	f.Add([]byte(`{"name":"m","abi":"mlnode/v1","module":"m.wasm","inputs":["v:f"],"outputs":["y"],"reference":{"y":{"type":"categorical","count":1,"counts":{"<&>":1}}}}`))
	f.Add([]byte(`{"name":"m","name":"n"}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := bundle.ParseManifest(raw)
		if err != nil {
			if appliance.ErrorCode(err) == appliance.EINTERNAL {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		files := map[string][]byte{}
		for i, p := range m.ModulePaths() {
			files[p] = []byte{byte(i)}
		}
		d := bundle.Digest(&bundle.Bundle{Manifest: *m, RawManifest: raw, Files: files})

		// Re-encoded by encoding/json: keys sorted, numbers and strings
		// formatted Go's way, HTML characters escaped; then indented.
		var generic any
		if err := json.Unmarshal(raw, &generic); err != nil {
			t.Fatalf("encoding/json refuses what ParseManifest took: %v", err)
		}
		compact, _ := json.Marshal(generic)
		indented, _ := json.MarshalIndent(generic, "", "\t")
		for _, re := range [][]byte{compact, indented} {
			m2, err := bundle.ParseManifest(re)
			if err != nil {
				t.Fatalf("re-encoded manifest refused: %v\n%s", err, re)
			}
			if d2 := bundle.Digest(&bundle.Bundle{Manifest: *m2, RawManifest: re, Files: files}); d2 != d {
				t.Fatalf("digest changed with the encoding:\n%s\n%s", raw, re)
			}
		}

		// The struct round-trips.
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m3, err := bundle.ParseManifest(out)
		if err != nil {
			t.Fatalf("marshalled manifest refused: %v\n%s", err, out)
		}
		if again, _ := json.Marshal(m3); !bytes.Equal(again, out) {
			t.Fatalf("struct round trip:\n%s\n%s", out, again)
		}
	})
}
