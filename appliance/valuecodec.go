package appliance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The binary form of a value, as the store keeps rows on disk and the
// point-in-time join spills them: a kind byte, then for integers (int64,
// bool, timestamp) a zigzag varint, for floats 8 little-endian bytes, for
// strings and bytes a uvarint length and the bytes, for lists a uvarint
// count and the elements. The store's files hold it: it must not change.

// ErrCorruptValue is a binary value that cannot be read.
var ErrCorruptValue = errors.New("corrupt value")

// AppendValueBinary appends v in its binary form.
func AppendValueBinary(dst []byte, v Value) []byte {
	dst = append(dst, byte(v.Kind))
	switch v.Kind {
	case KindNull:
	case KindInt64, KindBool, KindTimestamp:
		dst = binary.AppendVarint(dst, v.Int)
	case KindFloat64:
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Float))
	case KindString, KindBytes:
		dst = binary.AppendUvarint(dst, uint64(len(v.Str)))
		dst = append(dst, v.Str...)
	case KindInt64List:
		dst = binary.AppendUvarint(dst, uint64(len(v.Ints)))
		for _, x := range v.Ints {
			dst = binary.AppendVarint(dst, x)
		}
	case KindFloat64List:
		dst = binary.AppendUvarint(dst, uint64(len(v.Floats)))
		for _, x := range v.Floats {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x))
		}
	case KindStringList:
		dst = binary.AppendUvarint(dst, uint64(len(v.Strs)))
		for _, x := range v.Strs {
			dst = binary.AppendUvarint(dst, uint64(len(x)))
			dst = append(dst, x...)
		}
	default:
		panic(fmt.Sprintf("BUG: encode value of kind %d", v.Kind))
	}
	return dst
}

// ReadValueBinary reads one value from the front of b and returns the rest.
// Strings are copied: b may be memory the caller does not keep.
func ReadValueBinary(b []byte) (Value, []byte, error) {
	var v Value
	b, err := readValueInto(&v, b)
	return v, b, err
}

// DecodeValuesBinary reads n values into dst (reusing its capacity), as
// ReadValueBinary does one.
func DecodeValuesBinary(dst []Value, b []byte, n int) ([]Value, error) {
	if cap(dst) < n {
		dst = make([]Value, n)
	}
	dst = dst[:n]
	for i := range dst {
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: %d of %d values", ErrCorruptValue, i, n)
		}
		var err error
		if b, err = readValueInto(&dst[i], b); err != nil {
			return nil, fmt.Errorf("value %d: %w", i, err)
		}
	}
	return dst, nil
}

// readValueInto decodes into *v in place: the online read path decodes
// every feature of a row, and returning each 112-byte Value by value cost
// a third of a cached read.
func readValueInto(v *Value, b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, ErrCorruptValue
	}
	*v = Value{Kind: Kind(b[0])}
	b = b[1:]
	var err error
	switch v.Kind {
	case KindNull:
	case KindInt64, KindBool, KindTimestamp:
		v.Int, b, err = readBinaryVarint(b)
	case KindFloat64:
		v.Float, b, err = readBinaryFloat(b)
	case KindString, KindBytes:
		v.Str, b, err = ReadBinaryString(b)
	case KindInt64List:
		var count uint64
		if count, b, err = readBinaryCount(b); err == nil {
			v.Ints = make([]int64, count)
			for j := range v.Ints {
				if v.Ints[j], b, err = readBinaryVarint(b); err != nil {
					break
				}
			}
		}
	case KindFloat64List:
		var count uint64
		if count, b, err = readBinaryCount(b); err == nil {
			v.Floats = make([]float64, count)
			for j := range v.Floats {
				if v.Floats[j], b, err = readBinaryFloat(b); err != nil {
					break
				}
			}
		}
	case KindStringList:
		var count uint64
		if count, b, err = readBinaryCount(b); err == nil {
			v.Strs = make([]string, count)
			for j := range v.Strs {
				if v.Strs[j], b, err = ReadBinaryString(b); err != nil {
					break
				}
			}
		}
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrCorruptValue, v.Kind)
	}
	return b, err
}

func readBinaryVarint(b []byte) (int64, []byte, error) {
	x, w := binary.Varint(b)
	if w <= 0 {
		return 0, nil, fmt.Errorf("%w: bad varint", ErrCorruptValue)
	}
	return x, b[w:], nil
}

func readBinaryFloat(b []byte) (float64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("%w: short float", ErrCorruptValue)
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:], nil
}

func readBinaryCount(b []byte) (uint64, []byte, error) {
	n, w := binary.Uvarint(b)
	// Each element takes at least one byte: a larger count is corrupt.
	if w <= 0 || n > uint64(len(b)-w) {
		return 0, nil, fmt.Errorf("%w: bad count", ErrCorruptValue)
	}
	return n, b[w:], nil
}

// ReadBinaryString reads a uvarint-length-prefixed string (copied) from
// the front of b.
func ReadBinaryString(b []byte) (string, []byte, error) {
	n, b, err := readBinaryCount(b)
	if err != nil {
		return "", nil, err
	}
	return string(b[:n]), b[n:], nil
}
