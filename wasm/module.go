package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/mlnode/mlnode/appliance"
)

// Module is a loaded module: a bounded pool of instances for one sha256,
// memory limit, timeout and input and output counts. It is safe for
// concurrent use; each call takes an instance from the pool (waiting while
// all are busy) and gives it back, or discards it after a trap or a deadline.
type Module struct {
	rt      *Runtime
	c       *compiled
	sha     string
	nIn     int
	nOut    int
	timeout time.Duration
	kinds   [3]bool // by Kind
	out     *capLog

	// The pool is PoolSize tokens: an instance, or nil for a slot whose
	// instance is created on its next use. A call owns the token it took.
	// Tokens wait in slots, a buffered channel that bounds the pool and on
	// which callers block when every token is taken; idle instances may also
	// be parked in hot, where a call takes them without the channel's lock.
	// hot is used only while no caller waits (waiting == 0): a release
	// publishes into hot and then reads waiting, a waiter increments waiting
	// and then rescans hot, so one of them sees the other.
	slots   chan *instance
	hot     []atomic.Pointer[instance]
	waiting atomic.Int32
	done    chan struct{} // closed by Unload
	closed  atomic.Bool
	stats   *moduleMetrics

	live atomic.Int64
}

func (r *Runtime) newModule(c *compiled, key moduleKey) *Module {
	m := &Module{
		rt:      r,
		c:       c,
		sha:     key.sha,
		nIn:     key.nIn,
		nOut:    key.nOut,
		timeout: key.timeout,
		out:     &capLog{limit: r.opts.OutputLimit},
		slots:   make(chan *instance, max(r.opts.PoolSize, 1)),
		hot:     make([]atomic.Pointer[instance], min(max(r.opts.PoolSize, 1), 8)),
		done:    make(chan struct{}),
	}
	for _, k := range c.info.Kinds {
		m.kinds[k] = true
	}
	return m
}

// Info describes the module; do not modify it.
func (m *Module) Info() *ModuleInfo { return m.c.info }

// SHA256 is the hex sha256 of the module as uploaded.
func (m *Module) SHA256() string { return m.sha }

// Output returns what the module's instances wrote to stdout and stderr, up
// to Options.OutputLimit bytes.
func (m *Module) Output() []byte { return m.out.bytes() }

// PoolStats is a snapshot of a pool's accounting.
type PoolStats struct {
	Size  int // slots: the most instances at once
	Live  int // instances created and not discarded
	InUse int // slots taken by calls in flight (or by an Unload closing them)
	Idle  int // slots free (with or without an instance)
}

// Stats returns the pool's accounting (a snapshot, exact when no call runs).
func (m *Module) Stats() PoolStats {
	idle := len(m.slots)
	for i := range m.hot {
		if m.hot[i].Load() != nil {
			idle++
		}
	}
	return PoolStats{Size: cap(m.slots), Live: int(m.live.Load()), InUse: max(cap(m.slots)-idle, 0), Idle: idle}
}

// takeHot takes an idle instance parked in hot, if any.
func (m *Module) takeHot() *instance {
	for i := range m.hot {
		if m.hot[i].Load() != nil {
			if inst := m.hot[i].Swap(nil); inst != nil {
				return inst
			}
		}
	}
	return nil
}

// instantiate creates an instance with its input and output buffers.
func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	inst, err := m.rt.instantiate(ctx, m.c, m.out)
	if err != nil {
		return nil, err
	}
	if inst.inPtr, err = m.rt.allocate(ctx, inst, 8*m.nIn); err == nil {
		inst.outPtr, err = m.rt.allocate(ctx, inst, 8*m.nOut)
	}
	if err != nil {
		m.rt.closeInstance(inst)
		return nil, err
	}
	m.live.Add(1)
	return inst, nil
}

