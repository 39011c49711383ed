package pit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// EventTimestamp is the entity rows' time column, as Feast names it.
const EventTimestamp = "event_timestamp"

type columnRole uint8

const (
	roleExtra columnRole = iota // passed through to the output as it came
	roleKey                     // a join key, typed by its entity
	roleTime                    // event_timestamp
)

// spoolColumn is one column of the entity rows and what its values looked
// like, so that a pass-through column gets one type in the output.
type spoolColumn struct {
	name      string
	role      columnRole
	valueType string // join keys: the entity's value type

	kinds    uint32 // bit per appliance.Kind seen (not counting null)
	text     bool   // some values came as untyped text (CSV cells)
	textInt  bool   // ... and every one of them is a canonical int64
	textNum  bool   // ... or a float
	textBool bool   // ... or true/false
}

// Spool holds the entity rows of one request in a temporary file, so that
// a training set of any size is read with bounded memory. Sources feed it
// row by row: Begin, Set or SetText per cell, End.
type Spool struct {
	f    *os.File
	w    *bufio.Writer
	rows int

	cols   []*spoolColumn
	byName map[string]int
	order  []int // columns in order of first appearance in the input
	listed []bool
	field  string // how errors name a row: "entity_rows" → entity_rows[3].user_id

	cur    []cellValue
	rowBuf []byte
}

type cellValue struct {
	col int
	v   appliance.Value
}

// NewSpool makes a spool in dir (the system's temporary directory if
// empty); field names the rows in errors. Join keys are known only when
// the join is prepared (a JSON request may list its rows before its
// features), so they are checked and typed then.
func NewSpool(dir string, field string) (*Spool, error) {
	f, err := os.CreateTemp(dir, "mlnode-entities-*")
	if err != nil {
		return nil, fmt.Errorf("spool entity rows: %w", err)
	}
	// Unlinked at once: nothing is left behind if the process dies.
	_ = os.Remove(f.Name())
	s := &Spool{f: f, w: bufio.NewWriterSize(f, 1<<20), byName: map[string]int{}, field: field}
	s.byName[EventTimestamp] = len(s.cols)
	s.cols = append(s.cols, &spoolColumn{name: EventTimestamp, role: roleTime})
	return s, nil
}

// Close removes the spool.
func (s *Spool) Close() error { return s.f.Close() }

// Rows is how many rows the spool holds.
func (s *Spool) Rows() int { return s.rows }

// Column returns the index of a column, adding it the first time. Columns
// keep the order in which they first appear, join keys and event_timestamp
// aside: those always exist.
func (s *Spool) Column(name string) int {
	i, ok := s.byName[name]
	if !ok {
		i = len(s.cols)
		s.byName[name] = i
		s.cols = append(s.cols, &spoolColumn{name: name, textInt: true, textNum: true, textBool: true})
	}
	for len(s.listed) <= i {
		s.listed = append(s.listed, false)
	}
	if !s.listed[i] {
		s.listed[i] = true
		s.order = append(s.order, i)
	}
	return i
}

// Begin starts a row.
func (s *Spool) Begin() { s.cur = s.cur[:0] }

func (s *Spool) cellField(col int) string {
	return fmt.Sprintf("%s[%d].%s", s.field, s.rows, s.cols[col].name)
}

// Set gives a typed value to a cell of the row: a JSON or Parquet value.
func (s *Spool) Set(col int, v appliance.Value) error {
	c := s.cols[col]
	if v.Null() {
		return nil
	}
	switch c.role {
	case roleTime:
		t, err := timeValue(v)
		if err != nil {
			return appliance.Invalid(s.cellField(col), "%s", err)
		}
		v = t
	default:
		c.kinds |= 1 << v.Kind
	}
	s.cur = append(s.cur, cellValue{col, v})
	return nil
}

