package guest

import "unsafe"

// Error codes the example modules return. 0 is success (docs/abi.md).
const (
	OK             int32 = 0
	ErrInputCount  int32 = 1 // n_in is not what the module was built for
	ErrOutputCount int32 = 2 // n_out is not what the module was built for
	ErrBuffer      int32 = 3 // a pointer/length pair is not inside a buffer from mlnode_alloc, or misaligned
	ErrRowCount    int32 = 4 // n_rows is negative
	ErrRowFormat   int32 = 5 // a transform row is truncated, has an unknown tag or trailing bytes
	ErrInputType   int32 = 6 // a transform input has the wrong type (e.g. a string where a number is declared)
)

// Arena hands out buffers the host may write and keeps every one of them
// reachable for the life of the instance. The zero value is ready to use.
type Arena struct {
	bufs []buffer
	last int // index of the buffer found by the last lookup: calls reuse the same few
}

type buffer struct {
	addr uintptr
	mem  []uint64 // uint64 words: 8-byte alignment for free
}

// Alloc returns the address of size zeroed bytes, 8-byte aligned, or 0 if
// size is negative.
func (a *Arena) Alloc(size int) uintptr {
	if size < 0 {
		return 0
	}
	n := (size + 7) / 8
	if n == 0 {
		n = 1 // a distinct, valid address even for 0 bytes
	}
	mem := make([]uint64, n)
	addr := uintptr(unsafe.Pointer(&mem[0]))
	a.bufs = append(a.bufs, buffer{addr: addr, mem: mem})
	return addr
}

// Bytes returns the n bytes at addr, or false unless they lie inside one
// buffer from Alloc.
func (a *Arena) Bytes(addr uintptr, n int) ([]byte, bool) {
	b, off, ok := a.find(addr, n)
	if !ok {
		return nil, false
	}
	all := unsafe.Slice((*byte)(unsafe.Pointer(&b.mem[0])), 8*len(b.mem))
	return all[off : off+uintptr(n) : off+uintptr(n)], true
}

// Float64s returns the n float64 values at addr, or false unless they lie
// inside one buffer from Alloc at an 8-byte aligned address.
func (a *Arena) Float64s(addr uintptr, n int) ([]float64, bool) {
	if n < 0 || n > 1<<28 {
		return nil, false
	}
	b, off, ok := a.find(addr, 8*n)
	if !ok || off%8 != 0 {
		return nil, false
	}
	all := unsafe.Slice((*float64)(unsafe.Pointer(&b.mem[0])), len(b.mem))
	i := off / 8
	return all[i : i+uintptr(n) : i+uintptr(n)], true
}

// find returns the buffer holding [addr, addr+n) and the offset of addr in it.
func (a *Arena) find(addr uintptr, n int) (*buffer, uintptr, bool) {
	if n < 0 {
		return nil, 0, false
	}
	if a.last < len(a.bufs) {
		if b := &a.bufs[a.last]; b.contains(addr, n) {
			return b, addr - b.addr, true
		}
	}
	for i := range a.bufs {
		if b := &a.bufs[i]; b.contains(addr, n) {
			a.last = i
			return b, addr - b.addr, true
		}
	}
	return nil, 0, false
}

func (b *buffer) contains(addr uintptr, n int) bool {
	size := uintptr(8 * len(b.mem))
	return addr >= b.addr && addr-b.addr <= size && uintptr(n) <= size-(addr-b.addr)
}
