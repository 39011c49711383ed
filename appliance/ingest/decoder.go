package ingest

import (
	"context"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/mlnode/mlnode/appliance"
)

// EventTimestamp is the column that holds each row's event time.
const EventTimestamp = "event_timestamp"

// ctxEvery is how many rows go by between checks of the context: often
// enough to stop a large body within milliseconds, rarely enough to cost
// nothing.
const ctxEvery = 4096

// Slab sizes: rows are carved out of shared arrays so that a row costs no
// allocation of its own for its values and key.
const (
	slabRows     = 256
	keySlabBytes = 16 << 10
)

type role uint8

const (
	roleKey role = iota
	roleTime
	roleFeature
)

// column is one column a row may have.
type column struct {
	name   string
	role   role
	keyInt bool // an int64 join key; else a string one
	key    int  // index in view.JoinKeys
	feat   int  // index in view.Features
	dtype  appliance.DType
	kind   appliance.Kind
}

// decoder builds the rows of one Decode call. Every format feeds it the same
// way: begin, set columns, end.
type decoder struct {
	ctx       context.Context
	view      *appliance.FeatureView
	maxErrors int
	maxRows   int
	unknownAt string // "<view>@v<N>", for unknown column reasons

	cols   []column
	byName map[string]int
	nkeys  int
	timeID int // column id of event_timestamp
	guess  []int
	batch  Batch

	// The row being decoded.
	seen      []uint32 // stamp of the row that set each column
	stamp     uint32
	failed    bool
	keep      bool // whether this row's error will be kept, and so worth formatting
	errField  string
	errReason string
	vals      []appliance.Value
	keyInts   []int64
	keyStart  []int
	keyEnd    []int
	keyBuf    []byte
	eventTime int64

	slab    []appliance.Value
	slabOff int
	reuse   bool // the slot at slabOff holds a rejected row's values
	keySlab []byte

	// Scratch reused across rows.
	keyScratch []byte
	esc        []byte
	keyEsc     []byte
	b64        []byte
	ints       []int64
	floats     []float64
	strs       []string
}

func newDecoder(ctx context.Context, view *appliance.FeatureView, opts Options) (*decoder, error) {
	if view == nil {
		return nil, fmt.Errorf("decode rows: nil feature view")
	}
	if len(view.JoinKeys) == 0 {
		return nil, fmt.Errorf("decode rows of %s: view has no join keys", view.Key())
	}
	d := &decoder{
		ctx:       ctx,
		view:      view,
		maxErrors: opts.MaxErrors,
		maxRows:   opts.MaxRows,
		unknownAt: view.Name + "@v" + strconv.Itoa(view.Version),
		nkeys:     len(view.JoinKeys),
		byName:    make(map[string]int, len(view.JoinKeys)+1+len(view.Features)),
	}
	if d.maxErrors == 0 {
		d.maxErrors = DefaultMaxErrors
	}
	cols := make([]column, 0, len(view.JoinKeys)+1+len(view.Features))
	for i, jk := range view.JoinKeys {
		cols = append(cols, column{name: jk.Name, role: roleKey, key: i, keyInt: jk.ValueType == appliance.EntityInt64})
	}
	d.timeID = len(cols)
	cols = append(cols, column{name: EventTimestamp, role: roleTime})
	for i, f := range view.Features {
		if f.Dtype.Kind() == appliance.KindNull {
			return nil, fmt.Errorf("decode rows of %s: feature %q has unknown dtype %q", view.Key(), f.Name, f.Dtype)
		}
		cols = append(cols, column{name: f.Name, role: roleFeature, feat: i, dtype: f.Dtype, kind: f.Dtype.Kind()})
	}
	for _, c := range cols {
		if err := d.add(c); err != nil {
			return nil, err
		}
	}
	d.seen = make([]uint32, len(d.cols))
	d.keyInts = make([]int64, d.nkeys)
	d.keyStart = make([]int, d.nkeys)
	d.keyEnd = make([]int, d.nkeys)
	return d, nil
}

// add registers a column. Column ids are positions: join keys first, in
// order, then event_timestamp, then the features.
func (d *decoder) add(c column) error {
	if _, ok := d.byName[c.name]; ok {
		// appliance.FeatureView.Validate and ResolveJoinKeys forbid this.
		return fmt.Errorf("decode rows of %s: column %q appears twice in the view", d.view.Key(), c.name)
	}
	d.byName[c.name] = len(d.cols)
	d.cols = append(d.cols, c)
	return nil
}

// begin starts the next row.
func (d *decoder) begin() error {
	total := d.batch.Total
	if d.maxRows > 0 && total >= d.maxRows {
		return fatal("body has more than %d rows", d.maxRows)
	}
	if total%ctxEvery == 0 {
		if err := d.ctx.Err(); err != nil {
			// Both the code the API promises and the context error, so that
			// a caller can tell a cancelled request from a bad body.
			return fmt.Errorf("%w: %w", fatal("decoding stopped at row %d: %v", total, err), err)
		}
	}
	d.keep = len(d.batch.Errors) < d.maxErrors
	n := len(d.view.Features)
	if len(d.slab)-d.slabOff < n {
		// Small first, since most requests are; then up to slabRows rows.
		rows := min(max(2*len(d.slab)/n, 8), slabRows)
		d.slab = make([]appliance.Value, n*rows)
		d.slabOff = 0
	}
	d.vals = d.slab[d.slabOff : d.slabOff+n : d.slabOff+n]
	d.reset(d.reuse)
	d.reuse = false
	return nil
}

// reset forgets what the current row has set, to start it over. Its values
// need clearing only if the slot was used before: fresh slab memory is zero.
func (d *decoder) reset(used bool) {
	d.stamp++
	if d.stamp == 0 {
		clear(d.seen)
		d.stamp = 1
	}
	d.failed = false
	d.keyBuf = d.keyBuf[:0]
	if used {
		clear(d.vals)
	}
}

