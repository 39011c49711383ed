package tabular

import (
	"errors"
	"fmt"
)

// Parquet's footer and page headers are Thrift compact protocol structs,
// which parquet-go decodes trusting every length they declare: a list may
// claim two billion elements in five bytes, and a decoder that allocates
// them first runs out of memory before it finds out. thriftWalker checks a
// struct without allocating: every length against the bytes that remain,
// nesting to a fixed depth, and elements in all to a budget, so that what
// parquet-go allocates afterwards is bounded by what the walk saw.

// Compact protocol type codes.
const (
	tStop   = 0
	tTrue   = 1
	tFalse  = 2
	tByte   = 3
	tI16    = 4
	tI32    = 5
	tI64    = 6
	tDouble = 7
	tBinary = 8
	tList   = 9
	tSet    = 10
	tMap    = 11
	tStruct = 12
	tUUID   = 13
)

const maxThriftDepth = 24

// errThriftShort is a struct cut short: the caller may read more and retry.
var errThriftShort = errors.New("truncated")

type thriftWalker struct {
	b []byte
	i int
	// Elements of lists, sets and maps seen, and how many of them were
	// structs, each bounded: parquet-go makes a Go value of each, and a
	// struct such as a column chunk weighs hundreds of bytes.
	elems, structs       int
	maxElems, maxStructs int
	// onInt, when set, sees every integer and bool field outside lists by
	// its path of field ids from the top struct: {3} is field 3, {5, 1} is
	// field 1 of the struct in field 5.
	onInt func(path []int16, v int64)
	path  [maxThriftDepth]int16
}

func (w *thriftWalker) byte() (byte, error) {
	if w.i >= len(w.b) {
		return 0, errThriftShort
	}
	c := w.b[w.i]
	w.i++
	return c, nil
}

func (w *thriftWalker) uvarint() (uint64, error) {
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		c, err := w.byte()
		if err != nil {
			return 0, err
		}
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, errors.New("varint longer than 64 bits")
}

func (w *thriftWalker) varint() (int64, error) {
	u, err := w.uvarint()
	return int64(u>>1) ^ -int64(u&1), err
}

// skipBytes moves past n bytes, which must be there.
func (w *thriftWalker) skipBytes(n uint64) error {
	if n > uint64(len(w.b)-w.i) {
		return errThriftShort
	}
	w.i += int(n)
	return nil
}

// walkStruct checks the struct at w.i; depth is its nesting, 0 for the top.
func (w *thriftWalker) walkStruct(depth int) error {
	if depth >= maxThriftDepth {
		return errors.New("structs nested too deep")
	}
	var id int16
	for {
		h, err := w.byte()
		if err != nil {
			return err
		}
		if h == tStop {
			return nil
		}
		typ := h & 0x0f
		if delta := h >> 4; delta != 0 {
			id += int16(delta)
		} else {
			v, err := w.varint()
			if err != nil {
				return err
			}
			id = int16(v)
		}
		w.path[depth] = id
		if err := w.walkValue(typ, depth, true); err != nil {
			return err
		}
	}
}

// walkValue checks one value of type typ. A field's bools are in its
// header; a list's take a byte each.
func (w *thriftWalker) walkValue(typ byte, depth int, field bool) error {
	switch typ {
	case tTrue, tFalse:
		v := int64(0)
		if field {
			if typ == tTrue {
				v = 1
			}
		} else {
			c, err := w.byte()
			if err != nil {
				return err
			}
			if c == tTrue {
				v = 1
			}
		}
		if field && w.onInt != nil {
			w.onInt(w.path[:depth+1], v)
		}
		return nil
	case tByte:
		_, err := w.byte()
		return err
	case tI16, tI32, tI64:
		v, err := w.varint()
		if err == nil && field && w.onInt != nil {
			w.onInt(w.path[:depth+1], v)
		}
		return err
	case tDouble:
		return w.skipBytes(8)
	case tUUID:
		return w.skipBytes(16)
	case tBinary:
		n, err := w.uvarint()
		if err != nil {
			return err
		}
		return w.skipBytes(n)
	case tStruct:
		if !field {
			// Inside a list the path means nothing: no callbacks.
			saved := w.onInt
			w.onInt = nil
			defer func() { w.onInt = saved }()
		}
		return w.walkStruct(depth + 1)
	case tList, tSet:
		h, err := w.byte()
		if err != nil {
			return err
		}
		n, elem := uint64(h>>4), h&0x0f
		if n == 15 {
			if n, err = w.uvarint(); err != nil {
				return err
			}
		}
		return w.walkElems(n, depth, elem)
	case tMap:
		n, err := w.uvarint()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		kv, err := w.byte()
		if err != nil {
			return err
		}
		if n > uint64(len(w.b)-w.i) {
			return errThriftShort
		}
		for range n {
			if err := w.walkElems(1, depth, kv>>4); err != nil {
				return err
			}
			if err := w.walkElems(1, depth, kv&0x0f); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown thrift type %d", typ)
}

func (w *thriftWalker) walkElems(n uint64, depth int, elem byte) error {
	// Every element takes at least a byte: a longer claim is a lie, caught
	// here before counting to it.
	if n > uint64(len(w.b)-w.i) {
		return errThriftShort
	}
	w.elems += int(n)
	if elem == tStruct {
		w.structs += int(n)
	}
	if w.elems > w.maxElems || w.structs > w.maxStructs {
		return fmt.Errorf("more than %d list elements", min(w.maxElems, w.maxStructs))
	}
	for range n {
		if err := w.walkValue(elem, depth, false); err != nil {
			return err
		}
	}
	return nil
}
