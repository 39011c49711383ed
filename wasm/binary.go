package wasm

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// This file decodes the parts of a WebAssembly binary that the host needs to
// see before wazero compiles it: the section layout, function types, imports,
// exports, the memory's limits and the start function. It trusts nothing: every
// length is checked against the input, and wazero validates the whole module
// again when it compiles it.

// Section ids of the WebAssembly binary format (core spec 2.0, 5.5.2).
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13 // exception handling; wazero refuses it unless enabled
)

// sectionRank orders the non-custom sections as the format requires them.
var sectionRank = [...]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11,
	secCode: 12, secData: 13,
}

// External kinds of imports and exports.
const (
	externFunc   = 0x00
	externTable  = 0x01
	externMemory = 0x02
	externGlobal = 0x03
	externTag    = 0x04
)

// Value types (the same bytes as api.ValueType).
const (
	valI32       = 0x7f
	valI64       = 0x7e
	valF32       = 0x7d
	valF64       = 0x7c
	valV128      = 0x7b
	valFuncref   = 0x70
	valExternref = 0x6f
)

var errTruncated = errors.New("unexpected end of input")

// reader reads the binary format from a byte slice.
type reader struct {
	b   []byte
	off int
}

func (r *reader) eof() bool { return r.off >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) bytes(n uint32) ([]byte, error) {
	if uint64(n) > uint64(len(r.b)-r.off) {
		return nil, errTruncated
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

// u32 reads an unsigned LEB128 of at most 32 bits.
func (r *reader) u32() (uint32, error) {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == 28 && c&0x70 != 0 {
			return 0, errors.New("integer representation too long")
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("integer representation too long")
}

// s33 reads a signed LEB128 of at most 33 bits (a block type).
func (r *reader) s33() (int64, error) {
	var v int64
	shift := 0
	for i := 0; i < 5; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, nil
		}
	}
	return 0, errors.New("integer representation too long")
}

// skipLEB skips a signed or unsigned LEB128 of at most max bytes.
func (r *reader) skipLEB(max int) error {
	for i := 0; i < max; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errors.New("integer representation too long")
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("name is not valid UTF-8")
	}
	return string(b), nil
}

func (r *reader) valType() (byte, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch c {
	case valI32, valI64, valF32, valF64, valV128, valFuncref, valExternref:
		return c, nil
	}
	return 0, fmt.Errorf("unsupported value type 0x%02x", c)
}

// limits reads a limits type: flags, min and optional max.
func (r *reader) limits() (l limits, err error) {
	flags, err := r.byte()
	if err != nil {
		return l, err
	}
	if flags > 0x03 {
		return l, fmt.Errorf("unsupported limits flags 0x%02x (64-bit memories are not supported)", flags)
	}
	l.shared = flags&0x02 != 0
	if l.min, err = r.u32(); err != nil {
		return l, err
	}
	if flags&0x01 != 0 {
		l.hasMax = true
		if l.max, err = r.u32(); err != nil {
			return l, err
		}
	}
	return l, nil
}

// appendU32 appends v as an unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// table is a defined table: its element type and size limits.
type table struct {
	elem byte // 0x70 funcref, 0x6f externref
	limits
}

type limits struct {
	min, max uint32
	hasMax   bool
	shared   bool
}

type funcType struct {
	params, results []byte
}

func (t funcType) equal(params, results []byte) bool {
	return string(t.params) == string(params) && string(t.results) == string(results)
}

// String renders a type as "(i32, i32) -> (i32)".
func (t funcType) String() string {
	return typeString(t.params) + " -> " + typeString(t.results)
}

func typeString(ts []byte) string {
	s := "("
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += valTypeName(t)
	}
	return s + ")"
}

func valTypeName(t byte) string {
	switch t {
	case valI32:
		return "i32"
	case valI64:
		return "i64"
	case valF32:
		return "f32"
	case valF64:
		return "f64"
	case valV128:
		return "v128"
	case valFuncref:
		return "funcref"
	case valExternref:
		return "externref"
	}
	return fmt.Sprintf("0x%02x", t)
}