// acquire takes an instance from the pool, creating it if its slot is empty.
func (m *Module) acquire(ctx context.Context) (*instance, error) {
	if m.closed.Load() {
		return nil, errUnloaded
	}
	if err := ctx.Err(); err != nil {
		return nil, canceled(err)
	}
	inst := m.takeHot()
	if inst == nil {
		select {
		case inst = <-m.slots:
		default:
			m.waiting.Add(1)
			if inst = m.takeHot(); inst == nil {
				select {
				case inst = <-m.slots:
				case <-ctx.Done():
					m.waiting.Add(-1)
					return nil, canceled(ctx.Err())
				case <-m.done:
					m.waiting.Add(-1)
					return nil, errUnloaded
				}
			}
			m.waiting.Add(-1)
		}
	}
	if m.closed.Load() {
		m.slots <- inst
		return nil, errUnloaded
	}
	if inst == nil {
		var err error
		if inst, err = m.instantiate(ctx); err != nil {
			m.slots <- nil
			if cerr := ctx.Err(); cerr != nil {
				return nil, canceled(cerr)
			}
			return nil, unprocessable("module failed to initialize: %s", message(err))
		}
	}
	return inst, nil
}

// release gives an instance back to the pool, or discards it after a fault
// that may have left it broken.
func (m *Module) release(inst *instance, f fault) {
	if f != faultNone && f != faultCode && f != faultNotRun {
		m.rt.closeInstance(inst)
		m.live.Add(-1)
		inst = nil
	}
	if inst != nil {
		for i := range m.hot {
			if m.hot[i].Load() != nil || !m.hot[i].CompareAndSwap(nil, inst) {
				continue
			}
			if m.waiting.Load() == 0 {
				return
			}
			// A caller waits on slots and may have missed it: move it there,
			// unless someone took it meanwhile.
			if !m.hot[i].CompareAndSwap(inst, nil) {
				return
			}
			break
		}
	}
	m.slots <- inst
}

// invoke calls an entry point of the ABI with its parameters in s and turns
// a non-zero return code into an error.
func (m *Module) invoke(ctx context.Context, inst *instance, fn api.Function, s []uint64) (fault, error) {
	start := m.rt.now()
	f, err := m.rt.call(ctx, inst, fn, s, m.timeout, start)
	if f == faultNone {
		if rc := int32(uint32(s[0])); rc != 0 {
			f, err = faultCode, errorCode(rc)
		}
	}
	m.stats.observe(f, m.rt.now()-start)
	return f, err
}

func (m *Module) fail(err error) error {
	m.stats.errors.Inc()
	return err
}

func (m *Module) lacks(k Kind) error {
	return m.fail(appliance.Invalid("module", "module %s does not export %s", shortSHA(m.sha), kindExport[k]))
}

func (m *Module) badShape(nIn, nOut int) error {
	return m.fail(appliance.Invalid("module", "got %d inputs and %d outputs, module %s was loaded for %d and %d",
		nIn, nOut, shortSHA(m.sha), m.nIn, m.nOut))
}

// Predict runs mlnode_predict on one row: in holds the inputs in the
// manifest's order, out receives the outputs. In steady state it allocates
// nothing.
func (m *Module) Predict(ctx context.Context, in, out []float64) error {
	return m.numeric(ctx, KindModel, in, out)
}

// Transform runs mlnode_transform, with Predict's conventions.
func (m *Module) Transform(ctx context.Context, in, out []float64) error {
	return m.numeric(ctx, KindTransform, in, out)
}

func (m *Module) numeric(ctx context.Context, k Kind, in, out []float64) error {
	if !m.kinds[k] {
		return m.lacks(k)
	}
	if len(in) != m.nIn || len(out) != m.nOut {
		return m.badShape(len(in), len(out))
	}
	inst, err := m.acquire(ctx)
	if err != nil {
		return m.fail(err)
	}
	fn := inst.predict
	if k == KindTransform {
		fn = inst.transform
	}
	f, err := m.callRow(ctx, inst, fn, in, out)
	m.release(inst, f)
	return err
}

