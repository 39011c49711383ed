package ingest

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/mlnode/mlnode/appliance"
)

// decodeNDJSON reads one object per line. A line that is not an object is
// the row's problem, not the body's: the other lines are still rows.
func (d *decoder) decodeNDJSON(r io.Reader) error {
	st := newStream(r, false)
	if err := st.skipBOM(); err != nil {
		return err
	}
	var sc scanner
	scanned := 0 // bytes from st.pos known to hold no newline
	for {
		var line []byte
		if j := bytes.IndexByte(st.buf[st.pos+scanned:st.n], '\n'); j >= 0 {
			line = st.buf[st.pos : st.pos+scanned+j]
			st.pos += scanned + j + 1
			scanned = 0
		} else if !st.eof {
			scanned = st.n - st.pos
			if err := st.fill(); err != nil {
				return err
			}
			continue
		} else if st.pos < st.n {
			line = st.buf[st.pos:st.n]
			st.pos, scanned = st.n, 0
		} else {
			return nil
		}
		if blank(line) {
			continue
		}
		if err := d.begin(); err != nil {
			return err
		}
		sc.reset(line)
		if !d.jsonRow(&sc, true) {
			var reason string
			if d.keep {
				reason = fmt.Sprintf("not a JSON object: %s at column %d", sc.err, sc.errAt+1)
			}
			d.failRow(reason)
		}
		d.end()
	}
}

func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// decodeJSON reads a JSON array of objects, one element at a time so that
// a large body is never held twice. A syntax error anywhere is fatal: unlike
// NDJSON, there is no telling where the next row starts.
func (d *decoder) decodeJSON(r io.Reader) error {
	st := newStream(r, true)
	if err := st.skipBOM(); err != nil {
		return err
	}
	c, ok, err := st.peek()
	if err != nil {
		return err
	}
	if !ok {
		return fatal("body is empty: want a JSON array of objects")
	}
	if c != '[' {
		return st.syntaxError(st.pos, "body is not a JSON array of objects")
	}
	st.pos++
	var sc scanner
	for first := true; ; first = false {
		c, ok, err := st.peek()
		if err != nil {
			return err
		}
		if !ok {
			return st.syntaxError(st.pos, "unexpected end of JSON input")
		}
		if first && c == ']' {
			st.pos++
			break
		}
		if err := d.begin(); err != nil {
			return err
		}
		// The element is parsed from what is buffered. If the scanner runs
		// out of input, or a number might go on, the element is parsed again
		// from its start with at least twice as much: cheaper than finding
		// its end first, since an element rarely straddles a refill.
		for {
			sc.reset(st.buf[st.pos:st.n])
			ok := d.jsonRow(&sc, false)
			if cut := ok && sc.i == len(sc.b) || !ok && sc.errAt == len(sc.b); !cut || st.eof {
				if !ok {
					return st.syntaxError(st.pos+sc.errAt, sc.err)
				}
				break
			}
			if err := st.more(); err != nil {
				return err
			}
			d.reset(true)
		}
		d.end()
		st.pos += sc.i
		c, ok, err = st.peek()
		if err != nil {
			return err
		}
		if !ok {
			return st.syntaxError(st.pos, "unexpected end of JSON input")
		}
		if c == ']' {
			st.pos++
			break
		}
		if c != ',' {
			return st.syntaxError(st.pos, "invalid character "+quoteChar(c)+" after array element")
		}
		st.pos++
	}
	c, ok, err = st.peek()
	if err != nil {
		return err
	}
	if ok {
		return st.syntaxError(st.pos, "invalid character "+quoteChar(c)+" after the array")
	}
	return nil
}

// jsonRow parses the object in s as the current row. It returns false on a
// syntax error; other problems go to d.fail, and parsing goes on to the end
// of the object so that a syntax error later in the row still counts. whole
// says that s must hold nothing but the row.
func (d *decoder) jsonRow(s *scanner, whole bool) bool {
	s.ws()
	if s.eof() {
		return s.fail("")
	}
	if s.b[s.i] != '{' {
		kind := s.kindAt()
		if !s.skip() {
			return false
		}
		if s.ws(); whole && !s.eof() {
			return s.fail("after top-level value")
		}
		d.failRow("not a JSON object: got " + kind)
		return true
	}
	s.i++
	s.ws()
	if !s.eof() && s.b[s.i] == '}' {
		s.i++
	} else {
		for pos := 0; ; pos++ {
			s.ws()
			if s.eof() || s.b[s.i] != '"' {
				return s.fail("looking for beginning of object key string")
			}
			raw, flags, ok := s.str()
			if !ok {
				return false
			}
			name := raw
			if flags&strEscaped != 0 {
				d.keyEsc = unescape(d.keyEsc[:0], raw)
				name = d.keyEsc
			}
			s.ws()
			if s.eof() || s.b[s.i] != ':' {
				return s.fail("after object key")
			}
			s.i++
			s.ws()
			id := d.lookup(name, pos)
			switch {
			case id < 0:
				if !d.failed {
					d.failUnknown(strings.ToValidUTF8(string(name), "\uFFFD"))
				}
				ok = s.skip()
			case d.failed || !d.mark(id):
				ok = s.skip()
			default:
				ok = d.jsonValue(s, &d.cols[id])
			}
			if !ok {
				return false
			}
			s.ws()
			if s.eof() {
				return s.fail("")
			}
			if s.b[s.i] == '}' {
				s.i++
				break
			}
			if s.b[s.i] != ',' {
				return s.fail("after object key:value pair")
			}
			s.i++
		}
	}
	if s.ws(); whole && !s.eof() {
		return s.fail("after top-level value")
	}
	return true
}

