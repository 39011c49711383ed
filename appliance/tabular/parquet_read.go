package tabular

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"

	"github.com/mlnode/mlnode/appliance"
)

// Limits on what an outside file may make a reader allocate. They are far
// above what Parquet writers produce and far below what would hurt the node.
const (
	maxFooterBytes = 32 << 20
	maxListElems   = 1 << 22 // list elements in the footer, all lists together
	maxFooterRows  = 1 << 18 // structs in footer lists: row groups, column chunks, schema elements
	maxSchemaDepth = 32
)

// ParquetColumn describes a top-level column of a Parquet file.
type ParquetColumn struct {
	Name string
	// Dtype is the dtype the column's values convert to; "" when none can
	// hold them (see Reason), or when AllNull.
	Dtype appliance.DType
	// Optional is whether the column may hold nulls.
	Optional bool
	// AllNull is true for a column of the Null logical type, which holds
	// nothing but nulls and so fits any dtype.
	AllNull bool
	// Type is the column's Parquet type, for messages: "INT32 (DATE)",
	// "LIST<BYTE_ARRAY (STRING)>", "group (MAP)".
	Type string
	// Reason says why Dtype is "" for a column that is not AllNull.
	Reason string
}

// ParquetFile is a Parquet file opened for reading, checked enough that
// reading it cannot make the node allocate without bound or crash.
type ParquetFile struct {
	r       *errReaderAt
	dataEnd int64 // where the footer starts
	file    *parquet.File
	meta    *format.FileMetaData
	cols    []ParquetColumn
	plans   []columnPlan
	numRows int64
}

// errReaderAt remembers the first error of the underlying reader, so that
// a failing disk is told apart from a corrupt file: parquet-go's errors do
// not always wrap it.
type errReaderAt struct {
	r   io.ReaderAt
	err error
}

func (e *errReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(p, off)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// corrupt is the error for a file that parquet-go could not read, unless
// the reader under it failed, which is no fault of the body.
func (e *errReaderAt) corrupt(format string, args ...any) error {
	if e.err != nil {
		return fmt.Errorf("read parquet: %w", e.err)
	}
	return appliance.Invalid("body", "corrupt Parquet file: "+format, args...)
}

func notParquet(format string, args ...any) error {
	return appliance.Invalid("body", format, args...)
}

// OpenParquet opens the Parquet file of size bytes in r: it reads the
// footer and checks it, but no data yet. A body that is not Parquet, is
// truncated or is corrupt is EINVALID (field "body") saying which; an
// error of r comes back wrapped, keeping its code.
func OpenParquet(r io.ReaderAt, size int64) (p *ParquetFile, err error) {
	ra := &errReaderAt{r: r}
	footerLen, err := checkFooter(ra, size)
	if err != nil {
		return nil, err
	}
	var f *parquet.File
	err = func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = ra.corrupt("%v", v)
			}
		}()
		f, err = parquet.OpenFile(ra, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true),
			parquet.FileReadMode(parquet.ReadModeSync))
		if err != nil {
			return ra.corrupt("%v", err)
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}
	p = &ParquetFile{r: ra, dataEnd: size - 8 - footerLen, file: f, meta: f.Metadata()}
	top, leaves, err := buildSchema(p.meta.Schema)
	if err != nil {
		return nil, ra.corrupt("%v", err)
	}
	if err := p.checkChunks(leaves); err != nil {
		return nil, err
	}
	p.describe(top)
	return p, nil
}

