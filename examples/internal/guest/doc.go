// Package guest is the guest side of the module ABI mlnode/v1 (docs/abi.md)
// for the example modules written in Go: an [Arena] that hands buffers to the
// host and keeps them reachable, the error codes the examples return, and a
// decoder for the tagged rows of mlnode_transform_row.
//
// It is plain Go with no build tags, so it is tested natively; the wasip1
// reactors under examples/ import it and wrap it in //go:wasmexport functions.
//
// # Caveats
//
//   - An Arena never frees: the ABI promises the host that a buffer lives as
//     long as the instance. The host allocates a handful of buffers per
//     instance, so this is bounded in practice.
//   - Go's heap does not move objects, so an address handed out stays valid;
//     it is only guaranteed to stay allocated because the Arena holds the
//     slice. Dropping the Arena (or copying it) would let the guest's GC
//     reuse memory the host still writes to.
//   - Addresses are uintptr here; on wasm they are below 4 GiB and the
//     exports carry them as i32.
package guest