// jsonValue reads the value at s.i into column c of the row.
func (d *decoder) jsonValue(s *scanner, c *column) bool {
	if s.eof() {
		return s.fail("")
	}
	ch := s.b[s.i]
	if ch == 'n' {
		if !s.lit() {
			return false
		}
		switch c.role {
		case roleKey:
			d.fail(c.name, "join key is null")
		case roleTime:
			d.fail(c.name, "event_timestamp is null")
		}
		return true // a null feature is what the zero Value is
	}
	isNum := ch == '-' || isDigit(ch)
	switch c.role {
	case roleKey:
		switch {
		case ch == '"':
			v, ok, valid := d.jsonString(s)
			switch {
			case !ok:
				return false
			case !valid:
				d.fail(c.name, "invalid UTF-8")
			case len(v) == 0:
				d.fail(c.name, "join key is empty")
			case c.keyInt:
				n, reason := parseKeyInt(v)
				if reason != "" {
					d.fail(c.name, "%s", reason)
				}
				d.setKeyInt(c, n)
			default:
				d.setKeyStr(c, v)
			}
			return true
		case isNum && c.keyInt:
			raw, _, ok := s.num()
			if !ok {
				return false
			}
			n, reason := parseKeyInt(raw)
			if reason != "" {
				d.fail(c.name, "%s", reason)
			}
			d.setKeyInt(c, n)
			return true
		}
	case roleTime:
		us, ok, handled := d.jsonTime(s, c, isNum)
		if handled {
			d.eventTime = us
			return ok
		}
	default:
		return d.jsonFeature(s, c, isNum)
	}
	return d.jsonWrong(s, c)
}

// jsonTime reads a time; handled is false when the value is neither a
// string nor a number.
func (d *decoder) jsonTime(s *scanner, c *column, isNum bool) (us int64, ok, handled bool) {
	var reason string
	switch {
	case isNum:
		raw, _, ok := s.num()
		if !ok {
			return 0, false, true
		}
		us, reason = parseTimeNumber(raw)
	case s.b[s.i] == '"':
		v, ok, valid := d.jsonString(s)
		if !ok {
			return 0, false, true
		}
		if !valid {
			reason = "invalid UTF-8"
		} else {
			us, reason = parseTimeText(v)
		}
	default:
		return 0, true, false
	}
	if reason != "" {
		d.fail(c.name, "%s", reason)
	}
	return us, true, true
}

func (d *decoder) jsonFeature(s *scanner, c *column, isNum bool) bool {
	ch := s.b[s.i]
	var reason string
	switch c.kind {
	case appliance.KindInt64:
		var n int64
		switch {
		case isNum:
			raw, _, ok := s.num()
			if !ok {
				return false
			}
			n, reason = parseInt64(raw)
		case ch == '"':
			v, ok, _ := d.jsonString(s)
			if !ok {
				return false
			}
			n, reason = parseInt64(v)
		default:
			return d.jsonWrong(s, c)
		}
		d.setInt(c, appliance.KindInt64, n)
	case appliance.KindFloat64:
		if !isNum {
			return d.jsonWrong(s, c)
		}
		raw, _, ok := s.num()
		if !ok {
			return false
		}
		var f float64
		f, reason = parseFloat(raw, true)
		d.setFloat(c, f)
	case appliance.KindBool:
		if ch != 't' && ch != 'f' {
			return d.jsonWrong(s, c)
		}
		if !s.lit() {
			return false
		}
		d.setInt(c, appliance.KindBool, boolInt(ch == 't'))
	case appliance.KindString:
		if ch != '"' {
			return d.jsonWrong(s, c)
		}
		v, ok, valid := d.jsonString(s)
		if !ok {
			return false
		}
		if !valid {
			reason = "invalid UTF-8"
		}
		d.setStr(c, appliance.KindString, string(v))
	case appliance.KindBytes:
		if ch != '"' {
			return d.jsonWrong(s, c)
		}
		v, ok, _ := d.jsonString(s)
		if !ok {
			return false
		}
		d.b64, reason = decodeBase64(d.b64, v)
		d.setStr(c, appliance.KindBytes, string(d.b64))
	case appliance.KindTimestamp:
		us, ok, handled := d.jsonTime(s, c, isNum)
		if !handled {
			return d.jsonWrong(s, c)
		}
		d.setInt(c, appliance.KindTimestamp, us)
		return ok
	case appliance.KindInt64List, appliance.KindFloat64List, appliance.KindStringList:
		if ch != '[' {
			return d.jsonWrong(s, c)
		}
		return d.jsonList(s, c)
	default:
		panic("BUG: feature " + c.name + " has no kind")
	}
	if reason != "" {
		d.fail(c.name, "%s", reason)
	}
	return true
}

