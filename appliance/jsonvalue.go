package appliance

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The JSON writers of values, shared by the API's answers (httpapi), the
// exports (tabular) and the telemetry logs, so that a value reads the same
// everywhere: int64s exact, floats shortest (as encoding/json), bytes in
// standard base64, timestamps RFC 3339 in UTC, lists as arrays, null for a
// missing value; strings byte for byte as encoding/json's Marshal writes
// them. appliance/tabular's tests hold them to encoding/json.

// AppendJSONValue appends v as JSON.
func AppendJSONValue(dst []byte, v *Value) []byte {
	switch v.Kind {
	case KindInt64:
		return strconv.AppendInt(dst, v.Int, 10)
	case KindFloat64:
		return AppendJSONFloat(dst, v.Float)
	case KindBool:
		return strconv.AppendBool(dst, v.Int != 0)
	case KindString:
		return AppendJSONString(dst, v.Str)
	case KindBytes:
		dst = append(dst, '"')
		dst = AppendBase64String(dst, v.Str)
		return append(dst, '"')
	case KindTimestamp:
		dst = append(dst, '"')
		dst = AppendJSONTime(dst, v.Int)
		return append(dst, '"')
	case KindInt64List, KindFloat64List, KindStringList:
		return appendJSONList(dst, v)
	}
	return append(dst, "null"...)
}

func appendJSONList(dst []byte, v *Value) []byte {
	dst = append(dst, '[')
	switch v.Kind {
	case KindInt64List:
		for i, x := range v.Ints {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, x, 10)
		}
	case KindFloat64List:
		for i, x := range v.Floats {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONFloat(dst, x)
		}
	default:
		for i, x := range v.Strs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, x)
		}
	}
	return append(dst, ']')
}

// AppendBase64String encodes s in standard base64 without first copying it into a []byte.
func AppendBase64String(dst []byte, s string) []byte {
	const chunk = 3 * 256 // whole groups of 3, so no padding mid-way
	var in [chunk]byte
	for len(s) > 0 {
		n := copy(in[:], s)
		s = s[n:]
		dst = base64.StdEncoding.AppendEncode(dst, in[:n])
	}
	return dst
}

// AppendJSONFloat formats as encoding/json does: shortest representation, an
// exponent only below 1e-6 or from 1e21. Stored floats are never NaN or
// infinite (ingest refuses them); null guards the impossible.
func AppendJSONFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as in encoding/json.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

const jsonHexDigits = "0123456789abcdef"

// AppendJSONString writes s as a JSON string: a string of printable ASCII
// without '"' or '\' as it is, any other as
// encoding/json's Marshal writes it (HTML characters escaped, invalid UTF-8
// as U+FFFD, U+2028 and U+2029 escaped), without Marshal's allocations.
func AppendJSONString(dst []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	dst = append(dst, '"')
	if plain {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', jsonHexDigits[c>>4], jsonHexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', jsonHexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendJSONTime writes unix microseconds as RFC 3339 in UTC, with
// fractional digits only when there are any, in groups of 3 as protobuf's
// JSON Timestamp does.
func AppendJSONTime(dst []byte, micros int64) []byte {
	t := time.UnixMicro(micros).UTC()
	switch {
	case t.Nanosecond() == 0:
		return t.AppendFormat(dst, "2006-01-02T15:04:05Z")
	case t.Nanosecond()%1e6 == 0:
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	}
	return t.AppendFormat(dst, "2006-01-02T15:04:05.000000Z")
}
