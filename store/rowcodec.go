package store

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/mlnode/mlnode/appliance"
)

// encodeValues appends the row's values in schema order: per value a kind
// byte, then for integers (int64, bool, timestamp) a zigzag varint, for
// floats 8 little-endian bytes, for strings and bytes a uvarint length and
// the bytes, for lists a uvarint count and the elements.
func encodeValues(dst []byte, values []appliance.Value) []byte {
	for _, v := range values {
		dst = append(dst, byte(v.Kind))
		switch v.Kind {
		case appliance.KindNull:
		case appliance.KindInt64, appliance.KindBool, appliance.KindTimestamp:
			dst = binary.AppendVarint(dst, v.Int)
		case appliance.KindFloat64:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Float))
		case appliance.KindString, appliance.KindBytes:
			dst = binary.AppendUvarint(dst, uint64(len(v.Str)))
			dst = append(dst, v.Str...)
		case appliance.KindInt64List:
			dst = binary.AppendUvarint(dst, uint64(len(v.Ints)))
			for _, x := range v.Ints {
				dst = binary.AppendVarint(dst, x)
			}
		case appliance.KindFloat64List:
			dst = binary.AppendUvarint(dst, uint64(len(v.Floats)))
			for _, x := range v.Floats {
				dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x))
			}
		case appliance.KindStringList:
			dst = binary.AppendUvarint(dst, uint64(len(v.Strs)))
			for _, x := range v.Strs {
				dst = binary.AppendUvarint(dst, uint64(len(x)))
				dst = append(dst, x...)
			}
		default:
			panic(fmt.Sprintf("BUG: encode value of kind %d", v.Kind))
		}
	}
	return dst
}

// decodeValues reads n values into dst (reusing its capacity). Strings are
// copied: b may be memory owned by a transaction.
func decodeValues(dst []appliance.Value, b []byte, n int) ([]appliance.Value, error) {
	if cap(dst) < n {
		dst = make([]appliance.Value, n)
	}
	dst = dst[:n]
	for i := 0; i < n; i++ {
		if len(b) == 0 {
			return nil, fmt.Errorf("decode row: %d of %d values", i, n)
		}
		kind := appliance.Kind(b[0])
		b = b[1:]
		v := appliance.Value{Kind: kind}
		var err error
		switch kind {
		case appliance.KindNull:
		case appliance.KindInt64, appliance.KindBool, appliance.KindTimestamp:
			v.Int, b, err = readVarint(b)
		case appliance.KindFloat64:
			v.Float, b, err = readFloat(b)
		case appliance.KindString, appliance.KindBytes:
			v.Str, b, err = readString(b)
		case appliance.KindInt64List:
			var count uint64
			if count, b, err = readCount(b); err == nil {
				v.Ints = make([]int64, count)
				for j := range v.Ints {
					if v.Ints[j], b, err = readVarint(b); err != nil {
						break
					}
				}
			}
		case appliance.KindFloat64List:
			var count uint64
			if count, b, err = readCount(b); err == nil {
				v.Floats = make([]float64, count)
				for j := range v.Floats {
					if v.Floats[j], b, err = readFloat(b); err != nil {
						break
					}
				}
			}
		case appliance.KindStringList:
			var count uint64
			if count, b, err = readCount(b); err == nil {
				v.Strs = make([]string, count)
				for j := range v.Strs {
					if v.Strs[j], b, err = readString(b); err != nil {
						break
					}
				}
			}
		default:
			return nil, fmt.Errorf("decode row: unknown kind %d", kind)
		}
		if err != nil {
			return nil, fmt.Errorf("decode row value %d: %w", i, err)
		}
		dst[i] = v
	}
	return dst, nil
}

func readVarint(b []byte) (int64, []byte, error) {
	x, w := binary.Varint(b)
	if w <= 0 {
		return 0, nil, fmt.Errorf("bad varint")
	}
	return x, b[w:], nil
}

func readFloat(b []byte) (float64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("short float")
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:], nil
}

func readCount(b []byte) (uint64, []byte, error) {
	n, w := binary.Uvarint(b)
	// Each element takes at least one byte: a larger count is corrupt.
	if w <= 0 || n > uint64(len(b)-w) {
		return 0, nil, fmt.Errorf("bad count")
	}
	return n, b[w:], nil
}

func readString(b []byte) (string, []byte, error) {
	n, b, err := readCount(b)
	if err != nil {
		return "", nil, err
	}
	return string(b[:n]), b[n:], nil
}
