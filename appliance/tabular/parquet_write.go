package tabular

import (
	"fmt"
	"io"
	"reflect"

	"github.com/parquet-go/parquet-go"

	"github.com/mlnode/mlnode/appliance"
)

// Bounds of what a Parquet writer holds. A row group's pages stay in memory
// until the group is flushed, so groups are cut by rows and by bytes; rows
// are handed to the column writers in batches, so that the per-call cost of
// parquet-go is paid per batch and not per value.
const (
	rowGroupRows  = 64 << 10
	rowGroupBytes = 64 << 20
	batchRows     = 512
	batchBytes    = 4 << 20
)

// parquetWriter builds parquet values straight from appliance values, column
// by column: no reflection, no parquet.Row per row.
type parquetWriter struct {
	pw      *parquet.GenericWriter[any]
	cols    []Column
	kinds   []appliance.Kind
	writers []*parquet.ColumnWriter
	vals    [][]parquet.Value // pending values of each column
	arena   []byte            // copies of pending strings: vals may not outlive WriteRow
	pending int               // rows in vals
	rows    int               // rows in the current row group
	bytes   int64             // estimated bytes in the current row group
	closed  bool
	err     error
}

func newParquetWriter(w io.Writer, cols []Column) (*parquetWriter, error) {
	schema := parquetSchema(cols)
	// Version 1 data pages are what most writers produce and every reader
	// reads; snappy is the codec Spark, DuckDB and pyarrow default to, and
	// the fastest of those they all read.
	cfg, err := parquet.NewWriterConfig(schema, parquet.Compression(&parquet.Snappy), parquet.DataPageVersion(1))
	if err != nil {
		return nil, fmt.Errorf("new parquet writer: %w", err)
	}
	pw := parquet.NewGenericWriter[any](w, cfg)
	writers := pw.ColumnWriters()
	if len(writers) != len(cols) {
		return nil, fmt.Errorf("BUG: parquet schema of %d columns has %d leaves", len(cols), len(writers))
	}
	vals := make([][]parquet.Value, len(cols))
	for i := range vals {
		vals[i] = make([]parquet.Value, 0, batchRows)
	}
	return &parquetWriter{pw: pw, cols: cols, kinds: kindsOf(cols), writers: writers, vals: vals}, nil
}

// parquetSchema maps dtypes to Parquet: every column optional, lists as the
// standard three-level LIST of required elements.
func parquetSchema(cols []Column) *parquet.Schema {
	fields := make([]parquet.Field, len(cols))
	for i, c := range cols {
		var n parquet.Node
		switch c.Dtype {
		case appliance.DTypeInt64:
			n = parquet.Leaf(parquet.Int64Type)
		case appliance.DTypeFloat64:
			n = parquet.Leaf(parquet.DoubleType)
		case appliance.DTypeBool:
			n = parquet.Leaf(parquet.BooleanType)
		case appliance.DTypeString:
			n = parquet.String()
		case appliance.DTypeBytes:
			n = parquet.Leaf(parquet.ByteArrayType)
		case appliance.DTypeTimestamp:
			n = parquet.Timestamp(parquet.Microsecond)
		case appliance.DTypeInt64List:
			n = parquet.List(parquet.Leaf(parquet.Int64Type))
		case appliance.DTypeFloat64List:
			n = parquet.List(parquet.Leaf(parquet.DoubleType))
		case appliance.DTypeStringList:
			n = parquet.List(parquet.String())
		default:
			panic("BUG: column " + c.Name + " has dtype " + string(c.Dtype))
		}
		fields[i] = &namedField{Node: parquet.Optional(n), name: c.Name}
	}
	return parquet.NewSchema("mlnode", &orderedGroup{Group: parquet.Group{}, fields: fields})
}

// orderedGroup is a group whose fields keep the order they were given in:
// parquet.Group, a map, sorts them by name, and a table's columns are in
// the order the caller chose (keys, then time, then features).
type orderedGroup struct {
	parquet.Group
	fields []parquet.Field
}

func (g *orderedGroup) Fields() []parquet.Field { return g.fields }
func (g *orderedGroup) String() string          { return "mlnode table" }

// namedField names a node in its group. Value serves parquet-go's
// reflection, which this package never uses.
type namedField struct {
	parquet.Node
	name string
}

func (f *namedField) Name() string                      { return f.name }
func (f *namedField) Value(reflect.Value) reflect.Value { return reflect.Value{} }

