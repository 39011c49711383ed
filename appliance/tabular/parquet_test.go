package tabular

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/mlnode/mlnode/appliance"
)

func openBytes(t testing.TB, b []byte) *ParquetFile {
	t.Helper()
	p, err := OpenParquet(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("OpenParquet: %v", err)
	}
	return p
}

func readAll(t testing.TB, p *ParquetFile) [][]appliance.Value {
	t.Helper()
	var rows [][]appliance.Value
	err := p.Rows(context.Background(), func(row []appliance.Value) error {
		rows = append(rows, append([]appliance.Value(nil), row...))
		return nil
	})
	if err != nil {
		t.Fatalf("Rows: %v", err)
	}
	return rows
}

func equalRows(t testing.TB, got, want [][]appliance.Value) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		for j := range want[i] {
			g, w := got[i][j], want[i][j]
			// An empty list reads back with a nil slice, as it was written.
			if !g.Equal(w) {
				t.Fatalf("row %d column %d: got %+v, want %+v", i, j, g, w)
			}
		}
	}
}

func TestParquetWriter_SchemaAndValues(t *testing.T) {
	b := writeTable(t, FormatParquet, allColumns, allRows())
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	// Every column is optional, in the order given, of the documented type.
	want := []struct{ physical, logical string }{
		{"INT64", "INT(64,true)"},
		{"DOUBLE", ""},
		{"BOOLEAN", ""},
		{"BYTE_ARRAY", "STRING"},
		{"BYTE_ARRAY", ""},
		{"INT64", "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)"},
		{"INT64", "INT(64,true)"},
		{"DOUBLE", ""},
		{"BYTE_ARRAY", "STRING"},
	}
	top := f.Root().Columns()
	if len(top) != len(allColumns) {
		t.Fatalf("%d columns", len(top))
	}
	for i, c := range top {
		if c.Name() != allColumns[i].Name || !c.Optional() {
			t.Errorf("column %d is %q, optional %v", i, c.Name(), c.Optional())
		}
		leaf := c
		if strings.HasSuffix(string(allColumns[i].Dtype), ">") {
			// The standard three-level list: <name> (LIST) { repeated list { required element } }.
			if lt := c.Type().LogicalType(); lt == nil || lt.String() != "LIST" {
				t.Errorf("%s: logical type %v, want LIST", c.Name(), lt)
			}
			rep := c.Columns()
			if len(rep) != 1 || rep[0].Name() != "list" || !rep[0].Repeated() || len(rep[0].Columns()) != 1 ||
				rep[0].Columns()[0].Name() != "element" || !rep[0].Columns()[0].Required() {
				t.Fatalf("%s is not a three-level list: %v", c.Name(), c)
			}
			leaf = rep[0].Columns()[0]
		}
		if got := leaf.Type().Kind().String(); got != want[i].physical {
			t.Errorf("%s: physical type %s, want %s", c.Name(), got, want[i].physical)
		}
		lt := ""
		if l := leaf.Type().LogicalType(); l != nil {
			lt = l.String()
		}
		if lt != want[i].logical {
			t.Errorf("%s: logical type %q, want %q", c.Name(), lt, want[i].logical)
		}
	}
	if codec := f.Metadata().RowGroups[0].Columns[0].MetaData.Codec; codec != format.Snappy {
		t.Errorf("codec %v", codec)
	}

	// parquet-go's generic reader sees the values that were written.
	r := parquet.NewGenericReader[map[string]any](f, f.Schema())
	rows := make([]map[string]any, 4)
	for i := range rows {
		rows[i] = map[string]any{}
	}
	n, _ := r.Read(rows)
	if n != 3 {
		t.Fatalf("generic reader read %d rows", n)
	}
	r0 := rows[0]
	if r0["i"] != int64(9007199254740993) || r0["f"] != 0.1 || r0["b"] != true || r0["s"] != "café, \"quoted\"\n<b>&" ||
		r0["y"] != "\x00\x01\xfe\xff" || r0["t"] != int64(1_700_000_000_123_456) {
		t.Errorf("row 0 reads %v", r0)
	}
	if got := fmt.Sprint(r0["il"], r0["fl"], r0["sl"]); got != "[1 -2 9223372036854775807] [1e+21 1e-07 -0.5] [a  x,y]" {
		t.Errorf("row 0's lists read %s", got)
	}
	if got := fmt.Sprint(rows[1]["il"], rows[1]["sl"], rows[2]["il"], rows[2]["i"]); got != "[] [] <nil> <nil>" {
		t.Errorf("empty and null lists read %s", got)
	}

	// And so does OpenParquet.
	equalRows(t, readAll(t, openBytes(t, b)), allRows())
}

