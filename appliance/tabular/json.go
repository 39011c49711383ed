package tabular

import (
	"fmt"
	"io"

	"github.com/mlnode/mlnode/appliance"
)

// jsonWriter writes a JSON array of objects, or NDJSON: one object a line.
type jsonWriter struct {
	w      io.Writer
	cols   []Column
	kinds  []appliance.Kind
	keys   [][]byte // each column's `"name":`, led by '{' or ',', encoded once
	ndjson bool
	buf    []byte
	rows   int
	closed bool
	err    error // sticky: a row half in buf cannot be taken back
}

func newJSONWriter(w io.Writer, cols []Column, ndjson bool) *jsonWriter {
	jw := &jsonWriter{w: w, cols: cols, kinds: kindsOf(cols), ndjson: ndjson, buf: make([]byte, 0, flushAt+4<<10)}
	jw.keys = make([][]byte, len(cols))
	for i, c := range cols {
		lead := byte(',')
		if i == 0 {
			lead = '{'
		}
		k := appliance.AppendJSONString([]byte{lead}, c.Name)
		jw.keys[i] = append(k, ':')
	}
	return jw
}

func (jw *jsonWriter) WriteRow(vals []appliance.Value) error {
	if jw.err != nil {
		return jw.err
	}
	if jw.closed {
		return errClosed
	}
	if err := checkRow(jw.cols, jw.kinds, vals); err != nil {
		return err
	}
	b := jw.buf
	if !jw.ndjson {
		if jw.rows == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
	}
	for i := range vals {
		b = append(b, jw.keys[i]...)
		b = appliance.AppendJSONValue(b, &vals[i])
	}
	b = append(b, '}')
	if jw.ndjson {
		b = append(b, '\n')
	}
	jw.buf = b
	jw.rows++
	if len(b) >= flushAt {
		return jw.flush()
	}
	return nil
}

func (jw *jsonWriter) flush() error {
	if len(jw.buf) == 0 {
		return nil
	}
	if _, err := jw.w.Write(jw.buf); err != nil {
		jw.err = fmt.Errorf("write json: %w", err)
		return jw.err
	}
	jw.buf = jw.buf[:0]
	return nil
}

func (jw *jsonWriter) Close() error {
	if jw.err != nil {
		return jw.err
	}
	if jw.closed {
		return errClosed
	}
	jw.closed = true
	if !jw.ndjson {
		if jw.rows == 0 {
			jw.buf = append(jw.buf, '[')
		}
		jw.buf = append(jw.buf, ']')
	}
	return jw.flush()
}