type wasmImport struct {
	module, name string
	kind         byte
	typeIndex    uint32 // for functions
}

type wasmExport struct {
	name  string
	kind  byte
	index uint32
}

// section is one section of the input: its id and its content.
type section struct {
	id      byte
	content []byte
}

// binaryModule is what the host knows of a module before compiling it.
type binaryModule struct {
	sections []section

	types          []funcType
	imports        []wasmImport
	importedFuncs  uint32
	importedGlobal uint32
	importedMems   uint32
	funcs          []uint32 // type index of each defined function
	memories       []limits // defined memories
	tables         []table  // defined tables
	globals        uint32   // defined globals
	exports        []wasmExport
	start          uint32
	hasStart       bool
}

var wasmMagic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// errNotWasm is returned for input that does not start like a module.
var errNotWasm = errors.New("not a WebAssembly module (bad magic number or version)")

// decodeModule decodes the section layout and the sections the host needs.
// Function bodies are left to the instrumenter and to wazero.
func decodeModule(b []byte) (*binaryModule, error) {
	if len(b) < len(wasmMagic) || string(b[:len(wasmMagic)]) != string(wasmMagic) {
		return nil, errNotWasm
	}
	m := &binaryModule{}
	r := &reader{b: b, off: len(wasmMagic)}
	lastRank := 0
	for !r.eof() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		content, err := r.bytes(size)
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		if id != secCustom {
			if int(id) >= len(sectionRank) || sectionRank[id] == 0 {
				return nil, fmt.Errorf("unknown section id %d", id)
			}
			if sectionRank[id] <= lastRank {
				return nil, fmt.Errorf("section %d is out of order or repeated", id)
			}
			lastRank = sectionRank[id]
		}
		m.sections = append(m.sections, section{id: id, content: content})
		if err := m.decodeSection(id, content); err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
	}
	return m, nil
}

func (m *binaryModule) decodeSection(id byte, content []byte) error {
	r := &reader{b: content}
	var err error
	switch id {
	case secType:
		err = m.decodeTypes(r)
	case secImport:
		err = m.decodeImports(r)
	case secFunction:
		var n uint32
		if n, err = r.u32(); err != nil {
			return err
		}
		if uint64(n) > uint64(len(content)) {
			return errTruncated
		}
		m.funcs = make([]uint32, n)
		for i := range m.funcs {
			if m.funcs[i], err = r.u32(); err != nil {
				return err
			}
			if int(m.funcs[i]) >= len(m.types) {
				return fmt.Errorf("function %d has unknown type %d", i, m.funcs[i])
			}
		}
	case secMemory:
		var n uint32
		if n, err = r.u32(); err != nil {
			return err
		}
		if uint64(n) > uint64(len(content)) {
			return errTruncated
		}
		for i := uint32(0); i < n; i++ {
			l, err := r.limits()
			if err != nil {
				return err
			}
			m.memories = append(m.memories, l)
		}
	case secGlobal:
		// Only the count matters here: the instrumenter appends one global.
		m.globals, err = r.vectorLen()
		return err
	case secTable:
		var n uint32
		if n, err = r.u32(); err != nil {
			return err
		}
		if n > maxTables {
			return fmt.Errorf("module defines %d tables, at most %d", n, maxTables)
		}
		for i := uint32(0); i < n; i++ {
			elem, err := r.byte()
			if err != nil {
				return err
			}
			if elem != 0x70 && elem != 0x6f {
				// 0x40 is a table with an initializer (wasm 3.0); typed
				// references come with GC: neither is compiled by the
				// toolchains mlnode supports.
				return fmt.Errorf("table %d: element type 0x%02x is not supported (funcref or externref)", i, elem)
			}
			l, err := r.limits()
			if err != nil {
				return err
			}
			if l.shared {
				return fmt.Errorf("table %d: shared tables are not supported", i)
			}
			m.tables = append(m.tables, table{elem: elem, limits: l})
		}
	case secElement:
		err = checkElements(r)
	case secCode:
		err = checkCode(r)
	case secData:
		err = checkData(r)
	case secExport:
		err = m.decodeExports(r)
	case secStart:
		m.hasStart = true
		m.start, err = r.u32()
	default:
		return nil // left to wazero
	}
	if err != nil {
		return err
	}
	if !r.eof() {
		return errors.New("section size mismatch")
	}
	return nil
}

