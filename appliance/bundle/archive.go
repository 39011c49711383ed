package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// Fixed names at the root of a bundle.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "signature.ed25519"
)

// maxTrailer bounds the zero padding a tar writer may leave after the
// end-of-archive marker (GNU tar pads to 10 KiB records by default).
const maxTrailer = 1 << 20

// Limits bound what Open reads. A zero field takes its default.
type Limits struct {
	MaxCompressed   int64 // bytes of the .tar.gz; default 64 MiB
	MaxUncompressed int64 // bytes of the tar stream: headers, data, padding; default 256 MiB
	MaxFiles        int   // archive entries, directories included; default 64
	MaxFileSize     int64 // bytes of one file; default 128 MiB
}

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits {
	return Limits{MaxCompressed: 64 << 20, MaxUncompressed: 256 << 20, MaxFiles: 64, MaxFileSize: 128 << 20}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxCompressed <= 0 {
		l.MaxCompressed = d.MaxCompressed
	}
	if l.MaxUncompressed <= 0 {
		l.MaxUncompressed = d.MaxUncompressed
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = d.MaxFileSize
	}
	return l
}

// Bundle is an opened bundle archive.
type Bundle struct {
	Manifest    Manifest          // Modules holds every module's sha256 (claims checked, the rest filled in)
	RawManifest []byte            // manifest.json as it is in the archive: what the digest and signature cover
	Files       map[string][]byte // the modules the manifest names, by path
	Signature   []byte            // signature.ed25519, or nil when unsigned
}

// Open reads a bundle (.tar.gz) within lim and checks it: safe entry names,
// only regular files and directories, no duplicates, a valid manifest, every
// module it names present and matching its claimed sha256, no other files.
// It does not verify the signature (see Verify), only its form.
//
// Archive errors are EINVALID (field "bundle", or the file at fault) or
// ETOOLARGE; manifest errors are EINVALID naming the JSON path. An error
// from r itself is returned wrapped, not as an *appliance.Error.
func Open(r io.Reader, lim Limits) (*Bundle, error) {
	lim = lim.withDefaults()
	src := &sourceReader{r: r}
	compressed := &capReader{r: src, left: lim.MaxCompressed, err: tooLarge("bundle", "the archive is larger than %d bytes", lim.MaxCompressed)}
	br := bufio.NewReader(compressed)
	magic, err := br.Peek(2)
	switch {
	case err != nil && err != io.EOF:
		return nil, archiveError(err, src)
	case len(magic) == 0:
		return nil, appliance.Invalid("bundle", "the archive is empty")
	case !bytes.Equal(magic, []byte{0x1f, 0x8b}):
		return nil, appliance.Invalid("bundle", "not a gzip-compressed tar archive (.tar.gz)")
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, archiveError(err, src)
	}
	tarStream := &capReader{r: zr, left: lim.MaxUncompressed, err: tooLarge("bundle", "the archive holds more than %d bytes uncompressed", lim.MaxUncompressed)}
	files, err := readTar(tar.NewReader(tarStream), lim)
	if err != nil {
		return nil, archiveError(err, src)
	}
	// After the end-of-archive marker: zero padding, then the end of the
	// gzip stream. Anything else would be invisible here and seen by other
	// tools, so it is refused.
	if err := checkTrailer(tarStream); err != nil {
		return nil, archiveError(err, src)
	}
	return newBundle(files)
}

// readTar reads every entry into memory. No buffer grows beyond a size the
// limits allow, whatever the headers claim.
func readTar(tr *tar.Reader, lim Limits) (map[string][]byte, error) {
	files := map[string][]byte{}
	seen := map[string]string{} // see checkUnique
	var total int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, nil
		} else if err != nil {
			return nil, err
		}
		if n >= lim.MaxFiles {
			return nil, tooLarge("bundle", "the archive has more than %d entries", lim.MaxFiles)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			// git archive writes one with the commit id as "comment".
			for k := range hdr.PAXRecords {
				if k != "comment" {
					return nil, appliance.Invalid("bundle", "the archive has a pax global header setting %q", k)
				}
			}
			continue
		}
		name, err := entryName(hdr.Name, hdr.Typeflag == tar.TypeDir)
		if err != nil {
			return nil, err
		}
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return nil, appliance.Invalid("bundle", "%q is a sparse file; only regular files and directories are allowed", name)
			}
		}
		if err := checkUnique(seen, name, hdr.Typeflag == tar.TypeDir); err != nil {
			return nil, err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if hdr.Size != 0 {
				return nil, appliance.Invalid("bundle", "directory %q has a size", name)
			}
			continue
		case tar.TypeReg:
		default:
			return nil, appliance.Invalid("bundle", "%q is a %s; only regular files and directories are allowed", name, typeName(hdr.Typeflag))
		}
		limit := lim.MaxFileSize
		if name == ManifestFile {
			limit = min(limit, MaxManifestSize)
		}
		if hdr.Size > limit {
			return nil, tooLarge(name, "is %d bytes; the limit is %d", hdr.Size, limit)
		}
		if total += hdr.Size; total > lim.MaxUncompressed {
			return nil, tooLarge("bundle", "the files add up to more than %d bytes", lim.MaxUncompressed)
		}
		data, err := readEntry(tr, hdr.Size)
		if err != nil {
			return nil, err
		}
		files[name] = data
	}
}

