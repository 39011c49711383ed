package assign

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// kind is the JavaScript type a Go value stands for in a condition.
type kind uint8

const (
	kindNull kind = iota // nil, and any attribute that is missing
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject // maps and any Go type without a JavaScript counterpart
)

// objectString is String() of a plain JavaScript object.
const objectString = "[object Object]"

// jsValue is a Go value seen as the JavaScript value the SDK would hold
// after JSON decoding: every number a float64, every slice an array. It
// refers to the original and never copies it, so building one does not
// allocate.
type jsValue struct {
	kind kind
	b    bool
	n    float64
	// s is the string, or what an object converts to: objectString, or the
	// joined elements of an array detached from its slice.
	s   string
	arr any // the slice when kind is kindArray
}

func toJS(v any) jsValue {
	switch v := v.(type) {
	case nil:
		return jsValue{kind: kindNull}
	case bool:
		return jsValue{kind: kindBool, b: v}
	case string:
		return jsValue{kind: kindString, s: v}
	case float64:
		return jsValue{kind: kindNumber, n: v}
	case float32:
		return jsValue{kind: kindNumber, n: float64(v)}
	case int:
		return jsValue{kind: kindNumber, n: float64(v)}
	case int8:
		return jsValue{kind: kindNumber, n: float64(v)}
	case int16:
		return jsValue{kind: kindNumber, n: float64(v)}
	case int32:
		return jsValue{kind: kindNumber, n: float64(v)}
	case int64:
		return jsValue{kind: kindNumber, n: float64(v)}
	case uint:
		return jsValue{kind: kindNumber, n: float64(v)}
	case uint8:
		return jsValue{kind: kindNumber, n: float64(v)}
	case uint16:
		return jsValue{kind: kindNumber, n: float64(v)}
	case uint32:
		return jsValue{kind: kindNumber, n: float64(v)}
	case uint64:
		return jsValue{kind: kindNumber, n: float64(v)}
	case json.Number:
		return jsValue{kind: kindNumber, n: stringToNumber(string(v))}
	case []any, []string, []float64, []int, []int64, []bool:
		return jsValue{kind: kindArray, arr: v}
	}
	return jsValue{kind: kindObject, s: objectString}
}

// arrayLen and arrayAt walk the slices toJS accepts without reflection.
func arrayLen(a any) int {
	switch a := a.(type) {
	case []any:
		return len(a)
	case []string:
		return len(a)
	case []float64:
		return len(a)
	case []int:
		return len(a)
	case []int64:
		return len(a)
	case []bool:
		return len(a)
	}
	return 0
}

func arrayAt(a any, i int) jsValue {
	switch a := a.(type) {
	case []any:
		return toJS(a[i])
	case []string:
		return jsValue{kind: kindString, s: a[i]}
	case []float64:
		return jsValue{kind: kindNumber, n: a[i]}
	case []int:
		return jsValue{kind: kindNumber, n: float64(a[i])}
	case []int64:
		return jsValue{kind: kindNumber, n: float64(a[i])}
	case []bool:
		return jsValue{kind: kindBool, b: a[i]}
	}
	return jsValue{kind: kindNull}
}

// strictEqual is JavaScript's ===. Arrays and objects are equal only to
// themselves, and a rule's value is never the attribute's own object.
func strictEqual(a, b jsValue) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case kindNull:
		return true
	case kindBool:
		return a.b == b.b
	case kindNumber:
		return a.n == b.n
	case kindString:
		return a.s == b.s
	}
	return false
}

// sameValueZero is what Array.prototype.includes compares with: === except
// that NaN equals NaN.
func sameValueZero(a, b jsValue) bool {
	if a.kind == kindNumber && b.kind == kindNumber && a.n != a.n && b.n != b.n {
		return true
	}
	return strictEqual(a, b)
}

// compare is JavaScript's abstract relational comparison (a < b and
// friends): two strings compare by UTF-16 code units, anything else as
// numbers. ok is false when either side is NaN, which makes <, <=, > and >=
// all false.
func compare(a, b jsValue) (c int, ok bool) {
	a, b = toPrimitive(a), toPrimitive(b)
	if a.kind == kindString && b.kind == kindString {
		return compareUTF16(a.s, b.s), true
	}
	x, y := toNumber(a), toNumber(b)
	switch {
	case x != x || y != y:
		return 0, false
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	}
	return 0, true
}

