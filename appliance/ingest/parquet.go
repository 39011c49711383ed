package ingest

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/tabular"
)

// DecodeParquet reads rows of view from the Parquet file of size bytes in
// r. Parquet needs random access, hence an io.ReaderAt: a request body is
// spooled to a file first. Rows go through the same checks as in Decode
// and the Batch means the same: columns are matched by name as in a CSV
// header, a column not in the view fails every row, a missing join key or
// event_timestamp fails the row, and values that a dtype cannot take are
// row errors.
//
// Parquet columns are typed, so a column that no row could use is refused
// as a whole: EINVALID naming the column, for a type that cannot hold the
// feature's dtype (a DOUBLE for a bool, a struct, a decimal). What each
// dtype takes is in docs/parquet.md; in short, any integer or float type
// for int64 (floats must be integral) and float64, strings for strings
// and bytes, and times as TIMESTAMP, DATE, INT96, strings (RFC 3339) or
// integers (unix seconds or milliseconds, as in JSON).
//
// The error is EINVALID (field "body") when the file is not Parquet, is
// truncated or corrupt, has duplicate column names, or holds more than
// opts.MaxRows rows; ETOOLARGE when its values exceed opts.MaxBytes; ctx
// done stops it as in Decode. An error of r comes back wrapped.
func DecodeParquet(ctx context.Context, r io.ReaderAt, size int64, view *appliance.FeatureView, opts Options) (*Batch, error) {
	d, err := newDecoder(ctx, view, opts)
	if err != nil {
		return nil, err
	}
	pf, err := tabular.OpenParquet(r, size)
	if err != nil {
		return nil, err
	}
	if err := d.decodeParquet(pf, opts.MaxBytes); err != nil {
		return nil, err
	}
	b := d.batch // not &d.batch, which would keep the decoder's scratch alive
	return &b, nil
}

// parquetColumn is a column of the file as the decoder sees it.
type parquetColumn struct {
	name string
	id   int // decoder column id; -1 for a column the view does not have
	scan int // position in the rows tabular hands out
}

func (d *decoder) decodeParquet(pf *tabular.ParquetFile, maxBytes int64) error {
	pcols := pf.Columns()
	plan := make([]parquetColumn, len(pcols))
	var scan []int
	seen := make(map[string]bool, len(pcols))
	for i, pc := range pcols {
		if seen[pc.Name] {
			return fatal("duplicate column %q in the Parquet file", truncate(pc.Name, 128))
		}
		seen[pc.Name] = true
		id, ok := d.byName[pc.Name]
		if !ok {
			// Not read at all: like a CSV header column not in the view, it
			// fails every row, whatever its type.
			plan[i] = parquetColumn{name: strings.ToValidUTF8(pc.Name, "\uFFFD"), id: -1, scan: -1}
			continue
		}
		if err := parquetFits(&d.cols[id], pc); err != nil {
			return err
		}
		plan[i] = parquetColumn{name: pc.Name, id: id, scan: len(scan)}
		scan = append(scan, i)
	}
	if d.maxRows > 0 && pf.NumRows() > int64(d.maxRows) {
		return fatal("body has more than %d rows", d.maxRows)
	}
	var textBytes int64
	return pf.Scan(d.ctx, scan, func(row []appliance.Value, problems []tabular.Problem) error {
		if err := d.begin(); err != nil {
			return err
		}
		k := 0
		for _, pc := range plan {
			if pc.id < 0 {
				d.failUnknown(pc.name)
				break
			}
			d.seen[pc.id] = d.stamp
			for k < len(problems) && problems[k].Column < pc.scan {
				k++
			}
			if k < len(problems) && problems[k].Column == pc.scan {
				d.fail(pc.name, "%s", problems[k].Reason)
				break
			}
			d.parquetCell(&d.cols[pc.id], &row[pc.scan])
			if d.failed {
				break
			}
		}
		d.end()
		if maxBytes > 0 {
			textBytes += int64(len(plan)) + csvBytes(row)
			if textBytes > maxBytes {
				return &appliance.Error{Code: appliance.ETOOLARGE, Field: "body", Message: fmt.Sprintf(
					"the Parquet rows come to more than the %d-byte body limit as text: split the file", maxBytes)}
			}
		}
		return nil
	})
}

// csvBytes is a lower bound of the size of values written as CSV, for
// Options.MaxBytes: a number takes at least a digit, a list its brackets
// and a separator per element.
func csvBytes(row []appliance.Value) int64 {
	n := 0
	for i := range row {
		v := &row[i]
		switch v.Kind {
		case appliance.KindNull:
		case appliance.KindString, appliance.KindBytes:
			n += len(v.Str)
		case appliance.KindInt64List:
			n += 2 + 2*len(v.Ints)
		case appliance.KindFloat64List:
			n += 2 + 2*len(v.Floats)
		case appliance.KindStringList:
			n += 2
			for _, s := range v.Strs {
				n += 3 + len(s)
			}
		default:
			n++
		}
	}
	return int64(n)
}

