package guest

import (
	"encoding/binary"
	"math"
)

// Kind is the tag of one record of a transform row (docs/abi.md).
type Kind uint8

// The record tags of mlnode_transform_row.
const (
	Null   Kind = 0
	Number Kind = 1
	String Kind = 2
)

// Value is one decoded record. Str points into the row buffer: it is valid
// only until the host writes the next row.
type Value struct {
	Kind Kind
	Num  float64
	Str  []byte
}

// ParseRow decodes exactly len(dst) records from row into dst and returns OK,
// or ErrRowFormat if row is truncated, has an unknown tag or bytes left over.
// It does not allocate.
func ParseRow(row []byte, dst []Value) int32 {
	for i := range dst {
		if len(row) == 0 {
			return ErrRowFormat
		}
		kind := Kind(row[0])
		row = row[1:]
		switch kind {
		case Null:
			dst[i] = Value{Kind: Null}
		case Number:
			if len(row) < 8 {
				return ErrRowFormat
			}
			dst[i] = Value{Kind: Number, Num: math.Float64frombits(binary.LittleEndian.Uint64(row))}
			row = row[8:]
		case String:
			if len(row) < 4 {
				return ErrRowFormat
			}
			n := binary.LittleEndian.Uint32(row)
			row = row[4:]
			if uint64(n) > uint64(len(row)) {
				return ErrRowFormat
			}
			dst[i] = Value{Kind: String, Str: row[:n:n]}
			row = row[n:]
		default:
			return ErrRowFormat
		}
	}
	if len(row) != 0 {
		return ErrRowFormat
	}
	return OK
}
