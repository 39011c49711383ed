package ingest

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// text is input as JSON hands it out (bytes of the body) or as CSV does
// (strings), so that one converter serves both without copying.
type text interface{ ~string | ~[]byte }

// The stored time range: years 0001 to 9999 in UTC, in unix microseconds.
const (
	minMicros = -62135596800000000 // 0001-01-01T00:00:00Z
	maxMicros = 253402300799999999 // 9999-12-31T23:59:59.999999Z
)

// decimal is an exact decimal number, digits × 10^exp, so that int64s and
// times never go through float64 and lose digits.
type decimal struct {
	neg bool
	n   int // significant digits, without leading or trailing zeros; 0 for zero
	exp int
	// The leading significant digits. Every result needs at most 19 of them:
	// a number whose integer part has more overflows anyway.
	d [24]byte
}

// maxExp bounds exponents, far beyond any representable result, so that
// exponent arithmetic never overflows.
const maxExp = 1 << 30

// parseDecimal parses -?digits(.digits)?([eE][+-]?digits)?: JSON's number
// syntax, except that leading zeros are allowed, as CSV writers produce them.
func parseDecimal[T text](s T) (x decimal, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		x.neg = true
		i++
	}
	sig, lastNZ, frac := 0, -1, 0
	start := i
	for ; i < len(s) && isDigit(s[i]); i++ {
		if c := s[i]; sig > 0 || c != '0' {
			if sig < len(x.d) {
				x.d[sig] = c
			}
			if c != '0' {
				lastNZ = sig
			}
			sig++
		}
	}
	if i == start {
		return x, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for ; i < len(s) && isDigit(s[i]); i++ {
			frac++
			if c := s[i]; sig > 0 || c != '0' {
				if sig < len(x.d) {
					x.d[sig] = c
				}
				if c != '0' {
					lastNZ = sig
				}
				sig++
			}
		}
		if i == start {
			return x, false
		}
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		start = i
		for ; i < len(s) && isDigit(s[i]); i++ {
			if exp < maxExp {
				exp = exp*10 + int(s[i]-'0')
			}
		}
		if i == start {
			return x, false
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return x, false
	}
	if lastNZ < 0 {
		return decimal{}, true
	}
	x.n = lastNZ + 1
	x.exp = exp - frac + (sig - x.n)
	return x, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digitsValue returns the first k significant digits as a number; k <= 19.
func (x *decimal) digitsValue(k int) uint64 {
	var u uint64
	for i := 0; i < k; i++ {
		u = u*10 + uint64(x.d[i]-'0')
	}
	return u
}

// int64 returns x if it is an integer in range. The reason it is not is
// left to the caller to format, so that success costs no allocation.
func (x *decimal) int64() (v int64, integral, inRange bool) {
	if x.n == 0 {
		return 0, true, true
	}
	if x.exp < 0 {
		return 0, false, true
	}
	if x.n+x.exp > 19 {
		return 0, true, false
	}
	u := x.digitsValue(x.n) // at most 19 digits: fits a uint64
	for i := 0; i < x.exp; i++ {
		u *= 10 // n+exp <= 19 digits: no overflow
	}
	if x.neg {
		if u > 1<<63 {
			return 0, true, false
		}
		return -int64(u), true, true
	}
	if u > math.MaxInt64 {
		return 0, true, false
	}
	return int64(u), true, true
}

// intReason says why s is not an int64.
func intReason[T text](s T, integral bool) string {
	if !integral {
		return echo(s) + " is not an integer"
	}
	return echo(s) + " is out of the int64 range"
}

// scaled returns floor(x × 10^scale), and false if it does not fit the
// stored time range's magnitude.
func (x *decimal) scaled(scale int) (int64, bool) {
	if x.n == 0 {
		return 0, true
	}
	e := x.exp + scale
	whole := x.n + e // digits of the integer part
	if whole > 18 {
		return 0, false
	}
	var u uint64
	dropped := false
	if e >= 0 {
		u = x.digitsValue(x.n)
		for i := 0; i < e; i++ {
			u *= 10
		}
	} else {
		if whole > 0 {
			u = x.digitsValue(whole)
		}
		dropped = true // the last significant digit is never zero
	}
	v := int64(u)
	if x.neg {
		v = -v
		if dropped {
			v--
		}
	}
	return v, true
}

// fastInt parses -?[0-9]{1,18}, the form nearly every integer takes, and
// reports whether s had that form.
func fastInt[T text](s T) (int64, bool) {
	i, neg := 0, false
	if len(s) > 0 && s[0] == '-' {
		i, neg = 1, true
	}
	if n := len(s) - i; n == 0 || n > 18 {
		return 0, false
	}
	var v int64
	for ; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + int64(c)
	}
	if neg {
		v = -v
	}
	return v, true
}

// parseInt64 parses an integer written as a number, exactly: integral values
// in any notation (3.0, 1e3) are accepted, fractions and overflow are not.
func parseInt64[T text](s T) (int64, string) {
	if v, ok := fastInt(s); ok {
		return v, ""
	}
	x, ok := parseDecimal(s)
	if !ok {
		return 0, quote(s) + " is not an integer"
	}
	v, integral, inRange := x.int64()
	if !integral || !inRange {
		return 0, intReason(s, integral)
	}
	return v, ""
}

