package wasm

import (
	"errors"
	"fmt"
)

// This file rewrites a module before it is compiled, so that one wazero
// runtime can enforce a deadline and a memory limit per module (see
// docs/RATIONALE.md, "WebAssembly deadlines by instrumentation"):
//
//   - the memory's declared maximum becomes the module's limit (wazero's
//     WithMemoryLimitPages is per runtime, and a declared maximum below it
//     wins);
//   - a start function is exported as startExport instead of running inside
//     InstantiateModule, so that it too runs under the deadline;
//   - with checks: a mutable i32 global, the budget, is added and exported as
//     budgetExport, and a function yieldImport.yieldName () -> i32 is
//     imported. At the entry of every function and at the header of every
//     loop the code decrements the budget; when it goes below zero it calls
//     yield, traps (unreachable) if yield returns non-zero, and refills the
//     budget. The watchdog zeroes the budget of a call past its deadline, so
//     that the call yields at its next check and is told to stop.
//
// Calling into the host every yieldBudget checks matters as much as the
// deadline: code compiled by wazero cannot be preempted by the Go scheduler,
// so a garbage collection's stop-the-world would otherwise wait — with the
// watchdog stopped too — for as long as a guest loops.
//
// The yield import comes after the module's own imports, so every defined
// function's index grows by one: calls, ref.func, exports, the start
// function, element segments and global initializers are renumbered, and the
// "name" custom section, which would be stale, is dropped. Injected blocks
// are closed at once, so no label depth changes. Other custom sections are
// kept as they are; code offsets in DWARF go stale, which only matters to a
// debugger.

// Names the rewrite adds. Export names that collide are refused; imports of
// module yieldImport are refused by the import allow-list.
const (
	budgetExport = "mlnode.budget"
	startExport  = "mlnode.start"
	yieldImport  = "mlnode"
	yieldName    = "yield"

	// yieldBudget is the number of checks between two calls into the host:
	// about 10–20 µs of a tight loop; a yield costs ~100–200 ns.
	yieldBudget = 10000
)

type rewriteOptions struct {
	memoryMax uint32 // pages: the module's limit
	checks    bool   // inject the budget, the yield import and the checks
}

type rewriteStats struct {
	functions int // bodies instrumented
	loops     int // loop headers instrumented
}

// rewriter holds the index arithmetic of one rewrite.
//
// The input has not been validated yet (wazero validates the output), so the
// rewriter itself refuses global and type indexes past the module's own: once
// the budget and the yield type are appended, such an index would become
// valid, and a module could refill its own budget.
type rewriter struct {
	m      *binaryModule
	opts   rewriteOptions
	nGlob  uint32 // globals of the input
	nTypes uint32 // types of the input
	shift  uint32 // added to the index of each defined function
	yield  uint32 // function index of the yield import
	budget uint32 // global index of the budget
	check  []byte // the code injected at each check
	stats  rewriteStats
}

// fn renumbers a function index.
func (w *rewriter) fn(i uint32) uint32 {
	if i >= w.m.importedFuncs {
		return i + w.shift
	}
	return i
}

