package ingest

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/mlnode/mlnode/appliance"
)

// Format is the encoding of a request body of rows. The zero Format is
// invalid, so that a caller that forgot to set one fails loudly.
type Format int

const (
	FormatNDJSON  Format = iota + 1 // one JSON object per line
	FormatJSON                      // one JSON array of objects
	FormatCSV                       // a header line, then one record per row
	FormatParquet                   // Apache Parquet: see DecodeParquet
)

func (f Format) String() string {
	switch f {
	case FormatNDJSON:
		return "ndjson"
	case FormatJSON:
		return "json"
	case FormatCSV:
		return "csv"
	case FormatParquet:
		return "parquet"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

const acceptedTypes = "application/x-ndjson, application/json, text/csv or application/vnd.apache.parquet"

// FormatFromContentType returns the format of a Content-Type header value.
// Parameters such as "; charset=utf-8" are ignored: bodies are UTF-8 in every
// format. Anything else is EMEDIATYPE naming the accepted types.
func FormatFromContentType(ct string) (Format, error) {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	switch mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl":
		return FormatNDJSON, nil
	case "application/json":
		return FormatJSON, nil
	case "text/csv":
		return FormatCSV, nil
	case "application/vnd.apache.parquet", "application/x-parquet":
		return FormatParquet, nil
	case "":
		return 0, &appliance.Error{Code: appliance.EMEDIATYPE, Field: "Content-Type",
			Message: "is required: " + acceptedTypes}
	}
	return 0, &appliance.Error{Code: appliance.EMEDIATYPE, Field: "Content-Type",
		Message: fmt.Sprintf("%q is not supported: use %s", truncate(mt, 100), acceptedTypes)}
}

// RowError says why one row of a batch was rejected.
type RowError struct {
	Row    int    `json:"row"`   // 0-based among data rows: no CSV header, no blank NDJSON lines
	Field  string `json:"field"` // the column at fault; "" for the row as a whole
	Reason string `json:"reason"`
}

// Options bound the work one Decode does.
type Options struct {
	// MaxErrors is how many row errors Batch.Errors keeps; 0 means 100 and a
	// negative number keeps none. Rejected rows are counted either way.
	MaxErrors int
	// MaxRows fails the whole decode when the body holds more rows; 0 means
	// no limit.
	MaxRows int
	// MaxBytes bounds a Parquet body by the size of its rows as text: the
	// decode fails (ETOOLARGE) once the values read would take more than
	// this many bytes written as CSV at their shortest. 0 means no limit.
	// Text bodies need no such bound, their size is the caller's to limit,
	// but compression lets a small Parquet file repeat a value millions of
	// times.
	MaxBytes int64
}

// DefaultMaxErrors is the number of row errors kept when Options.MaxErrors is 0.
const DefaultMaxErrors = 100

// Batch is what Decode read: the valid rows, and why the others were not.
type Batch struct {
	Rows     []appliance.Row // valid rows, in input order
	Index    []int           // the input index of each of Rows (as RowError.Row counts)
	Errors   []RowError      // the first problem of each invalid row, at most MaxErrors of them
	Rejected int             // invalid rows, which may be more than len(Errors)
	Total    int             // rows seen: len(Rows) + Rejected
}

// Decode reads rows of view from r in format f. Invalid rows are counted and
// described in the batch, not returned as an error, so that the caller can
// choose between rejecting the batch and writing the valid rows.
//
// The error is EINVALID (field "body") when the body cannot be read as a
// whole: malformed JSON array or CSV quoting, a duplicate CSV header column,
// more than opts.MaxRows rows, or ctx done. An error of r comes back wrapped,
// keeping its code.
func Decode(ctx context.Context, r io.Reader, f Format, view *appliance.FeatureView, opts Options) (*Batch, error) {
	d, err := newDecoder(ctx, view, opts)
	if err != nil {
		return nil, err
	}
	switch f {
	case FormatNDJSON:
		err = d.decodeNDJSON(r)
	case FormatJSON:
		err = d.decodeJSON(r)
	case FormatCSV:
		err = d.decodeCSV(r)
	case FormatParquet:
		return nil, fmt.Errorf("decode rows: Parquet needs random access: use DecodeParquet")
	default:
		return nil, fmt.Errorf("decode rows: unknown format %v", f)
	}
	if err != nil {
		return nil, err
	}
	b := d.batch // not &d.batch, which would keep the decoder's scratch alive
	return &b, nil
}

// fatal returns the error for a body that cannot be read as a whole.
func fatal(format string, args ...any) *appliance.Error {
	return appliance.Invalid("body", format, args...)
}

// readError wraps an error of the body's reader, keeping its code.
func readError(err error) error {
	return fmt.Errorf("read body: %w", err)
}