func TestParquetWriter_RowGroupsBoundMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 300k rows")
	}
	cols, rows := benchTable(1000)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, FormatParquet, cols)
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc - uint64(buf.Cap())
	}
	const n = 3 * rowGroupRows
	var base uint64
	for i := range n {
		if i == rowGroupRows/2 {
			base = heap()
		}
		if err := w.WriteRow(rows[i%len(rows)]); err != nil {
			t.Fatal(err)
		}
	}
	if grown := int64(heap()) - int64(base); grown > 16<<20 {
		t.Errorf("the heap grew by %d MiB over %d rows", grown>>20, n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := openBytes(t, buf.Bytes())
	if got := len(p.meta.RowGroups); got != 3 {
		t.Errorf("%d row groups of %d rows, want 3", got, n)
	}
	i := 0
	err = p.Rows(context.Background(), func(row []appliance.Value) error {
		for j := range row {
			if !row[j].Equal(rows[i%len(rows)][j]) {
				return fmt.Errorf("row %d column %d: %+v", i, j, row[j])
			}
		}
		i++
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("read %d rows: %v", i, err)
	}
}

func TestParquetWriter_KeepsNoValues(t *testing.T) {
	ints := []int64{1, 2}
	blob := []byte("abc")
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, FormatParquet, []Column{{"l", appliance.DTypeInt64List}, {"s", appliance.DTypeStringList}})
	strs := []string{string(blob)}
	if err := w.WriteRow([]appliance.Value{{Kind: appliance.KindInt64List, Ints: ints}, {Kind: appliance.KindStringList, Strs: strs}}); err != nil {
		t.Fatal(err)
	}
	ints[0], strs[0] = 99, "zzz"
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, openBytes(t, buf.Bytes()))
	if got[0][0].Ints[0] != 1 || got[0][1].Strs[0] != "abc" {
		t.Fatalf("the writer kept the caller's slices: %+v", got[0])
	}
}

func TestParquetWriter_EmptyTable(t *testing.T) {
	p := openBytes(t, writeTable(t, FormatParquet, allColumns, nil))
	if p.NumRows() != 0 || len(p.Columns()) != len(allColumns) {
		t.Fatalf("%d rows, %d columns", p.NumRows(), len(p.Columns()))
	}
	if rows := readAll(t, p); len(rows) != 0 {
		t.Fatalf("%d rows", len(rows))
	}
}

func openFile(t testing.TB, name string) (*ParquetFile, error) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return OpenParquet(bytes.NewReader(b), int64(len(b)))
}

