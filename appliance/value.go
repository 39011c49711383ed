package appliance

import (
	"math"
	"time"
)

// DType is the type of a feature's values.
type DType string

const (
	DTypeInt64       DType = "int64"
	DTypeFloat64     DType = "float64"
	DTypeBool        DType = "bool"
	DTypeString      DType = "string"
	DTypeBytes       DType = "bytes"
	DTypeTimestamp   DType = "timestamp"
	DTypeInt64List   DType = "list<int64>"
	DTypeFloat64List DType = "list<float64>"
	DTypeStringList  DType = "list<string>"
)

// DTypes lists every dtype, in the order documented in docs/api.md.
var DTypes = []DType{DTypeInt64, DTypeFloat64, DTypeBool, DTypeString, DTypeBytes,
	DTypeTimestamp, DTypeInt64List, DTypeFloat64List, DTypeStringList}

// Valid reports whether t is a known dtype.
func (t DType) Valid() bool {
	for _, d := range DTypes {
		if d == t {
			return true
		}
	}
	return false
}

// Kind is the in-memory representation of a value; KindNull is the zero.
type Kind uint8

const (
	KindNull Kind = iota
	KindInt64
	KindFloat64
	KindBool
	KindString
	KindBytes
	KindTimestamp
	KindInt64List
	KindFloat64List
	KindStringList
)

// Kind returns the value kind that holds values of dtype t.
func (t DType) Kind() Kind {
	switch t {
	case DTypeInt64:
		return KindInt64
	case DTypeFloat64:
		return KindFloat64
	case DTypeBool:
		return KindBool
	case DTypeString:
		return KindString
	case DTypeBytes:
		return KindBytes
	case DTypeTimestamp:
		return KindTimestamp
	case DTypeInt64List:
		return KindInt64List
	case DTypeFloat64List:
		return KindFloat64List
	case DTypeStringList:
		return KindStringList
	}
	return KindNull
}

// Value is one feature value. It is a plain struct rather than an interface
// so that a row of values is one allocation and reading a row back from the
// online store does not box every number.
//
// Int holds int64 values, bools (0 or 1) and timestamps (unix microseconds);
// Float holds float64; Str holds strings and bytes (as raw bytes); the list
// fields hold lists. A Value of KindNull is a missing value.
type Value struct {
	Kind   Kind
	Int    int64
	Float  float64
	Str    string
	Ints   []int64
	Floats []float64
	Strs   []string
}

// Null reports whether v is missing.
func (v Value) Null() bool { return v.Kind == KindNull }

// Int64Value, Float64Value, BoolValue, StringValue, BytesValue and
// TimestampValue build scalar values.
func Int64Value(i int64) Value     { return Value{Kind: KindInt64, Int: i} }
func Float64Value(f float64) Value { return Value{Kind: KindFloat64, Float: f} }
func StringValue(s string) Value   { return Value{Kind: KindString, Str: s} }
func BytesValue(b []byte) Value    { return Value{Kind: KindBytes, Str: string(b)} }
func BoolValue(b bool) Value {
	if b {
		return Value{Kind: KindBool, Int: 1}
	}
	return Value{Kind: KindBool}
}
func TimestampValue(t time.Time) Value { return Value{Kind: KindTimestamp, Int: t.UnixMicro()} }

// Time returns a timestamp value as a UTC time.
func (v Value) Time() time.Time { return time.UnixMicro(v.Int).UTC() }

// Equal reports whether two values are identical (NaN never occurs: ingest
// refuses it).
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind || v.Int != w.Int || v.Str != w.Str ||
		math.Float64bits(v.Float) != math.Float64bits(w.Float) ||
		len(v.Ints) != len(w.Ints) || len(v.Floats) != len(w.Floats) || len(v.Strs) != len(w.Strs) {
		return false
	}
	for i := range v.Ints {
		if v.Ints[i] != w.Ints[i] {
			return false
		}
	}
	for i := range v.Floats {
		if math.Float64bits(v.Floats[i]) != math.Float64bits(w.Floats[i]) {
			return false
		}
	}
	for i := range v.Strs {
		if v.Strs[i] != w.Strs[i] {
			return false
		}
	}
	return true
}

// TruncateTime returns t in UTC at the microsecond precision the store keeps.
func TruncateTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
