//go:build wasip1

// Command logreg_go is an mlnode/v1 model module (docs/abi.md): the 32-feature
// logistic regression of package logreg as a Go wasip1 reactor. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o model.wasm .
//
// Inputs: 32 float64 features; output: 1 float64, the probability.
// Error codes are those of package guest.
package main

//lint:file-ignore U1000 the exports are used by the host through //go:wasmexport, which staticcheck does not see

import (
	"github.com/mlnode/mlnode/examples/internal/guest"
	"github.com/mlnode/mlnode/examples/models/logreg_go/logreg"
)

const numOutputs = 1

// arena is package-level so that every buffer handed to the host stays
// reachable: the guest's GC must never free memory the host writes to.
var arena guest.Arena

func main() {}

//go:wasmexport mlnode_alloc
func alloc(size int32) int32 {
	return int32(arena.Alloc(int(size)))
}

//go:wasmexport mlnode_predict
func predict(inPtr, nIn, outPtr, nOut int32) int32 {
	return predictBatch(inPtr, 1, nIn, outPtr, nOut)
}

//go:wasmexport mlnode_predict_batch
func predictBatch(inPtr, nRows, nIn, outPtr, nOut int32) int32 {
	switch {
	case nIn != logreg.NumInputs:
		return guest.ErrInputCount
	case nOut != numOutputs:
		return guest.ErrOutputCount
	case nRows < 0:
		return guest.ErrRowCount
	}
	in, ok := arena.Float64s(uintptr(uint32(inPtr)), int(nRows)*logreg.NumInputs)
	if !ok {
		return guest.ErrBuffer
	}
	out, ok := arena.Float64s(uintptr(uint32(outPtr)), int(nRows)*numOutputs)
	if !ok {
		return guest.ErrBuffer
	}
	for r := range out {
		out[r] = logreg.Predict(in[r*logreg.NumInputs : (r+1)*logreg.NumInputs])
	}
	return guest.OK
}
