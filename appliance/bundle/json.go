package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/mlnode/mlnode/appliance"
)

// maxDepth bounds the nesting of a manifest. Manifests are shallow; the
// bound exists so that "[[[[..." cannot exhaust the stack.
const maxDepth = 64

// A value is a parsed JSON value that keeps what the digest and the re-written
// manifest need: object members in document order and number literals as
// written. Parsing refuses what RFC 8785 (I-JSON) refuses: duplicate keys,
// numbers outside float64, invalid Unicode.
type value struct {
	kind jsonKind
	b    bool
	s    string // a string, or a number literal
	arr  []*value
	obj  []member
}

type jsonKind uint8

const (
	jNull jsonKind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

type member struct {
	key string
	val *value
}

// get returns the member key of an object, or nil.
func (v *value) get(key string) *value {
	for _, m := range v.obj {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// set replaces the member key of an object, or adds it after the member
// named after (or at the end).
func (v *value) set(key string, val *value, after string) {
	for i, m := range v.obj {
		if m.key == key {
			v.obj[i].val = val
			return
		}
	}
	for i, m := range v.obj {
		if m.key == after {
			v.obj = slices.Insert(v.obj, i+1, member{key, val})
			return
		}
	}
	v.obj = append(v.obj, member{key, val})
}

func stringMap(m map[string]string) *value {
	v := &value{kind: jObject}
	for _, k := range sortedKeys(m) {
		v.obj = append(v.obj, member{k, &value{kind: jString, s: m[k]}})
	}
	return v
}

// parseJSON parses one JSON document strictly: UTF-8 only, no lone
// surrogate escapes, no duplicate keys, numbers within float64, at most
// maxDepth levels, nothing after the value. Errors are EINVALID naming the
// JSON path (field) where they are found; what is the document for messages.
func parseJSON(raw []byte, what string) (*value, error) {
	if !utf8.Valid(raw) {
		return nil, appliance.Invalid(what, "is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := parseValue(dec, what, "", 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, appliance.Invalid(what, "unexpected data after the JSON value")
	}
	if err := checkSurrogates(raw, what); err != nil {
		return nil, err
	}
	return v, nil
}

func parseValue(dec *json.Decoder, what, path string, depth int) (*value, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(err, what)
	}
	switch t := tok.(type) {
	case nil:
		return &value{kind: jNull}, nil
	case bool:
		return &value{kind: jBool, b: t}, nil
	case string:
		return &value{kind: jString, s: t}, nil
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, appliance.Invalid(orRoot(path, what), "the number %s is outside the range of a 64-bit float", t)
		}
		// The digest compares numbers as doubles (RFC 8785), so an integer
		// a double cannot hold exactly (beyond 2^53) would give two
		// manifests that an int64 reader tells apart one digest.
		if !strings.ContainsAny(string(t), ".eE") && strconv.FormatFloat(f, 'f', -1, 64) != string(t) {
			return nil, appliance.Invalid(orRoot(path, what), "the integer %s is not exactly a 64-bit float: integers are exact only up to 2^53", t)
		}
		return &value{kind: jNumber, s: string(t)}, nil
	case json.Delim:
		if depth >= maxDepth {
			return nil, appliance.Invalid(orRoot(path, what), "is nested deeper than %d levels", maxDepth)
		}
		if t == '[' {
			v := &value{kind: jArray}
			for i := 0; dec.More(); i++ {
				e, err := parseValue(dec, what, indexPath(path, i), depth+1)
				if err != nil {
					return nil, err
				}
				v.arr = append(v.arr, e)
			}
			if _, err := dec.Token(); err != nil {
				return nil, syntaxError(err, what)
			}
			return v, nil
		}
		v := &value{kind: jObject}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, syntaxError(err, what)
			}
			key := tok.(string) // the decoder accepts only strings as keys
			p := keyPath(path, key)
			if seen[key] {
				return nil, appliance.Invalid(p, "duplicate key %q", key)
			}
			seen[key] = true
			e, err := parseValue(dec, what, p, depth+1)
			if err != nil {
				return nil, err
			}
			v.obj = append(v.obj, member{key, e})
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntaxError(err, what)
		}
		return v, nil
	}
	return nil, appliance.Invalid(what, "unexpected JSON token %v", tok)
}

func syntaxError(err error, what string) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return appliance.Invalid(what, "malformed JSON at byte %d: %v", syn.Offset, syn)
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return appliance.Invalid(what, "truncated or empty JSON")
	}
	return appliance.Invalid(what, "bad JSON: %v", err)
}

func orRoot(path, what string) string {
	if path == "" {
		return what
	}
	return path
}

