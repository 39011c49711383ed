package ingest

import (
	"bytes"
	"io"
)

// Buffer sizes of a stream. It starts small, since most requests are, and
// doubles to streamBuf as the body goes on. A line or array element longer
// than the buffer keeps doubling it, so that a long one costs linear time;
// the caller's body limit bounds it.
const (
	initialBuf = 4 << 10
	streamBuf  = 64 << 10
)

// stream is a window over the body: buf[pos:n] is read but not consumed.
// Unlike bufio.Reader, it hands out views of any length, and unlike
// bufio.Scanner it has no line limit.
type stream struct {
	r    io.Reader
	buf  []byte
	pos  int
	n    int
	eof  bool
	base int64 // body offset of buf[0]

	// Only for error positions, counted as data is discarded.
	track     bool
	lines     int   // newlines before buf[0]
	lineStart int64 // body offset of the start of the line holding buf[0]
}

func newStream(r io.Reader, track bool) *stream {
	return &stream{r: r, buf: make([]byte, initialBuf), track: track}
}

// fill reads more of the body, keeping buf[pos:n]. Its only error is a read
// error, wrapped; at the end of the body it sets eof.
//
// Consumed bytes are dropped only when the free space runs low, and the
// buffer then doubles unless that freed half of it: a reader that hands out
// a few bytes at a time would otherwise make a long line cost quadratic time.
func (st *stream) fill() error {
	if len(st.buf)-st.n < len(st.buf)/4 {
		if st.track {
			done := st.buf[:st.pos]
			st.lines += bytes.Count(done, []byte{'\n'})
			if k := bytes.LastIndexByte(done, '\n'); k >= 0 {
				st.lineStart = st.base + int64(k) + 1
			}
		}
		buf := st.buf
		if len(buf) < streamBuf || st.n-st.pos > len(buf)/2 {
			buf = make([]byte, 2*len(buf))
		}
		st.n = copy(buf, st.buf[st.pos:st.n])
		st.buf = buf
		st.base += int64(st.pos)
		st.pos = 0
	}
	// A reader may return nothing and no error; only a reader that keeps
	// doing so is broken.
	for range 100 {
		m, err := st.r.Read(st.buf[st.n:])
		st.n += m
		if err == io.EOF {
			st.eof = true
			return nil
		}
		if err != nil {
			return readError(err)
		}
		if m > 0 {
			return nil
		}
	}
	return readError(io.ErrNoProgress)
}

// skipBOM drops a UTF-8 byte order mark at the start of the body, which
// spreadsheet exports write and JSON forbids.
func (st *stream) skipBOM() error {
	for st.n-st.pos < 3 && !st.eof {
		if err := st.fill(); err != nil {
			return err
		}
	}
	if bytes.HasPrefix(st.buf[st.pos:st.n], []byte("\xef\xbb\xbf")) {
		st.pos += 3
	}
	return nil
}

// peek skips whitespace and returns the next byte; ok is false at the end
// of the body.
func (st *stream) peek() (c byte, ok bool, err error) {
	for {
		for st.pos < st.n {
			switch c := st.buf[st.pos]; c {
			case ' ', '\t', '\n', '\r':
				st.pos++
			default:
				return c, true, nil
			}
		}
		if st.eof {
			return 0, false, nil
		}
		if err := st.fill(); err != nil {
			return 0, false, err
		}
	}
}

// more reads until the unconsumed data has doubled or the body ends, so
// that parsing a value again each time it turns out to be cut short costs
// linear time in all.
func (st *stream) more() error {
	want := 2*(st.n-st.pos) + 1
	for st.n-st.pos < want && !st.eof {
		if err := st.fill(); err != nil {
			return err
		}
	}
	return nil
}

// syntaxError is the fatal error for malformed JSON at buf[at].
func (st *stream) syntaxError(at int, msg string) error {
	lines, lineStart := st.lines, st.lineStart
	before := st.buf[:at]
	lines += bytes.Count(before, []byte{'\n'})
	if k := bytes.LastIndexByte(before, '\n'); k >= 0 {
		lineStart = st.base + int64(k) + 1
	}
	off := st.base + int64(at)
	return fatal("invalid JSON at line %d, column %d (byte %d): %s", lines+1, off-lineStart+1, off, msg)
}
