package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/bundle"
)

// deflated compresses data into deflate blocks that refer to nothing before
// them and end byte-aligned, without a final block: pieces made this way
// can be concatenated into one deflate stream. A piece of zeros may repeat.
func deflated(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarHeader(t testing.TB, name string, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bomb streams a gzip file from pieces of deflate data made on demand,
// never holding more than one piece: it can stand for a file of any size.
type bomb struct {
	next func() []byte // the next piece; nil at the end
	cur  []byte
	sent int64
}

// gzipHeader is a gzip member header: deflate, no flags, no time, unknown OS.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

func (b *bomb) Read(p []byte) (int, error) {
	for len(b.cur) == 0 {
		if b.cur = b.next(); b.cur == nil {
			return 0, io.EOF
		}
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	b.sent += int64(n)
	return n, nil
}

// pieces returns a next func serving the given pieces in order.
func pieces(ps ...func() []byte) func() []byte {
	return func() []byte {
		for len(ps) > 0 {
			if p := ps[0](); p != nil {
				return p
			}
			ps = ps[1:]
		}
		return nil
	}
}

func once(b []byte) func() []byte {
	done := false
	return func() []byte {
		if done {
			return nil
		}
		done = true
		return b
	}
}

func repeat(b []byte, n int) func() []byte {
	return func() []byte {
		if n == 0 {
			return nil
		}
		n--
		return b
	}
}

// A gzip bomb — about 10 MB that would expand to 10 GiB — is refused
// early, reading a small part of it, with bounded memory, in any shape.
func TestOpen_GzipBomb(t *testing.T) {
	const MiB = 1 << 20
	zeros := deflated(t, make([]byte, MiB)) // about 1 KB
	const chunks = 10 << 10                 // 10 GiB of zeros
	var small bytes.Buffer
	writeTar(t, &small, goodEntries([]byte(manifestJSON))...)

	tests := []struct {
		name     string
		next     func() []byte
		lim      bundle.Limits
		code     string
		field    string
		msg      string
		maxAlloc uint64
	}{
		{
			name: "one file of 10 GiB",
			next: pieces(once(gzipHeader), once(deflated(t, tarHeader(t, "model.wasm", chunks*MiB))), repeat(zeros, chunks)),
			code: appliance.ETOOLARGE, field: "model.wasm", msg: "the limit is 134217728", maxAlloc: 4 * MiB,
		},
		{
			name: "10 GiB of zeros after a small bundle",
			next: pieces(once(gzipHeader), once(deflated(t, small.Bytes())), repeat(zeros, chunks)),
			code: appliance.EINVALID, field: "bundle", msg: "padding after the end", maxAlloc: 4 * MiB,
		},
		{
			name: "10 GiB of zeros and no tar at all",
			next: pieces(once(gzipHeader), repeat(zeros, chunks)),
			code: appliance.EINVALID, field: "bundle", msg: "padding after the end", maxAlloc: 4 * MiB,
		},
		{
			// Every file within the per-file limit: the total stops it.
			name: "3400 files of 3 MiB",
			next: func() func() []byte {
				i := 0
				return pieces(once(gzipHeader), func() []byte {
					if i == 3400*4 {
						return nil
					}
					i++
					if i%4 == 1 {
						return deflated(t, tarHeader(t, fmt.Sprintf("f%05d.wasm", i/4), 3*MiB))
					}
					return zeros
				})
			}(),
			lim:  bundle.Limits{MaxUncompressed: 16 * MiB, MaxFileSize: 4 * MiB, MaxFiles: 1 << 20},
			code: appliance.ETOOLARGE, field: "bundle", msg: "more than 16777216 bytes", maxAlloc: 48 * MiB,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &bomb{next: tt.next}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := bundle.Open(src, tt.lim)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			checkErr(t, err, tt.code, tt.field, tt.msg)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("refused after reading %d compressed bytes in %v, allocating %d bytes: %v", src.sent, elapsed, alloc, err)
			if alloc > tt.maxAlloc {
				t.Errorf("allocated %d bytes, more than %d", alloc, tt.maxAlloc)
			}
			if src.sent > 1*MiB {
				t.Errorf("read %d compressed bytes of about %d", src.sent, int64(len(zeros))*chunks)
			}
			if elapsed > 10*time.Second {
				t.Errorf("took %v", elapsed)
			}
		})
	}
}