// entryName checks an entry's name and returns it without the "./" that
// `tar -C dir .` puts in front, and without a directory's trailing slash.
// The root directory itself ("./") is ".".
func entryName(name string, dir bool) (string, error) {
	if dir && (name == "./" || name == ".") {
		return ".", nil
	}
	clean := strings.TrimPrefix(name, "./")
	if dir {
		clean = strings.TrimSuffix(clean, "/")
	}
	if err := validPath(clean); err != nil {
		return "", appliance.Invalid("bundle", "entry %q: the name %v", name, err)
	}
	return clean, nil
}

// checkUnique refuses a second entry with the same path, or the same path
// in another case (they would collide on case-insensitive file systems), and
// a file that is also used as a directory. seen maps lower-cased paths to
// "file", "dir" or "parent" (a directory known only from a path inside it).
func checkUnique(seen map[string]string, name string, dir bool) error {
	if name == "." {
		return nil
	}
	key := strings.ToLower(name)
	switch prev := seen[key]; {
	case prev == "parent" && dir:
	case prev == "parent":
		return appliance.Invalid("bundle", "%q is a file and a directory", name)
	case prev != "":
		return appliance.Invalid("bundle", "%q appears twice in the archive (perhaps in another case)", name)
	}
	seen[key] = "file"
	if dir {
		seen[key] = "dir"
	}
	for p := path.Dir(key); p != "."; p = path.Dir(p) {
		switch seen[p] {
		case "file":
			return appliance.Invalid("bundle", "%q is inside %q, which is a file", name, p)
		case "":
			seen[p] = "parent"
		}
	}
	return nil
}

func readEntry(r io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, 0, min(size, 64<<10))
	for int64(len(buf)) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(size, 2*int64(cap(buf))))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF && int64(len(buf)) < size {
			return nil, io.ErrUnexpectedEOF
		} else if err != nil && err != io.EOF {
			return nil, err
		}
	}
	return buf, nil
}

func checkTrailer(r io.Reader) error {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := r.Read(buf)
		for _, c := range buf[:k] {
			if c != 0 {
				return appliance.Invalid("bundle", "there is data after the end of the tar archive")
			}
		}
		if n += int64(k); n > maxTrailer {
			return appliance.Invalid("bundle", "there are more than %d bytes of padding after the end of the tar archive", maxTrailer)
		}
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "named pipe"
	case tar.TypeGNUSparse:
		return "sparse file"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}

// newBundle checks the files of an archive against its manifest.
func newBundle(files map[string][]byte) (*Bundle, error) {
	raw, ok := files[ManifestFile]
	if !ok {
		return nil, appliance.Invalid("bundle", "there is no %s at the root of the archive", ManifestFile)
	}
	delete(files, ManifestFile)
	m, _, err := parseManifest(raw)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Manifest: *m, RawManifest: raw, Files: files}
	if sig, ok := files[SignatureFile]; ok {
		delete(files, SignatureFile)
		if _, err := ParseSignature(sig); err != nil {
			return nil, err
		}
		b.Signature = sig
	}
	digests := map[string]string{}
	for i, p := range m.ModulePaths() {
		field := "module"
		if i > 0 {
			field = indexPath("transforms", i-1)
		}
		data, ok := files[p]
		if !ok {
			return nil, appliance.Invalid(field, "%q is not in the archive", p)
		}
		got := appliance.ModuleDigest(data)
		if claim, ok := m.Modules[p]; ok && got != claim {
			return nil, appliance.Invalid(keyPath("modules", p), "%s: the manifest claims sha256 %s, the file's is %s", p, claim, got)
		}
		digests[p] = got
	}
	b.Manifest.Modules = digests
	for _, p := range sortedKeys(files) {
		if !slices.Contains(m.ModulePaths(), p) {
			return nil, appliance.Invalid("bundle", "%q is not named by the manifest: a bundle holds %s, %s and the modules its manifest names, nothing else", p, ManifestFile, SignatureFile)
		}
	}
	return b, nil
}

