// Package wasm runs mlnode's models and feature transforms: WebAssembly
// modules under the ABI mlnode/v1 (docs/abi.md), on wazero.
//
// It owns one wazero runtime per node (the compiler engine where wazero has
// one for the platform, else its interpreter), the on-disk compilation cache,
// a bounded pool of instances per loaded module, the per-call deadline and
// the per-module memory limit, the import allow-list, and the per-module
// metrics.
//
//	rt, err := wasm.Open(ctx, wasm.Options{CacheDir: dataDir + "/wasm-cache"})
//	info, err := rt.Inspect(ctx, upload)                // at upload: EINVALID naming the fault
//	m, err := rt.Load(ctx, upload, wasm.Limits{}, 32, 1) // compile once, pool of instances
//	err = m.Predict(ctx, in, out)                       // no host allocation in steady state
//	rt.Unload(info.SHA256)
//
// Module is the pool: Predict, PredictBatch, Transform and TransformRow take
// an instance, copy the inputs into buffers the instance allocated once with
// mlnode_alloc, call the export with a preallocated stack, and give the
// instance back — or discard it after a trap, a deadline or an exit; a
// non-zero return code is a clean error and the instance is kept. Errors are
// *appliance.Error: EINVALID (field "module") for a bad module at Inspect or
// Load, EUNPROCESSABLE for a call that fails ("module returned error code
// 7", "module trapped: unreachable", "call exceeded its 100ms deadline",
// "module trapped at its memory limit of 512 pages: …"), EUNAVAILABLE when
// the caller's context ends (wrapping its error) or the module was unloaded.
//
// # Deadlines
//
// Each module is rewritten at load (instrument.go): every function entry and
// loop header decrements a per-instance budget and, every 10,000 checks or
// when a watchdog goroutine zeroes the budget of a call past its deadline,
// calls the host, which ends the call with a trap. This costs a few
// nanoseconds per call where wazero's WithCloseOnContextDone costs 1–3 µs and
// allocations (Options.Interrupt selects it instead). The periodic call into
// the host also lets the Go scheduler preempt the goroutine: code compiled by
// wazero cannot be preempted, and a garbage collection would otherwise wait
// for a runaway guest, with the watchdog stopped too. See docs/RATIONALE.md.
//
// # Memory limits
//
// wazero's memory limit is per runtime: the runtime gets the node's maximum
// and each module's declared memory maximum is rewritten to its own limit (or
// kept if lower); a module whose declared minimum is above its limit is
// refused at Load. memory.grow past the limit returns -1 in the guest, which
// toolchains turn into a trap.
//
// # Sandbox
//
// A module may import only the ten WASI preview 1 functions a Go wasip1
// reactor needs (docs/abi.md), checked with their signatures at Inspect and
// Load. No file system, no sockets, no arguments, no environment; clocks and
// randomness are wazero's deterministic fakes; fd_write goes to a per-module
// buffer capped at Options.OutputLimit (Module.Output).
//
// # Caveats
//
//   - The deadline is checked at function entries and loop headers only. A
//     single call into the host (a WASI function) or a single bulk memory
//     instruction is not interrupted; both are bounded (no sleeping clock,
//     memory at most the limit).
//   - A stop-the-world pause of the garbage collector waits for each running
//     call to reach its next yield: up to 10,000 checks, some 10–20 µs of a
//     tight loop, longer for loops with long bodies.
//   - The rewrite adds the export mlnode.budget, exports a start function as
//     mlnode.start (run by the host under the deadline, before _initialize),
//     and imports mlnode.yield; it renumbers functions and drops the "name"
//     custom section, so wazero's stack traces of a trap show no names.
//     Modules that export mlnode.budget or mlnode.start are refused.
//   - Infinite recursion grows wazero's stack (Go heap) until the deadline or
//     wazero's ceiling (~50 MB, doubling: up to ~150 MB held briefly per
//     instance); that memory is not counted against the module's limit.
//   - Each (sha256, memory limit) is compiled once; each (sha256, limits,
//     inputs, outputs) gets its own pool. Loading one module with many
//     limits or shapes multiplies instances.
//   - The pool's channel bounds it and is where callers wait; idle instances
//     are also parked in lock-free slots while nobody waits, so that calls on
//     several cores do not contend on the channel's lock.
//   - Unload returns at once; each pool closes its instances when the calls
//     in flight end. A Load of the same module racing an Unload may leave it
//     loaded.
//   - Options.Metrics receives a writer for the per-module series; it cannot
//     be unregistered, and writes nothing after Close.
//   - A Go guest that imports package os (for instance through fmt) also
//     imports fd_close, fd_fdstat_get, fd_fdstat_set_flags, fd_prestat_get
//     and fd_prestat_dir_name, and is refused by the allow-list.
//   - interruptNone (benchmarks only) runs calls with no deadline at all.
package wasm

//go:generate sh testdata/build.sh