// parseKeyInt parses an int64 join key: only -?[0-9]+, stricter than a
// feature, since a key written as 1.0 or 1e3 is more likely an id that went
// through a float on its way here than one meant that way.
func parseKeyInt[T text](s T) (int64, string) {
	if v, ok := fastInt(s); ok {
		return v, ""
	}
	i := 0
	if len(s) > 0 && s[0] == '-' {
		i = 1
	}
	if i == len(s) {
		return 0, quote(s) + " is not an integer"
	}
	for ; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, quote(s) + " is not an integer"
		}
	}
	x, _ := parseDecimal(s)
	v, integral, inRange := x.int64()
	if !integral || !inRange {
		return 0, intReason(s, integral)
	}
	return v, ""
}

// parseFloat parses a finite float64. strict says that s is known to be a
// valid JSON number already.
func parseFloat[T text](s T, strict bool) (float64, string) {
	if !strict {
		if _, ok := parseDecimal(s); !ok {
			return 0, quote(s) + " is not a number"
		}
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		// Only a range error remains, and it means overflow: underflow
		// rounds to zero without an error.
		return 0, echo(s) + " overflows float64"
	}
	return f, ""
}

// parseBool parses CSV booleans: true, false (in any case), 1 and 0.
func parseBool(s string) (bool, bool) {
	switch {
	case s == "1" || strings.EqualFold(s, "true"):
		return true, true
	case s == "0" || strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// timeFromDecimal reads a unix time: seconds below 1e11 (in magnitude),
// milliseconds from there, since 1e11 seconds is the year 5138 and 1e11
// milliseconds is 1973. It reports false outside the stored range.
func timeFromDecimal(x *decimal) (int64, bool) {
	scale := 6
	if x.n+x.exp > 11 { // |x| >= 1e11
		scale = 3
	}
	us, ok := x.scaled(scale)
	return us, ok && us >= minMicros && us <= maxMicros
}

func timeRangeReason[T text](s T) string { return echo(s) + " is outside the years 0001 to 9999" }

// parseTimeNumber parses a JSON number as a unix time.
func parseTimeNumber(s []byte) (int64, string) {
	x, ok := parseDecimal(s)
	if !ok {
		return 0, quote(s) + " is not a number"
	}
	us, ok := timeFromDecimal(&x)
	if !ok {
		return 0, timeRangeReason(s)
	}
	return us, ""
}

// parseTimeText parses a time written as text: RFC 3339, or a unix time in
// seconds or milliseconds as a decimal.
func parseTimeText[T text](s T) (int64, string) {
	if len(s) > 0 && (s[0] == '-' || isDigit(s[0])) {
		if x, ok := parseDecimal(s); ok {
			us, ok := timeFromDecimal(&x)
			if !ok {
				return 0, timeRangeReason(s)
			}
			return us, ""
		}
	}
	return parseRFC3339(s)
}

// parseRFC3339 parses an RFC 3339 date-time: 2006-01-02T15:04:05, fractional
// seconds of any length (truncated to microseconds), then Z or an offset.
// As RFC 3339 allows, "t", "z" and a space in place of "T" are accepted.
// It avoids time.Parse, which would copy every []byte into a string.
func parseRFC3339[T text](s T) (int64, string) {
	bad := func() (int64, string) {
		return 0, quote(s) + " is not an RFC 3339 time or a unix time in seconds or milliseconds"
	}
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
		s[13] != ':' || s[16] != ':' {
		return bad()
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return bad()
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return 0, quote(s) + " is not a valid date and time"
	}
	i, nsec := 19, 0
	if s[i] == '.' {
		i++
		start := i
		for ; i < len(s) && isDigit(s[i]); i++ {
			if i-start < 9 {
				nsec = nsec*10 + int(s[i]-'0')
			}
		}
		if i == start {
			return bad()
		}
		for k := i - start; k < 9; k++ {
			nsec *= 10
		}
	}
	if i >= len(s) {
		return bad()
	}
	offset := 0
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return bad()
		}
		oh, ok1 := digits(s[i+1 : i+3])
		om, ok2 := digits(s[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return bad()
		}
		offset = (oh*60 + om) * 60
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return bad()
	}
	if i != len(s) {
		return bad()
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	us := (t.Unix()-int64(offset))*1e6 + int64(nsec/1000)
	if us < minMicros || us > maxMicros {
		return 0, timeRangeReason(s)
	}
	return us, ""
}

func digits[T text](s T) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// decodeBase64 decodes standard base64, padded or not, into dst.
func decodeBase64[T text](dst []byte, s T) ([]byte, string) {
	enc := base64.RawStdEncoding
	if len(s) > 0 && s[len(s)-1] == '=' {
		enc = base64.StdEncoding
	}
	n := enc.DecodedLen(len(s))
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	var (
		m   int
		err error
	)
	switch v := any(s).(type) {
	case string:
		m, err = enc.Decode(dst, []byte(v))
	case []byte:
		m, err = enc.Decode(dst, v)
	default:
		m, err = enc.Decode(dst, []byte(string(s)))
	}
	if err != nil {
		return dst, fmt.Sprintf("invalid base64: %v", err)
	}
	return dst[:m], ""
}
