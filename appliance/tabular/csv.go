package tabular

import (
	"fmt"
	"io"

	"github.com/mlnode/mlnode/appliance"
)

// csvWriter writes a header line and one record per row, quoted as RFC 4180
// says, lines ending in "\n" as encoding/csv and most tools write them. A
// null is an empty cell and an empty string a quoted one (""), for readers
// that can tell them apart (DuckDB's allow_quoted_nulls=false); most, ingest
// included, read both as null.
type csvWriter struct {
	w      io.Writer
	cols   []Column
	kinds  []appliance.Kind
	buf    []byte
	cell   []byte // a list's JSON text, before quoting
	header bool
	closed bool
	err    error
}

func newCSVWriter(w io.Writer, cols []Column) *csvWriter {
	return &csvWriter{w: w, cols: cols, kinds: kindsOf(cols), buf: make([]byte, 0, flushAt+4<<10)}
}

func (cw *csvWriter) writeHeader() {
	for i, c := range cw.cols {
		if i > 0 {
			cw.buf = append(cw.buf, ',')
		}
		cw.buf = appendCSVField(cw.buf, c.Name)
	}
	cw.buf = append(cw.buf, '\n')
	cw.header = true
}

func (cw *csvWriter) WriteRow(vals []appliance.Value) error {
	if cw.err != nil {
		return cw.err
	}
	if cw.closed {
		return errClosed
	}
	if err := checkRow(cw.cols, cw.kinds, vals); err != nil {
		return err
	}
	if !cw.header {
		cw.writeHeader()
	}
	b := cw.buf
	for i := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = cw.appendCell(b, &vals[i])
	}
	cw.buf = append(b, '\n')
	if len(cw.buf) >= flushAt {
		return cw.flush()
	}
	return nil
}

func (cw *csvWriter) appendCell(b []byte, v *appliance.Value) []byte {
	switch v.Kind {
	case appliance.KindNull:
		return b
	case appliance.KindFloat64:
		// No NaN is ever stored; were one here, an empty cell is its null.
		n := len(b)
		if b = appliance.AppendJSONFloat(b, v.Float); string(b[n:]) == "null" {
			b = b[:n]
		}
		return b
	case appliance.KindString:
		if v.Str == "" {
			return append(b, '"', '"')
		}
		return appendCSVField(b, v.Str)
	case appliance.KindBytes:
		return appliance.AppendBase64String(b, v.Str) // base64 needs no quotes
	case appliance.KindTimestamp:
		return appliance.AppendJSONTime(b, v.Int)
	case appliance.KindInt64List, appliance.KindFloat64List, appliance.KindStringList:
		// The cell holds the list as JSON text, as ingest reads it.
		cw.cell = appliance.AppendJSONValue(cw.cell[:0], v)
		return appendCSVField(b, cw.cell)
	}
	return appliance.AppendJSONValue(b, v) // numbers and bools need no quotes
}

// appendCSVField quotes s when a reader would otherwise split or trim it:
// a comma, quote or line break anywhere, or space at either end.
func appendCSVField[T ~string | ~[]byte](b []byte, s T) []byte {
	quote := len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[len(s)-1] == ' ' || s[len(s)-1] == '\t')
	for i := 0; i < len(s) && !quote; i++ {
		switch s[i] {
		case ',', '"', '\r', '\n':
			quote = true
		}
	}
	if !quote {
		return append(b, s...)
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, s[start:i+1]...)
			b = append(b, '"')
			start = i + 1
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (cw *csvWriter) flush() error {
	if len(cw.buf) == 0 {
		return nil
	}
	if _, err := cw.w.Write(cw.buf); err != nil {
		cw.err = fmt.Errorf("write csv: %w", err)
		return cw.err
	}
	cw.buf = cw.buf[:0]
	return nil
}

func (cw *csvWriter) Close() error {
	if cw.err != nil {
		return cw.err
	}
	if cw.closed {
		return errClosed
	}
	cw.closed = true
	if !cw.header {
		cw.writeHeader() // an empty table still names its columns
	}
	return cw.flush()
}