// maxLocals bounds the locals of one function, as V8 does: wazero allocates
// them from the declared counts.
const maxLocals = 50000

// vectorLen reads a vector's length and checks that as many entries of at
// least one byte each fit in what remains: wazero allocates vectors from
// their declared lengths before reading them.
func (r *reader) vectorLen() (uint32, error) {
	n, err := r.u32()
	if err == nil && uint64(n) > uint64(len(r.b)-r.off) {
		err = fmt.Errorf("vector of %d entries in %d bytes", n, len(r.b)-r.off)
	}
	return n, err
}

// checkElements checks the lengths of the element section's vectors.
func checkElements(r *reader) error {
	n, err := r.vectorLen()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		if flags > 7 {
			return fmt.Errorf("element segment %d: unknown flags %d", i, flags)
		}
		if flags&0x02 != 0 && flags&0x01 == 0 {
			if err := r.skipLEB(5); err != nil { // table index
				return err
			}
		}
		if flags&0x01 == 0 {
			if err := skipConstExpr(r); err != nil {
				return err
			}
		}
		if flags&0x03 != 0 {
			if _, err := r.byte(); err != nil { // elemkind or reftype
				return err
			}
		}
		k, err := r.vectorLen()
		if err != nil {
			return err
		}
		for j := uint32(0); j < k; j++ {
			if flags&0x04 != 0 {
				err = skipConstExpr(r)
			} else {
				err = r.skipLEB(5)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// checkCode checks the bodies' sizes and their locals.
func checkCode(r *reader) error {
	n, err := r.vectorLen()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return err
		}
		b, err := r.bytes(size)
		if err != nil {
			return err
		}
		br := &reader{b: b}
		groups, err := br.vectorLen()
		if err != nil {
			return fmt.Errorf("body %d: %w", i, err)
		}
		total := uint64(0)
		for g := uint32(0); g < groups; g++ {
			k, err := br.u32()
			if err != nil {
				return err
			}
			if total += uint64(k); total > maxLocals {
				return fmt.Errorf("body %d: more than %d locals", i, maxLocals)
			}
			if _, err := br.valType(); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkData checks the lengths of the data segments.
func checkData(r *reader) error {
	n, err := r.vectorLen()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		switch flags {
		case 0:
			err = skipConstExpr(r)
		case 1:
		case 2:
			if err = r.skipLEB(5); err == nil { // memory index
				err = skipConstExpr(r)
			}
		default:
			err = fmt.Errorf("data segment %d: unknown flags %d", i, flags)
		}
		if err != nil {
			return err
		}
		k, err := r.u32()
		if err != nil {
			return err
		}
		if _, err := r.bytes(k); err != nil {
			return err
		}
	}
	return nil
}

// skipConstExpr skips a constant expression.
func skipConstExpr(r *reader) error {
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b:
			return nil
		case 0x23, 0x41, 0x42, 0x43, 0x44, 0xd0, 0xd2, 0xfd:
			err = skipImmediates(r, op)
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e:
		default:
			err = fmt.Errorf("instruction 0x%02x in a constant expression", op)
		}
		if err != nil {
			return err
		}
	}
}

func (m *binaryModule) decodeTypes(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	if uint64(n) > uint64(len(r.b)) {
		return errTruncated
	}
	m.types = make([]funcType, 0, n)
	for i := uint32(0); i < n; i++ {
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return fmt.Errorf("type %d: unsupported type form 0x%02x", i, form)
		}
		var t funcType
		for _, dst := range []*[]byte{&t.params, &t.results} {
			k, err := r.u32()
			if err != nil {
				return err
			}
			if uint64(k) > uint64(len(r.b)-r.off) {
				return errTruncated
			}
			vs := make([]byte, k)
			for j := range vs {
				if vs[j], err = r.valType(); err != nil {
					return fmt.Errorf("type %d: %w", i, err)
				}
			}
			*dst = vs
		}
		m.types = append(m.types, t)
	}
	return nil
}