// checkFooter checks the magic bytes and walks the footer before parquet-go
// decodes it (see thriftWalker).
func checkFooter(ra *errReaderAt, size int64) (int64, error) {
	const magic = "PAR1"
	if size < 12 {
		return 0, notParquet("not a Parquet file: %d bytes is too short to be one", size)
	}
	var head [4]byte
	if _, err := ra.ReadAt(head[:], 0); err != nil {
		return 0, fmt.Errorf("read parquet: %w", err)
	}
	if string(head[:]) != magic {
		return 0, notParquet("not a Parquet file: it does not start with %q", magic)
	}
	var tail [8]byte
	if _, err := ra.ReadAt(tail[:], size-8); err != nil {
		return 0, fmt.Errorf("read parquet: %w", err)
	}
	switch string(tail[4:]) {
	case magic:
	case "PARE":
		return 0, notParquet("encrypted Parquet files are not supported")
	default:
		return 0, notParquet("truncated or not a Parquet file: it does not end with %q", magic)
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	switch {
	case n > size-12:
		return 0, notParquet("truncated Parquet file: its footer claims %d bytes of a %d-byte file", n, size)
	case n > maxFooterBytes:
		return 0, notParquet("Parquet footer of %d bytes is over the limit of %d", n, maxFooterBytes)
	}
	footer := make([]byte, n)
	if _, err := ra.ReadAt(footer, size-8-n); err != nil {
		return 0, fmt.Errorf("read parquet: %w", err)
	}
	w := thriftWalker{b: footer, maxElems: maxListElems, maxStructs: maxFooterRows}
	if err := w.walkStruct(0); err != nil {
		if errors.Is(err, errThriftShort) {
			return 0, notParquet("corrupt Parquet footer: it is cut short")
		}
		return 0, notParquet("corrupt Parquet footer: %v", err)
	}
	if w.i != len(footer) {
		return 0, notParquet("corrupt Parquet footer: %d bytes after its end", len(footer)-w.i)
	}
	return n, nil
}

// checkChunks checks what the footer says of each column chunk, which
// parquet-go trusts when it reads pages.
func (p *ParquetFile) checkChunks(leaves int) error {
	m := p.meta
	if m.NumRows < 0 {
		return p.r.corrupt("%d rows", m.NumRows)
	}
	codecs := make([]format.CompressionCodec, leaves)
	for g := range m.RowGroups {
		rg := &m.RowGroups[g]
		if rg.NumRows < 0 || p.numRows > math.MaxInt64-rg.NumRows {
			return p.r.corrupt("row group %d has %d rows", g, rg.NumRows)
		}
		p.numRows += rg.NumRows
		if len(rg.Columns) != leaves {
			return p.r.corrupt("row group %d has %d column chunks for %d columns", g, len(rg.Columns), leaves)
		}
		for c := range rg.Columns {
			cc := &rg.Columns[c]
			md := &cc.MetaData
			if cc.CryptoMetadata.Value != nil || len(cc.EncryptedColumnMetadata) > 0 {
				return notParquet("encrypted Parquet columns are not supported")
			}
			if cc.FilePath != "" {
				return notParquet("Parquet column chunks in other files are not supported")
			}
			start := md.DataPageOffset
			if md.DictionaryPageOffset != 0 {
				start = md.DictionaryPageOffset
			}
			if start < 4 || md.TotalCompressedSize < 0 || md.TotalCompressedSize > p.dataEnd-start {
				return p.r.corrupt("column chunk %d of row group %d lies outside the data (offset %d, %d bytes)",
					c, g, start, md.TotalCompressedSize)
			}
			switch md.Codec {
			case format.Uncompressed, format.Snappy, format.Gzip, format.Brotli, format.Zstd:
			default:
				// LZ4_RAW included: parquet-go v0.32.0 decodes a page into a
				// buffer it then drops when the page is much smaller
				// compressed than not, and reads zeros instead.
				return notParquet("Parquet compression %s is not supported: use snappy, zstd, gzip, brotli or none", md.Codec)
			}
			if g == 0 {
				codecs[c] = md.Codec
			} else if md.Codec != codecs[c] {
				// parquet-go decodes every chunk of a column with the codec
				// of the first.
				return notParquet("a Parquet column that changes compression between row groups is not supported")
			}
		}
	}
	return nil
}

// Columns describes the file's top-level columns, in file order.
func (p *ParquetFile) Columns() []ParquetColumn { return slices.Clone(p.cols) }

// NumRows is the number of rows of the file's row groups, as the footer
// declares them; Scan refuses a file whose pages hold fewer or more.
func (p *ParquetFile) NumRows() int64 { return p.numRows }

// conv is how a physical value becomes an appliance.Value.
type conv uint8

const (
	convNone conv = iota
	convNull
	convBool
	convInt32
	convUint32
	convInt64
	convUint64
	convFloat
	convDouble
	convString
	convBytes
	convDate
	convMillis
	convMicros
	convNanos
	convInt96
)

func (c conv) dtype() appliance.DType {
	switch c {
	case convBool:
		return appliance.DTypeBool
	case convInt32, convUint32, convInt64, convUint64:
		return appliance.DTypeInt64
	case convFloat, convDouble:
		return appliance.DTypeFloat64
	case convString:
		return appliance.DTypeString
	case convBytes:
		return appliance.DTypeBytes
	case convDate, convMillis, convMicros, convNanos, convInt96:
		return appliance.DTypeTimestamp
	}
	return ""
}

func (c conv) listDtype() appliance.DType {
	switch c.dtype() {
	case appliance.DTypeInt64:
		return appliance.DTypeInt64List
	case appliance.DTypeFloat64:
		return appliance.DTypeFloat64List
	case appliance.DTypeString:
		return appliance.DTypeStringList
	}
	return ""
}

// columnPlan is how to read one top-level column.
type columnPlan struct {
	leaf int // index of its leaf column
	conv conv
	kind parquet.Kind // the leaf's physical type, which values must have
	list bool
	// Definition levels of a list: below listDef the list is null, below
	// entryDef it is empty; at maxDef an element has a value, below it the
	// element is null. A scalar is present at maxDef.
	listDef, entryDef, maxDef int
}

// schemaNode is a schema element with its children: the footer's flat,
// depth-first list made a tree.
type schemaNode struct {
	el       *format.SchemaElement
	children []*schemaNode
	leaf     int // leaf column index, for a leaf
}

// buildSchema returns the top-level columns and the number of leaves.
func buildSchema(els []format.SchemaElement) ([]*schemaNode, int, error) {
	i, leaf := 1, 0
	var build func(depth int) (*schemaNode, error)
	build = func(depth int) (*schemaNode, error) {
		if i >= len(els) {
			return nil, errors.New("schema ends early")
		}
		if depth > maxSchemaDepth {
			return nil, errors.New("schema nested too deep")
		}
		n := &schemaNode{el: &els[i], leaf: -1}
		i++
		k := int(n.el.NumChildren.V)
		if k < 0 || k > len(els)-i {
			return nil, fmt.Errorf("column %q claims %d children", n.el.Name, k)
		}
		if k == 0 {
			n.leaf = leaf
			leaf++
			return n, nil
		}
		for range k {
			c, err := build(depth + 1)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, c)
		}
		return n, nil
	}
	if len(els) == 0 {
		return nil, 0, errors.New("no schema")
	}
	var top []*schemaNode
	for range max(els[0].NumChildren.V, 0) {
		n, err := build(1)
		if err != nil {
			return nil, 0, err
		}
		top = append(top, n)
	}
	if i != len(els) {
		return nil, 0, fmt.Errorf("%d schema elements are outside the schema", len(els)-i)
	}
	return top, leaf, nil
}

