package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/tabular"
)

// viewColumns are testView's columns as an export writes them.
func viewColumns(view *appliance.FeatureView) []tabular.Column {
	cols := []tabular.Column{{Name: "user_id", Dtype: appliance.DTypeInt64}, {Name: "region", Dtype: appliance.DTypeString},
		{Name: EventTimestamp, Dtype: appliance.DTypeTimestamp}}
	for _, f := range view.Features {
		cols = append(cols, tabular.Column{Name: f.Name, Dtype: f.Dtype})
	}
	return cols
}

func table(t testing.TB, f tabular.Format, cols []tabular.Column, rows [][]appliance.Value) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := tabular.NewWriter(&buf, f, cols)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.WriteRow(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeParquet(t testing.TB, body []byte, opts Options) (*Batch, error) {
	t.Helper()
	b, err := DecodeParquet(context.Background(), bytes.NewReader(body), int64(len(body)), testView(), opts)
	if err == nil {
		checkBatch(t, testView(), b)
	}
	return b, err
}

func mustDecodeParquet(t testing.TB, body []byte) *Batch {
	t.Helper()
	b, err := decodeParquet(t, body, Options{})
	if err != nil {
		t.Fatalf("DecodeParquet: %v", err)
	}
	return b
}

func tsv(us int64) appliance.Value { return appliance.Value{Kind: appliance.KindTimestamp, Int: us} }

// fullRows are rows of testView with every feature set, then with none.
func fullRows() [][]appliance.Value {
	return [][]appliance.Value{
		{appliance.Int64Value(9007199254740993), appliance.StringValue("eu"), tsv(baseMicros),
			appliance.Int64Value(-3), appliance.Float64Value(0.1), appliance.BoolValue(true), appliance.StringValue("café"),
			appliance.BytesValue([]byte{0, 0xff}), tsv(-62135596800000000),
			{Kind: appliance.KindInt64List, Ints: []int64{1, math.MinInt64}}, {Kind: appliance.KindFloat64List, Floats: []float64{1e300, -0.5}},
			{Kind: appliance.KindStringList, Strs: []string{"a", "b,c"}}},
		{appliance.Int64Value(-1), appliance.StringValue("ap-south"), tsv(baseMicros + 1),
			{}, {}, {}, {}, {}, {}, {}, {}, {}},
		{appliance.Int64Value(2), appliance.StringValue("us"), tsv(253402300799999999),
			appliance.Int64Value(0), appliance.Float64Value(-2), appliance.BoolValue(false), appliance.StringValue("x"),
			appliance.BytesValue([]byte("z")), tsv(0), // CSV has no empty bytes: they read as null
			{Kind: appliance.KindInt64List}, {Kind: appliance.KindFloat64List}, {Kind: appliance.KindStringList}},
	}
}

func sameBatch(t *testing.T, name string, got, want *Batch) {
	t.Helper()
	if got.Total != want.Total || got.Rejected != want.Rejected || len(got.Rows) != len(want.Rows) {
		t.Fatalf("%s: %d rows, %d rejected of %d; want %d, %d of %d (%v / %v)", name, len(got.Rows), got.Rejected, got.Total,
			len(want.Rows), want.Rejected, want.Total, got.Errors, want.Errors)
	}
	if fmt.Sprint(got.Errors) != fmt.Sprint(want.Errors) || fmt.Sprint(got.Index) != fmt.Sprint(want.Index) {
		t.Fatalf("%s: errors %v at %v, want %v at %v", name, got.Errors, got.Index, want.Errors, want.Index)
	}
	for i := range want.Rows {
		g, w := got.Rows[i], want.Rows[i]
		if !bytes.Equal(g.Key, w.Key) || g.EventTime != w.EventTime {
			t.Fatalf("%s: row %d is %x@%d, want %x@%d", name, i, g.Key, g.EventTime, w.Key, w.EventTime)
		}
		for j := range w.Values {
			// An empty list may come back nil from one format and empty
			// from another: Equal compares lengths.
			if !g.Values[j].Equal(w.Values[j]) {
				t.Fatalf("%s: row %d value %d is %+v, want %+v", name, i, j, g.Values[j], w.Values[j])
			}
		}
	}
}

// An export in any format ingests back to the same rows, and Parquet gives
// the same batch as the text formats.
func TestDecodeParquet_ExportRoundTrip(t *testing.T) {
	view := testView()
	cols := viewColumns(view)
	rows := fullRows()
	want := mustDecodeParquet(t, table(t, tabular.FormatParquet, cols, rows))
	if len(want.Rows) != len(rows) {
		t.Fatalf("%d of %d rows: %v", len(want.Rows), len(rows), want.Errors)
	}
	for i, r := range rows {
		if got := want.Rows[i]; got.EventTime != r[2].Int || !bytes.Equal(got.Key, key(r[0], r[1])) {
			t.Fatalf("row %d: %x@%d", i, got.Key, got.EventTime)
		}
		for j, v := range r[3:] {
			if !want.Rows[i].Values[j].Equal(v) {
				t.Fatalf("row %d %s: %+v, want %+v", i, view.Features[j].Name, want.Rows[i].Values[j], v)
			}
		}
	}
	for f, format := range map[tabular.Format]Format{tabular.FormatJSON: FormatJSON, tabular.FormatNDJSON: FormatNDJSON, tabular.FormatCSV: FormatCSV} {
		got, err := Decode(context.Background(), bytes.NewReader(table(t, f, cols, rows)), format, view, Options{})
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		sameBatch(t, f.String(), got, want)
	}
}

// Row errors read as they do in NDJSON: same rows, same fields, same
// reasons, where both formats can say the same thing.
func TestDecodeParquet_RowErrorsAsInJSON(t *testing.T) {
	cols := []tabular.Column{{Name: "region", Dtype: appliance.DTypeString}, {Name: "user_id", Dtype: appliance.DTypeString},
		{Name: EventTimestamp, Dtype: appliance.DTypeString}, {Name: "clicks", Dtype: appliance.DTypeFloat64},
		{Name: "plan", Dtype: appliance.DTypeString}, {Name: "ids", Dtype: appliance.DTypeFloat64List}}
	s := appliance.StringValue
	f := appliance.Float64Value
	fl := func(x ...float64) appliance.Value { return appliance.Value{Kind: appliance.KindFloat64List, Floats: x} }
	rows := [][]appliance.Value{
		{s("eu"), s("1"), s(baseTime), f(3), s("p"), fl(1, 2)},                                // fine
		{s("eu"), {}, s(baseTime), f(3), {}, {}},                                              // null key
		{{}, s("1"), s(baseTime), {}, {}, {}},                                                 // null string key
		{s(""), s("1"), s(baseTime), {}, {}, {}},                                              // empty key
		{s("eu"), s("x1"), s(baseTime), {}, {}, {}},                                           // not an int key
		{s("eu"), s("1.0"), s(baseTime), {}, {}, {}},                                          // a float int key
		{s("eu"), s("1"), {}, {}, {}, {}},                                                     // null time
		{s("eu"), s("1"), s("yesterday"), {}, {}, {}},                                         // bad time
		{s("eu"), s("1"), s("0000-12-31T23:59:59Z"), {}, {}, {}},                              // not a valid date
		{s("eu"), s("1"), s("1e12"), {}, {}, {}},                                              // unix ms as text
		{s("eu"), s("1"), s(baseTime), f(1.5), {}, {}},                                        // not an integer
		{s("eu"), s("1"), s(baseTime), f(1e19), {}, {}},                                       // out of range
		{s("eu"), s("1"), s(baseTime), {}, {}, fl(1, 2.5)},                                    // list element not an integer
		{s("eu"), s("1"), s(baseTime), f(-0), s("\u00e9"), {Kind: appliance.KindFloat64List}}, // fine
	}
	got := mustDecodeParquet(t, table(t, tabular.FormatParquet, cols, rows))
	want, err := Decode(context.Background(), bytes.NewReader(table(t, tabular.FormatNDJSON, cols, rows)), FormatNDJSON, testView(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameBatch(t, "parquet vs ndjson", got, want)
	if got.Rejected != 11 {
		t.Fatalf("%d rejected: %v", got.Rejected, got.Errors)
	}
}

// What only Parquet can say: NaN, invalid UTF-8, unsigned overflow, null
// list elements, unknown columns of any type.
func TestDecodeParquet_ParquetOnlyRowErrors(t *testing.T) {
	type row struct {
		UserID int64     `parquet:"user_id"`
		Region string    `parquet:"region"`
		Time   int64     `parquet:"event_timestamp,timestamp(millisecond)"`
		Score  float32   `parquet:"score"`
		Plan   []byte    `parquet:"plan"`
		Clicks uint64    `parquet:"clicks"`
		Tags   []*string `parquet:"tags,list"`
	}
	str := func(s string) *string { return &s }
	ms := baseMicros / 1000
	rows := []row{
		{UserID: 1, Region: "eu", Time: ms, Score: 1.5, Plan: []byte("ok"), Clicks: 7, Tags: []*string{str("a")}},
		{UserID: 1, Region: "eu", Time: ms, Score: float32(math.NaN())},
		{UserID: 1, Region: "eu", Time: ms, Score: float32(math.Inf(-1))},
		{UserID: 1, Region: "eu", Time: ms, Plan: []byte("caf\xe9")},
		{UserID: 1, Region: "eu", Time: ms, Clicks: math.MaxUint64},
		{UserID: 1, Region: "eu", Time: ms, Tags: []*string{str("a"), nil}},
		{UserID: 1, Region: "caf\xe9", Time: ms},
		{UserID: 1, Region: "eu", Time: -62135596800001},
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[row](&buf)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := mustDecodeParquet(t, buf.Bytes())
	want := []RowError{
		{1, "score", "NaN is not a finite number"},
		{2, "score", "-Inf is not a finite number"},
		{3, "plan", "invalid UTF-8"},
		{4, "clicks", "18446744073709551615 is out of the int64 range"},
		{5, "tags", "element 1 is null"},
		{6, "region", "invalid UTF-8"},
		{7, "event_timestamp", "0000-12-31T23:59:59Z is outside the years 0001 to 9999"},
	}
	if fmt.Sprint(b.Errors) != fmt.Sprint(want) {
		t.Fatalf("errors\n got %v\nwant %v", b.Errors, want)
	}
	v := b.Rows[0].Values
	if v[0].Int != 7 || v[1].Float != 1.5 || v[3].Str != "ok" || v[3].Kind != appliance.KindString || v[8].Strs[0] != "a" {
		t.Fatalf("row 0: %+v", v)
	}
	if b.Rows[0].EventTime != baseMicros {
		t.Fatalf("event time %d", b.Rows[0].EventTime)
	}
}

func TestDecodeParquet_Columns(t *testing.T) {
	base := []tabular.Column{{Name: "user_id", Dtype: appliance.DTypeInt64}, {Name: "region", Dtype: appliance.DTypeString},
		{Name: EventTimestamp, Dtype: appliance.DTypeTimestamp}}
	keys := []appliance.Value{appliance.Int64Value(1), appliance.StringValue("eu"), tsv(baseMicros)}
	one := func(c tabular.Column, v appliance.Value) []byte {
		return table(t, tabular.FormatParquet, append(base[:3:3], c), [][]appliance.Value{append(keys[:3:3], v)})
	}
	t.Run("unknown column fails every row", func(t *testing.T) {
		b := mustDecodeParquet(t, one(tabular.Column{Name: "klicks", Dtype: appliance.DTypeInt64}, appliance.Int64Value(1)))
		if b.Rejected != 1 || b.Errors[0].Field != "klicks" || !strings.Contains(b.Errors[0].Reason, "not a join key") {
			t.Fatalf("%+v", b.Errors)
		}
	})
	t.Run("missing join key", func(t *testing.T) {
		body := table(t, tabular.FormatParquet, base[1:], [][]appliance.Value{keys[1:]})
		b := mustDecodeParquet(t, body)
		if b.Rejected != 1 || b.Errors[0] != (RowError{0, "user_id", "missing join key"}) {
			t.Fatalf("%+v", b.Errors)
		}
	})
	t.Run("missing event_timestamp", func(t *testing.T) {
		body := table(t, tabular.FormatParquet, base[:2], [][]appliance.Value{keys[:2]})
		if b := mustDecodeParquet(t, body); b.Errors[0] != (RowError{0, EventTimestamp, "missing event_timestamp"}) {
			t.Fatalf("%+v", b.Errors)
		}
	})
	t.Run("conversions", func(t *testing.T) {
		for _, tt := range []struct {
			col  tabular.Column
			in   appliance.Value
			want appliance.Value
		}{
			{tabular.Column{Name: "score", Dtype: appliance.DTypeInt64}, appliance.Int64Value(3), appliance.Float64Value(3)},
			{tabular.Column{Name: "clicks", Dtype: appliance.DTypeFloat64}, appliance.Float64Value(-4), appliance.Int64Value(-4)},
			{tabular.Column{Name: "clicks", Dtype: appliance.DTypeString}, appliance.StringValue("12"), appliance.Int64Value(12)},
			{tabular.Column{Name: "blob", Dtype: appliance.DTypeString}, appliance.StringValue("raw"), appliance.BytesValue([]byte("raw"))},
			{tabular.Column{Name: "plan", Dtype: appliance.DTypeBytes}, appliance.BytesValue([]byte("p")), appliance.StringValue("p")},
			{tabular.Column{Name: "seen_at", Dtype: appliance.DTypeInt64}, appliance.Int64Value(1_700_000_000), tsv(1_700_000_000_000_000)},
			{tabular.Column{Name: "seen_at", Dtype: appliance.DTypeInt64}, appliance.Int64Value(1_700_000_000_123), tsv(1_700_000_000_123_000)},
			{tabular.Column{Name: "seen_at", Dtype: appliance.DTypeString}, appliance.StringValue("2024-01-02 03:04:05+01:00"), tsv(baseMicros - 3_600_000_000)},
			{tabular.Column{Name: "weights", Dtype: appliance.DTypeInt64List}, appliance.Value{Kind: appliance.KindInt64List, Ints: []int64{2}},
				appliance.Value{Kind: appliance.KindFloat64List, Floats: []float64{2}}},
			{tabular.Column{Name: "ids", Dtype: appliance.DTypeFloat64List}, appliance.Value{Kind: appliance.KindFloat64List, Floats: []float64{2}},
				appliance.Value{Kind: appliance.KindInt64List, Ints: []int64{2}}},
		} {
			b := mustDecodeParquet(t, one(tt.col, tt.in))
			if len(b.Rows) != 1 {
				t.Fatalf("%s from %s: %v", tt.col.Name, tt.col.Dtype, b.Errors)
			}
			var got appliance.Value
			for i, f := range testView().Features {
				if f.Name == tt.col.Name {
					got = b.Rows[0].Values[i]
				}
			}
			if !got.Equal(tt.want) {
				t.Errorf("%s from %s: %+v, want %+v", tt.col.Name, tt.col.Dtype, got, tt.want)
			}
		}
	})
	t.Run("a type that cannot hold the dtype", func(t *testing.T) {
		for _, c := range []tabular.Column{
			{Name: "active", Dtype: appliance.DTypeFloat64},
			{Name: "score", Dtype: appliance.DTypeString},
			{Name: "clicks", Dtype: appliance.DTypeBool},
			{Name: "ids", Dtype: appliance.DTypeStringList},
			{Name: "tags", Dtype: appliance.DTypeString},
			{Name: "user_id", Dtype: appliance.DTypeTimestamp},
			{Name: "region", Dtype: appliance.DTypeInt64},
			{Name: EventTimestamp, Dtype: appliance.DTypeFloat64},
		} {
			cols := []tabular.Column{c}
			_, err := decodeParquet(t, table(t, tabular.FormatParquet, cols, nil), Options{})
			var ae *appliance.Error
			if !errors.As(err, &ae) || ae.Code != appliance.EINVALID || ae.Field != c.Name || !strings.Contains(ae.Message, "cannot hold") {
				t.Errorf("%s as %s: %v", c.Name, c.Dtype, err)
			}
		}
	})
	t.Run("a struct feature", func(t *testing.T) {
		type inner struct{ A int32 }
		type row struct {
			Plan inner `parquet:"plan"`
			Meta inner `parquet:"meta"` // not in the view: fails rows, not the body
		}
		var buf bytes.Buffer
		w := parquet.NewGenericWriter[row](&buf)
		w.Write([]row{{}})
		w.Close()
		_, err := decodeParquet(t, buf.Bytes(), Options{})
		var ae *appliance.Error
		if !errors.As(err, &ae) || ae.Field != "plan" || !strings.Contains(ae.Message, "struct") {
			t.Fatalf("%v", err)
		}
	})
}

func TestDecodeParquet_Fatal(t *testing.T) {
	cols := viewColumns(testView())
	good := table(t, tabular.FormatParquet, cols, fullRows())
	dup := table(t, tabular.FormatParquet, []tabular.Column{{Name: "dupA1", Dtype: appliance.DTypeInt64}, {Name: "dupA2", Dtype: appliance.DTypeInt64}}, nil)
	dup = bytes.ReplaceAll(dup, []byte("dupA2"), []byte("dupA1"))
	for _, tt := range []struct {
		name string
		body []byte
		opts Options
		code string
		want string
	}{
		{"not parquet", []byte(`{"user_id":1}`), Options{}, appliance.EINVALID, "not a Parquet file"},
		{"truncated", good[:len(good)-1], Options{}, appliance.EINVALID, "does not end with"},
		{"duplicate column", dup, Options{}, appliance.EINVALID, `duplicate column "dupA1"`},
		{"too many rows", good, Options{MaxRows: 2}, appliance.EINVALID, "more than 2 rows"},
		{"too many bytes", good, Options{MaxBytes: 60}, appliance.ETOOLARGE, "60-byte body limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeParquet(t, tt.body, tt.opts)
			var ae *appliance.Error
			if !errors.As(err, &ae) || ae.Code != tt.code || ae.Field != "body" || !strings.Contains(ae.Message, tt.want) {
				t.Fatalf("got %v, want %s on body: %q", err, tt.code, tt.want)
			}
		})
	}
	if _, err := decodeParquet(t, good, Options{MaxRows: 3, MaxBytes: 1 << 20}); err != nil {
		t.Fatalf("within the limits: %v", err)
	}
	if _, err := Decode(context.Background(), bytes.NewReader(good), FormatParquet, testView(), Options{}); err == nil {
		t.Fatal("Decode read Parquet from a stream")
	}
}

func TestDecodeParquet_ContextCancelled(t *testing.T) {
	cols := viewColumns(testView())
	rows := make([][]appliance.Value, 10_000)
	for i := range rows {
		rows[i] = fullRows()[0]
	}
	body := table(t, tabular.FormatParquet, cols, rows)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := DecodeParquet(ctx, bytes.NewReader(body), int64(len(body)), testView(), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestDecodeParquet_MaxErrors(t *testing.T) {
	cols := []tabular.Column{{Name: "user_id", Dtype: appliance.DTypeInt64}}
	rows := make([][]appliance.Value, 500)
	for i := range rows {
		rows[i] = []appliance.Value{appliance.Int64Value(int64(i))}
	}
	b, err := decodeParquet(t, table(t, tabular.FormatParquet, cols, rows), Options{MaxErrors: 7})
	if err != nil || b.Rejected != 500 || len(b.Errors) != 7 || b.Errors[6].Row != 6 {
		t.Fatalf("%v: %d rejected, %v", err, b.Rejected, b.Errors)
	}
}

func BenchmarkDecodeParquet(b *testing.B) {
	view := benchView()
	cols := []tabular.Column{{Name: "user_id", Dtype: appliance.DTypeInt64}, {Name: EventTimestamp, Dtype: appliance.DTypeTimestamp}}
	for _, f := range view.Features {
		cols = append(cols, tabular.Column{Name: f.Name, Dtype: f.Dtype})
	}
	// The NDJSON benchmark's rows, as Parquet.
	batch, err := Decode(context.Background(), bytes.NewReader(benchNDJSON()), FormatNDJSON, view, Options{})
	if err != nil {
		b.Fatal(err)
	}
	rows := make([][]appliance.Value, len(batch.Rows))
	for i, r := range batch.Rows {
		k, _, _ := appliance.DecodeEntityKeyPart(r.Key, appliance.EntityInt64)
		rows[i] = append([]appliance.Value{k, tsv(r.EventTime)}, r.Values...)
	}
	body := table(b, tabular.FormatParquet, cols, rows)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := DecodeParquet(context.Background(), bytes.NewReader(body), int64(len(body)), view, Options{})
		if err != nil || len(got.Rows) != len(rows) {
			b.Fatalf("%v: %d rows", err, len(got.Rows))
		}
	}
	b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
}