// parquetFits says whether a Parquet column can feed column c: whether some
// of its values could be valid. A string column fits an int64 feature (as
// a JSON string does), a float column fits one too, integral values only,
// and so on; a bool column fits nothing but a bool.
func parquetFits(c *column, pc tabular.ParquetColumn) error {
	if pc.AllNull {
		return nil // every value is null, which any column takes or refuses row by row
	}
	if pc.Dtype == "" {
		return appliance.Invalid(pc.Name, "Parquet column %q is %s, which mlnode cannot read: %s", pc.Name, pc.Type, pc.Reason)
	}
	var ok bool
	text := pc.Dtype == appliance.DTypeString || pc.Dtype == appliance.DTypeBytes
	switch {
	case c.role == roleKey && c.keyInt:
		ok = pc.Dtype == appliance.DTypeInt64 || text
	case c.role == roleKey:
		ok = text
	case c.role == roleTime || c.kind == appliance.KindTimestamp:
		ok = pc.Dtype == appliance.DTypeTimestamp || pc.Dtype == appliance.DTypeInt64 || text
	default:
		switch c.kind {
		case appliance.KindInt64:
			ok = pc.Dtype == appliance.DTypeInt64 || pc.Dtype == appliance.DTypeFloat64 || text
		case appliance.KindFloat64:
			ok = pc.Dtype == appliance.DTypeFloat64 || pc.Dtype == appliance.DTypeInt64
		case appliance.KindBool:
			ok = pc.Dtype == appliance.DTypeBool
		case appliance.KindString, appliance.KindBytes:
			ok = text
		case appliance.KindInt64List, appliance.KindFloat64List:
			ok = pc.Dtype == appliance.DTypeInt64List || pc.Dtype == appliance.DTypeFloat64List
		case appliance.KindStringList:
			ok = pc.Dtype == appliance.DTypeStringList
		}
	}
	if !ok {
		return appliance.Invalid(pc.Name, "Parquet column %q is %s, which cannot hold %s", pc.Name, pc.Type, c.typeName())
	}
	return nil
}

// parquetCell reads the value of one column into the row. parquetFits
// vetted the column's type, so each kind below is one it can have.
func (d *decoder) parquetCell(c *column, v *appliance.Value) {
	var reason string
	switch {
	case v.Kind == appliance.KindNull:
		switch c.role {
		case roleKey:
			reason = "join key is null"
		case roleTime:
			reason = "event_timestamp is null"
		}
	case c.role == roleKey:
		reason = d.parquetKey(c, v)
	case c.role == roleTime:
		d.eventTime, reason = parquetTime(v)
	default:
		reason = d.parquetFeature(c, v)
	}
	if reason != "" {
		d.fail(c.name, "%s", reason)
	}
}

func (d *decoder) parquetKey(c *column, v *appliance.Value) string {
	switch {
	case c.keyInt && v.Kind == appliance.KindInt64:
		d.keyInts[c.key] = v.Int
		return ""
	case v.Kind != appliance.KindString && v.Kind != appliance.KindBytes:
		return "want " + c.typeName() + ", got " + kindText(v.Kind)
	case v.Str == "":
		return "join key is empty"
	case c.keyInt:
		var reason string
		d.keyInts[c.key], reason = parseKeyInt(v.Str)
		return reason
	case !utf8.ValidString(v.Str):
		return "invalid UTF-8"
	}
	d.keyStart[c.key] = len(d.keyBuf)
	d.keyBuf = append(d.keyBuf, v.Str...)
	d.keyEnd[c.key] = len(d.keyBuf)
	return ""
}

// parquetTime reads a time: a timestamp as it is, an integer as a unix
// time in seconds or milliseconds (as a JSON number), text as in CSV.
func parquetTime(v *appliance.Value) (int64, string) {
	switch v.Kind {
	case appliance.KindTimestamp:
		if v.Int < minMicros || v.Int > maxMicros {
			return 0, appliance.Value{Kind: appliance.KindTimestamp, Int: v.Int}.Time().Format("2006-01-02T15:04:05Z07:00") +
				" is outside the years 0001 to 9999"
		}
		return v.Int, ""
	case appliance.KindInt64:
		n := v.Int
		var us int64
		switch {
		case n > -1e11 && n < 1e11:
			us = n * 1e6
		case n > math.MaxInt64/1000 || n < math.MinInt64/1000:
			return 0, timeRangeReason(strconv.FormatInt(n, 10))
		default:
			us = n * 1000
		}
		if us < minMicros || us > maxMicros {
			return 0, timeRangeReason(strconv.FormatInt(n, 10))
		}
		return us, ""
	case appliance.KindString, appliance.KindBytes:
		return parseTimeText(v.Str)
	}
	return 0, "want a time, got " + kindText(v.Kind)
}