func (m *binaryModule) decodeImports(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	if uint64(n) > uint64(len(r.b)) {
		return errTruncated
	}
	for i := uint32(0); i < n; i++ {
		var imp wasmImport
		if imp.module, err = r.name(); err != nil {
			return err
		}
		if imp.name, err = r.name(); err != nil {
			return err
		}
		if imp.kind, err = r.byte(); err != nil {
			return err
		}
		switch imp.kind {
		case externFunc:
			if imp.typeIndex, err = r.u32(); err != nil {
				return err
			}
			if int(imp.typeIndex) >= len(m.types) {
				return fmt.Errorf("import %s.%s has unknown type %d", imp.module, imp.name, imp.typeIndex)
			}
			m.importedFuncs++
		case externTable:
			if _, err = r.byte(); err != nil { // reference type
				return err
			}
			if _, err = r.limits(); err != nil {
				return err
			}
		case externMemory:
			if _, err = r.limits(); err != nil {
				return err
			}
			m.importedMems++
		case externGlobal:
			if _, err = r.valType(); err != nil {
				return err
			}
			if _, err = r.byte(); err != nil { // mutability
				return err
			}
			m.importedGlobal++
		case externTag:
			if _, err = r.byte(); err != nil { // attribute
				return err
			}
			if _, err = r.u32(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("import %s.%s has unknown kind 0x%02x", imp.module, imp.name, imp.kind)
		}
		m.imports = append(m.imports, imp)
	}
	return nil
}

func (m *binaryModule) decodeExports(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	if uint64(n) > uint64(len(r.b)) {
		return errTruncated
	}
	seen := make(map[string]bool, n)
	for i := uint32(0); i < n; i++ {
		var e wasmExport
		if e.name, err = r.name(); err != nil {
			return err
		}
		if e.kind, err = r.byte(); err != nil {
			return err
		}
		if e.index, err = r.u32(); err != nil {
			return err
		}
		if seen[e.name] {
			return fmt.Errorf("duplicate export %q", e.name)
		}
		seen[e.name] = true
		m.exports = append(m.exports, e)
	}
	return nil
}

// export returns the export of that name.
func (m *binaryModule) export(name string) (wasmExport, bool) {
	for _, e := range m.exports {
		if e.name == name {
			return e, true
		}
	}
	return wasmExport{}, false
}

// funcTypeOf returns the type of a function by its index in the function
// index space (imports first).
func (m *binaryModule) funcTypeOf(index uint32) (funcType, bool) {
	if index < m.importedFuncs {
		var k uint32
		for _, imp := range m.imports {
			if imp.kind != externFunc {
				continue
			}
			if k == index {
				return m.types[imp.typeIndex], true
			}
			k++
		}
		return funcType{}, false
	}
	i := index - m.importedFuncs
	if int(i) >= len(m.funcs) {
		return funcType{}, false
	}
	return m.types[m.funcs[i]], true
}

func externName(kind byte) string {
	switch kind {
	case externFunc:
		return "function"
	case externTable:
		return "table"
	case externMemory:
		return "memory"
	case externGlobal:
		return "global"
	case externTag:
		return "tag"
	}
	return fmt.Sprintf("kind 0x%02x", kind)
}
