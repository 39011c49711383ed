package tabular

import (
	"errors"
	"fmt"
	"io"

	"github.com/mlnode/mlnode/appliance"
)

// Writer writes a table one row at a time, without holding it: what it
// buffers is bounded whatever the number of rows.
type Writer interface {
	// WriteRow writes one row: one value per column, in column order, each
	// of its column's kind or null. The writer does not keep vals.
	WriteRow(vals []appliance.Value) error
	// Close writes what the format needs at the end (a JSON array's closing
	// bracket, a Parquet footer) and flushes. It does not close the
	// io.Writer. The table is valid only once Close returned nil.
	Close() error
}

// NewWriter returns a Writer of cols in format f to w. Columns must have
// distinct names and known dtypes (else EINVALID, field "columns").
func NewWriter(w io.Writer, f Format, cols []Column) (Writer, error) {
	if err := checkColumns(cols); err != nil {
		return nil, err
	}
	switch f {
	case FormatJSON, FormatNDJSON:
		return newJSONWriter(w, cols, f == FormatNDJSON), nil
	case FormatCSV:
		return newCSVWriter(w, cols), nil
	case FormatParquet:
		return newParquetWriter(w, cols)
	}
	return nil, fmt.Errorf("new table writer: unknown format %v", f)
}

// errClosed is what a writer says to a row after Close.
var errClosed = errors.New("table writer is closed")

// flushAt is how many bytes the text writers gather before a write to the
// io.Writer: large enough that a write is not per row, small enough to be
// nothing next to the table.
const flushAt = 64 << 10

// checkRow reports a row that does not fit the columns. It is the caller's
// bug, not bad input, hence a plain error.
func checkRow(cols []Column, kinds []appliance.Kind, vals []appliance.Value) error {
	if len(vals) != len(kinds) {
		return fmt.Errorf("write row: %d values for %d columns", len(vals), len(kinds))
	}
	for i := range vals {
		if k := vals[i].Kind; k != kinds[i] && k != appliance.KindNull {
			return fmt.Errorf("write row: column %q is %s, got a %s value", cols[i].Name, cols[i].Dtype, kindName(k))
		}
	}
	return nil
}

func kindsOf(cols []Column) []appliance.Kind {
	kinds := make([]appliance.Kind, len(cols))
	for i, c := range cols {
		kinds[i] = c.Dtype.Kind()
	}
	return kinds
}