// end finishes the row: it becomes a Row, or a rejection.
func (d *decoder) end() {
	d.batch.Total++
	if !d.failed {
		for k := 0; k < d.nkeys; k++ {
			if d.seen[k] != d.stamp {
				d.fail(d.cols[k].name, "missing join key")
				break
			}
			if n := d.keyEnd[k] - d.keyStart[k]; !d.cols[k].keyInt && n > appliance.MaxJoinKeyBytes {
				d.fail(d.cols[k].name, "is %d bytes; a join key is at most %d", n, appliance.MaxJoinKeyBytes)
				break
			}
		}
	}
	if !d.failed && d.seen[d.timeID] != d.stamp {
		d.fail(EventTimestamp, "missing event_timestamp")
	}
	if d.failed {
		d.batch.Rejected++
		if d.keep {
			d.batch.Errors = append(d.batch.Errors, RowError{Row: d.batch.Total - 1, Field: d.errField, Reason: d.errReason})
		}
		d.reuse = true // the next row takes the slot over
		return
	}
	d.slabOff += len(d.vals)
	d.batch.Rows = append(d.batch.Rows, appliance.Row{Key: d.rowKey(), EventTime: d.eventTime, Values: d.vals})
	d.batch.Index = append(d.batch.Index, d.batch.Total-1)
}

func (d *decoder) rowKey() []byte {
	k := d.keyScratch[:0]
	for i := 0; i < d.nkeys; i++ {
		if d.cols[i].keyInt {
			k = appliance.AppendEntityKeyPart(k, appliance.Int64Value(d.keyInts[i]))
		} else {
			k = appliance.AppendEntityKeyPart(k, appliance.Value{Kind: appliance.KindString, Str: string(d.keyBuf[d.keyStart[i]:d.keyEnd[i]])})
		}
	}
	d.keyScratch = k
	if cap(d.keySlab)-len(d.keySlab) < len(k) {
		d.keySlab = make([]byte, 0, max(keySlabBytes, len(k)))
	}
	off := len(d.keySlab)
	d.keySlab = append(d.keySlab, k...)
	return d.keySlab[off:len(d.keySlab):len(d.keySlab)]
}

// fail records the row's first problem. The reason is only formatted when
// it will be kept, so that a body of garbage costs little to reject.
func (d *decoder) fail(field, format string, args ...any) {
	if d.failed {
		return
	}
	d.failed = true
	if d.keep {
		d.errField = field
		d.errReason = fmt.Sprintf(format, args...)
	}
}

// failRow records a problem with the row as a whole, which trumps any
// earlier problem with one of its columns: a row that cannot be parsed has
// no columns to speak of.
func (d *decoder) failRow(reason string) {
	d.failed = true
	if d.keep {
		d.errField = ""
		d.errReason = reason
	}
}

// lookup returns the id of the column named name, or -1. pos is the
// column's position in the row: rows of a batch nearly always list their
// columns in the same order, so the column at the same position in the
// previous row is tried before the map.
func (d *decoder) lookup(name []byte, pos int) int {
	if pos < len(d.guess) {
		if id := d.guess[pos]; id >= 0 && string(name) == d.cols[id].name {
			return id
		}
	}
	id, ok := d.byName[string(name)]
	if !ok {
		id = -1
	}
	if pos < len(d.cols) { // a valid row has no more columns than that
		for pos >= len(d.guess) {
			d.guess = append(d.guess, -1)
		}
		d.guess[pos] = id
	}
	return id
}

// mark notes that the row sets column id and reports whether it is the
// first time.
func (d *decoder) mark(id int) bool {
	if d.seen[id] == d.stamp {
		d.fail(d.cols[id].name, "duplicate column")
		return false
	}
	d.seen[id] = d.stamp
	return true
}

func (d *decoder) failUnknown(name string) {
	d.fail(truncate(name, 128), "not a join key, %s or a feature of %s", EventTimestamp, d.unknownAt)
}

// The setters write only the fields that a kind uses: the slot is zero, and
// assigning a whole Value, with its pointer fields, costs GC write barriers
// on every number.
func (d *decoder) setInt(c *column, k appliance.Kind, n int64) {
	v := &d.vals[c.feat]
	v.Kind, v.Int = k, n
}

func (d *decoder) setFloat(c *column, f float64) {
	v := &d.vals[c.feat]
	v.Kind, v.Float = appliance.KindFloat64, f
}

func (d *decoder) setStr(c *column, k appliance.Kind, s string) {
	v := &d.vals[c.feat]
	v.Kind, v.Str = k, s
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (d *decoder) setKeyInt(c *column, v int64) { d.keyInts[c.key] = v }

func (d *decoder) setKeyStr(c *column, s []byte) {
	d.keyStart[c.key] = len(d.keyBuf)
	d.keyBuf = append(d.keyBuf, s...)
	d.keyEnd[c.key] = len(d.keyBuf)
}

// typeName names a dtype or entity value type in reasons.
func (c *column) typeName() string {
	switch c.role {
	case roleKey:
		if c.keyInt {
			return "an int64 join key"
		}
		return "a string join key"
	case roleTime:
		return "a time"
	}
	return string(c.dtype)
}

// truncate shortens s to at most n bytes without splitting a rune, for
// echoing input in messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// quote echoes input in a reason, shortened.
func quote[T text](s T) string { return strconv.Quote(truncate(string(s), 64)) }

// echo is quote, except that a short number is shown as it is.
func echo[T text](s T) string {
	if len(s) == 0 || len(s) > 64 {
		return quote(s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isDigit(c) && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			return quote(s)
		}
	}
	return string(s)
}