func repetition(el *format.SchemaElement) format.FieldRepetitionType {
	if el.RepetitionType.Valid {
		return el.RepetitionType.V
	}
	return format.Required
}

func isList(el *format.SchemaElement) bool {
	_, ok := el.LogicalType.Value.(*format.ListType)
	return ok || (el.ConvertedType.Valid && el.ConvertedType.V == deprecated.List)
}

func isMap(el *format.SchemaElement) bool {
	_, ok := el.LogicalType.Value.(*format.MapType)
	return ok || (el.ConvertedType.Valid && (el.ConvertedType.V == deprecated.Map || el.ConvertedType.V == deprecated.MapKeyValue))
}

// describe classifies every top-level column.
func (p *ParquetFile) describe(top []*schemaNode) {
	leaves := map[int]*parquet.Column{}
	var collect func(c *parquet.Column)
	collect = func(c *parquet.Column) {
		if c.Leaf() {
			leaves[c.Index()] = c
		}
		for _, k := range c.Columns() {
			collect(k)
		}
	}
	collect(p.file.Root())
	p.cols = make([]ParquetColumn, len(top))
	p.plans = make([]columnPlan, len(top))
	for i, n := range top {
		col, plan := classify(n, leaves)
		p.cols[i], p.plans[i] = col, plan
	}
}

