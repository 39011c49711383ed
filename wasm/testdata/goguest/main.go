// Command goguest is a Go reactor for the tests of package wasm, built by
// them with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared. Its
// mlnode_predict picks a behaviour by the integer value of its first input:
// 0 sums the inputs, 1 loops forever, 2 allocates until memory runs out,
// 3 panics, 4 prints to stderr then sums. It uses println, not fmt: package
// os would import WASI file functions that mlnode refuses (docs/abi.md).
package main

import "unsafe"

// buffers keeps the host's buffers reachable, so the GC never frees them.
var buffers = map[uintptr][]byte{}

//go:wasmexport mlnode_alloc
func alloc(size int32) uint32 {
	b := make([]byte, size+8)
	p := (uintptr(unsafe.Pointer(&b[0])) + 7) &^ 7
	buffers[p] = b
	return uint32(p)
}

var sink [][]byte

//go:wasmexport mlnode_predict
func predict(in uint32, nIn int32, out uint32, nOut int32) int32 {
	if nIn < 1 || nOut != 1 {
		return 1
	}
	x := unsafe.Slice((*float64)(unsafe.Pointer(uintptr(in))), nIn)
	y := unsafe.Slice((*float64)(unsafe.Pointer(uintptr(out))), nOut)
	switch int(x[0]) {
	case 1:
		for n := 0; ; n++ {
			if n < 0 {
				return 2
			}
		}
	case 2:
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	case 3:
		panic("goguest: mode 3")
	case 4:
		println("hello from Go")
	}
	s := 0.0
	for _, v := range x {
		s += v
	}
	y[0] = s
	return 0
}

func main() {}