// jsonWrong skips a value of the wrong type and says so.
func (d *decoder) jsonWrong(s *scanner, c *column) bool {
	kind := s.kindAt()
	if !s.skip() {
		return false
	}
	d.fail(c.name, "want %s, got %s", c.typeName(), kind)
	return true
}

// jsonList reads a JSON array into a list value.
func (d *decoder) jsonList(s *scanner, c *column) bool {
	s.i++
	d.ints, d.floats, d.strs = d.ints[:0], d.floats[:0], d.strs[:0]
	s.ws()
	if !s.eof() && s.b[s.i] == ']' {
		s.i++
	} else {
		for n := 0; ; n++ {
			s.ws()
			ok := false
			if d.failed {
				ok = s.skip()
			} else {
				ok = d.jsonElem(s, c, n)
			}
			if !ok {
				return false
			}
			s.ws()
			if s.eof() {
				return s.fail("")
			}
			if s.b[s.i] == ']' {
				s.i++
				break
			}
			if s.b[s.i] != ',' {
				return s.fail("after array element")
			}
			s.i++
		}
	}
	if d.failed {
		return true
	}
	switch c.kind {
	case appliance.KindInt64List:
		d.vals[c.feat] = appliance.Value{Kind: c.kind, Ints: slices.Clone(d.ints)}
	case appliance.KindFloat64List:
		d.vals[c.feat] = appliance.Value{Kind: c.kind, Floats: slices.Clone(d.floats)}
	default:
		d.vals[c.feat] = appliance.Value{Kind: c.kind, Strs: slices.Clone(d.strs)}
	}
	return true
}

// jsonElem reads element n of a list.
func (d *decoder) jsonElem(s *scanner, c *column, n int) bool {
	if s.eof() {
		return s.fail("")
	}
	ch := s.b[s.i]
	isNum := ch == '-' || isDigit(ch)
	var reason, want string
	switch c.kind {
	case appliance.KindInt64List:
		want = "int64"
		var v int64
		switch {
		case isNum:
			raw, _, ok := s.num()
			if !ok {
				return false
			}
			v, reason = parseInt64(raw)
		case ch == '"':
			str, ok, _ := d.jsonString(s)
			if !ok {
				return false
			}
			v, reason = parseInt64(str)
		default:
			goto wrong
		}
		d.ints = append(d.ints, v)
	case appliance.KindFloat64List:
		want = "float64"
		if !isNum {
			goto wrong
		}
		raw, _, ok := s.num()
		if !ok {
			return false
		}
		var f float64
		f, reason = parseFloat(raw, true)
		d.floats = append(d.floats, f)
	default:
		want = "string"
		if ch != '"' {
			goto wrong
		}
		str, ok, valid := d.jsonString(s)
		if !ok {
			return false
		}
		if !valid {
			reason = "invalid UTF-8"
		}
		d.strs = append(d.strs, string(str))
	}
	if reason != "" {
		d.fail(c.name, "element %d: %s", n, reason)
	}
	return true
wrong:
	kind := s.kindAt()
	if !s.skip() {
		return false
	}
	if ch == 'n' {
		d.fail(c.name, "element %d is null", n)
	} else {
		d.fail(c.name, "element %d: want %s, got %s", n, want, kind)
	}
	return true
}

// jsonString scans the string at s.i and returns its unescaped content,
// valid only until the next call, and whether it is valid UTF-8.
func (d *decoder) jsonString(s *scanner) (v []byte, ok, valid bool) {
	raw, flags, ok := s.str()
	if !ok {
		return nil, false, false
	}
	// Escapes are ASCII, so the raw text is valid UTF-8 if and only if the
	// unescaped one is (lone surrogates become U+FFFD, as in encoding/json).
	if flags&strNonASCII != 0 && !utf8.Valid(raw) {
		return raw, true, false
	}
	if flags&strEscaped == 0 {
		return raw, true, true
	}
	d.esc = unescape(d.esc[:0], raw)
	return d.esc, true, true
}

// unescape appends the unescaped content of a JSON string, already
// validated by the scanner, to dst.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := bytes.IndexByte(raw[i:], '\\')
			if j < 0 {
				j = len(raw) - i
			}
			dst = append(dst, raw[i:i+j]...)
			i += j
			continue
		}
		i++
		switch c = raw[i]; c {
		case 'u':
			r := hex4(raw[i+1 : i+5])
			i += 5
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hex4(raw[i+2 : i+6])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		}
		dst = append(dst, c)
		i++
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