func classify(n *schemaNode, leaves map[int]*parquet.Column) (ParquetColumn, columnPlan) {
	el := n.el
	col := ParquetColumn{Name: el.Name, Optional: repetition(el) == format.Optional}
	unsupported := func(reason string) (ParquetColumn, columnPlan) {
		col.Dtype, col.AllNull, col.Reason = "", false, reason
		return col, columnPlan{leaf: -1}
	}
	switch {
	case n.leaf >= 0 && repetition(el) != format.Repeated:
		c, desc, reason := classifyLeaf(el)
		col.Type = desc
		if c == convNone {
			return unsupported(reason)
		}
		if c == convNull {
			// Never read: parquet-go has no physical type for it.
			col.AllNull = true
			return col, columnPlan{leaf: n.leaf, conv: c}
		}
		lc := leaves[n.leaf]
		if lc == nil || lc.MaxRepetitionLevel() != 0 || !kindMatches(lc, el) {
			return unsupported("its schema is inconsistent")
		}
		col.Dtype = c.dtype()
		return col, columnPlan{leaf: n.leaf, conv: c, kind: lc.Type().Kind(), maxDef: lc.MaxDefinitionLevel()}
	case n.leaf >= 0:
		// A bare repeated field: a list that is never null, of required
		// elements.
		c, desc, reason := classifyLeaf(el)
		col.Type = "repeated " + desc
		return listColumn(col, n, el, c, reason, 0, leaves)
	case isList(el):
		col.Type = "LIST"
		if repetition(el) == format.Repeated || len(n.children) != 1 || repetition(n.children[0].el) != format.Repeated {
			return unsupported("it is a LIST that does not follow the Parquet list layout")
		}
		rep := n.children[0]
		elem := rep
		if rep.leaf < 0 {
			// Three levels, unless the repeated group is itself the element
			// (a list of structs), which the format's backward-compatibility
			// rules recognise by its name or its number of fields.
			if len(rep.children) != 1 || rep.el.Name == "array" || rep.el.Name == el.Name+"_tuple" {
				return unsupported("it is a list of structs")
			}
			elem = rep.children[0]
			if elem.leaf < 0 || repetition(elem.el) == format.Repeated {
				return unsupported("it is a list of lists, maps or structs")
			}
		}
		c, desc, reason := classifyLeaf(elem.el)
		col.Type = "LIST<" + desc + ">"
		listDef := 0
		if col.Optional {
			listDef = 1
		}
		return listColumn(col, elem, elem.el, c, reason, listDef, leaves)
	case isMap(el):
		col.Type = "group (MAP)"
		return unsupported("it is a map")
	default:
		col.Type = "group"
		if _, ok := el.LogicalType.Value.(*format.VariantType); ok {
			return unsupported("it is a variant")
		}
		return unsupported("it is a struct (a group of columns)")
	}
}

func listColumn(col ParquetColumn, leaf *schemaNode, el *format.SchemaElement, c conv, reason string, listDef int, leaves map[int]*parquet.Column) (ParquetColumn, columnPlan) {
	unsupported := func(reason string) (ParquetColumn, columnPlan) {
		col.Dtype, col.Reason = "", reason
		return col, columnPlan{leaf: -1}
	}
	switch c {
	case convNone:
		return unsupported("its elements are not supported: " + reason)
	case convNull:
		return unsupported("its elements are all null (the Null type)")
	}
	dt := c.listDtype()
	if dt == "" {
		return unsupported(fmt.Sprintf("there is no list dtype of %s: lists hold int64, float64 or string", c.dtype()))
	}
	lc := leaves[leaf.leaf]
	if lc == nil || lc.MaxRepetitionLevel() != 1 || !kindMatches(lc, el) {
		return unsupported("its schema is inconsistent")
	}
	entryDef := listDef + 1
	maxDef := lc.MaxDefinitionLevel()
	if maxDef != entryDef && maxDef != entryDef+1 {
		return unsupported("its schema is inconsistent")
	}
	col.Dtype = dt
	return col, columnPlan{leaf: leaf.leaf, conv: c, kind: lc.Type().Kind(), list: true, listDef: listDef, entryDef: entryDef, maxDef: maxDef}
}

// kindMatches checks that parquet-go reads the leaf as the physical type
// the footer declares: a logical type on the wrong physical type would
// make it decode the pages as something they are not.
func kindMatches(c *parquet.Column, el *format.SchemaElement) bool {
	return el.Type.Valid && c.Type().Kind() == parquet.Kind(el.Type.V)
}