// rewriteModule returns the rewritten binary of m.
func rewriteModule(m *binaryModule, opts rewriteOptions) ([]byte, rewriteStats, error) {
	w := &rewriter{m: m, opts: opts, nGlob: m.importedGlobal + m.globals, nTypes: uint32(len(m.types))}
	for _, name := range []string{budgetExport, startExport} {
		if _, ok := m.export(name); ok {
			return nil, w.stats, fmt.Errorf("export name %q is reserved", name)
		}
	}
	if opts.checks {
		w.shift = 1
		w.yield = m.importedFuncs
		w.budget = m.importedGlobal + m.globals
		w.check = checkSequence(w.budget, w.yield)
	}

	// New entries appended to (or forming) the type, import, global and
	// export sections.
	var add [len(sectionRank)][]byte
	var addN [len(sectionRank)]uint32
	if opts.checks {
		add[secType] = []byte{0x60, 0x00, 0x01, valI32} // () -> i32
		addN[secType] = 1
		add[secImport] = appendName(appendName(nil, yieldImport), yieldName)
		add[secImport] = append(add[secImport], externFunc)
		add[secImport] = appendU32(add[secImport], uint32(len(m.types)))
		addN[secImport] = 1
		add[secGlobal] = []byte{valI32, 0x01, 0x41} // (global (mut i32) (i32.const yieldBudget))
		add[secGlobal] = appendS32(add[secGlobal], yieldBudget)
		add[secGlobal] = append(add[secGlobal], 0x0b)
		addN[secGlobal] = 1
		add[secExport] = appendName(nil, budgetExport)
		add[secExport] = append(add[secExport], externGlobal)
		add[secExport] = appendU32(add[secExport], w.budget)
		addN[secExport] = 1
	}
	if m.hasStart {
		add[secExport] = appendName(add[secExport], startExport)
		add[secExport] = append(add[secExport], externFunc)
		add[secExport] = appendU32(add[secExport], w.fn(m.start))
		addN[secExport]++
	}

	size := len(wasmMagic)
	for _, s := range m.sections {
		size += 6 + len(s.content)
	}
	out := make([]byte, 0, size+size/4+64)
	out = append(out, wasmMagic...)
	var done [len(sectionRank)]bool
	emitMissing := func(rank int) {
		for _, id := range []byte{secType, secImport, secGlobal, secExport} {
			if !done[id] && addN[id] > 0 && sectionRank[id] < rank {
				out = appendSection(out, id, append(appendU32(nil, addN[id]), add[id]...))
				done[id] = true
			}
		}
	}
	for _, s := range m.sections {
		if s.id != secCustom {
			emitMissing(sectionRank[s.id])
		}
		content := s.content
		var err error
		switch s.id {
		case secCustom:
			if w.shift != 0 && customName(content) == "name" {
				continue
			}
		case secType, secImport:
			content = appendVector(content, addN[s.id], add[s.id])
		case secMemory:
			content, err = rewriteMemory(m, opts.memoryMax)
		case secTable:
			content, err = rewriteTables(m)
		case secGlobal:
			content, err = w.rewriteGlobals(content, addN[s.id], add[s.id])
		case secExport:
			content, err = w.rewriteExports(content, addN[s.id], add[s.id])
		case secStart:
			continue // exported as startExport instead
		case secElement:
			if w.shift != 0 {
				content, err = w.rewriteElements(content)
			}
		case secCode:
			if opts.checks {
				content, err = w.rewriteCode(content)
			}
		}
		if err != nil {
			return nil, w.stats, fmt.Errorf("section %d: %w", s.id, err)
		}
		if s.id != secCustom {
			done[s.id] = true
		}
		out = appendSection(out, s.id, content)
	}
	emitMissing(len(sectionRank) + 1)
	return out, w.stats, nil
}