func (pw *parquetWriter) WriteRow(vals []appliance.Value) error {
	if pw.err != nil {
		return pw.err
	}
	if pw.closed {
		return errClosed
	}
	if err := checkRow(pw.cols, pw.kinds, vals); err != nil {
		return err
	}
	for i := range vals {
		pw.vals[i] = pw.appendValue(pw.vals[i], &vals[i], i)
	}
	pw.pending++
	if pw.pending >= batchRows || len(pw.arena) >= batchBytes {
		return pw.flushBatch()
	}
	return nil
}

// appendValue appends the parquet values of v, column col. Definition
// levels: a scalar is 1 when present; a list is 0 when null, 1 when empty
// (one null value stands for it) and 2 for each element, whose repetition
// level is 1 after the first.
func (pw *parquetWriter) appendValue(dst []parquet.Value, v *appliance.Value, col int) []parquet.Value {
	switch v.Kind {
	case appliance.KindNull:
		return append(dst, parquet.Value{}.Level(0, 0, col))
	case appliance.KindInt64, appliance.KindTimestamp:
		return append(dst, parquet.Int64Value(v.Int).Level(0, 1, col))
	case appliance.KindFloat64:
		return append(dst, parquet.DoubleValue(v.Float).Level(0, 1, col))
	case appliance.KindBool:
		return append(dst, parquet.BooleanValue(v.Int != 0).Level(0, 1, col))
	case appliance.KindString, appliance.KindBytes:
		return append(dst, parquet.ByteArrayValue(pw.keep(v.Str)).Level(0, 1, col))
	case appliance.KindInt64List:
		if len(v.Ints) == 0 {
			return append(dst, parquet.Value{}.Level(0, 1, col))
		}
		for j, x := range v.Ints {
			dst = append(dst, parquet.Int64Value(x).Level(min(j, 1), 2, col))
		}
	case appliance.KindFloat64List:
		if len(v.Floats) == 0 {
			return append(dst, parquet.Value{}.Level(0, 1, col))
		}
		for j, x := range v.Floats {
			dst = append(dst, parquet.DoubleValue(x).Level(min(j, 1), 2, col))
		}
	case appliance.KindStringList:
		if len(v.Strs) == 0 {
			return append(dst, parquet.Value{}.Level(0, 1, col))
		}
		for j, x := range v.Strs {
			dst = append(dst, parquet.ByteArrayValue(pw.keep(x)).Level(min(j, 1), 2, col))
		}
	}
	return dst
}

// keep copies s into the arena and returns the copy. When the arena grows,
// values made earlier keep pointing into the old array, which the garbage
// collector keeps for them.
func (pw *parquetWriter) keep(s string) []byte {
	off := len(pw.arena)
	pw.arena = append(pw.arena, s...)
	return pw.arena[off:len(pw.arena):len(pw.arena)]
}

// flushBatch hands the pending rows to the column writers, which copy them
// into pages, and cuts the row group when it is big enough.
func (pw *parquetWriter) flushBatch() error {
	if pw.pending == 0 {
		return nil
	}
	for i, w := range pw.writers {
		if _, err := w.WriteRowValues(pw.vals[i]); err != nil {
			pw.err = fmt.Errorf("write parquet column %s: %w", pw.cols[i].Name, err)
			return pw.err
		}
		pw.bytes += int64(len(pw.vals[i])) * 8
		clear(pw.vals[i]) // drop pointers into the arena
		pw.vals[i] = pw.vals[i][:0]
	}
	pw.bytes += int64(len(pw.arena))
	pw.arena = pw.arena[:0]
	pw.rows += pw.pending
	pw.pending = 0
	if pw.rows >= rowGroupRows || pw.bytes >= rowGroupBytes {
		if err := pw.pw.Flush(); err != nil {
			pw.err = fmt.Errorf("write parquet row group: %w", err)
			return pw.err
		}
		pw.rows, pw.bytes = 0, 0
	}
	return nil
}

func (pw *parquetWriter) Close() error {
	if pw.err != nil {
		return pw.err
	}
	if pw.closed {
		return errClosed
	}
	pw.closed = true
	if err := pw.flushBatch(); err != nil {
		return err
	}
	if err := pw.pw.Close(); err != nil {
		pw.err = fmt.Errorf("write parquet footer: %w", err)
		return pw.err
	}
	return nil
}