// The DuckDB fixtures come from testdata/duckdb/gen.mjs.
func TestOpenParquet_DuckDBTypes(t *testing.T) {
	p, err := openFile(t, "testdata/duckdb/types.parquet")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // name: dtype, or the start of the reason
		"i32": "int64", "u64max": "int64", "u64": "int64", "i8": "int64", "u16": "int64",
		"d": "timestamp", "ts": "timestamp", "tstz": "timestamp", "tsns": "timestamp", "tsms": "timestamp",
		"f32": "float64", "f64": "float64", "s": "string", "e": "string", "bl": "bytes", "uu": "bytes",
		"ints": "list<int64>", "strs": "list<string>", "dbls": "list<float64>", "bigs": "list<int64>",
		"dec": "decimals are not supported", "st": "it is a struct", "m": "it is a map", "tod": "times of day",
		"nested": "it is a list of lists", "bools": "there is no list dtype of bool", "b": "bool",
	}
	var cols []int
	for i, c := range p.Columns() {
		w, ok := want[c.Name]
		got := string(c.Dtype)
		if c.Dtype == "" {
			got = c.Reason
		} else {
			cols = append(cols, i)
		}
		if !ok || !strings.HasPrefix(got, w) || !c.Optional {
			t.Errorf("%s (%s): %q, want %q", c.Name, c.Type, got, w)
		}
	}
	wantInvalid(t, p.Rows(context.Background(), func([]appliance.Value) error { return nil }), "dec")

	var rows [][]appliance.Value
	var problems [][]Problem
	err = p.Scan(context.Background(), cols, func(row []appliance.Value, pr []Problem) error {
		rows = append(rows, append([]appliance.Value(nil), row...))
		problems = append(problems, append([]Problem(nil), pr...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	str := func(row []appliance.Value) string {
		var b strings.Builder
		for _, v := range row {
			b.Write(appliance.AppendJSONValue(nil, &v))
			b.WriteByte(' ')
		}
		return b.String()
	}
	wantRows := []string{
		`1 null 7 -5 65000 "2024-02-29T00:00:00Z" "2024-01-02T03:04:05.123456Z" "2024-01-02T03:04:05.123456Z" "2024-01-02T03:04:05.123456Z" "2024-01-02T03:04:05.123Z" 1.5 2.25 "héllo" "sad" "AP8=" "ABEiM0RVZneImaq7zN3u/w==" [1,2,3] null [1.5,2] [] true `,
		`-2147483648 0 9223372036854775807 127 0 "1970-01-01T00:00:00Z" "1969-12-31T23:59:59.999999Z" "1970-01-01T00:00:00Z" "1969-12-31T23:59:59.999999Z" "1970-01-01T00:00:00.001Z" 0 1e+300 "" "happy" "" null [] [] null [9223372036854775807] false `,
		strings.Repeat("null ", len(cols)),
	}
	for i, w := range wantRows {
		if got := str(rows[i]); got != w {
			t.Errorf("row %d\n got %s\nwant %s", i, got, w)
		}
	}
	if fmt.Sprint(problems) != "[[{1 18446744073709551615 is out of the int64 range} {17 element 1 is null}] [] []]" {
		t.Errorf("problems %v", problems)
	}
}

func TestOpenParquet_DuckDBCodecs(t *testing.T) {
	files, _ := filepath.Glob("testdata/duckdb/codec_*.parquet")
	if len(files) != 6 {
		t.Fatalf("fixtures: %v", files)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			p, err := openFile(t, name)
			if strings.Contains(name, "lz4") {
				// parquet-go v0.32.0 misreads LZ4_RAW pages.
				if err == nil || !strings.Contains(err.Error(), "LZ4_RAW is not supported") {
					t.Fatalf("LZ4_RAW: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.meta.RowGroups) < 2 {
				t.Errorf("%d row groups", len(p.meta.RowGroups))
			}
			i := int64(0)
			err = p.Rows(context.Background(), func(row []appliance.Value) error {
				l := appliance.Value{Kind: appliance.KindInt64List, Ints: []int64{i, i + 1}}
				if i%10 == 0 {
					l = appliance.Value{}
				}
				want := []appliance.Value{appliance.Int64Value(i), appliance.StringValue(fmt.Sprintf("r%d", i%100)), appliance.Float64Value(float64(i) / 7), l}
				for j := range want {
					if !row[j].Equal(want[j]) {
						return fmt.Errorf("row %d column %d: %+v, want %+v", i, j, row[j], want[j])
					}
				}
				i++
				return nil
			})
			if err != nil || i != 5000 {
				t.Fatalf("%d rows: %v", i, err)
			}
		})
	}
}

// foreign writes rows of a struct type with parquet-go's reflection, which
// makes the layouts other writers use: required columns, legacy lists,
// INT96, unsigned and narrow integers.
func foreign[T any](t testing.TB, rows []T, opts ...parquet.WriterOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf, opts...)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOpenParquet_OtherLayouts(t *testing.T) {
	type inner struct{ A int32 }
	type row struct {
		I8    int8              `parquet:"i8"`
		U32   uint32            `parquet:"u32"`
		U64   uint64            `parquet:"u64"`
		F32   float32           `parquet:"f32"`
		Enum  string            `parquet:"enum,enum"`
		JSON  []byte            `parquet:"js,json"`
		Date  int32             `parquet:"date,date"`
		Milli int64             `parquet:"milli,timestamp(millisecond)"`
		Nano  int64             `parquet:"nano,timestamp(nanosecond)"`
		Rep   []int64           `parquet:"rep"`          // a bare repeated column
		List  []string          `parquet:"list,list"`    // required list
		Fix   [4]byte           `parquet:"fix"`          // FIXED_LEN_BYTE_ARRAY
		St    inner             `parquet:"st"`           // a struct
		Map   map[string]string `parquet:"map"`          // a map
		OptI  *int64            `parquet:"opt,optional"` // optional
	}
	seven := int64(7)
	b := foreign(t, []row{
		{I8: -8, U32: math.MaxUint32, U64: math.MaxUint64, F32: 0.5, Enum: "x", JSON: []byte(`{"a":1}`), Date: 1, Milli: -1, Nano: 1999,
			Rep: []int64{1, 2}, List: []string{"a"}, Fix: [4]byte{1, 2, 3, 4}, OptI: &seven},
		{},
	}, parquet.Compression(&parquet.Zstd))
	p := openBytes(t, b)
	want := map[string]string{"i8": "int64", "u32": "int64", "u64": "int64", "f32": "float64", "enum": "string", "js": "string",
		"date": "timestamp", "milli": "timestamp", "nano": "timestamp", "rep": "list<int64>", "list": "list<string>",
		"fix": "bytes", "st": "", "map": "", "opt": "int64"}
	var cols []int
	for i, c := range p.Columns() {
		if string(c.Dtype) != want[c.Name] {
			t.Errorf("%s (%s): %q, want %q (%s)", c.Name, c.Type, c.Dtype, want[c.Name], c.Reason)
		}
		if c.Optional != (c.Name == "opt") {
			t.Errorf("%s: optional %v", c.Name, c.Optional)
		}
		if c.Dtype != "" {
			cols = append(cols, i)
		}
	}
	var got []string
	err := p.Scan(context.Background(), cols, func(row []appliance.Value, pr []Problem) error {
		var b []byte
		for _, v := range row {
			b = appliance.AppendJSONValue(b, &v)
			b = append(b, ' ')
		}
		got = append(got, fmt.Sprint(string(b), pr))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []string{
		`-8 4294967295 null 0.5 "x" "{\"a\":1}" "1970-01-02T00:00:00Z" "1969-12-31T23:59:59.999Z" "1970-01-01T00:00:00.000001Z" [1,2] ["a"] "AQIDBA==" 7 [{2 18446744073709551615 is out of the int64 range}]`,
		`0 0 0 0 "" "" "1970-01-01T00:00:00Z" "1970-01-01T00:00:00Z" "1970-01-01T00:00:00Z" [] [] "AAAAAA==" null []`,
	}
	for i := range wantRows {
		if i >= len(got) || got[i] != wantRows[i] {
			t.Errorf("row %d\n got %s\nwant %s", i, got[min(i, len(got)-1)], wantRows[i])
		}
	}
}

func TestOpenParquet_INT96AndLegacyList(t *testing.T) {
	// INT96 times as Impala and Spark write them: nanoseconds of the day,
	// then the Julian day.
	schema := parquet.NewSchema("spark", parquet.Group{
		"t":    parquet.Optional(parquet.Leaf(parquet.Int96Type)),
		"tags": parquet.Optional(legacyList{parquet.Group{"array": parquet.Repeated(parquet.String())}}),
	})
	var buf bytes.Buffer
	// The generic writer refuses to build reflection for this old layout.
	w := parquet.NewWriter(&buf, schema)
	day := uint32(julianUnixEpoch + 19_000) // 2022-01-08
	nanos := uint64(3_600_000_000_123)      // 01:00:00.000000123
	t96 := parquet.Int96Value([3]uint32{uint32(nanos), uint32(nanos >> 32), day})
	// parquet.Group sorts its fields: t is column 0, tags column 1.
	rows := []parquet.Row{
		{t96.Level(0, 1, 0), parquet.ByteArrayValue([]byte("x")).Level(0, 2, 1), parquet.ByteArrayValue([]byte("y")).Level(1, 2, 1)},
		{parquet.Value{}.Level(0, 0, 0), parquet.Value{}.Level(0, 1, 1)},
	}
	if _, err := w.WriteRows(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := openBytes(t, buf.Bytes())
	cols := p.Columns()
	if cols[1].Name != "tags" || cols[1].Dtype != appliance.DTypeStringList || cols[0].Dtype != appliance.DTypeTimestamp {
		t.Fatalf("columns %+v", cols)
	}
	got := readAll(t, p)
	wantTime := int64(19_000)*86_400_000_000 + 3_600_000_000
	equalRows(t, got, [][]appliance.Value{
		{ts(wantTime), {Kind: appliance.KindStringList, Strs: []string{"x", "y"}}},
		{{}, {Kind: appliance.KindStringList}},
	})
}

// legacyList is a LIST group whose repeated child is the element itself,
// as old writers make them.
type legacyList struct{ parquet.Group }

func (legacyList) Type() parquet.Type { return parquet.List(parquet.String()).Type() }

// nullInt32 is INT32 annotated with the Null logical type, as pyarrow
// writes a column of pandas Nones.
type nullInt32 struct{ parquet.Type }

func (nullInt32) LogicalType() *format.LogicalType {
	return &format.LogicalType{Value: new(format.NullType)}
}

func TestOpenParquet_NullColumn(t *testing.T) {
	schema := parquet.NewSchema("m", parquet.Group{"n": parquet.Optional(parquet.Leaf(nullInt32{parquet.Int32Type}))})
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[any](&buf, schema)
	w.WriteRows([]parquet.Row{{parquet.Value{}.Level(0, 0, 0)}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := openBytes(t, buf.Bytes())
	if c := p.Columns()[0]; !c.AllNull || c.Dtype != "" {
		t.Fatalf("%+v", c)
	}
	if rows := readAll(t, p); len(rows) != 1 || !rows[0][0].Null() {
		t.Fatalf("%+v", rows)
	}
}

func TestOpenParquet_NotParquet(t *testing.T) {
	good := writeTable(t, FormatParquet, allColumns, allRows())
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"json", []byte(`[{"user_id":1,"event_timestamp":0}]`), "does not start with"},
		{"magic only", []byte("PAR1PAR1PAR1"), "footer claims"},
		{"truncated", good[:len(good)-100], "does not end with"},
		{"no head", append([]byte("XXXX"), good[4:]...), "does not start with"},
		{"encrypted", append(good[:len(good)-4:len(good)-4], "PARE"...), "encrypted"},
		{"huge footer", append(append(good[:len(good)-8:len(good)-8], 0xff, 0xff, 0xff, 0x7f), "PAR1"...), "footer claims"},
		{"footer garbage", append(append([]byte("PAR1"), bytes.Repeat([]byte{0xf9}, 40)...), 40, 0, 0, 0, 'P', 'A', 'R', '1'), "corrupt Parquet footer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenParquet(bytes.NewReader(tt.body), int64(len(tt.body)))
			wantInvalid(t, err, "body")
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v, want %q", err, tt.want)
			}
		})
	}
}

type codecRow struct {
	K int64    `parquet:"k,optional"`
	S string   `parquet:"s"`
	L []string `parquet:"l,list"`
}

func codecRows(n int) []codecRow {
	rows := make([]codecRow, n)
	for i := range rows {
		rows[i] = codecRow{K: int64(i * 31), S: strings.Repeat("ab", i%5), L: []string{"x", fmt.Sprint(i)}}
	}
	return rows
}

// smallFiles are small valid files of every codec the reader takes.
func smallFiles(t testing.TB) map[string][]byte {
	files := map[string][]byte{"tabular": writeTable(t, FormatParquet, allColumns, allRows())}
	for name, opts := range map[string][]parquet.WriterOption{
		"none":      {parquet.Compression(&parquet.Uncompressed)},
		"gzip":      {parquet.Compression(&parquet.Gzip)},
		"zstd":      {parquet.Compression(&parquet.Zstd)},
		"brotli":    {parquet.Compression(&parquet.Brotli)},
		"v2-snappy": {parquet.Compression(&parquet.Snappy), parquet.DataPageVersion(2)},
		"v2-zstd":   {parquet.Compression(&parquet.Zstd), parquet.DataPageVersion(2)},
		"dict":      {parquet.Compression(&parquet.Snappy), parquet.DefaultEncodingFor(parquet.ByteArray, &parquet.RLEDictionary)},
	} {
		files[name] = foreign(t, codecRows(20), opts...)
	}
	return files
}

// Every prefix and every one-byte change of small files is refused with
// EINVALID or read, never a panic. (parquet-go prints a warning to stderr
// for some corrupt byte array pages.)
func TestOpenParquet_EveryCorruption(t *testing.T) {
	if testing.Short() {
		t.Skip("reads some 50,000 corrupt files")
	}
	for name, good := range smallFiles(t) {
		t.Run(name, func(t *testing.T) {
			check := func(b []byte) {
				p, err := OpenParquet(bytes.NewReader(b), int64(len(b)))
				if err == nil {
					err = p.Rows(context.Background(), func([]appliance.Value) error { return nil })
				}
				if err != nil && appliance.ErrorCode(err) != appliance.EINVALID {
					t.Fatalf("%v is not EINVALID", err)
				}
			}
			check(good)
			for n := range good {
				check(good[:n])
			}
			for i := range good {
				for _, x := range []byte{0x00, 0xff, good[i] ^ 0x01, good[i] ^ 0x80} {
					b := bytes.Clone(good)
					b[i] = x
					check(b)
				}
			}
		})
	}
}

// shrinkFirstPage lowers the uncompressed size in the header of the first
// page of the first column by one, keeping its length.
func shrinkFirstPage(t *testing.T, b []byte) []byte {
	t.Helper()
	p := openBytes(t, b)
	md := p.meta.RowGroups[0].Columns[0].MetaData
	pos := md.DataPageOffset
	if md.DictionaryPageOffset != 0 {
		pos = md.DictionaryPageOffset
	}
	var h pageHeader
	w := thriftWalker{b: b[pos:], maxElems: 100, maxStructs: 100, onInt: h.set}
	if err := w.walkStruct(0); err != nil {
		t.Fatal(err)
	}
	varint := func(v int64) []byte {
		var out []byte
		u := uint64(v<<1) ^ uint64(v>>63)
		for u >= 0x80 {
			out = append(out, byte(u)|0x80)
			u >>= 7
		}
		return append(out, byte(u))
	}
	old, repl := varint(h.uncompressed), varint(h.uncompressed-1)
	if len(old) != len(repl) {
		t.Fatalf("cannot shrink %d in place", h.uncompressed)
	}
	// Field 2 follows field 1 (the page type), so its header byte is 0x15.
	i := bytes.Index(b[pos:pos+int64(w.i)], append([]byte{0x15}, old...))
	if i < 0 {
		t.Fatal("page size not found")
	}
	out := bytes.Clone(b)
	copy(out[pos+int64(i)+1:], repl)
	return out
}

func TestScan_PageLargerThanItsHeaderSays(t *testing.T) {
	for name, good := range smallFiles(t) {
		if name == "none" {
			continue // nothing to expand
		}
		t.Run(name, func(t *testing.T) {
			p := openBytes(t, shrinkFirstPage(t, good))
			err := p.Rows(context.Background(), func([]appliance.Value) error { return nil })
			wantInvalid(t, err, "body")
			if !strings.Contains(err.Error(), "decompresses to more than its header says") {
				t.Fatal(err)
			}
		})
	}
}

func TestCheckHeader_Limits(t *testing.T) {
	p := &ParquetFile{r: &errReaderAt{}}
	tests := []struct {
		h    pageHeader
		want string
	}{
		{pageHeader{typ: 9}, "unknown type"},
		{pageHeader{compressed: -1}, "negative"},
		{pageHeader{compressed: 101}, "runs past"},
		{pageHeader{typ: pageDataV2, compressed: 10, uncompressed: 10, defLen: 8, repLen: 8}, "levels longer"},
		{pageHeader{uncompressed: maxPageBytes + 1}, "over the limit"},
		{pageHeader{numValues: maxPageValues + 1}, "over the limit"},
		{pageHeader{compressed: 100, uncompressed: maxPageBytes, numValues: maxPageValues}, ""},
	}
	for _, tt := range tests {
		err := checkHeader(p, tt.h, 100, "c")
		if tt.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.h, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || appliance.ErrorCode(err) != appliance.EINVALID {
			t.Errorf("%+v: %v, want %q", tt.h, err, tt.want)
		}
	}
}

func TestThriftWalker_Bounds(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"list claims more than is there", []byte{0x19, 0xfc, 0xff, 0xff, 0xff, 0x07}, "truncated"},
		{"binary claims more than is there", []byte{0x18, 0xff, 0xff, 0xff, 0xff, 0x07, 'a'}, "truncated"},
		{"deep", bytes.Repeat([]byte{0x1c}, 100), "nested too deep"},
		{"unknown type", []byte{0x1e}, "unknown thrift type"},
		{"too many elements", append([]byte{0x19, 0xf3, 0x80, 0x80, 0x04}, make([]byte, 1<<16)...), "more than"},
		{"ok", []byte{0x15, 0x02, 0x19, 0x25, 0x02, 0x04, 0x00}, ""},
	}
	for _, tt := range tests {
		w := thriftWalker{b: tt.b, maxElems: 1 << 15, maxStructs: 1 << 10}
		err := w.walkStruct(0)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestScan_ErrorsAndContext(t *testing.T) {
	p := openBytes(t, writeTable(t, FormatParquet, allColumns, allRows()))
	stop := errors.New("stop")
	if err := p.Rows(context.Background(), func([]appliance.Value) error { return stop }); err != stop {
		t.Errorf("fn's error came back as %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Rows(ctx, func([]appliance.Value) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := p.Scan(context.Background(), []int{len(allColumns)}, nil); err == nil {
		t.Error("scanned a column that is not there")
	}
	// A panic of fn is fn's, not a corrupt file.
	defer func() {
		if recover() == nil {
			t.Error("fn's panic was swallowed")
		}
	}()
	p.Rows(context.Background(), func([]appliance.Value) error { panic("caller bug") })
}

type failingReaderAt struct{ b []byte }

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off > int64(len(f.b))/2 || off+int64(len(p)) < int64(len(f.b))-64 {
		if off < 64 {
			return copy(p, f.b[off:]), nil
		}
		return 0, errDisk
	}
	return copy(p, f.b[off:]), nil
}

func TestOpenParquet_ReaderErrorIsNotTheBodys(t *testing.T) {
	good := writeTable(t, FormatParquet, allColumns, allRows())
	p, err := OpenParquet(failingReaderAt{good}, int64(len(good)))
	if err == nil {
		err = p.Rows(context.Background(), func([]appliance.Value) error { return nil })
	}
	if !errors.Is(err, errDisk) || appliance.ErrorCode(err) != appliance.EINTERNAL {
		t.Fatalf("got %v, want the reader's error", err)
	}
}

// patchFooter rewrites the footer of a Parquet file.
func patchFooter(t testing.TB, b []byte, patch func(*format.FileMetaData)) []byte {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(b[len(b)-8:]))
	footer := b[len(b)-8-n : len(b)-8]
	var meta format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), footer, &meta); err != nil {
		t.Fatal(err)
	}
	patch(&meta)
	out, err := thrift.Marshal(new(thrift.CompactProtocol), &meta)
	if err != nil {
		t.Fatal(err)
	}
	res := append(bytes.Clone(b[:len(b)-8-n]), out...)
	res = binary.LittleEndian.AppendUint32(res, uint32(len(out)))
	return append(res, "PAR1"...)
}

// A footer that claims more rows than the pages hold is corrupt, even when
// no column is asked for: otherwise a few bytes could keep Scan busy for
// ever.
func TestScan_RowCountIsBackedByData(t *testing.T) {
	good := writeTable(t, FormatParquet, allColumns, allRows())
	lying := patchFooter(t, good, func(m *format.FileMetaData) {
		m.NumRows = 1 << 40
		m.RowGroups[0].NumRows = 1 << 40
	})
	p := openBytes(t, lying)
	if p.NumRows() != 1<<40 {
		t.Fatalf("NumRows %d", p.NumRows())
	}
	for _, cols := range [][]int{nil, {0}, {6}} {
		n := 0
		err := p.Scan(context.Background(), cols, func([]appliance.Value, []Problem) error { n++; return nil })
		wantInvalid(t, err, "body")
		if !strings.Contains(err.Error(), "fewer values than rows") || n != 3 {
			t.Fatalf("columns %v: %d rows, %v", cols, n, err)
		}
	}
	short := patchFooter(t, good, func(m *format.FileMetaData) {
		m.NumRows = 2
		m.RowGroups[0].NumRows = 2
	})
	err := openBytes(t, short).Scan(context.Background(), nil, func([]appliance.Value, []Problem) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "more values than rows") {
		t.Fatalf("fewer rows than values: %v", err)
	}
}