// checkSurrogates refuses \uD800-\uDFFF escapes that do not form a pair:
// encoding/json would turn them into U+FFFD, so two different documents
// would read the same, and RFC 8785 forbids them. raw is valid JSON.
func checkSurrogates(raw []byte, what string) error {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if raw[i+1] != 'u' {
				i++ // a one-character escape
				continue
			}
			r := hex4(raw[i+2 : i+6])
			i += 5
			if r < 0xD800 || r > 0xDFFF {
				continue
			}
			if r <= 0xDBFF && i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo := hex4(raw[i+3 : i+7]); lo >= 0xDC00 && lo <= 0xDFFF {
					i += 6
					continue
				}
			}
			return appliance.Invalid(what, "a string holds an unpaired UTF-16 surrogate escape at byte %d", i-5)
		}
	}
	return nil
}

func hex4(b []byte) rune {
	n, err := strconv.ParseUint(string(b), 16, 16)
	if err != nil {
		return -1
	}
	return rune(n)
}

// keyPath names an object member in an error's field: "a.b" for plain keys
// (names and feature references), `a["x.wasm"]` for anything else.
func keyPath(path, key string) string {
	plain := key != ""
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':' || c == '@') {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// appendCanonical appends v in the JSON Canonicalization Scheme (RFC 8785):
// no whitespace, object members sorted by the UTF-16 code units of their
// keys, strings with the minimal escapes of ECMAScript's JSON.stringify,
// numbers as ECMAScript formats a double.
func appendCanonical(dst []byte, v *value) []byte {
	switch v.kind {
	case jNull:
		return append(dst, "null"...)
	case jBool:
		return strconv.AppendBool(dst, v.b)
	case jNumber:
		f, _ := strconv.ParseFloat(v.s, 64) // checked by parseValue
		return appendES6Number(dst, f)
	case jString:
		return appendJSONString(dst, v.s)
	case jArray:
		dst = append(dst, '[')
		for i, e := range v.arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendCanonical(dst, e)
		}
		return append(dst, ']')
	}
	members := slices.Clone(v.obj)
	slices.SortFunc(members, func(a, b member) int { return compareUTF16(a.key, b.key) })
	dst = append(dst, '{')
	for i, m := range members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, m.key)
		dst = append(dst, ':')
		dst = appendCanonical(dst, m.val)
	}
	return append(dst, '}')
}

// appendIndented appends v for people: members in document order, two
// spaces of indentation, number literals as written.
func appendIndented(dst []byte, v *value, indent string) []byte {
	switch v.kind {
	case jNumber:
		return append(dst, v.s...)
	case jArray:
		if len(v.arr) == 0 {
			return append(dst, "[]"...)
		}
		// Arrays of scalars (inputs, edges, counts) stay on one line.
		flat := true
		for _, e := range v.arr {
			flat = flat && e.kind != jArray && e.kind != jObject
		}
		dst = append(dst, '[')
		for i, e := range v.arr {
			if i > 0 {
				dst = append(dst, ',')
				if flat {
					dst = append(dst, ' ')
				}
			}
			if !flat {
				dst = append(dst, "\n  "+indent...)
			}
			dst = appendIndented(dst, e, indent+"  ")
		}
		if !flat {
			dst = append(dst, "\n"+indent...)
		}
		return append(dst, ']')
	case jObject:
		if len(v.obj) == 0 {
			return append(dst, "{}"...)
		}
		dst = append(dst, '{')
		for i, m := range v.obj {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, "\n  "+indent...)
			dst = appendJSONString(dst, m.key)
			dst = append(dst, ": "...)
			dst = appendIndented(dst, m.val, indent+"  ")
		}
		return append(dst, "\n"+indent+"}"...)
	}
	return appendCanonical(dst, v)
}

// appendES6Number formats f as ECMAScript's Number.prototype.toString does
// (RFC 8785 section 3.2.2.3): the shortest digits that round-trip, plain
// notation for 1e-6 <= |f| < 1e21, otherwise an exponent without leading
// zeros and with an explicit sign; -0 is 0.
func appendES6Number(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0')
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		panic("BUG: non-finite number in a parsed JSON value")
	}
	abs := math.Abs(f)
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
	// Go writes "1e+06" and "1e-07"; ECMAScript "1e+6" and "1e-7".
	e := start + bytes.IndexByte(dst[start:], 'e')
	if dst[e+2] == '0' {
		dst = append(dst[:e+2], dst[e+3:]...)
	}
	return dst
}

// appendJSONString writes s with JSON.stringify's escapes: \" \\ \b \f \n
// \r \t, \u00xx (lower-case hex) for other control characters, and
// everything else, non-ASCII included, as it is.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785
// sorts keys (it differs from byte order above U+FFFF: an emoji sorts
// before U+FB33).
func compareUTF16(a, b string) int {
	if isASCII(a) && isASCII(b) {
		return strings.Compare(a, b)
	}
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