// classifyLeaf says how a leaf's values convert, with a description of its
// type, or why they do not.
func classifyLeaf(el *format.SchemaElement) (conv, string, string) {
	if !el.Type.Valid {
		return convNone, "?", "it has no physical type"
	}
	phys := el.Type.V
	desc := phys.String()
	bad := func(reason string) (conv, string, string) { return convNone, desc, reason }
	mismatch := func() (conv, string, string) {
		return convNone, desc, "its logical type does not fit its physical type"
	}
	switch lt := el.LogicalType.Value.(type) {
	case nil:
	case *format.StringType, *format.EnumType, *format.JsonType:
		desc += " (" + lt.String() + ")"
		if phys != format.ByteArray {
			return mismatch()
		}
		return convString, desc, ""
	case *format.IntType:
		desc += " (" + lt.String() + ")"
		switch {
		case phys == format.Int32 && lt.BitWidth <= 32 && lt.IsSigned:
			return convInt32, desc, ""
		case phys == format.Int32 && lt.BitWidth <= 32:
			return convUint32, desc, ""
		case phys == format.Int64 && lt.IsSigned:
			return convInt64, desc, ""
		case phys == format.Int64:
			return convUint64, desc, ""
		}
		return mismatch()
	case *format.DateType:
		desc += " (DATE)"
		if phys != format.Int32 {
			return mismatch()
		}
		return convDate, desc, ""
	case *format.TimestampType:
		desc += " (" + lt.String() + ")"
		if phys != format.Int64 {
			return mismatch()
		}
		switch lt.Unit.Value.(type) {
		case *format.MilliSeconds:
			return convMillis, desc, ""
		case *format.MicroSeconds:
			return convMicros, desc, ""
		case *format.NanoSeconds:
			return convNanos, desc, ""
		}
		return bad("its time unit is unknown")
	case *format.NullType:
		desc += " (NULL)"
		return convNull, desc, ""
	case *format.UUIDType, *format.BsonType, *format.GeometryType, *format.GeographyType:
		desc += " (" + lt.String() + ")"
		if phys != format.ByteArray && phys != format.FixedLenByteArray {
			return mismatch()
		}
		return convBytes, desc, ""
	case *format.DecimalType:
		desc += " (" + lt.String() + ")"
		return bad("decimals are not supported: cast the column to double")
	case *format.TimeType:
		desc += " (" + lt.String() + ")"
		return bad("times of day are not supported")
	default:
		desc += " (" + lt.String() + ")"
		return bad("its logical type is not supported")
	}
	if el.ConvertedType.Valid {
		ct := el.ConvertedType.V
		desc += " (" + convertedName(ct) + ")"
		switch {
		case ct == deprecated.UTF8 || ct == deprecated.Enum || ct == deprecated.Json:
			if phys == format.ByteArray {
				return convString, desc, ""
			}
		case ct == deprecated.Int8 || ct == deprecated.Int16 || ct == deprecated.Int32:
			if phys == format.Int32 {
				return convInt32, desc, ""
			}
		case ct == deprecated.Uint8 || ct == deprecated.Uint16 || ct == deprecated.Uint32:
			if phys == format.Int32 {
				return convUint32, desc, ""
			}
		case ct == deprecated.Int64:
			if phys == format.Int64 {
				return convInt64, desc, ""
			}
		case ct == deprecated.Uint64:
			if phys == format.Int64 {
				return convUint64, desc, ""
			}
		case ct == deprecated.Date:
			if phys == format.Int32 {
				return convDate, desc, ""
			}
		case ct == deprecated.TimestampMillis:
			if phys == format.Int64 {
				return convMillis, desc, ""
			}
		case ct == deprecated.TimestampMicros:
			if phys == format.Int64 {
				return convMicros, desc, ""
			}
		case ct == deprecated.Bson:
			if phys == format.ByteArray {
				return convBytes, desc, ""
			}
		case ct == deprecated.Decimal:
			return bad("decimals are not supported: cast the column to double")
		case ct == deprecated.TimeMillis || ct == deprecated.TimeMicros:
			return bad("times of day are not supported")
		default:
			return bad("its converted type is not supported")
		}
		return mismatch()
	}
	switch phys {
	case format.Boolean:
		return convBool, desc, ""
	case format.Int32:
		return convInt32, desc, ""
	case format.Int64:
		return convInt64, desc, ""
	case format.Int96:
		return convInt96, desc, ""
	case format.Float:
		return convFloat, desc, ""
	case format.Double:
		return convDouble, desc, ""
	case format.ByteArray, format.FixedLenByteArray:
		return convBytes, desc, ""
	}
	return bad("its physical type is unknown")
}

// Problem is a value that has no appliance.Value: a null list element, an
// unsigned integer above the int64 range, a time beyond int64 microseconds.
type Problem struct {
	Column int // position in the row
	Reason string
}

// Rows calls fn with every row of the file, all columns in file order. The
// row slice is reused from call to call; its Values own their data. A
// column that no dtype holds is EINVALID naming it, as is a value that has
// no appliance.Value (see Problem). An error of fn stops Rows and comes
// back as it is.
func (p *ParquetFile) Rows(ctx context.Context, fn func(row []appliance.Value) error) error {
	cols := make([]int, len(p.cols))
	for i := range cols {
		cols[i] = i
	}
	n := int64(0)
	return p.Scan(ctx, cols, func(row []appliance.Value, problems []Problem) error {
		if len(problems) > 0 {
			pr := problems[0]
			return appliance.Invalid(p.cols[pr.Column].Name, "column %q, row %d: %s", p.cols[pr.Column].Name, n, pr.Reason)
		}
		n++
		return fn(row)
	})
}