// callRow calls fn on one row through the instance's buffers.
func (m *Module) callRow(ctx context.Context, inst *instance, fn api.Function, in, out []float64) (fault, error) {
	if err := m.writeFloats(inst, inst.inPtr, in); err != nil {
		return faultHost, err
	}
	s := inst.stack[:4]
	s[0], s[1], s[2], s[3] = uint64(inst.inPtr), uint64(len(in)), uint64(inst.outPtr), uint64(len(out))
	f, err := m.invoke(ctx, inst, fn, s)
	if f != faultNone {
		return f, err
	}
	if err := m.readFloats(inst, inst.outPtr, out); err != nil {
		return faultHost, err
	}
	return faultNone, nil
}

// writeFloats writes v as little-endian float64 at p in the guest's memory.
// The view is taken anew each time: memory.grow may move the memory.
func (m *Module) writeFloats(inst *instance, p uint32, v []float64) error {
	b, ok := inst.mem.Read(p, uint32(8*len(v)))
	if !ok {
		return m.fail(unprocessable("module buffer at %d is out of bounds", p))
	}
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return nil
}

func (m *Module) readFloats(inst *instance, p uint32, v []float64) error {
	b, ok := inst.mem.Read(p, uint32(8*len(v)))
	if !ok {
		return m.fail(unprocessable("module buffer at %d is out of bounds", p))
	}
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return nil
}

// batchRowsFor is the row capacity of an instance's batch buffers: about
// 64 KiB of inputs and outputs, at most 1024 rows.
func batchRowsFor(nIn, nOut int) int {
	return max(1, min(1024, 8192/max(1, nIn+nOut)))
}

// PredictBatch predicts nRows rows: in holds nRows×nIn inputs row-major and
// out receives nRows×nOut outputs. It calls mlnode_predict_batch when the
// module exports it, in chunks of the instance's batch buffers, and
// mlnode_predict row by row otherwise; each call into the module has its own
// deadline. One instance serves the whole batch.
func (m *Module) PredictBatch(ctx context.Context, in []float64, nRows int, out []float64) error {
	if !m.kinds[KindModel] {
		return m.lacks(KindModel)
	}
	if nRows < 0 || len(in) != nRows*m.nIn || len(out) != nRows*m.nOut {
		return m.fail(appliance.Invalid("module", "batch of %d rows needs %d inputs and %d outputs, got %d and %d",
			nRows, nRows*m.nIn, nRows*m.nOut, len(in), len(out)))
	}
	if nRows == 0 {
		return nil
	}
	inst, err := m.acquire(ctx)
	if err != nil {
		return m.fail(err)
	}
	var f fault
	if inst.batch == nil {
		for r := 0; r < nRows && f == faultNone; r++ {
			if f, err = m.callRow(ctx, inst, inst.predict, in[r*m.nIn:(r+1)*m.nIn], out[r*m.nOut:(r+1)*m.nOut]); f != faultNone {
				err = rowError(r, err)
			}
		}
		m.release(inst, f)
		return err
	}
	if inst.batchRows == 0 {
		if f, err = m.allocBatch(ctx, inst); f != faultNone {
			m.release(inst, f)
			return err
		}
	}
	for r := 0; r < nRows; r += inst.batchRows {
		n := min(inst.batchRows, nRows-r)
		if err = m.writeFloats(inst, inst.batchIn, in[r*m.nIn:(r+n)*m.nIn]); err != nil {
			f = faultHost
			break
		}
		s := inst.stack[:5]
		s[0], s[1], s[2], s[3], s[4] = uint64(inst.batchIn), uint64(n), uint64(m.nIn), uint64(inst.batchOut), uint64(m.nOut)
		if f, err = m.invoke(ctx, inst, inst.batch, s); f != faultNone {
			break
		}
		if err = m.readFloats(inst, inst.batchOut, out[r*m.nOut:(r+n)*m.nOut]); err != nil {
			f = faultHost
			break
		}
	}
	m.release(inst, f)
	return err
}

func (m *Module) allocBatch(ctx context.Context, inst *instance) (fault, error) {
	rows := batchRowsFor(m.nIn, m.nOut)
	var err error
	if inst.batchIn, err = m.rt.allocate(ctx, inst, 8*rows*m.nIn); err == nil {
		inst.batchOut, err = m.rt.allocate(ctx, inst, 8*rows*m.nOut)
	}
	if err != nil {
		return faultHost, m.fail(unprocessable("module could not allocate batch buffers: %s", message(err)))
	}
	inst.batchRows = rows
	return faultNone, nil
}