// customName returns the name of a custom section, "" if unreadable.
func customName(content []byte) string {
	r := &reader{b: content}
	name, err := r.name()
	if err != nil {
		return ""
	}
	return name
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// appendS32 appends v as a signed LEB128.
func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendSection(b []byte, id byte, content []byte) []byte {
	b = append(b, id)
	b = appendU32(b, uint32(len(content)))
	return append(b, content...)
}

// appendVector returns a vector's content with n more entries appended; the
// vector's count was validated by decodeModule.
func appendVector(content []byte, n uint32, entries []byte) []byte {
	if n == 0 {
		return content
	}
	r := &reader{b: content}
	count, _ := r.u32()
	out := appendU32(make([]byte, 0, len(content)+len(entries)+5), count+n)
	out = append(out, content[r.off:]...)
	return append(out, entries...)
}

// rewriteMemory returns a memory section whose one memory has max as its
// maximum, or its own declared maximum when that is lower.
func rewriteMemory(m *binaryModule, max uint32) ([]byte, error) {
	if len(m.memories) != 1 {
		return nil, fmt.Errorf("module defines %d memories, want 1", len(m.memories))
	}
	l := m.memories[0]
	if l.shared {
		return nil, errors.New("shared memory is not supported")
	}
	if l.hasMax && l.max < max {
		max = l.max
	}
	if l.min > max {
		return nil, fmt.Errorf("memory minimum of %d pages is above the limit of %d pages", l.min, max)
	}
	out := []byte{1, 0x01}
	out = appendU32(out, l.min)
	return appendU32(out, max), nil
}

// Table limits. The memory limit bounds linear memory only: without these,
// a module could table.grow to wazero's limit of 2^27 entries (8 bytes
// each) per table, far past its memory limit, and exhaust the process.
// Toolchains emit one funcref table sized to the module's functions.
const (
	maxTables        = 4
	maxTableElements = 1 << 20 // 8 MiB of references per table and instance
)

// rewriteTables returns a table section in which every table has a
// maximum of at most maxTableElements, so that table.grow fails beyond it.
func rewriteTables(m *binaryModule) ([]byte, error) {
	out := appendU32(nil, uint32(len(m.tables)))
	for i, t := range m.tables {
		max := uint32(maxTableElements)
		if t.hasMax && t.max < max {
			max = t.max
		}
		if t.min > max {
			return nil, fmt.Errorf("table %d: %d elements, above the limit of %d", i, t.min, max)
		}
		out = append(out, t.elem, 0x01)
		out = appendU32(out, t.min)
		out = appendU32(out, max)
	}
	return out, nil
}

// rewriteGlobals renumbers ref.func in initializers and appends entries.
func (w *rewriter) rewriteGlobals(content []byte, n uint32, entries []byte) ([]byte, error) {
	r := &reader{b: content}
	count, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(make([]byte, 0, len(content)+len(entries)+5), count+n)
	for i := uint32(0); i < count; i++ {
		start := r.off
		if _, err := r.valType(); err != nil {
			return nil, err
		}
		if _, err := r.byte(); err != nil { // mutability
			return nil, err
		}
		out = append(out, content[start:r.off]...)
		if out, err = w.constExpr(r, out); err != nil {
			return nil, fmt.Errorf("global %d: %w", i, err)
		}
	}
	if !r.eof() {
		return nil, errors.New("section size mismatch")
	}
	return append(out, entries...), nil
}

// constExpr copies a constant expression from r to out, renumbering ref.func.
func (w *rewriter) constExpr(r *reader, out []byte) ([]byte, error) {
	for {
		at := r.off
		op, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch op {
		case 0x0b: // end
			return append(out, op), nil
		case 0xd2: // ref.func
			i, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(append(out, op), w.fn(i))
			continue
		case 0x23: // global.get
			err = w.globalIndex(r)
		case 0x41, 0x42, 0x43, 0x44, 0xd0, 0xfd: // consts, ref.null, v128.const
			err = skipImmediates(r, op)
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant expressions
		default:
			return nil, fmt.Errorf("instruction 0x%02x in a constant expression", op)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r.b[at:r.off]...)
	}
}

// globalIndex reads a global index and refuses one past the input's globals.
func (w *rewriter) globalIndex(r *reader) error {
	i, err := r.u32()
	if err == nil && i >= w.nGlob {
		err = fmt.Errorf("global index %d out of range", i)
	}
	return err
}

// typeIndex reads a type index and refuses one past the input's types.
func (w *rewriter) typeIndex(r *reader) error {
	i, err := r.u32()
	if err == nil && i >= w.nTypes {
		err = fmt.Errorf("type index %d out of range", i)
	}
	return err
}

// blockType reads a block type: a value type, empty, or a type index.
func (w *rewriter) blockType(r *reader) error {
	at := r.off
	v, err := r.s33()
	switch {
	case err != nil:
		return err
	case v >= 0:
		if v >= int64(w.nTypes) {
			return fmt.Errorf("type index %d out of range", v)
		}
		return nil
	}
	// A negative one-byte value: empty (0x40) or a value type. Other bytes
	// begin the GC proposal's reference types (0x63 ref null, 0x64 ref),
	// which continue past this byte: read as one byte, the rewrite would
	// cut them in two.
	switch c := r.b[at]; c {
	case 0x40, valI32, valI64, valF32, valF64, valV128, valFuncref, valExternref:
		return nil
	default:
		return fmt.Errorf("unsupported block type 0x%02x", c)
	}
}

// rewriteExports renumbers exported functions and appends entries.
func (w *rewriter) rewriteExports(content []byte, n uint32, entries []byte) ([]byte, error) {
	if w.shift == 0 {
		return appendVector(content, n, entries), nil
	}
	out := appendU32(make([]byte, 0, len(content)+len(entries)+5), uint32(len(w.m.exports))+n)
	for _, e := range w.m.exports {
		out = appendName(out, e.name)
		out = append(out, e.kind)
		if e.kind == externFunc {
			out = appendU32(out, w.fn(e.index))
		} else {
			out = appendU32(out, e.index)
		}
	}
	return append(out, entries...), nil
}

// rewriteElements renumbers the functions of element segments (all eight
// encodings of the bulk memory proposal).
func (w *rewriter) rewriteElements(content []byte) ([]byte, error) {
	r := &reader{b: content}
	count, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(make([]byte, 0, len(content)+16), count)
	for i := uint32(0); i < count; i++ {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		if flags > 7 {
			return nil, fmt.Errorf("element segment %d: unknown flags %d", i, flags)
		}
		out = appendU32(out, flags)
		if flags&0x02 != 0 && flags&0x01 == 0 { // explicit table index
			t, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(out, t)
		}
		if flags&0x01 == 0 { // active: offset
			if out, err = w.constExpr(r, out); err != nil {
				return nil, err
			}
		}
		if flags&0x03 != 0 { // elemkind or reftype
			k, err := r.byte()
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, n)
		for j := uint32(0); j < n; j++ {
			if flags&0x04 != 0 {
				if out, err = w.constExpr(r, out); err != nil {
					return nil, err
				}
				continue
			}
			f, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(out, w.fn(f))
		}
	}
	if !r.eof() {
		return nil, errors.New("section size mismatch")
	}
	return out, nil
}

// checkSequence returns the code of one check:
//
//	global.get $budget  i32.const 1  i32.sub  global.set $budget
//	global.get $budget  i32.const 0  i32.lt_s
//	if
//	  call $yield  if unreachable end
//	  i32.const yieldBudget  global.set $budget
//	end
func checkSequence(budget, yield uint32) []byte {
	b := appendU32([]byte{0x23}, budget)
	b = append(b, 0x41, 0x01, 0x6b, 0x24)
	b = appendU32(b, budget)
	b = append(b, 0x23)
	b = appendU32(b, budget)
	b = append(b, 0x41, 0x00, 0x48, 0x04, 0x40, 0x10)
	b = appendU32(b, yield)
	b = append(b, 0x04, 0x40, 0x00, 0x0b, 0x41)
	b = appendS32(b, yieldBudget)
	b = append(b, 0x24)
	b = appendU32(b, budget)
	return append(b, 0x0b)
}

func (w *rewriter) rewriteCode(content []byte) ([]byte, error) {
	m := w.m
	r := &reader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if int(n) != len(m.funcs) {
		return nil, fmt.Errorf("code section has %d bodies for %d functions", n, len(m.funcs))
	}
	out := make([]byte, 0, len(content)+len(content)/4+int(n)*len(w.check))
	out = appendU32(out, n)
	var body []byte
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		b, err := r.bytes(size)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", m.importedFuncs+i, err)
		}
		if body, err = w.rewriteBody(body[:0], b); err != nil {
			return nil, fmt.Errorf("function %d: %w", m.importedFuncs+i, err)
		}
		w.stats.functions++
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if !r.eof() {
		return nil, errors.New("code section size mismatch")
	}
	return out, nil
}