// Scan is Rows for callers that judge values themselves, such as ingest:
// it reads only the columns cols (indexes into Columns), row[i] being
// column cols[i], and a value that has no appliance.Value comes as a null
// in row and a Problem, in column order, instead of an error. The problems
// slice is nil for most rows and is reused too.
//
// Scan reads one row group at a time, a page at a time per column, after
// checking every page header of the group against the limits of
// docs/parquet.md; memory stays bounded whatever the file claims.
func (p *ParquetFile) Scan(ctx context.Context, cols []int, fn func(row []appliance.Value, problems []Problem) error) (err error) {
	for _, c := range cols {
		if c < 0 || c >= len(p.cols) {
			return fmt.Errorf("scan parquet: no column %d", c)
		}
		if p.plans[c].conv == convNone {
			col := p.cols[c]
			return appliance.Invalid(col.Name, "column %q is %s, which no dtype holds: %s", col.Name, col.Type, col.Reason)
		}
	}
	s := &scan{p: p, cols: cols, row: make([]appliance.Value, len(cols)), fn: fn}
	defer func() {
		if v := recover(); v != nil {
			if s.inFn {
				panic(v)
			}
			err = p.r.corrupt("%v", v)
		}
		s.close()
	}()
	groups := p.file.RowGroups()
	for g := range groups {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read parquet: %w", err)
		}
		if err := s.group(ctx, g, groups[g]); err != nil {
			return err
		}
	}
	return nil
}

// scan is the state of one Scan.
type scan struct {
	p        *ParquetFile
	cols     []int
	row      []appliance.Value
	problems []Problem
	cursors  []cursor // one per column of cols; none for a Null column
	counter  cursor   // when no column is read: a column to count rows by
	guard    pageGuard
	fn       func([]appliance.Value, []Problem) error
	inFn     bool

	ints   []int64
	floats []float64
	strs   []string
}

func (s *scan) close() {
	for i := range s.cursors {
		s.cursors[i].close()
	}
	s.cursors = s.cursors[:0]
	s.counter.close()
	s.guard.close()
}

func (s *scan) group(ctx context.Context, g int, rg parquet.RowGroup) error {
	s.close()
	chunks := rg.ColumnChunks()
	n := s.p.meta.RowGroups[g].NumRows
	var leaves []int
	var names []string
	for _, c := range s.cols {
		if s.p.plans[c].conv != convNull {
			leaves = append(leaves, s.p.plans[c].leaf)
			names = append(names, s.p.cols[c].Name)
		}
	}
	counting := len(leaves) == 0 && n > 0
	if counting {
		// Nothing to read, but the rows must still be there: a footer's
		// row count alone could make a few bytes last for ever.
		if len(chunks) == 0 {
			return s.p.r.corrupt("row group %d has %d rows and no columns", g, n)
		}
		leaves, names = []int{0}, []string{s.p.cols[0].Name}
	}
	if err := s.guard.check(s.p, g, leaves, names); err != nil {
		return err
	}
	for _, c := range s.cols {
		cur := cursor{}
		if plan := s.p.plans[c]; plan.conv != convNull {
			if plan.leaf >= len(chunks) {
				return s.p.r.corrupt("row group %d has no column chunk %d", g, plan.leaf)
			}
			cur = cursor{pages: chunks[plan.leaf].Pages(), buf: make([]parquet.Value, 256)}
		}
		s.cursors = append(s.cursors, cur)
	}
	if counting {
		s.counter = cursor{pages: chunks[0].Pages(), buf: make([]parquet.Value, 256)}
	}
	for r := int64(0); r < n; r++ {
		if r%4096 == 0 && r > 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("read parquet: %w", err)
			}
		}
		if counting {
			if err := s.count(names[0]); err != nil {
				return err
			}
		}
		s.problems = s.problems[:0]
		for j, c := range s.cols {
			if err := s.value(j, c); err != nil {
				return err
			}
		}
		problems := s.problems
		if len(problems) == 0 {
			problems = nil
		}
		s.inFn = true
		err := s.fn(s.row, problems)
		s.inFn = false
		if err != nil {
			return err
		}
	}
	for j := range s.cursors {
		cur, name := &s.cursors[j], s.p.cols[s.cols[j]].Name
		if cur.pages == nil {
			continue
		}
		if err := cur.atEnd(); err != nil {
			return s.readError(name, err)
		}
	}
	if counting {
		if err := s.counter.atEnd(); err != nil {
			return s.readError(names[0], err)
		}
	}
	return nil
}

// count moves the counter past one row.
func (s *scan) count(name string) error {
	v, err := s.counter.next()
	if err != nil {
		return s.readError(name, err)
	}
	if v.RepetitionLevel() != 0 {
		return s.p.r.corrupt("column %q: a row continues past its end", name)
	}
	for {
		next, err := s.counter.peek()
		if err == io.EOF || (err == nil && next.RepetitionLevel() == 0) {
			return nil
		}
		if err != nil {
			return s.readError(name, err)
		}
		s.counter.i++
	}
}

