package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// instance is one instantiation of a compiled module. It serves one call at
// a time: whoever took it from its pool owns every field but the watchdog
// ones, whose protocol is described at state.
type instance struct {
	mod    api.Module
	mem    api.Memory
	budget api.MutableGlobal // the injected budget; nil unless instrumented

	alloc, predict, batch, transform, row api.Function

	stack []uint64 // params and results of every call: no allocation per call

	// Buffers in the guest's memory, from mlnode_alloc (see Module).
	inPtr, outPtr     uint32
	batchIn, batchOut uint32
	batchRows         int
	rowPtr, rowCap    uint32
	pages             uint32 // the memory limit
	registered        bool   // in Runtime.insts
	index             int    // in Runtime.insts, guarded by Runtime.instMu
	closed            bool

	// state is 0 when no call runs; the call's deadline (nanoseconds of
	// Runtime.now, > 0) while one runs; stateClaimed while the watchdog or
	// yield decides about the call; stateFired once the call was told to
	// stop. The caller writes ctx and byCtx before it stores a deadline and
	// reads reason after it sees stateFired; the watchdog reads ctx and writes
	// reason and the budget only while it holds the claim (yield runs on the
	// caller's goroutine). So these plain fields need no lock.
	state  atomic.Int64
	begin  atomic.Int64 // Runtime.now at the start of the call
	ctx    context.Context
	byCtx  bool  // the deadline is ctx's, earlier than the module's
	reason fault // why the watchdog fired
}

const (
	stateIdle    = 0
	stateClaimed = -1
	stateFired   = -2
)

// fault classifies a failed call.
type fault int

const (
	faultNone     fault = iota
	faultCode           // the module returned a non-zero code: the instance is kept
	faultTrap           // the module trapped: discarded
	faultExit           // the module called proc_exit: discarded
	faultTimeout        // past the module's deadline: discarded
	faultCanceled       // the caller's context ended: discarded
	faultHost           // the host could not use the instance: discarded
	faultClosed         // stopped by Close: discarded
	faultNotRun         // refused before the call (its context's deadline had passed): kept
)

// instantiate creates and initializes an instance: it runs the module's
// start function and _initialize under the watchdog with InitTimeout. The
// ABI buffers are the caller's business.
func (r *Runtime) instantiate(ctx context.Context, c *compiled, out io.Writer) (*instance, error) {
	cfg := wazero.NewModuleConfig().
		WithName("").         // so one compiled module instantiates many times
		WithStartFunctions(). // run by the host below, under the watchdog
		WithStdout(out).
		WithStderr(out)
	ictx := ctx
	if r.opts.Interrupt == InterruptContext {
		var cancel context.CancelFunc
		ictx, cancel = context.WithTimeout(ctx, r.opts.InitTimeout)
		defer cancel()
	}
	mod, err := r.rt.InstantiateModule(ictx, c.cm, cfg)
	if err != nil {
		return nil, err
	}
	inst := &instance{
		mod:       mod,
		mem:       mod.Memory(),
		alloc:     mod.ExportedFunction(exportAlloc),
		predict:   mod.ExportedFunction(exportPredict),
		batch:     mod.ExportedFunction(exportPredictBatch),
		transform: mod.ExportedFunction(exportTransform),
		row:       mod.ExportedFunction(exportTransformRow),
		stack:     make([]uint64, 5),
		pages:     c.pages,
	}
	if r.opts.Interrupt == InterruptInstrument {
		g, ok := mod.ExportedGlobal(budgetExport).(api.MutableGlobal)
		if !ok {
			_ = mod.Close(context.Background())
			return nil, errors.New("BUG: instrumented module lacks its budget")
		}
		inst.budget = g
		r.register(inst)
	}
	for _, name := range []string{startExport, exportInitialize} {
		fn := mod.ExportedFunction(name)
		if fn == nil {
			continue
		}
		if f, err := r.call(ctx, inst, fn, inst.stack[:0], r.opts.InitTimeout, r.now()); f != faultNone {
			r.closeInstance(inst)
			return nil, fmt.Errorf("%s: %s", name, message(err))
		}
	}
	return inst, nil
}