// rewriteBody appends to dst the function body b with a check after its
// locals and after the block type of every loop, and its function indexes
// renumbered.
func (w *rewriter) rewriteBody(dst, b []byte) ([]byte, error) {
	r := &reader{b: b}
	groups, err := r.u32()
	if err != nil {
		return nil, err
	}
	for i := uint32(0); i < groups; i++ {
		if _, err := r.u32(); err != nil {
			return nil, err
		}
		if _, err := r.valType(); err != nil {
			return nil, err
		}
	}
	dst = append(dst, b[:r.off]...)
	dst = append(dst, w.check...)
	last := r.off
	depth := 0
	for {
		at := r.off
		op, err := r.byte()
		if err != nil {
			return nil, errors.New("function body has no end")
		}
		switch op {
		case 0x0b: // end
			if depth == 0 {
				if !r.eof() {
					return nil, errors.New("bytes after the end of the function body")
				}
				return append(dst, b[last:]...), nil
			}
			depth--
		case 0x02, 0x04: // block, if
			err = w.blockType(r)
			depth++
		case 0x03: // loop
			if err = w.blockType(r); err == nil {
				dst = append(dst, b[last:r.off]...)
				dst = append(dst, w.check...)
				last = r.off
				w.stats.loops++
			}
			depth++
		case 0x23, 0x24: // global.get, global.set
			err = w.globalIndex(r)
		case 0x11, 0x13: // call_indirect, return_call_indirect: type, table
			if err = w.typeIndex(r); err == nil {
				err = r.skipLEB(5)
			}
		case 0x10, 0x12, 0xd2: // call, return_call, ref.func
			var i uint32
			if i, err = r.u32(); err == nil && w.fn(i) != i {
				dst = append(dst, b[last:at+1]...)
				dst = appendU32(dst, w.fn(i))
				last = r.off
			}
		default:
			err = skipImmediates(r, op)
		}
		if err != nil {
			return nil, fmt.Errorf("instruction 0x%02x at offset %d: %w", op, at, err)
		}
	}
}