// toPrimitive turns arrays and objects into the strings JavaScript would
// compare them as.
func toPrimitive(v jsValue) jsValue {
	if v.kind == kindArray || v.kind == kindObject {
		return jsValue{kind: kindString, s: toString(v)}
	}
	return v
}

// toNumber is JavaScript's ToNumber for primitives.
func toNumber(v jsValue) float64 {
	switch v.kind {
	case kindNull:
		return 0
	case kindBool:
		if v.b {
			return 1
		}
		return 0
	case kindNumber:
		return v.n
	case kindString:
		return stringToNumber(v.s)
	}
	return math.NaN()
}

// toString is JavaScript's String(v), which RegExp.prototype.test applies
// to whatever it is given: null is "null", an array its elements joined by
// commas.
func toString(v jsValue) string {
	switch v.kind {
	case kindNull:
		return "null"
	case kindBool:
		return strconv.FormatBool(v.b)
	case kindNumber:
		return numberToString(v.n)
	case kindString:
		return v.s
	case kindArray:
		var sb strings.Builder
		for i := range arrayLen(v.arr) {
			if i > 0 {
				sb.WriteByte(',')
			}
			// Array.prototype.join writes null and undefined as "".
			if e := arrayAt(v.arr, i); e.kind != kindNull {
				sb.WriteString(toString(e))
			}
		}
		return sb.String()
	}
	return v.s
}

// numberToString is JavaScript's Number.prototype.toString(): the shortest
// digits that round-trip, in plain notation from 1e-7 up to 1e21 and in
// exponent notation ("1e+21", "1.5e-7") beyond.
func numberToString(f float64) string {
	switch {
	case f != f:
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0" // also for -0
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// "d.ddde±x": shortest round-trip digits, as ECMAScript requires.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1 // value = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	es := "+"
	if n-1 < 0 {
		es = "-"
	}
	ex := strconv.Itoa(abs(n - 1))
	if k == 1 {
		return sign + digits + "e" + es + ex
	}
	return sign + digits[:1] + "." + digits[1:] + "e" + es + ex
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

// stringToNumber is JavaScript's ToNumber for a string: surrounding white
// space is ignored, "" is 0, 0x/0o/0b prefixes and Infinity are read, and
// anything else that is not a decimal literal is NaN. strconv.ParseFloat
// alone would also take "inf", "nan", "1_0" and hex floats.
func stringToNumber(s string) float64 {
	s = strings.TrimFunc(s, isJSSpace)
	if s == "" {
		return 0
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			return parseRadix(s[2:], base)
		}
	}
	switch s {
	case "Infinity", "+Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	if !isDecimalLiteral(s) {
		return math.NaN()
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !math.IsInf(f, 0) && f != 0 {
		return math.NaN()
	}
	return f
}

func parseRadix(s string, base int) float64 {
	f := 0.0
	for i := 0; i < len(s); i++ {
		d := digitValue(s[i])
		if d >= base {
			return math.NaN()
		}
		f = f*float64(base) + float64(d)
	}
	return f
}

func digitValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

// isDecimalLiteral checks ECMAScript's StrDecimalLiteral (without
// Infinity): [+-] (digits [. digits] | . digits) [(e|E) [+-] digits].
func isDecimalLiteral(s string) bool {
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	n := digits()
	if i < len(s) && s[i] == '.' {
		i++
		n += digits()
	}
	if n == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// isJSSpace is ECMAScript's WhiteSpace and LineTerminator.
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// compareUTF16 orders strings as JavaScript does, by UTF-16 code units.
// That is byte order (code point order) except when a character above
// U+FFFF meets one in U+E000–U+FFFF: its high surrogate (U+D800–U+DBFF)
// sorts first.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := firstUnit(ra), firstUnit(rb)
			if ua != ub {
				return cmpUint(ua, ub)
			}
			// Same high surrogate: low surrogates follow code point order.
			return cmpUint(uint32(ra), uint32(rb))
		}
		a, b = a[na:], b[nb:]
	}
	return cmpUint(uint32(len(a)), uint32(len(b)))
}

func firstUnit(r rune) uint32 {
	if r >= 0x10000 {
		return 0xD800 + uint32(r-0x10000)>>10
	}
	return uint32(r)
}

func cmpUint(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