func (s *scan) readError(name string, err error) error {
	if err == io.EOF {
		return s.p.r.corrupt("column %q has fewer values than rows", name)
	}
	if err == errTooManyValues {
		return s.p.r.corrupt("column %q has more values than rows", name)
	}
	return s.p.r.corrupt("column %q: %v", name, err)
}

// value reads column c's next row into s.row[j].
func (s *scan) value(j, c int) error {
	plan := &s.p.plans[c]
	if plan.conv == convNull {
		s.row[j] = appliance.Value{}
		return nil
	}
	cur := &s.cursors[j]
	v, err := cur.next()
	if err != nil {
		return s.readError(s.p.cols[c].Name, err)
	}
	if v.RepetitionLevel() != 0 {
		return s.p.r.corrupt("column %q: a row continues past its end", s.p.cols[c].Name)
	}
	if !plan.list {
		s.row[j] = appliance.Value{}
		if v.DefinitionLevel() == plan.maxDef && !v.IsNull() {
			if v.Kind() != plan.kind {
				return s.p.r.corrupt("column %q holds a %s value", s.p.cols[c].Name, v.Kind())
			}
			var reason string
			s.row[j], reason = convert(plan.conv, v)
			if reason != "" {
				s.problems = append(s.problems, Problem{Column: j, Reason: reason})
			}
		}
		return nil
	}
	def := v.DefinitionLevel()
	first := def
	s.ints, s.floats, s.strs = s.ints[:0], s.floats[:0], s.strs[:0]
	reason := ""
	elem := 0
	for {
		if def >= plan.entryDef {
			switch {
			case def < plan.maxDef || v.IsNull():
				if reason == "" {
					reason = fmt.Sprintf("element %d is null", elem)
				}
			case v.Kind() != plan.kind:
				return s.p.r.corrupt("column %q holds a %s value", s.p.cols[c].Name, v.Kind())
			default:
				x, why := convert(plan.conv, v)
				if why != "" && reason == "" {
					reason = fmt.Sprintf("element %d: %s", elem, why)
				}
				switch x.Kind {
				case appliance.KindInt64:
					s.ints = append(s.ints, x.Int)
				case appliance.KindFloat64:
					s.floats = append(s.floats, x.Float)
				case appliance.KindString:
					s.strs = append(s.strs, x.Str)
				}
			}
			elem++
		} else if elem > 0 {
			return s.p.r.corrupt("column %q: an empty list has elements", s.p.cols[c].Name)
		}
		next, err := cur.peek()
		if err == io.EOF || (err == nil && next.RepetitionLevel() == 0) {
			break
		}
		if err != nil {
			return s.readError(s.p.cols[c].Name, err)
		}
		if v, err = cur.next(); err != nil {
			return s.readError(s.p.cols[c].Name, err)
		}
		def = v.DefinitionLevel()
		if def < plan.entryDef {
			return s.p.r.corrupt("column %q: an empty list has elements", s.p.cols[c].Name)
		}
	}
	switch {
	case reason != "":
		s.row[j] = appliance.Value{}
		s.problems = append(s.problems, Problem{Column: j, Reason: reason})
	case first < plan.listDef:
		s.row[j] = appliance.Value{}
	default:
		s.row[j] = s.list(plan)
	}
	return nil
}

// list returns the gathered elements as a value of their own.
func (s *scan) list(plan *columnPlan) appliance.Value {
	switch plan.conv.listDtype() {
	case appliance.DTypeInt64List:
		return appliance.Value{Kind: appliance.KindInt64List, Ints: slices.Clone(s.ints)}
	case appliance.DTypeFloat64List:
		return appliance.Value{Kind: appliance.KindFloat64List, Floats: slices.Clone(s.floats)}
	}
	return appliance.Value{Kind: appliance.KindStringList, Strs: slices.Clone(s.strs)}
}

// Microsecond bounds of days and milliseconds that fit int64 microseconds.
const (
	maxDays   = math.MaxInt64 / 86_400_000_000
	maxMillis = math.MaxInt64 / 1000
	// julianUnixEpoch is the Julian day number of 1970-01-01, INT96's epoch.
	julianUnixEpoch = 2_440_588
)