// archiveError turns what the gzip and tar readers say into EINVALID,
// keeping limit errors and errors of the caller's reader as they are.
func archiveError(err error, src *sourceReader) error {
	var ae *appliance.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case src.err != nil:
		return fmt.Errorf("read bundle: %w", src.err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return appliance.Invalid("bundle", "the archive is truncated")
	}
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, gzip.ErrHeader):
		return appliance.Invalid("bundle", "not a gzip-compressed tar archive (.tar.gz)")
	case errors.Is(err, gzip.ErrChecksum), errors.As(err, &corrupt):
		return appliance.Invalid("bundle", "the gzip stream is corrupt: %v", err)
	}
	return appliance.Invalid("bundle", "bad tar archive: %v", err)
}

func tooLarge(field, format string, args ...any) error {
	return &appliance.Error{Code: appliance.ETOOLARGE, Field: field, Message: fmt.Sprintf(format, args...)}
}

// capReader fails with err once more than left bytes were read: a limit
// that is an error, unlike io.LimitReader's silent EOF.
type capReader struct {
	r    io.Reader
	left int64
	err  error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1] // one byte more than allowed tells "over" from "exactly at"
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, c.err
	}
	return n, err
}

// sourceReader remembers an error of the caller's reader, so that it is not
// reported as a corrupt archive.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// Build makes a bundle from a directory: DIR/manifest.json and the modules
// it names (paths relative to DIR, which they may not leave). It fills in
// the manifest's "modules" digests (a claim that differs from the file is an
// error) and writes the archive deterministically: the same directory gives
// the same bytes.
func Build(dir string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	raw, err := readLimited(root, ManifestFile, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	m, tree, err := parseManifest(raw)
	if err != nil {
		return nil, err
	}
	lim := DefaultLimits()
	files := map[string][]byte{}
	digests := map[string]string{}
	for _, p := range m.ModulePaths() {
		data, err := readLimited(root, p, lim.MaxFileSize)
		if err != nil {
			return nil, err
		}
		d := appliance.ModuleDigest(data)
		if claim, ok := m.Modules[p]; ok && claim != d {
			return nil, appliance.Invalid(keyPath("modules", p), "%s: the manifest claims sha256 %s, the file's is %s", p, claim, d)
		}
		files[p], digests[p] = data, d
	}
	tree.set("modules", stringMap(digests), "module")
	manifest := append(appendIndented(nil, tree, ""), '\n')
	out, err := writeArchive(manifest, files, nil)
	if err != nil {
		return nil, err
	}
	// What Build writes must open: the same checks, the default limits.
	if _, err := Open(bytes.NewReader(out), lim); err != nil {
		return nil, err
	}
	return out, nil
}

func readLimited(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(name, "is larger than %d bytes", limit)
	}
	return data, nil
}

// WithSignature returns the bundle re-written with sig (the content of
// signature.ed25519, as Sign makes it) added or replaced. The manifest is
// kept byte for byte, so the digest does not change. sig must be a valid
// signature of this bundle by the key it names.
func WithSignature(bundle []byte, sig []byte) ([]byte, error) {
	b, err := Open(bytes.NewReader(bundle), Limits{})
	if err != nil {
		return nil, err
	}
	s, err := ParseSignature(sig)
	if err != nil {
		return nil, err
	}
	if err := Verify(b, sig, s.PublicKey); err != nil {
		return nil, err
	}
	return writeArchive(b.RawManifest, b.Files, sig)
}

// writeArchive writes manifest.json, the files in path order and the
// signature as a .tar.gz whose bytes depend only on its content (and the
// Go version's deflate): fixed times, owners and modes, no directories.
func writeArchive(manifest []byte, files map[string][]byte, sig []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf) // zero header: no name, no time
	tw := tar.NewWriter(zw)
	add := func(name string, data []byte) error {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(ManifestFile, manifest); err != nil {
		return nil, err
	}
	for _, p := range sortedKeys(files) {
		if err := add(p, files[p]); err != nil {
			return nil, err
		}
	}
	if sig != nil {
		if err := add(SignatureFile, sig); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
