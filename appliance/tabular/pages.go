package tabular

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"

	"github.com/mlnode/mlnode/appliance"
)

// parquet-go sizes its buffers by what page headers claim (sizes, value
// counts), and its decompressors grow their output until the stream ends:
// a few corrupt bytes can ask for gigabytes. Before a row group is read,
// pageGuard walks every page header of the columns to read, holds the
// claims to the limits below, and checks that each compressed page expands
// to no more than its header says, decompressing into nothing where the
// codec has no cheaper check. It costs a second decompression of gzip,
// brotli and zstd pages; snappy pages declare their length up front.
const (
	maxPageBytes   = 128 << 20 // one page, compressed or not
	maxPageValues  = 1 << 25   // values of one page
	maxHeaderBytes = 1 << 20   // one page header (statistics make it grow)
	maxGroupBytes  = 1 << 30   // estimated memory to read one row group
	// Bytes of memory per value of a page and of a dictionary, for the
	// estimate: levels, offsets and the value itself.
	pageValueCost = 16
	dictValueCost = 32
)

// Page types.
const (
	pageData       = 0
	pageIndex      = 1
	pageDictionary = 2
	pageDataV2     = 3
)

type pageGuard struct {
	zstd    *zstd.Decoder
	gzip    *gzip.Reader
	brotli  *brotli.Reader
	out     []byte
	buf     []byte
	srcRead bytes.Reader
}

func (pg *pageGuard) close() {
	if pg.zstd != nil {
		pg.zstd.Close()
		pg.zstd = nil
	}
}

// pageHeader is what the guard needs of a Thrift PageHeader.
type pageHeader struct {
	typ, uncompressed, compressed int64
	numValues                     int64
	defLen, repLen                int64
	v2Compressed                  bool
}

func (h *pageHeader) set(path []int16, v int64) {
	switch {
	case len(path) == 1 && path[0] == 1:
		h.typ = v
	case len(path) == 1 && path[0] == 2:
		h.uncompressed = v
	case len(path) == 1 && path[0] == 3:
		h.compressed = v
	case len(path) == 2 && path[1] == 1 && (path[0] == 5 || path[0] == 7 || path[0] == 8):
		h.numValues = v
	case len(path) == 2 && path[0] == 8 && path[1] == 5:
		h.defLen = v
	case len(path) == 2 && path[0] == 8 && path[1] == 6:
		h.repLen = v
	case len(path) == 2 && path[0] == 8 && path[1] == 7:
		h.v2Compressed = v != 0
	}
}

// check walks the pages of the leaf columns leaves in row group g; names
// are their columns' names, for messages.
func (pg *pageGuard) check(p *ParquetFile, g int, leaves []int, names []string) error {
	total := int64(0)
	for i, leaf := range leaves {
		cc := &p.meta.RowGroups[g].Columns[leaf]
		cost, err := pg.checkChunk(p, &cc.MetaData, names[i])
		if err != nil {
			return err
		}
		if total += cost; total > maxGroupBytes {
			return appliance.Invalid("body", "row group %d of the Parquet file needs more than %d MiB of memory to read: write smaller pages or row groups",
				g, maxGroupBytes>>20)
		}
	}
	return nil
}

// checkChunk walks the pages of one column chunk, as parquet-go will read
// them, and returns an estimate of the memory they take to read.
func (pg *pageGuard) checkChunk(p *ParquetFile, md *format.ColumnMetaData, name string) (int64, error) {
	pos := md.DataPageOffset
	if md.DictionaryPageOffset != 0 {
		pos = md.DictionaryPageOffset
	}
	end := pos + md.TotalCompressedSize // checkChunks kept it within the file
	var dictCost, pageCost int64
	for pos < end {
		h, hlen, err := pg.header(p, pos, end, name)
		if err != nil {
			return 0, err
		}
		pos += hlen
		if err := checkHeader(p, h, end-pos, name); err != nil {
			return 0, err
		}
		switch h.typ {
		case pageDictionary:
			dictCost += h.uncompressed + h.compressed + dictValueCost*h.numValues
			err = pg.checkCodec(p, md.Codec, pos, h.compressed, h.uncompressed, name)
		case pageData:
			pageCost = max(pageCost, h.uncompressed+h.compressed+pageValueCost*h.numValues)
			err = pg.checkCodec(p, md.Codec, pos, h.compressed, h.uncompressed, name)
		case pageDataV2:
			pageCost = max(pageCost, h.uncompressed+h.compressed+pageValueCost*h.numValues)
			if h.v2Compressed {
				levels := h.defLen + h.repLen
				err = pg.checkCodec(p, md.Codec, pos+levels, h.compressed-levels, h.uncompressed-levels, name)
			}
		}
		if err != nil {
			return 0, err
		}
		pos += h.compressed
	}
	return dictCost + pageCost, nil
}

