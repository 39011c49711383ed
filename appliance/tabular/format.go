package tabular

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mlnode/mlnode/appliance"
)

// Format is the encoding of a table. The zero Format is invalid, so that a
// caller that forgot to choose one fails loudly.
type Format int

const (
	FormatJSON    Format = iota + 1 // one JSON array of objects
	FormatNDJSON                    // one JSON object per line
	FormatCSV                       // a header line, then one record per row
	FormatParquet                   // Apache Parquet
)

func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatNDJSON:
		return "ndjson"
	case FormatCSV:
		return "csv"
	case FormatParquet:
		return "parquet"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// ContentType is the media type of the format, for a Content-Type header.
func (f Format) ContentType() string {
	switch f {
	case FormatJSON:
		return "application/json"
	case FormatNDJSON:
		return "application/x-ndjson"
	case FormatCSV:
		return "text/csv"
	case FormatParquet:
		return "application/vnd.apache.parquet"
	}
	return "application/octet-stream"
}

// Extension is the usual file name extension of the format, with its dot,
// for a Content-Disposition file name.
func (f Format) Extension() string {
	switch f {
	case FormatJSON:
		return ".json"
	case FormatNDJSON:
		return ".ndjson"
	case FormatCSV:
		return ".csv"
	case FormatParquet:
		return ".parquet"
	}
	return ""
}

// ParseFormat reads a format name: json, ndjson, csv or parquet, in any
// case. Anything else is EINVALID naming the field "format".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "json":
		return FormatJSON, nil
	case "ndjson":
		return FormatNDJSON, nil
	case "csv":
		return FormatCSV, nil
	case "parquet":
		return FormatParquet, nil
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return 0, appliance.Invalid("format", "%q is not json, ndjson, csv or parquet", s)
}

// formatOfMediaType knows the media types each format goes by, the
// registered one first.
func formatOfMediaType(mt string) (Format, bool) {
	switch mt {
	case "application/json":
		return FormatJSON, true
	case "application/x-ndjson", "application/ndjson", "application/jsonl":
		return FormatNDJSON, true
	case "text/csv":
		return FormatCSV, true
	case "application/vnd.apache.parquet", "application/x-parquet":
		return FormatParquet, true
	}
	return 0, false
}

// FormatFromAccept picks a format from an Accept header: the one with the
// highest q value, the first listed among equals. Wildcards such as */*
// match nothing, so that the caller applies its own default; ok is false
// when no listed type is a format.
func FormatFromAccept(accept string) (Format, bool) {
	best, bestQ := Format(0), 0.0
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, _ := strings.Cut(part, ";")
		f, ok := formatOfMediaType(strings.ToLower(strings.TrimSpace(mt)))
		if !ok {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || x < 0 || x > 1 {
					x = 0 // a malformed weight is not a request for this type
				}
				q = x
			}
		}
		if q > bestQ {
			best, bestQ = f, q
		}
	}
	return best, bestQ > 0
}

// Column is one column of a table.
type Column struct {
	Name  string
	Dtype appliance.DType
}

func checkColumns(cols []Column) error {
	if len(cols) == 0 {
		return appliance.Invalid("columns", "a table needs at least one column")
	}
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if !c.Dtype.Valid() {
			return appliance.Invalid("columns", "column %q has unknown dtype %q", c.Name, c.Dtype)
		}
		if c.Name == "" {
			return appliance.Invalid("columns", "a column has no name")
		}
		if seen[c.Name] {
			return appliance.Invalid("columns", "column %q appears twice", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// kindName names a value kind in errors.
func kindName(k appliance.Kind) string {
	for _, t := range appliance.DTypes {
		if t.Kind() == k {
			return string(t)
		}
	}
	if k == appliance.KindNull {
		return "null"
	}
	return fmt.Sprintf("Kind(%d)", k)
}