// rowError prefixes the message of a batch's failed row with its index.
func rowError(row int, err error) error {
	var e *appliance.Error
	if !errors.As(err, &e) {
		return err
	}
	c := *e
	c.Message = "row " + itoa(row) + ": " + e.Message
	return &c
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	if i == 0 {
		return "0"
	}
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}

// RowValue is one input of a row transform: null, a number or a string.
type RowValue struct {
	Null  bool
	Num   float64
	Str   string
	IsStr bool
}

// Record tags of mlnode_transform_row's input (docs/abi.md).
const (
	tagNull   = 0
	tagNumber = 1
	tagString = 2
)

func rowSize(in []RowValue) int {
	n := 0
	for _, v := range in {
		switch {
		case v.Null:
			n++
		case v.IsStr:
			n += 5 + len(v.Str)
		default:
			n += 9
		}
	}
	return n
}

func encodeRow(b []byte, in []RowValue) {
	o := 0
	for _, v := range in {
		switch {
		case v.Null:
			b[o] = tagNull
			o++
		case v.IsStr:
			b[o] = tagString
			binary.LittleEndian.PutUint32(b[o+1:], uint32(len(v.Str)))
			o += 5 + copy(b[o+5:], v.Str)
		default:
			b[o] = tagNumber
			binary.LittleEndian.PutUint64(b[o+1:], math.Float64bits(v.Num))
			o += 9
		}
	}
}

// TransformRow runs mlnode_transform_row on one row of nIn values, encoded
// as docs/abi.md describes, into out (nOut numbers). The instance's input
// buffer grows, by a new mlnode_alloc, when a row needs more room.
func (m *Module) TransformRow(ctx context.Context, in []RowValue, out []float64) error {
	if !m.kinds[KindRowTransform] {
		return m.lacks(KindRowTransform)
	}
	if len(in) != m.nIn || len(out) != m.nOut {
		return m.badShape(len(in), len(out))
	}
	size := rowSize(in)
	if size > 1<<30 {
		return m.fail(appliance.Invalid("module", "row of %d bytes is too large", size))
	}
	inst, err := m.acquire(ctx)
	if err != nil {
		return m.fail(err)
	}
	if uint32(size) > inst.rowCap {
		c := max(size, 2*int(inst.rowCap), 256)
		p, err := m.rt.allocate(ctx, inst, c)
		if err != nil {
			m.release(inst, faultHost)
			return m.fail(unprocessable("module could not allocate a row buffer: %s", message(err)))
		}
		inst.rowPtr, inst.rowCap = p, uint32(c)
	}
	b, ok := inst.mem.Read(inst.rowPtr, uint32(size))
	if !ok {
		m.release(inst, faultHost)
		return m.fail(unprocessable("module buffer at %d is out of bounds", inst.rowPtr))
	}
	encodeRow(b, in)
	s := inst.stack[:4]
	s[0], s[1], s[2], s[3] = uint64(inst.rowPtr), uint64(size), uint64(inst.outPtr), uint64(len(out))
	f, err := m.invoke(ctx, inst, inst.row, s)
	if f == faultNone {
		if err = m.readFloats(inst, inst.outPtr, out); err != nil {
			f = faultHost
		}
	}
	m.release(inst, f)
	return err
}

// message is the text of an error for another error's message.
func message(err error) string {
	var e *appliance.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return describe(err)
}

// capLog keeps the first limit bytes written to it and drops the rest.
type capLog struct {
	mu      sync.Mutex
	buf     []byte
	limit   int
	dropped int64
}

func (l *capLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	n := min(len(p), l.limit-len(l.buf))
	l.buf = append(l.buf, p[:n]...)
	l.dropped += int64(len(p) - n)
	l.mu.Unlock()
	return len(p), nil
}

func (l *capLog) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.buf...)
}