// SetText gives a cell of the row as text: a CSV cell. An empty cell is
// null.
func (s *Spool) SetText(col int, text string) error {
	c := s.cols[col]
	if text == "" {
		return nil
	}
	if c.role == roleTime {
		return s.Set(col, appliance.StringValue(text))
	}
	c.text = true
	if c.textInt {
		n, err := strconv.ParseInt(text, 10, 64)
		c.textInt = err == nil && strconv.FormatInt(n, 10) == text // "007" stays text
	}
	if c.textNum {
		f, err := strconv.ParseFloat(text, 64)
		c.textNum = err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	}
	if c.textBool {
		c.textBool = text == "true" || text == "false"
	}
	s.cur = append(s.cur, cellValue{col, appliance.StringValue(text)})
	return nil
}

// End finishes the row, which must have a time.
func (s *Spool) End() error {
	timeCol := s.byName[EventTimestamp]
	if !slices.ContainsFunc(s.cur, func(cv cellValue) bool { return cv.col == timeCol }) {
		return appliance.Invalid(s.cellField(timeCol), "is missing: every entity row needs the point in time to read features as of")
	}
	b := binary.AppendUvarint(s.rowBuf[:0], uint64(len(s.cur)))
	for _, cv := range s.cur {
		b = binary.AppendUvarint(b, uint64(cv.col))
		b = appliance.AppendValueBinary(b, cv.v)
	}
	s.rowBuf = b
	if _, err := s.w.Write(binary.AppendUvarint(nil, uint64(len(b)))); err != nil {
		return fmt.Errorf("spool entity rows: %w", err)
	}
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("spool entity rows: %w", err)
	}
	s.rows++
	return nil
}

// keyValue converts a join key to its entity's type: an int64 entity takes
// an integer or a decimal string, a string entity a string.
func keyValue(valueType string, v appliance.Value) (appliance.Value, error) {
	if valueType == appliance.EntityInt64 {
		switch v.Kind {
		case appliance.KindInt64:
			return v, nil
		case appliance.KindFloat64:
			if v.Float == math.Trunc(v.Float) && math.Abs(v.Float) < 1<<53 {
				return appliance.Int64Value(int64(v.Float)), nil
			}
		case appliance.KindString:
			if n, err := strconv.ParseInt(strings.TrimSpace(v.Str), 10, 64); err == nil {
				return appliance.Int64Value(n), nil
			}
			return v, fmt.Errorf("%q is not an int64 (the entity's join keys are int64)", v.Str)
		}
		return v, fmt.Errorf("must be an integer (the entity's join keys are int64)")
	}
	if v.Kind != appliance.KindString {
		return v, fmt.Errorf("must be a string (the entity's join keys are strings)")
	}
	if v.Str == "" {
		return v, errors.New("is empty")
	}
	return v, nil
}

// timeValue reads a point in time as ingestion does: a timestamp, RFC 3339
// text, or a number — unix seconds below 1e11 (fractions allowed), else
// milliseconds.
func timeValue(v appliance.Value) (appliance.Value, error) {
	switch v.Kind {
	case appliance.KindTimestamp:
		return v, nil
	case appliance.KindInt64:
		return timeValue(appliance.Float64Value(float64(v.Int)))
	case appliance.KindFloat64:
		f := v.Float
		if math.Abs(f) >= 1e11 {
			f /= 1000
		}
		if math.Abs(f) < 253402300800 { // before the year 10000
			return appliance.Value{Kind: appliance.KindTimestamp, Int: int64(math.Round(f * 1e6))}, nil
		}
	case appliance.KindString:
		s := strings.TrimSpace(v.Str)
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return appliance.TimestampValue(t), nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return timeValue(appliance.Float64Value(f))
		}
		return v, fmt.Errorf("%q is not an RFC 3339 time or unix seconds", v.Str)
	}
	return v, fmt.Errorf("must be an RFC 3339 time or a number of unix seconds")
}

// finish flushes the spool for reading.
func (s *Spool) finish() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool entity rows: %w", err)
	}
	return nil
}