func (d *decoder) parquetFeature(c *column, v *appliance.Value) string {
	switch c.kind {
	case appliance.KindInt64:
		switch v.Kind {
		case appliance.KindInt64:
			d.setInt(c, appliance.KindInt64, v.Int)
			return ""
		case appliance.KindFloat64:
			n, reason := floatInt(v.Float)
			d.setInt(c, appliance.KindInt64, n)
			return reason
		case appliance.KindString, appliance.KindBytes:
			n, reason := parseInt64(v.Str)
			d.setInt(c, appliance.KindInt64, n)
			return reason
		}
	case appliance.KindFloat64:
		switch v.Kind {
		case appliance.KindFloat64:
			d.setFloat(c, v.Float)
			return finite(v.Float)
		case appliance.KindInt64:
			d.setFloat(c, float64(v.Int))
			return ""
		}
	case appliance.KindBool:
		if v.Kind == appliance.KindBool {
			d.setInt(c, appliance.KindBool, v.Int)
			return ""
		}
	case appliance.KindString:
		if v.Kind == appliance.KindString || v.Kind == appliance.KindBytes {
			if !utf8.ValidString(v.Str) {
				return "invalid UTF-8"
			}
			d.setStr(c, appliance.KindString, v.Str) // tabular's strings are the row's own
			return ""
		}
	case appliance.KindBytes:
		if v.Kind == appliance.KindString || v.Kind == appliance.KindBytes {
			d.setStr(c, appliance.KindBytes, v.Str)
			return ""
		}
	case appliance.KindTimestamp:
		us, reason := parquetTime(v)
		d.setInt(c, appliance.KindTimestamp, us)
		return reason
	case appliance.KindInt64List:
		switch v.Kind {
		case appliance.KindInt64List:
			d.vals[c.feat] = appliance.Value{Kind: c.kind, Ints: v.Ints}
			return ""
		case appliance.KindFloat64List:
			ints := make([]int64, len(v.Floats))
			for i, f := range v.Floats {
				var reason string
				if ints[i], reason = floatInt(f); reason != "" {
					return fmt.Sprintf("element %d: %s", i, reason)
				}
			}
			d.vals[c.feat] = appliance.Value{Kind: c.kind, Ints: ints}
			return ""
		}
	case appliance.KindFloat64List:
		switch v.Kind {
		case appliance.KindFloat64List:
			for i, f := range v.Floats {
				if reason := finite(f); reason != "" {
					return fmt.Sprintf("element %d: %s", i, reason)
				}
			}
			d.vals[c.feat] = appliance.Value{Kind: c.kind, Floats: v.Floats}
			return ""
		case appliance.KindInt64List:
			floats := make([]float64, len(v.Ints))
			for i, n := range v.Ints {
				floats[i] = float64(n)
			}
			d.vals[c.feat] = appliance.Value{Kind: c.kind, Floats: floats}
			return ""
		}
	case appliance.KindStringList:
		if v.Kind == appliance.KindStringList {
			for i, s := range v.Strs {
				if !utf8.ValidString(s) {
					return fmt.Sprintf("element %d: invalid UTF-8", i)
				}
			}
			d.vals[c.feat] = appliance.Value{Kind: c.kind, Strs: v.Strs}
			return ""
		}
	}
	return "want " + c.typeName() + ", got " + kindText(v.Kind)
}

// floatInt is an integral float as an int64, exactly as a JSON 3.0 is.
func floatInt(f float64) (int64, string) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, floatText(f) + " is not a number"
	case f != math.Trunc(f):
		return 0, floatText(f) + " is not an integer"
	case f < -(1<<63) || f >= 1<<63:
		return 0, floatText(f) + " is out of the int64 range"
	}
	return int64(f), ""
}

// finite refuses what JSON and CSV cannot write either.
func finite(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return floatText(f) + " is not a finite number"
	}
	return ""
}

// floatText writes f as JSON would, so that a reason reads the same as for
// the value in a JSON body.
func floatText(f float64) string {
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// kindText names a value kind in reasons.
func kindText(k appliance.Kind) string {
	for _, t := range appliance.DTypes {
		if t.Kind() == k {
			return string(t)
		}
	}
	return "null"
}