// skipImmediates skips the immediates of every instruction of WebAssembly 2.0
// (MVP, sign extension, non-trapping conversions, multi-value, bulk memory,
// reference types, SIMD) other than end and the block instructions; also of
// the tail calls. Anything else — threads, exception handling, typed
// references, GC — is refused: wazero runs with CoreFeaturesV2, which refuses
// them too.
func skipImmediates(r *reader, op byte) error {
	switch {
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0f || op == 0x1a || op == 0x1b:
		// unreachable nop else return drop select
		return nil
	case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12: // br br_if call return_call
		return r.skipLEB(5)
	case op == 0x0e: // br_table
		n, err := r.u32()
		if err != nil {
			return err
		}
		for i := uint64(0); i <= uint64(n); i++ {
			if err := r.skipLEB(5); err != nil {
				return err
			}
		}
		return nil
	case op == 0x11 || op == 0x13: // call_indirect return_call_indirect: type, table
		if err := r.skipLEB(5); err != nil {
			return err
		}
		return r.skipLEB(5)
	case op == 0x1c: // select t*
		n, err := r.u32()
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if _, err := r.valType(); err != nil {
				return err
			}
		}
		return nil
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get, table.set
		return r.skipLEB(5)
	case op >= 0x28 && op <= 0x3e: // loads and stores
		return skipMemarg(r)
	case op == 0x3f || op == 0x40: // memory.size memory.grow
		return r.skipLEB(5)
	case op == 0x41: // i32.const
		return r.skipLEB(5)
	case op == 0x42: // i64.const
		return r.skipLEB(10)
	case op == 0x43:
		_, err := r.bytes(4)
		return err
	case op == 0x44:
		_, err := r.bytes(8)
		return err
	case op >= 0x45 && op <= 0xc4: // numeric, sign extension
		return nil
	case op == 0xd0: // ref.null heaptype
		return r.skipLEB(5)
	case op == 0xd1: // ref.is_null
		return nil
	case op == 0xd2: // ref.func
		return r.skipLEB(5)
	case op == 0xfc:
		return skipMisc(r)
	case op == 0xfd:
		return skipSIMD(r)
	}
	return errors.New("unsupported instruction")
}

func skipMemarg(r *reader) error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align >= 0x40 {
		return errors.New("multiple memories are not supported")
	}
	return r.skipLEB(5)
}

// skipMisc skips a 0xFC instruction: saturating truncations, bulk memory and
// table instructions.
func skipMisc(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7: // trunc_sat
		return nil
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init memory.copy table.init table.copy
		if err := r.skipLEB(5); err != nil {
			return err
		}
		return r.skipLEB(5)
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17):
		// data.drop memory.fill elem.drop table.grow table.size table.fill
		return r.skipLEB(5)
	}
	return fmt.Errorf("unsupported instruction 0xfc %d", sub)
}

// skipSIMD skips a 0xFD instruction (fixed-width SIMD).
func skipSIMD(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // v128.load*, v128.store, load*_zero
		return skipMemarg(r)
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		_, err := r.bytes(16)
		return err
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		_, err := r.byte()
		return err
	case sub >= 84 && sub <= 91: // load*_lane, store*_lane
		if err := skipMemarg(r); err != nil {
			return err
		}
		_, err := r.byte()
		return err
	case sub <= 255:
		return nil
	}
	return fmt.Errorf("unsupported instruction 0xfd %d", sub)
}
