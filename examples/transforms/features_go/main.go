//go:build wasip1

// Command features_go is an mlnode/v1 transform module (docs/abi.md) as a
// Go wasip1 reactor: package features behind mlnode_transform_row (amount,
// country, age → 7 outputs) and its numeric variant mlnode_transform (amount,
// age → log_amount, age_bucket; NaN stands for null). Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o transform.wasm .
//
// Error codes are those of package guest.
package main

//lint:file-ignore U1000 the exports are used by the host through //go:wasmexport, which staticcheck does not see

import (
	"github.com/mlnode/mlnode/examples/internal/guest"
	"github.com/mlnode/mlnode/examples/transforms/features_go/features"
)

// arena is package-level so that every buffer handed to the host stays
// reachable: the guest's GC must never free memory the host writes to.
var arena guest.Arena

// row is scratch for the decoded inputs, reused by every call.
var row [len(features.Inputs)]guest.Value

func main() {}

//go:wasmexport mlnode_alloc
func alloc(size int32) int32 {
	return int32(arena.Alloc(int(size)))
}

//go:wasmexport mlnode_transform_row
func transformRow(inPtr, inLen, outPtr, nOut int32) int32 {
	if nOut != int32(len(features.Outputs)) {
		return guest.ErrOutputCount
	}
	in, ok := arena.Bytes(uintptr(uint32(inPtr)), int(inLen))
	if !ok {
		return guest.ErrBuffer
	}
	out, ok := arena.Float64s(uintptr(uint32(outPtr)), int(nOut))
	if !ok {
		return guest.ErrBuffer
	}
	if code := guest.ParseRow(in, row[:]); code != guest.OK {
		return code
	}
	code := features.Row(row[0], row[1], row[2], out)
	row = [len(row)]guest.Value{} // drop the views into the input buffer
	return code
}

//go:wasmexport mlnode_transform
func transform(inPtr, nIn, outPtr, nOut int32) int32 {
	switch {
	case nIn != int32(len(features.NumericInputs)):
		return guest.ErrInputCount
	case nOut != int32(len(features.NumericOutputs)):
		return guest.ErrOutputCount
	}
	in, ok := arena.Float64s(uintptr(uint32(inPtr)), int(nIn))
	if !ok {
		return guest.ErrBuffer
	}
	out, ok := arena.Float64s(uintptr(uint32(outPtr)), int(nOut))
	if !ok {
		return guest.ErrBuffer
	}
	out[0] = features.LogAmount(in[0])
	out[1] = features.AgeBucket(in[1])
	return guest.OK
}