// columnDtype is the one output type of a pass-through column.
func (c *spoolColumn) dtype() appliance.DType {
	switch c.role {
	case roleKey:
		if c.valueType == appliance.EntityInt64 {
			return appliance.DTypeInt64
		}
		return appliance.DTypeString
	case roleTime:
		return appliance.DTypeTimestamp
	}
	if c.text {
		// Text cells decide unless typed values disagree.
		switch {
		case c.kinds != 0:
			return appliance.DTypeString
		case c.textInt:
			return appliance.DTypeInt64
		case c.textNum:
			return appliance.DTypeFloat64
		case c.textBool:
			return appliance.DTypeBool
		}
		return appliance.DTypeString
	}
	bit := func(k appliance.Kind) uint32 { return 1 << k }
	switch c.kinds {
	case 0, bit(appliance.KindString):
		return appliance.DTypeString
	case bit(appliance.KindInt64):
		return appliance.DTypeInt64
	case bit(appliance.KindFloat64), bit(appliance.KindFloat64) | bit(appliance.KindInt64):
		return appliance.DTypeFloat64
	}
	for _, d := range appliance.DTypes {
		if c.kinds == bit(d.Kind()) {
			return d
		}
	}
	return appliance.DTypeString // mixed: each value as its text
}

// convert gives v the column's output type.
func convert(v appliance.Value, d appliance.DType) appliance.Value {
	if v.Null() || v.Kind == d.Kind() {
		return v
	}
	switch d {
	case appliance.DTypeFloat64:
		if v.Kind == appliance.KindInt64 {
			return appliance.Float64Value(float64(v.Int))
		}
		if f, err := strconv.ParseFloat(v.Str, 64); err == nil && v.Kind == appliance.KindString {
			return appliance.Float64Value(f)
		}
	case appliance.DTypeInt64:
		if n, err := strconv.ParseInt(v.Str, 10, 64); err == nil && v.Kind == appliance.KindString {
			return appliance.Int64Value(n)
		}
	case appliance.DTypeBool:
		if v.Kind == appliance.KindString {
			return appliance.BoolValue(v.Str == "true")
		}
	case appliance.DTypeString:
		return appliance.StringValue(valueText(v))
	}
	return appliance.Value{}
}

// valueText renders a value of a mixed column as text.
func valueText(v appliance.Value) string {
	switch v.Kind {
	case appliance.KindInt64:
		return strconv.FormatInt(v.Int, 10)
	case appliance.KindFloat64:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case appliance.KindBool:
		return strconv.FormatBool(v.Int != 0)
	case appliance.KindTimestamp:
		return v.Time().Format(time.RFC3339Nano)
	case appliance.KindString, appliance.KindBytes:
		return v.Str
	}
	return fmt.Sprint(v.Ints, v.Floats, v.Strs)
}

// reader walks the spooled rows in order.
type spoolReader struct {
	r    *bufio.Reader
	ncol int
	row  []appliance.Value
	buf  []byte
}

func (s *Spool) reader() (*spoolReader, error) {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read entity rows: %w", err)
	}
	return &spoolReader{r: bufio.NewReaderSize(s.f, 1<<20), ncol: len(s.cols), row: make([]appliance.Value, len(s.cols))}, nil
}

// next returns the next row, one value per column (null where absent),
// valid until the next call.
func (r *spoolReader) next() ([]appliance.Value, error) {
	n, err := binary.ReadUvarint(r.r)
	if err != nil {
		return nil, fmt.Errorf("read entity rows: %w", err)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, fmt.Errorf("read entity rows: %w", err)
	}
	clear(r.row)
	cells, b, err := readUvarint(b)
	if err != nil {
		return nil, err
	}
	for range cells {
		var col uint64
		if col, b, err = readUvarint(b); err != nil || col >= uint64(r.ncol) {
			return nil, errCorrupt
		}
		if r.row[col], b, err = appliance.ReadValueBinary(b); err != nil {
			return nil, err
		}
	}
	return r.row, nil
}