// convert makes an appliance.Value of a present physical value; a reason
// says why it cannot.
func convert(c conv, v *parquet.Value) (appliance.Value, string) {
	switch c {
	case convBool:
		return appliance.BoolValue(v.Boolean()), ""
	case convInt32:
		return appliance.Int64Value(int64(v.Int32())), ""
	case convUint32:
		return appliance.Int64Value(int64(uint32(v.Int32()))), ""
	case convInt64:
		return appliance.Int64Value(v.Int64()), ""
	case convUint64:
		u := uint64(v.Int64())
		if u > math.MaxInt64 {
			return appliance.Value{}, fmt.Sprintf("%d is out of the int64 range", u)
		}
		return appliance.Int64Value(int64(u)), ""
	case convFloat:
		return appliance.Float64Value(float64(v.Float())), ""
	case convDouble:
		return appliance.Float64Value(v.Double()), ""
	case convString:
		return appliance.Value{Kind: appliance.KindString, Str: string(v.ByteArray())}, ""
	case convBytes:
		return appliance.Value{Kind: appliance.KindBytes, Str: string(v.ByteArray())}, ""
	case convDate:
		days := int64(v.Int32())
		if days > maxDays || days < -maxDays {
			return appliance.Value{}, fmt.Sprintf("date %d days from 1970 is out of range", days)
		}
		return appliance.Value{Kind: appliance.KindTimestamp, Int: days * 86_400_000_000}, ""
	case convMillis:
		ms := v.Int64()
		if ms > maxMillis || ms < -maxMillis {
			return appliance.Value{}, fmt.Sprintf("time %d ms from 1970 is out of range", ms)
		}
		return appliance.Value{Kind: appliance.KindTimestamp, Int: ms * 1000}, ""
	case convMicros:
		return appliance.Value{Kind: appliance.KindTimestamp, Int: v.Int64()}, ""
	case convNanos:
		ns := v.Int64()
		us := ns / 1000
		if ns%1000 < 0 {
			us-- // towards the past, as ingest truncates
		}
		return appliance.Value{Kind: appliance.KindTimestamp, Int: us}, ""
	case convInt96:
		b := v.Int96()
		nanos := int64(uint64(b[1])<<32 | uint64(b[0]))
		days := int64(b[2]) - julianUnixEpoch
		if days > maxDays-1 || days < -maxDays+1 || nanos < 0 || nanos >= 86_400_000_000_000 {
			return appliance.Value{}, "INT96 time is out of range"
		}
		return appliance.Value{Kind: appliance.KindTimestamp, Int: days*86_400_000_000 + nanos/1000}, ""
	}
	return appliance.Value{}, ""
}

// cursor reads the values of one column chunk, a page at a time. Values
// point into the page, so the page is released only once all were used.
type cursor struct {
	pages parquet.Pages
	page  parquet.Page
	vr    parquet.ValueReader
	buf   []parquet.Value
	i, n  int
}

func (c *cursor) fill() error {
	for {
		if c.vr != nil {
			n, err := c.vr.ReadValues(c.buf)
			if n > 0 {
				c.i, c.n = 0, n
				return nil
			}
			if err == nil {
				return io.ErrNoProgress
			}
			if err != io.EOF {
				return err
			}
			parquet.Release(c.page)
			c.page, c.vr = nil, nil
		}
		p, err := c.pages.ReadPage()
		if err != nil {
			return err
		}
		c.page, c.vr = p, p.Values()
	}
}

func (c *cursor) next() (*parquet.Value, error) {
	if c.i == c.n {
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	c.i++
	return &c.buf[c.i-1], nil
}

func (c *cursor) peek() (*parquet.Value, error) {
	if c.i == c.n {
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	return &c.buf[c.i], nil
}

var errTooManyValues = errors.New("more values than rows")

// atEnd checks that the chunk has no values left.
func (c *cursor) atEnd() error {
	_, err := c.peek()
	switch err {
	case io.EOF:
		return nil
	case nil:
		return errTooManyValues
	}
	return err
}

func (c *cursor) close() {
	if c.page != nil {
		parquet.Release(c.page)
		c.page, c.vr = nil, nil
	}
	if c.pages != nil {
		c.pages.Close()
		c.pages = nil
	}
}

// convertedName names a legacy converted type as the format spells it.
func convertedName(ct deprecated.ConvertedType) string {
	names := [...]string{"UTF8", "MAP", "MAP_KEY_VALUE", "LIST", "ENUM", "DECIMAL", "DATE", "TIME_MILLIS",
		"TIME_MICROS", "TIMESTAMP_MILLIS", "TIMESTAMP_MICROS", "UINT_8", "UINT_16", "UINT_32", "UINT_64",
		"INT_8", "INT_16", "INT_32", "INT_64", "JSON", "BSON", "INTERVAL"}
	if ct >= 0 && int(ct) < len(names) {
		return names[ct]
	}
	return fmt.Sprintf("converted type %d", int(ct))
}
