package ingest

import (
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/mlnode/mlnode/appliance"
)

// decodeCSV reads a header line naming the columns, then one row per
// record. CSV has no types: cells are read by their column's type, and an
// empty cell is a null.
func (d *decoder) decodeCSV(r io.Reader) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1 // a short or long record is the row's problem
	header, err := cr.Read()
	if err == io.EOF {
		return fatal("body is empty: want a CSV header line")
	}
	if err != nil {
		return csvError(err)
	}
	ids := make([]int, len(header))
	names := make([]string, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // spreadsheet exports start with a BOM
		}
		for _, prev := range names[:i] {
			if prev == h {
				return fatal("duplicate column %q in the CSV header", truncate(h, 128))
			}
		}
		names[i] = strings.Clone(h)
		id, ok := d.byName[h]
		if !ok {
			id = -1
		}
		ids[i] = id
	}
	var sc scanner
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvError(err)
		}
		if err := d.begin(); err != nil {
			return err
		}
		if len(rec) != len(ids) {
			d.fail("", "has %d fields, the header has %d", len(rec), len(ids))
		} else {
			for i, cell := range rec {
				id := ids[i]
				if id < 0 {
					d.failUnknown(strings.ToValidUTF8(names[i], "\uFFFD"))
					break
				}
				d.seen[id] = d.stamp
				d.csvCell(&sc, &d.cols[id], cell)
				if d.failed {
					break
				}
			}
		}
		d.end()
	}
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fatal("invalid CSV: %v", pe)
	}
	return readError(err)
}

// csvCell reads one cell into column c of the row.
func (d *decoder) csvCell(sc *scanner, c *column, cell string) {
	var reason string
	switch c.role {
	case roleKey:
		switch {
		case cell == "":
			reason = "join key is empty"
		case c.keyInt:
			d.keyInts[c.key], reason = parseKeyInt(cell)
		case !utf8.ValidString(cell):
			reason = "invalid UTF-8"
		default:
			d.keyStart[c.key] = len(d.keyBuf)
			d.keyBuf = append(d.keyBuf, cell...)
			d.keyEnd[c.key] = len(d.keyBuf)
		}
	case roleTime:
		if cell == "" {
			reason = "event_timestamp is empty"
		} else {
			d.eventTime, reason = parseTimeText(cell)
		}
	default:
		if cell == "" {
			return // null
		}
		reason = d.csvFeature(sc, c, cell)
	}
	if reason != "" {
		d.fail(c.name, "%s", reason)
	}
}

func (d *decoder) csvFeature(sc *scanner, c *column, cell string) (reason string) {
	switch c.kind {
	case appliance.KindInt64:
		var n int64
		n, reason = parseInt64(cell)
		d.setInt(c, appliance.KindInt64, n)
	case appliance.KindFloat64:
		var f float64
		f, reason = parseFloat(cell, false)
		d.setFloat(c, f)
	case appliance.KindBool:
		b, ok := parseBool(cell)
		if !ok {
			return quote(cell) + " is not a bool: want true, false, 1 or 0"
		}
		d.setInt(c, appliance.KindBool, boolInt(b))
	case appliance.KindString:
		if !utf8.ValidString(cell) {
			return "invalid UTF-8"
		}
		// The record's fields share one string: a clone keeps only this one.
		d.setStr(c, appliance.KindString, strings.Clone(cell))
	case appliance.KindBytes:
		d.b64, reason = decodeBase64(d.b64, cell)
		d.setStr(c, appliance.KindBytes, string(d.b64))
	case appliance.KindTimestamp:
		var us int64
		us, reason = parseTimeText(cell)
		d.setInt(c, appliance.KindTimestamp, us)
	case appliance.KindInt64List, appliance.KindFloat64List, appliance.KindStringList:
		// The cell holds the list as JSON text.
		sc.reset([]byte(cell))
		sc.ws()
		if sc.eof() || sc.b[sc.i] != '[' {
			return "want a JSON array, got " + quote(cell)
		}
		if !d.jsonList(sc, c) {
			return "invalid JSON array: " + sc.err
		}
		if sc.ws(); !sc.eof() {
			sc.fail("after array")
			return "invalid JSON array: " + sc.err
		}
	default:
		panic("BUG: feature " + c.name + " has no kind")
	}
	return reason
}
