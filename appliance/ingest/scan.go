package ingest

import "fmt"

// scanner reads JSON from memory. It validates as strictly as encoding/json
// (which it replaces for speed: no reflection, no map per row, numbers kept
// as text until their column says how to read them) and stops at the first
// syntax error, remembering where. Running out of input is always reported
// at len(b), so that a caller holding part of a value can tell a value cut
// short from a bad one, read more, and start over.
type scanner struct {
	b     []byte
	i     int
	err   string
	errAt int
	stack []byte
}

// String flags.
const (
	strEscaped  = 1 << iota // contains backslash escapes
	strNonASCII             // contains bytes >= 0x80, to be checked as UTF-8
)

func (s *scanner) reset(b []byte) {
	s.b, s.i, s.err, s.errAt = b, 0, "", 0
}

func (s *scanner) ws() {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return // the common case: compact JSON
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eof() bool { return s.i >= len(s.b) }

// fail records a syntax error at the current position and returns false.
func (s *scanner) fail(context string) bool {
	if s.i >= len(s.b) {
		s.err = "unexpected end of JSON input"
	} else {
		s.err = "invalid character " + quoteChar(s.b[s.i]) + " " + context
	}
	s.errAt = s.i
	return false
}

func quoteChar(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// plain marks the bytes a string holds as they are: printable ASCII but the
// quote and the backslash. It is a table because strings (every column name
// among them) are most of what a row is made of.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans a string whose opening quote is at s.i and returns its content,
// still escaped.
func (s *scanner) str() (raw []byte, flags int, ok bool) {
	s.i++
	start := s.i
	b := s.b
	for {
		i := s.i
		for i < len(b) && plain[b[i]] {
			i++
		}
		s.i = i
		if i >= len(b) {
			return nil, 0, s.fail("")
		}
		switch c := b[i]; {
		case c == '"':
			s.i++
			return b[start:i], flags, true
		case c == '\\':
			flags |= strEscaped
			s.i++
			if s.i >= len(b) {
				return nil, 0, s.fail("")
			}
			switch b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for k := 0; k < 4; k++ {
					if s.i >= len(b) || !isHex(b[s.i]) {
						return nil, 0, s.fail("in \\u hexadecimal character escape")
					}
					s.i++
				}
			default:
				return nil, 0, s.fail("in string escape code")
			}
		case c < 0x20:
			return nil, 0, s.fail("in string literal")
		default:
			flags |= strNonASCII
			s.i++
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// num scans a number at s.i. isInt says it has neither fraction nor
// exponent.
func (s *scanner) num() (raw []byte, isInt bool, ok bool) {
	b := s.b
	start := s.i
	if b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i >= len(b):
		return nil, false, s.fail("")
	case b[s.i] == '0':
		s.i++
	case b[s.i] >= '1' && b[s.i] <= '9':
		s.i++
		for s.i < len(b) && isDigit(b[s.i]) {
			s.i++
		}
	default:
		return nil, false, s.fail("in numeric literal")
	}
	isInt = true
	if s.i < len(b) && b[s.i] == '.' {
		isInt = false
		s.i++
		if s.i >= len(b) || !isDigit(b[s.i]) {
			return nil, false, s.fail("after decimal point in numeric literal")
		}
		for s.i < len(b) && isDigit(b[s.i]) {
			s.i++
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		isInt = false
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if s.i >= len(b) || !isDigit(b[s.i]) {
			return nil, false, s.fail("in exponent of numeric literal")
		}
		for s.i < len(b) && isDigit(b[s.i]) {
			s.i++
		}
	}
	return b[start:s.i], isInt, true
}

// lit scans the literal true, false or null at s.i.
func (s *scanner) lit() bool {
	var word string
	switch s.b[s.i] {
	case 't':
		word = "true"
	case 'f':
		word = "false"
	default:
		word = "null"
	}
	for k := 0; k < len(word); k++ {
		if s.i >= len(s.b) || s.b[s.i] != word[k] {
			return s.fail(fmt.Sprintf("in literal %s (expecting %s)", word, quoteChar(word[k])))
		}
		s.i++
	}
	return true
}

// kindAt names the kind of the value starting at s.i, for reasons.
func (s *scanner) kindAt() string {
	if s.i >= len(s.b) {
		return "nothing"
	}
	switch c := s.b[s.i]; c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		if c == '-' || isDigit(c) {
			return "a number"
		}
	}
	return "an invalid value"
}

// scalar scans one string, number or literal at s.i.
func (s *scanner) scalar() bool {
	if s.i >= len(s.b) {
		return s.fail("")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '-' || isDigit(c):
		_, _, ok := s.num()
		return ok
	case c == 't' || c == 'f' || c == 'n':
		return s.lit()
	}
	return s.fail("looking for beginning of value")
}

// skip scans any value at s.i, validating it. It keeps its own stack rather
// than recursing, so that deep nesting costs memory, not the goroutine stack.
func (s *scanner) skip() bool {
	s.stack = s.stack[:0]
	for {
		// A value is expected.
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("")
		}
		switch s.b[s.i] {
		case '{':
			s.i++
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == '}' {
				s.i++
				break
			}
			s.stack = append(s.stack, '{')
			if !s.objectKey() {
				return false
			}
			continue
		case '[':
			s.i++
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == ']' {
				s.i++
				break
			}
			s.stack = append(s.stack, '[')
			continue
		default:
			if !s.scalar() {
				return false
			}
		}
		// A value ended: close containers until one wants another value.
		for {
			if len(s.stack) == 0 {
				return true
			}
			s.ws()
			if s.i >= len(s.b) {
				return s.fail("")
			}
			c := s.b[s.i]
			if s.stack[len(s.stack)-1] == '{' {
				if c == ',' {
					s.i++
					if !s.objectKey() {
						return false
					}
					break
				}
				if c != '}' {
					return s.fail("after object key:value pair")
				}
			} else {
				if c == ',' {
					s.i++
					break
				}
				if c != ']' {
					return s.fail("after array element")
				}
			}
			s.i++
			s.stack = s.stack[:len(s.stack)-1]
		}
	}
}

// objectKey scans `"key" :` before a member's value.
func (s *scanner) objectKey() bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return s.fail("looking for beginning of object key string")
	}
	if _, _, ok := s.str(); !ok {
		return false
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return s.fail("after object key")
	}
	s.i++
	return true
}