// allocate calls mlnode_alloc for size bytes and checks the pointer.
func (r *Runtime) allocate(ctx context.Context, inst *instance, size int) (uint32, error) {
	if size == 0 {
		size = 8
	}
	if size < 0 || size > 1<<30 {
		return 0, fmt.Errorf("buffer of %d bytes is too large", size)
	}
	inst.stack[0] = uint64(size)
	if f, err := r.call(ctx, inst, inst.alloc, inst.stack[:1], r.opts.InitTimeout, r.now()); f != faultNone {
		return 0, fmt.Errorf("%s: %s", exportAlloc, message(err))
	}
	p := uint32(inst.stack[0])
	if p == 0 {
		return 0, fmt.Errorf("%s(%d) returned 0: out of memory", exportAlloc, size)
	}
	if _, ok := inst.mem.Read(p, uint32(size)); !ok {
		return 0, fmt.Errorf("%s(%d) returned %d, out of bounds", exportAlloc, size, p)
	}
	return p, nil
}

// closeInstance closes an instance and forgets it.
func (r *Runtime) closeInstance(inst *instance) {
	if inst.closed {
		return
	}
	inst.closed = true
	if inst.registered {
		r.unregister(inst)
	}
	_ = inst.mod.Close(context.Background())
}

// call calls fn with stack under a deadline of timeout (or ctx's, if
// earlier) from now, a reading of Runtime.now. It allocates nothing unless the
// call fails. A fault other than faultNone comes with the error to report.
func (r *Runtime) call(ctx context.Context, inst *instance, fn api.Function, stack []uint64, timeout time.Duration, now int64) (fault, error) {
	switch r.opts.Interrupt {
	case interruptNone:
		if err := fn.CallWithStack(ctx, stack); err != nil {
			return r.classify(inst, err, timeout)
		}
		return faultNone, nil
	case InterruptContext:
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := fn.CallWithStack(cctx, stack)
		cancel()
		if err != nil {
			return r.classify(inst, err, timeout)
		}
		return faultNone, nil
	}

	deadline := now + int64(timeout)
	byCtx := false
	if d, ok := ctx.Deadline(); ok {
		if cd := int64(d.Sub(r.epoch)); cd < deadline {
			deadline, byCtx = cd, true
		}
	}
	if deadline <= now {
		return faultNotRun, canceled(context.DeadlineExceeded)
	}
	inst.ctx, inst.byCtx = ctx, byCtx
	inst.begin.Store(now)
	inst.state.Store(deadline)
	if r.sleeping.Load() {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	err := fn.CallWithStack(ctx, stack)
	fired := !inst.state.CompareAndSwap(deadline, stateIdle) && inst.settle()
	inst.ctx = nil
	if fired {
		if err == nil {
			// It returned just as the watchdog fired: the result stands, and
			// the budget is refilled for the next call.
			inst.budget.Set(yieldBudget)
			return faultNone, nil
		}
		switch inst.reason {
		case faultCanceled:
			cerr := ctx.Err()
			if cerr == nil { // ctx's deadline passed before its timer fired
				cerr = context.DeadlineExceeded
			}
			return faultCanceled, canceled(cerr)
		case faultClosed:
			return faultClosed, errClosed
		}
		return faultTimeout, timedOut(timeout)
	}
	if err != nil {
		return r.classify(inst, err, timeout)
	}
	return faultNone, nil
}

// settle waits until the watchdog lets go of the instance and reports
// whether it fired; the state is then idle.
func (inst *instance) settle() bool {
	for {
		switch s := inst.state.Load(); s {
		case stateClaimed:
			runtime.Gosched()
		case stateFired:
			inst.state.Store(stateIdle)
			return true
		default:
			if inst.state.CompareAndSwap(s, stateIdle) {
				return false
			}
		}
	}
}

// classify turns an error of wazero into a fault and the error to report.
func (r *Runtime) classify(inst *instance, err error, timeout time.Duration) (fault, error) {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return faultTimeout, timedOut(timeout)
		case sys.ExitCodeContextCanceled:
			return faultCanceled, canceled(context.Canceled)
		}
		return faultExit, unprocessable("module exited with code %d", exit.ExitCode())
	}
	msg := describe(err)
	if inst.mem != nil && uint64(inst.mem.Size()) >= uint64(inst.pages)*65536 {
		return faultTrap, unprocessable("module trapped at its memory limit of %d pages: %s", inst.pages, msg)
	}
	return faultTrap, unprocessable("module trapped: %s", msg)
}

// describe shortens an error of wazero to its first line, without the
// "wasm error: " prefix and the stack trace.
func describe(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimPrefix(s, "wasm error: ")
	return strings.ReplaceAll(s, "wasm error: ", "")
}