// header reads the page header at pos.
func (pg *pageGuard) header(p *ParquetFile, pos, end int64, name string) (pageHeader, int64, error) {
	window := int64(512)
	for {
		n := min(window, end-pos)
		if int64(cap(pg.buf)) < n {
			pg.buf = make([]byte, n)
		}
		b := pg.buf[:n]
		if _, err := p.r.ReadAt(b, pos); err != nil && err != io.EOF {
			return pageHeader{}, 0, fmt.Errorf("read parquet: %w", err)
		}
		h := pageHeader{v2Compressed: true} // the format's default
		w := thriftWalker{b: b, maxElems: 1 << 16, maxStructs: 1 << 10, onInt: h.set}
		err := w.walkStruct(0)
		switch {
		case err == nil:
			return h, int64(w.i), nil
		case errors.Is(err, errThriftShort) && n < end-pos && window < maxHeaderBytes:
			window *= 8
		case errors.Is(err, errThriftShort):
			return pageHeader{}, 0, p.r.corrupt("a page header of column %q is cut short", name)
		default:
			return pageHeader{}, 0, p.r.corrupt("a page header of column %q: %v", name, err)
		}
	}
}

func checkHeader(p *ParquetFile, h pageHeader, left int64, name string) error {
	switch {
	case h.typ < pageData || h.typ > pageDataV2:
		return p.r.corrupt("column %q has a page of unknown type %d", name, h.typ)
	case h.compressed < 0 || h.uncompressed < 0 || h.numValues < 0 || h.defLen < 0 || h.repLen < 0:
		return p.r.corrupt("column %q has a page header with negative sizes", name)
	case h.compressed > left:
		return p.r.corrupt("a page of column %q runs past the end of its column chunk", name)
	case h.typ == pageDataV2 && (h.defLen+h.repLen > h.compressed || h.defLen+h.repLen > h.uncompressed):
		return p.r.corrupt("a page of column %q has levels longer than the page", name)
	case h.uncompressed > maxPageBytes || h.compressed > maxPageBytes:
		return appliance.Invalid("body", "a page of column %q is %d bytes, over the limit of %d MiB: write smaller pages",
			name, max(h.uncompressed, h.compressed), maxPageBytes>>20)
	case h.numValues > maxPageValues:
		return appliance.Invalid("body", "a page of column %q has %d values, over the limit of %d: write smaller pages",
			name, h.numValues, maxPageValues)
	}
	return nil
}

// checkCodec checks that the n compressed bytes at pos expand to at most
// want bytes.
func (pg *pageGuard) checkCodec(p *ParquetFile, codec format.CompressionCodec, pos, n, want int64, name string) error {
	if codec == format.Uncompressed {
		return nil
	}
	tooBig := func() error {
		return p.r.corrupt("a page of column %q decompresses to more than its header says", name)
	}
	bad := func(err error) error {
		return p.r.corrupt("a page of column %q does not decompress: %v", name, err)
	}
	if codec == format.Snappy {
		var head [10]byte
		k, err := p.r.ReadAt(head[:min(n, int64(len(head)))], pos)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read parquet: %w", err)
		}
		got, err := snappy.DecodedLen(head[:k])
		if err != nil {
			return bad(err)
		}
		if int64(got) > want {
			return tooBig()
		}
		return nil
	}
	if int64(cap(pg.buf)) < n {
		pg.buf = make([]byte, n)
	}
	src := pg.buf[:n]
	if _, err := p.r.ReadAt(src, pos); err != nil && err != io.EOF {
		return fmt.Errorf("read parquet: %w", err)
	}
	defer func() {
		// Keep no page-sized buffer past the check.
		if cap(pg.buf) > 1<<20 {
			pg.buf = nil
		}
		if cap(pg.out) > 1<<20 {
			pg.out = nil
		}
	}()
	var got int64
	switch codec {
	case format.Gzip, format.Brotli:
		pg.srcRead.Reset(src)
		var r io.Reader
		var err error
		if codec == format.Gzip {
			if pg.gzip == nil {
				pg.gzip, err = gzip.NewReader(&pg.srcRead)
			} else {
				err = pg.gzip.Reset(&pg.srcRead)
			}
			r = pg.gzip
		} else {
			if pg.brotli == nil {
				pg.brotli = brotli.NewReader(&pg.srcRead)
			} else {
				err = pg.brotli.Reset(&pg.srcRead)
			}
			r = pg.brotli
		}
		if err != nil {
			return bad(err)
		}
		if got, err = io.Copy(io.Discard, io.LimitReader(r, want+1)); err != nil {
			return bad(err)
		}
	case format.Zstd:
		if pg.zstd == nil {
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxMemory(maxPageBytes), zstd.WithDecoderMaxWindow(maxPageBytes))
			if err != nil {
				return fmt.Errorf("new zstd decoder: %w", err)
			}
			pg.zstd = d
		}
		out, err := pg.zstd.DecodeAll(src, pg.out[:0])
		if err != nil {
			return bad(err)
		}
		pg.out = out
		got = int64(len(out))
	default:
		return fmt.Errorf("BUG: codec %s passed checkChunks", codec)
	}
	if got > want {
		return tooBig()
	}
	return nil
}
