package pit

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/mlnode/mlnode/appliance"
)

// The spill files hold values in a compact form of their own: a kind byte,
// then the payload. They live only as long as one request.

var errCorrupt = errors.New("corrupt spill record")

func appendValue(dst []byte, v appliance.Value) []byte {
	dst = append(dst, byte(v.Kind))
	switch v.Kind {
	case appliance.KindInt64, appliance.KindTimestamp:
		dst = binary.AppendVarint(dst, v.Int)
	case appliance.KindBool:
		dst = append(dst, byte(v.Int&1))
	case appliance.KindFloat64:
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(v.Float))
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
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(x))
		}
	case appliance.KindStringList:
		dst = binary.AppendUvarint(dst, uint64(len(v.Strs)))
		for _, x := range v.Strs {
			dst = binary.AppendUvarint(dst, uint64(len(x)))
			dst = append(dst, x...)
		}
	}
	return dst
}

func readUvarint(b []byte) (uint64, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return 0, nil, errCorrupt
	}
	return n, b[w:], nil
}

func readVarint(b []byte) (int64, []byte, error) {
	n, w := binary.Varint(b)
	if w <= 0 {
		return 0, nil, errCorrupt
	}
	return n, b[w:], nil
}

func readStr(b []byte) (string, []byte, error) {
	n, b, err := readUvarint(b)
	if err != nil || uint64(len(b)) < n {
		return "", nil, errCorrupt
	}
	return string(b[:n]), b[n:], nil
}

func readValue(b []byte) (appliance.Value, []byte, error) {
	if len(b) == 0 {
		return appliance.Value{}, nil, errCorrupt
	}
	v := appliance.Value{Kind: appliance.Kind(b[0])}
	b = b[1:]
	var err error
	switch v.Kind {
	case appliance.KindNull:
	case appliance.KindInt64, appliance.KindTimestamp:
		v.Int, b, err = readVarint(b)
	case appliance.KindBool:
		if len(b) < 1 {
			return v, nil, errCorrupt
		}
		v.Int, b = int64(b[0]), b[1:]
	case appliance.KindFloat64:
		if len(b) < 8 {
			return v, nil, errCorrupt
		}
		v.Float, b = math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:]
	case appliance.KindString, appliance.KindBytes:
		v.Str, b, err = readStr(b)
	case appliance.KindInt64List:
		var n uint64
		if n, b, err = readUvarint(b); err != nil || n > uint64(len(b)) {
			return v, nil, errCorrupt
		}
		v.Ints = make([]int64, n)
		for i := range v.Ints {
			if v.Ints[i], b, err = readVarint(b); err != nil {
				return v, nil, err
			}
		}
	case appliance.KindFloat64List:
		var n uint64
		if n, b, err = readUvarint(b); err != nil || n*8 > uint64(len(b)) {
			return v, nil, errCorrupt
		}
		v.Floats = make([]float64, n)
		for i := range v.Floats {
			v.Floats[i], b = math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:]
		}
	case appliance.KindStringList:
		var n uint64
		if n, b, err = readUvarint(b); err != nil || n > uint64(len(b)) {
			return v, nil, errCorrupt
		}
		v.Strs = make([]string, n)
		for i := range v.Strs {
			if v.Strs[i], b, err = readStr(b); err != nil {
				return v, nil, err
			}
		}
	default:
		return v, nil, errCorrupt
	}
	return v, b, err
}