// register makes an instance visible to the watchdog.
func (r *Runtime) register(inst *instance) {
	r.instMu.Lock()
	inst.index = len(r.insts)
	inst.registered = true
	r.insts = append(r.insts, inst)
	r.instMu.Unlock()
	r.byModule.Store(inst.mod, inst)
}

func (r *Runtime) unregister(inst *instance) {
	r.byModule.Delete(inst.mod)
	r.instMu.Lock()
	last := len(r.insts) - 1
	r.insts[inst.index] = r.insts[last]
	r.insts[inst.index].index = inst.index
	r.insts[last] = nil
	r.insts = r.insts[:last]
	r.instMu.Unlock()
}

// watchdog sets the stop flag of every call past its deadline or whose
// context is done. It ticks every watchdogInterval while calls run, and
// sleeps while none does.
func (r *Runtime) watchdog(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(watchdogInterval)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.scan(false) {
			idle = 0
			continue
		}
		if idle++; idle < watchdogIdle {
			continue
		}
		// Sleep until a call starts. A caller stores its deadline and then
		// reads sleeping; here sleeping is stored before the last scan: one of
		// the two sees the other.
		t.Stop()
		r.sleeping.Store(true)
		if !r.scan(false) {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			}
		}
		r.sleeping.Store(false)
		t.Reset(watchdogInterval)
		idle = 0
	}
}

// scan looks at every call in flight and reports whether there was one. With
// all, it stops every call (Close past its deadline).
func (r *Runtime) scan(all bool) (busy bool) {
	now := r.now()
	r.instMu.Lock()
	defer r.instMu.Unlock()
	for _, inst := range r.insts {
		s := inst.state.Load()
		switch {
		case s == stateFired:
			// Zero the budget again: the guest may have overwritten the last
			// write with its own decrement.
			if inst.state.CompareAndSwap(stateFired, stateClaimed) {
				inst.budget.Set(0)
				inst.state.Store(stateFired)
			}
			busy = true
			continue
		case s <= 0:
			continue
		}
		busy = true
		overdue := now >= s
		// A call younger than a tick is left alone unless overdue: its context
		// is looked at from its second tick on.
		if !overdue && !all && now-inst.begin.Load() < int64(watchdogInterval) {
			continue
		}
		if !inst.state.CompareAndSwap(s, stateClaimed) {
			continue // it just ended
		}
		reason := inst.verdict(now, s)
		if reason == faultNone && all {
			reason = faultClosed
		}
		if reason == faultNone {
			inst.state.Store(s)
			continue
		}
		inst.reason = reason
		inst.budget.Set(0) // yield at the next check, and be told to stop
		inst.state.Store(stateFired)
	}
	return busy
}

// verdict says whether a call with that deadline must stop now, and why. The
// caller holds the claim on the instance, or is the goroutine of the call.
func (inst *instance) verdict(now, deadline int64) fault {
	switch {
	case now >= deadline && inst.byCtx:
		return faultCanceled
	case now >= deadline:
		return faultTimeout
	case inst.ctx.Err() != nil:
		return faultCanceled
	}
	return faultNone
}

// yield is the host function the instrumented code calls every yieldBudget
// checks, and at once when the watchdog zeroed its budget. Being Go, it lets
// the scheduler preempt the goroutine. It returns 1 when the call must stop:
// the watchdog fired, or the call is past its deadline or its context is
// done.
func (r *Runtime) yield(_ context.Context, mod api.Module, stack []uint64) {
	stack[0] = 0
	v, ok := r.byModule.Load(mod)
	if !ok {
		return // an instance being closed
	}
	inst := v.(*instance)
	for {
		s := inst.state.Load()
		switch {
		case s == stateFired:
			stack[0] = 1
			return
		case s == stateClaimed:
			runtime.Gosched() // the watchdog is deciding
			continue
		case s <= 0:
			return
		}
		reason := inst.verdict(r.now(), s)
		if reason == faultNone {
			return
		}
		if !inst.state.CompareAndSwap(s, stateClaimed) {
			continue
		}
		inst.reason = reason
		inst.state.Store(stateFired)
		stack[0] = 1
		return
	}
}

// stopAll ends every call in flight at its next check.
func (r *Runtime) stopAll() {
	if r.opts.Interrupt == InterruptInstrument {
		r.scan(true)
	}
}
