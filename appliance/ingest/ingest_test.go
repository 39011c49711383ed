package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// testView has two join keys, one of each entity value type, and one
// feature of each dtype.
func testView() *appliance.FeatureView {
	return &appliance.FeatureView{
		Name:     "user_stats",
		Version:  3,
		Entities: []string{"user", "region"},
		JoinKeys: []appliance.JoinKey{
			{Name: "user_id", Entity: "user", ValueType: appliance.EntityInt64},
			{Name: "region", Entity: "region", ValueType: appliance.EntityString},
		},
		Features: []appliance.Feature{
			{Name: "clicks", Dtype: appliance.DTypeInt64},
			{Name: "score", Dtype: appliance.DTypeFloat64},
			{Name: "active", Dtype: appliance.DTypeBool},
			{Name: "plan", Dtype: appliance.DTypeString},
			{Name: "blob", Dtype: appliance.DTypeBytes},
			{Name: "seen_at", Dtype: appliance.DTypeTimestamp},
			{Name: "ids", Dtype: appliance.DTypeInt64List},
			{Name: "weights", Dtype: appliance.DTypeFloat64List},
			{Name: "tags", Dtype: appliance.DTypeStringList},
		},
	}
}

const baseTime = "2024-01-02T03:04:05Z"

var baseMicros = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixMicro()

// obj returns an NDJSON line with valid keys and time, and more members.
func obj(more string) string {
	s := `{"user_id":1,"region":"eu","event_timestamp":"` + baseTime + `"`
	if more != "" {
		s += "," + more
	}
	return s + "}"
}

func decode(t *testing.T, f Format, body string, opts Options) (*Batch, error) {
	t.Helper()
	b, err := Decode(context.Background(), strings.NewReader(body), f, testView(), opts)
	if err == nil {
		checkBatch(t, testView(), b)
	}
	return b, err
}

func mustDecode(t *testing.T, f Format, body string) *Batch {
	t.Helper()
	b, err := decode(t, f, body, Options{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return b
}

// checkBatch checks what holds of every batch.
func checkBatch(t testing.TB, view *appliance.FeatureView, b *Batch) {
	t.Helper()
	if len(b.Rows)+b.Rejected != b.Total {
		t.Fatalf("%d rows + %d rejected != %d total", len(b.Rows), b.Rejected, b.Total)
	}
	if len(b.Errors) > b.Rejected {
		t.Fatalf("%d errors for %d rejected rows", len(b.Errors), b.Rejected)
	}
	for i, e := range b.Errors {
		if e.Row < 0 || e.Row >= b.Total || (i > 0 && e.Row <= b.Errors[i-1].Row) {
			t.Fatalf("error %d: row %d out of order or range (total %d)", i, e.Row, b.Total)
		}
		if e.Reason == "" {
			t.Fatalf("error %d has no reason", i)
		}
	}
	for i, r := range b.Rows {
		if len(r.Values) != len(view.Features) {
			t.Fatalf("row %d has %d values, want %d", i, len(r.Values), len(view.Features))
		}
		if r.EventTime < minMicros || r.EventTime > maxMicros {
			t.Fatalf("row %d: event time %d out of range", i, r.EventTime)
		}
		key := r.Key
		if len(key) == 0 {
			t.Fatalf("row %d has an empty key", i)
		}
		for _, jk := range view.JoinKeys {
			v, rest, err := appliance.DecodeEntityKeyPart(key, jk.ValueType)
			if err != nil {
				t.Fatalf("row %d: key %x: %v", i, r.Key, err)
			}
			if jk.ValueType == appliance.EntityString && v.Str == "" {
				t.Fatalf("row %d: empty string join key", i)
			}
			key = rest
		}
		if len(key) != 0 {
			t.Fatalf("row %d: key %x has %d bytes left over", i, r.Key, len(key))
		}
		for j, v := range r.Values {
			if v.Kind != appliance.KindNull && v.Kind != view.Features[j].Dtype.Kind() {
				t.Fatalf("row %d: value %d has kind %d for dtype %s", i, j, v.Kind, view.Features[j].Dtype)
			}
			if v.Kind == appliance.KindFloat64 && (math.IsNaN(v.Float) || math.IsInf(v.Float, 0)) {
				t.Fatalf("row %d: value %d is %v", i, j, v.Float)
			}
		}
	}
}

func key(parts ...appliance.Value) []byte {
	var k []byte
	for _, p := range parts {
		k = appliance.AppendEntityKeyPart(k, p)
	}
	return k
}

func TestFormatFromContentType(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"application/x-ndjson", FormatNDJSON, false},
		{"application/ndjson", FormatNDJSON, false},
		{"application/jsonl", FormatNDJSON, false},
		{"application/json", FormatJSON, false},
		{"application/json; charset=utf-8", FormatJSON, false},
		{"Application/JSON;charset=UTF-8", FormatJSON, false},
		{"text/csv", FormatCSV, false},
		{" text/csv ; header=present", FormatCSV, false},
		{"", 0, true},
		{"text/plain", 0, true},
		{"application/xml", 0, true},
		{"application/json-seq", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := FormatFromContentType(tt.in)
			if tt.wantErr {
				var e *appliance.Error
				if !errors.As(err, &e) || e.Code != appliance.EMEDIATYPE || e.Field != "Content-Type" ||
					!strings.Contains(e.Message, "application/x-ndjson, application/json, text/csv or application/vnd.apache.parquet") {
					t.Fatalf("err = %#v, want EMEDIATYPE naming the accepted types", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestDecode_Values reads one feature of every dtype, in both JSON formats.
func TestDecode_Values(t *testing.T) {
	ts := func(s string) appliance.Value {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return appliance.TimestampValue(appliance.TruncateTime(tm))
	}
	tests := []struct {
		name    string
		member  string
		feature string
		want    appliance.Value
	}{
		{"int64", `"clicks":42`, "clicks", appliance.Int64Value(42)},
		{"int64 negative", `"clicks":-7`, "clicks", appliance.Int64Value(-7)},
		{"int64 beyond 2^53", `"clicks":9007199254740993`, "clicks", appliance.Int64Value(9007199254740993)},
		{"int64 string beyond 2^53", `"clicks":"9007199254740993"`, "clicks", appliance.Int64Value(9007199254740993)},
		{"int64 max", `"clicks":9223372036854775807`, "clicks", appliance.Int64Value(math.MaxInt64)},
		{"int64 min", `"clicks":-9223372036854775808`, "clicks", appliance.Int64Value(math.MinInt64)},
		{"int64 min string", `"clicks":"-9223372036854775808"`, "clicks", appliance.Int64Value(math.MinInt64)},
		{"int64 integral decimal", `"clicks":3.000`, "clicks", appliance.Int64Value(3)},
		{"int64 exponent", `"clicks":12e3`, "clicks", appliance.Int64Value(12000)},
		{"int64 exponent exact", `"clicks":9.007199254740993E15`, "clicks", appliance.Int64Value(9007199254740993)},
		{"int64 zero exponent", `"clicks":0e999999999999`, "clicks", appliance.Int64Value(0)},
		{"int64 null", `"clicks":null`, "clicks", appliance.Value{}},
		{"float64", `"score":0.25`, "score", appliance.Float64Value(0.25)},
		{"float64 integer", `"score":3`, "score", appliance.Float64Value(3)},
		{"float64 exponent", `"score":-1.5e-3`, "score", appliance.Float64Value(-1.5e-3)},
		{"float64 underflow", `"score":1e-400`, "score", appliance.Float64Value(0)},
		{"float64 max", `"score":1.7976931348623157e308`, "score", appliance.Float64Value(math.MaxFloat64)},
		{"bool true", `"active":true`, "active", appliance.BoolValue(true)},
		{"bool false", `"active":false`, "active", appliance.BoolValue(false)},
		{"string", `"plan":"pro"`, "plan", appliance.StringValue("pro")},
		{"string empty", `"plan":""`, "plan", appliance.StringValue("")},
		{"string escapes", `"plan":"a\"b\\c\/d\b\f\n\r\t"`, "plan", appliance.StringValue("a\"b\\c/d\b\f\n\r\t")},
		{"string unicode escape", `"plan":"caf\u00e9"`, "plan", appliance.StringValue("café")},
		{"string surrogate pair", `"plan":"\ud83d\ude00"`, "plan", appliance.StringValue("😀")},
		{"string lone surrogate", `"plan":"a\ud83db"`, "plan", appliance.StringValue("a\uFFFDb")},
		{"string high then high surrogate", `"plan":"\ud83d\ud83d\ude00"`, "plan", appliance.StringValue("\uFFFD😀")},
		{"string utf-8", `"plan":"日本"`, "plan", appliance.StringValue("日本")},
		{"bytes padded", `"blob":"aGk="`, "blob", appliance.BytesValue([]byte("hi"))},
		{"bytes unpadded", `"blob":"aGk"`, "blob", appliance.BytesValue([]byte("hi"))},
		{"bytes escaped slash", `"blob":"` + strings.ReplaceAll(base64.StdEncoding.EncodeToString([]byte{0xff, 0xff, 0xfe}), "/", `\/`) + `"`, "blob", appliance.BytesValue([]byte{0xff, 0xff, 0xfe})},
		{"bytes empty", `"blob":""`, "blob", appliance.BytesValue(nil)},
		{"timestamp rfc3339", `"seen_at":"2024-05-06T07:08:09.123456789Z"`, "seen_at", ts("2024-05-06T07:08:09.123456Z")},
		{"timestamp offset", `"seen_at":"2024-05-06T07:08:09+02:00"`, "seen_at", ts("2024-05-06T05:08:09Z")},
		{"timestamp seconds", `"seen_at":1700000000`, "seen_at", ts("2023-11-14T22:13:20Z")},
		{"timestamp millis", `"seen_at":1700000000123`, "seen_at", ts("2023-11-14T22:13:20.123Z")},
		{"list<int64>", `"ids":[1,-2,9007199254740993,"4"]`, "ids", appliance.Value{Kind: appliance.KindInt64List, Ints: []int64{1, -2, 9007199254740993, 4}}},
		{"list<int64> empty", `"ids":[ ]`, "ids", appliance.Value{Kind: appliance.KindInt64List}},
		{"list<float64>", `"weights":[0.5, 2, -1e3]`, "weights", appliance.Value{Kind: appliance.KindFloat64List, Floats: []float64{0.5, 2, -1000}}},
		{"list<string>", `"tags":["a","b\n",""]`, "tags", appliance.Value{Kind: appliance.KindStringList, Strs: []string{"a", "b\n", ""}}},
		{"list null", `"tags":null`, "tags", appliance.Value{}},
		{"missing feature", ``, "plan", appliance.Value{}},
	}
	for _, f := range []Format{FormatNDJSON, FormatJSON} {
		for _, tt := range tests {
			t.Run(f.String()+"/"+tt.name, func(t *testing.T) {
				body := obj(tt.member)
				if f == FormatJSON {
					body = "[" + body + "]"
				}
				b := mustDecode(t, f, body)
				if len(b.Rows) != 1 {
					t.Fatalf("got %d rows, errors %+v", len(b.Rows), b.Errors)
				}
				r := b.Rows[0]
				got := r.Values[testView().FeatureIndex(tt.feature)]
				if !got.Equal(tt.want) {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				if want := key(appliance.Int64Value(1), appliance.StringValue("eu")); !bytes.Equal(r.Key, want) {
					t.Fatalf("key %x, want %x", r.Key, want)
				}
				if r.EventTime != baseMicros {
					t.Fatalf("event time %d, want %d", r.EventTime, baseMicros)
				}
				for i, v := range r.Values {
					if testView().Features[i].Name != tt.feature && !v.Null() {
						t.Fatalf("value %d is %+v, want null", i, v)
					}
				}
			})
		}
	}
}

// TestDecode_JoinKeys checks key forms and that the key follows the view's
// join key order whatever the column order.
func TestDecode_JoinKeys(t *testing.T) {
	tests := []struct {
		name string
		line string
		want []byte
	}{
		{"in order", `{"user_id":5,"region":"eu","event_timestamp":0}`, key(appliance.Int64Value(5), appliance.StringValue("eu"))},
		{"reversed", `{"event_timestamp":0,"region":"eu","user_id":5}`, key(appliance.Int64Value(5), appliance.StringValue("eu"))},
		{"int64 as string", `{"user_id":"-5","region":"eu","event_timestamp":0}`, key(appliance.Int64Value(-5), appliance.StringValue("eu"))},
		{"int64 beyond 2^53", `{"user_id":9007199254740993,"region":"eu","event_timestamp":0}`, key(appliance.Int64Value(9007199254740993), appliance.StringValue("eu"))},
		{"escaped string", `{"user_id":1,"region":"\u00e9u","event_timestamp":0}`, key(appliance.Int64Value(1), appliance.StringValue("éu"))},
		{"escaped column name", `{"user_\u0069d":1,"region":"x","event_timestamp":0}`, key(appliance.Int64Value(1), appliance.StringValue("x"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustDecode(t, FormatNDJSON, tt.line)
			if len(b.Rows) != 1 {
				t.Fatalf("errors %+v", b.Errors)
			}
			if !bytes.Equal(b.Rows[0].Key, tt.want) {
				t.Fatalf("key %x, want %x", b.Rows[0].Key, tt.want)
			}
		})
	}
}

// TestDecode_RowErrors checks each kind of invalid row, in NDJSON and (for
// rows that are valid JSON) in a JSON array.
func TestDecode_RowErrors(t *testing.T) {
	tests := []struct {
		name       string
		line       string
		field      string
		reason     string // a substring
		syntaxOnly bool   // malformed JSON: a row error in NDJSON, fatal in a JSON array
	}{
		{"unknown column", obj(`"nope":1`), "nope", "not a join key, event_timestamp or a feature of user_stats@v3", false},
		{"unknown column null", obj(`"nope":null`), "nope", "not a join key", false},
		{"duplicate column", obj(`"plan":"a","plan":"b"`), "plan", "duplicate column", false},
		{"duplicate join key", `{"user_id":1,"user_id":2,"region":"eu","event_timestamp":0}`, "user_id", "duplicate column", false},
		{"missing join key", `{"region":"eu","event_timestamp":0}`, "user_id", "missing join key", false},
		{"missing second join key", `{"user_id":1,"event_timestamp":0}`, "region", "missing join key", false},
		{"null join key", `{"user_id":null,"region":"eu","event_timestamp":0}`, "user_id", "join key is null", false},
		{"empty string join key", `{"user_id":1,"region":"","event_timestamp":0}`, "region", "join key is empty", false},
		{"empty int join key", `{"user_id":"","region":"eu","event_timestamp":0}`, "user_id", "join key is empty", false},
		{"string join key too long", `{"user_id":1,"region":"` + strings.Repeat("e", 2049) + `","event_timestamp":0}`, "region", "is 2049 bytes; a join key is at most 2048", false},
		{"int join key as bool", `{"user_id":true,"region":"eu","event_timestamp":0}`, "user_id", "want an int64 join key, got a boolean", false},
		{"int join key not digits", `{"user_id":"12a","region":"eu","event_timestamp":0}`, "user_id", "not an integer", false},
		{"int join key fractional", `{"user_id":1.5,"region":"eu","event_timestamp":0}`, "user_id", "not an integer", false},
		{"int join key exponent", `{"user_id":1e3,"region":"eu","event_timestamp":0}`, "user_id", "\"1e3\" is not an integer", false},
		{"int join key decimal string", `{"user_id":"1.0","region":"eu","event_timestamp":0}`, "user_id", "\"1.0\" is not an integer", false},
		{"int join key string overflow", `{"user_id":"-9223372036854775809","region":"eu","event_timestamp":0}`, "user_id", "out of the int64 range", false},
		{"int join key overflow", `{"user_id":9223372036854775808,"region":"eu","event_timestamp":0}`, "user_id", "out of the int64 range", false},
		{"string join key as number", `{"user_id":1,"region":7,"event_timestamp":0}`, "region", "want a string join key, got a number", false},
		{"string join key as array", `{"user_id":1,"region":["eu"],"event_timestamp":0}`, "region", "got an array", false},
		{"missing event_timestamp", `{"user_id":1,"region":"eu"}`, "event_timestamp", "missing event_timestamp", false},
		{"null event_timestamp", `{"user_id":1,"region":"eu","event_timestamp":null}`, "event_timestamp", "is null", false},
		{"bad event_timestamp", `{"user_id":1,"region":"eu","event_timestamp":"yesterday"}`, "event_timestamp", "not an RFC 3339 time", false},
		{"event_timestamp bool", `{"user_id":1,"region":"eu","event_timestamp":true}`, "event_timestamp", "want a time, got a boolean", false},
		{"event_timestamp year 0", `{"user_id":1,"region":"eu","event_timestamp":"0000-01-01T00:00:00Z"}`, "event_timestamp", "outside the years 0001 to 9999", false},
		{"event_timestamp year 10000", `{"user_id":1,"region":"eu","event_timestamp":"9999-12-31T23:59:59-01:00"}`, "event_timestamp", "outside the years", false},
		{"event_timestamp huge number", `{"user_id":1,"region":"eu","event_timestamp":1e30}`, "event_timestamp", "outside the years", false},
		{"int64 fractional", obj(`"clicks":1.5`), "clicks", "1.5 is not an integer", false},
		{"int64 overflow", obj(`"clicks":9223372036854775808`), "clicks", "out of the int64 range", false},
		{"int64 underflow", obj(`"clicks":-9223372036854775809`), "clicks", "out of the int64 range", false},
		{"int64 exponent overflow", obj(`"clicks":1e19`), "clicks", "out of the int64 range", false},
		{"int64 small fraction", obj(`"clicks":1e-1`), "clicks", "not an integer", false},
		{"int64 as bool", obj(`"clicks":true`), "clicks", "want int64, got a boolean", false},
		{"int64 bad string", obj(`"clicks":"ten"`), "clicks", `"ten" is not an integer`, false},
		{"float64 as string", obj(`"score":"1.5"`), "score", "want float64, got a string", false},
		{"float64 overflow", obj(`"score":1e400`), "score", "1e400 overflows float64", false},
		{"float64 negative overflow", obj(`"score":-1e400`), "score", "overflows float64", false},
		{"bool as number", obj(`"active":1`), "active", "want bool, got a number", false},
		{"bool as string", obj(`"active":"true"`), "active", "want bool, got a string", false},
		{"string as number", obj(`"plan":5`), "plan", "want string, got a number", false},
		{"string as object", obj(`"plan":{"a":[1,{}]}`), "plan", "got an object", false},
		{"string invalid utf-8", obj("\"plan\":\"a\xffb\""), "plan", "invalid UTF-8", false},
		{"bytes invalid base64", obj(`"blob":"!!!"`), "blob", "invalid base64", false},
		{"bytes bad padding", obj(`"blob":"aGk=="`), "blob", "invalid base64", false},
		{"bytes as number", obj(`"blob":1`), "blob", "want bytes, got a number", false},
		{"timestamp bad", obj(`"seen_at":"2024-02-30T00:00:00Z"`), "seen_at", "not a valid date", false},
		{"list as scalar", obj(`"ids":1`), "ids", "want list<int64>, got a number", false},
		{"list null element", obj(`"ids":[1,null]`), "ids", "element 1 is null", false},
		{"list wrong element", obj(`"weights":[1,"x"]`), "weights", "element 1: want float64, got a string", false},
		{"list nested", obj(`"tags":[["a"]]`), "tags", "element 0: want string, got an array", false},
		{"list element overflow", obj(`"weights":[1e999]`), "weights", "element 0: 1e999 overflows float64", false},
		{"list int fractional", obj(`"ids":[0.5]`), "ids", "element 0: 0.5 is not an integer", false},
		{"not an object", `[1,2]`, "", "not a JSON object: got an array", false},
		{"string row", `"row"`, "", "not a JSON object: got a string", false},
		{"first problem wins", obj(`"clicks":"x","score":"y"`), "clicks", "not an integer", false},
		{"syntax error", `{"user_id":1,`, "", "not a JSON object: unexpected end of JSON input", true},
		{"syntax error after a bad column", `{"nope":1 "user_id":2}`, "", "not a JSON object: invalid character '\"' after object key:value pair", true},
		{"trailing garbage", obj("") + ` x`, "", "invalid character 'x' after top-level value", true},
		{"bad literal", obj(`"active":tru`), "", "in literal true", true},
		{"leading zero", obj(`"clicks":01`), "", "invalid character '1'", true},
		{"bare word", `hello`, "", "not a JSON object: invalid character 'h' looking for beginning of value", true},
		{"control character in string", obj("\"plan\":\"a\tb\""), "", "in string literal", true},
		{"bad escape", obj(`"plan":"\x"`), "", "in string escape code", true},
		{"bad unicode escape", obj(`"plan":"\u12g4"`), "", "hexadecimal character escape", true},
		{"single quotes", `{'user_id':1}`, "", "looking for beginning of object key string", true},
		{"trailing comma", obj(`"plan":"a",`), "", "looking for beginning of object key string", true},
	}
	for _, f := range []Format{FormatNDJSON, FormatJSON} {
		for _, tt := range tests {
			if tt.syntaxOnly && f == FormatJSON {
				continue
			}
			t.Run(f.String()+"/"+tt.name, func(t *testing.T) {
				good := obj(`"plan":"ok"`)
				body := good + "\n" + tt.line + "\n" + good
				if f == FormatJSON {
					body = "[" + good + "," + tt.line + "," + good + "]"
				}
				b := mustDecode(t, f, body)
				if b.Total != 3 || len(b.Rows) != 2 || b.Rejected != 1 || len(b.Errors) != 1 {
					t.Fatalf("got total %d, %d rows, %d rejected, errors %+v", b.Total, len(b.Rows), b.Rejected, b.Errors)
				}
				e := b.Errors[0]
				if e.Row != 1 || e.Field != tt.field || !strings.Contains(e.Reason, tt.reason) {
					t.Fatalf("got %+v, want row 1, field %q, reason containing %q", e, tt.field, tt.reason)
				}
			})
		}
	}
}

func TestDecode_EventTimestamp(t *testing.T) {
	rfc := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMicro()
	}
	tests := []struct {
		name    string
		in      string // JSON value
		want    int64
		wantErr string
	}{
		{"utc", `"2024-01-02T03:04:05Z"`, rfc("2024-01-02T03:04:05Z"), ""},
		{"fraction", `"2024-01-02T03:04:05.5Z"`, rfc("2024-01-02T03:04:05.5Z"), ""},
		{"nanoseconds truncated", `"2024-01-02T03:04:05.123456789Z"`, rfc("2024-01-02T03:04:05.123456Z"), ""},
		{"long fraction", `"2024-01-02T03:04:05.1234567891234Z"`, rfc("2024-01-02T03:04:05.123456Z"), ""},
		{"positive offset", `"2024-01-02T03:04:05+05:30"`, rfc("2024-01-01T21:34:05Z"), ""},
		{"negative offset", `"2024-01-02T03:04:05.25-08:00"`, rfc("2024-01-02T11:04:05.25Z"), ""},
		{"zero offset", `"2024-01-02T03:04:05+00:00"`, rfc("2024-01-02T03:04:05Z"), ""},
		{"lower case", `"2024-01-02t03:04:05z"`, rfc("2024-01-02T03:04:05Z"), ""},
		{"space separator", `"2024-01-02 03:04:05Z"`, rfc("2024-01-02T03:04:05Z"), ""},
		{"leap day", `"2024-02-29T00:00:00Z"`, rfc("2024-02-29T00:00:00Z"), ""},
		{"first instant", `"0001-01-01T00:00:00Z"`, minMicros, ""},
		{"last instant", `"9999-12-31T23:59:59.999999999Z"`, maxMicros, ""},
		{"offset into year 1", `"0000-12-31T23:00:00-02:00"`, rfc("0001-01-01T01:00:00Z"), ""},
		{"seconds", `1700000000`, 1700000000_000000, ""},
		{"seconds fraction", `1700000000.123456789`, 1700000000_123456, ""},
		{"seconds exponent", `1.7e9`, 1700000000_000000, ""},
		{"zero", `0`, 0, ""},
		{"negative seconds", `-1.5`, -1500000, ""},
		{"negative seconds truncated down", `-0.0000001`, -1, ""},
		{"largest seconds", `99999999999`, 99999999999_000000, ""},
		{"largest seconds fraction", `99999999999.999999`, 99999999999_999999, ""},
		{"smallest millis", `100000000000`, 100000000000_000, ""},
		{"millis", `1700000000123`, 1700000000123_000, ""},
		{"millis fraction", `1700000000123.4567`, 1700000000123_456, ""},
		{"negative millis", `-100000000000`, -100000000000_000, ""},
		{"string seconds", `"1700000000"`, 1700000000_000000, ""},
		{"string millis", `"1700000000123"`, 1700000000123_000, ""},
		{"no zone", `"2024-01-02T03:04:05"`, 0, "not an RFC 3339 time"},
		{"date only", `"2024-01-02"`, 0, "not an RFC 3339 time"},
		{"bad month", `"2024-13-02T03:04:05Z"`, 0, "not a valid date"},
		{"not a leap day", `"2023-02-29T00:00:00Z"`, 0, "not a valid date"},
		{"hour 24", `"2024-01-02T24:00:00Z"`, 0, "not a valid date"},
		{"leap second", `"2016-12-31T23:59:60Z"`, 0, "not a valid date"},
		{"bad offset", `"2024-01-02T03:04:05+0530"`, 0, "not an RFC 3339 time"},
		{"offset hours", `"2024-01-02T03:04:05+24:00"`, 0, "not an RFC 3339 time"},
		{"empty fraction", `"2024-01-02T03:04:05.Z"`, 0, "not an RFC 3339 time"},
		{"year 0", `"0000-06-01T00:00:00Z"`, 0, "outside the years 0001 to 9999"},
		{"beyond year 9999", `"9999-12-31T23:59:59-00:01"`, 0, "outside the years"},
		{"micro timestamp", `1700000000000000`, 0, "outside the years"},
		{"huge", `1e400`, 0, "outside the years"},
		{"tiny negative", `-1e-400`, -1, ""},
		{"empty", `""`, 0, "not an RFC 3339 time"},
		{"array", `[1]`, 0, "got an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, col := range []string{"event_timestamp", "seen_at"} {
				line := `{"user_id":1,"region":"eu","event_timestamp":` + tt.in + `}`
				if col == "seen_at" {
					line = obj(`"seen_at":` + tt.in)
				}
				b := mustDecode(t, FormatNDJSON, line)
				if tt.wantErr != "" {
					if len(b.Errors) != 1 || b.Errors[0].Field != col || !strings.Contains(b.Errors[0].Reason, tt.wantErr) {
						t.Fatalf("%s: got errors %+v, want %q", col, b.Errors, tt.wantErr)
					}
					continue
				}
				if len(b.Rows) != 1 {
					t.Fatalf("%s: errors %+v", col, b.Errors)
				}
				got := b.Rows[0].EventTime
				if col == "seen_at" {
					v := b.Rows[0].Values[testView().FeatureIndex("seen_at")]
					if v.Kind != appliance.KindTimestamp {
						t.Fatalf("seen_at kind %d", v.Kind)
					}
					got = v.Int
				}
				if got != tt.want {
					t.Fatalf("%s: got %d (%v), want %d (%v)", col, got, time.UnixMicro(got).UTC(), tt.want, time.UnixMicro(tt.want).UTC())
				}
			}
		})
	}
}

func TestDecode_TimeConstants(t *testing.T) {
	if got := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(); got != minMicros {
		t.Errorf("minMicros = %d, want %d", minMicros, got)
	}
	if got := time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro(); got != maxMicros {
		t.Errorf("maxMicros = %d, want %d", maxMicros, got)
	}
}

// TestParseRFC3339_AgreesWithTime compares the hand-written parser with
// time.Parse on the inputs both accept.
func TestParseRFC3339_AgreesWithTime(t *testing.T) {
	for _, s := range []string{
		"1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "2000-02-29T12:00:00+14:00",
		"2100-03-01T00:00:00-12:30", "1600-02-29T01:02:03.000001Z", "0001-01-01T00:00:00Z",
		"1999-12-31T23:59:59.5+01:00", "2024-07-04T10:11:12.1234567-03:00",
	} {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, reason := parseRFC3339(s)
		if reason != "" || got != appliance.TruncateTime(tm).UnixMicro() {
			t.Errorf("%s: got %d %q, want %d", s, got, reason, tm.UnixMicro())
		}
	}
}

func TestDecode_CSV(t *testing.T) {
	tests := []struct {
		name    string
		feature string
		cell    string
		want    appliance.Value
		field   string // for a row error
		reason  string
	}{
		{name: "int64", feature: "clicks", cell: "42", want: appliance.Int64Value(42)},
		{name: "int64 beyond 2^53", feature: "clicks", cell: "9007199254740993", want: appliance.Int64Value(9007199254740993)},
		{name: "int64 pandas float", feature: "clicks", cell: "7.0", want: appliance.Int64Value(7)},
		{name: "int64 leading zeros", feature: "clicks", cell: "007", want: appliance.Int64Value(7)},
		{name: "int64 empty is null", feature: "clicks", cell: "", want: appliance.Value{}},
		{name: "int64 quoted empty is null", feature: "clicks", cell: `""`, want: appliance.Value{}},
		{name: "int64 fractional", feature: "clicks", cell: "7.5", field: "clicks", reason: "not an integer"},
		{name: "int64 text", feature: "clicks", cell: "seven", field: "clicks", reason: "not an integer"},
		{name: "int64 space", feature: "clicks", cell: " 7", field: "clicks", reason: "not an integer"},
		{name: "float64", feature: "score", cell: "-2.5e3", want: appliance.Float64Value(-2500)},
		{name: "float64 leading zero", feature: "score", cell: "00.5", want: appliance.Float64Value(0.5)},
		{name: "float64 NaN", feature: "score", cell: "NaN", field: "score", reason: "not a number"},
		{name: "float64 Inf", feature: "score", cell: "Inf", field: "score", reason: "not a number"},
		{name: "float64 hex", feature: "score", cell: "0x10", field: "score", reason: "not a number"},
		{name: "float64 overflow", feature: "score", cell: "1e400", field: "score", reason: "overflows float64"},
		{name: "bool true", feature: "active", cell: "true", want: appliance.BoolValue(true)},
		{name: "bool True", feature: "active", cell: "True", want: appliance.BoolValue(true)},
		{name: "bool 1", feature: "active", cell: "1", want: appliance.BoolValue(true)},
		{name: "bool FALSE", feature: "active", cell: "FALSE", want: appliance.BoolValue(false)},
		{name: "bool 0", feature: "active", cell: "0", want: appliance.BoolValue(false)},
		{name: "bool yes", feature: "active", cell: "yes", field: "active", reason: "not a bool"},
		{name: "string", feature: "plan", cell: "pro", want: appliance.StringValue("pro")},
		{name: "string quoted", feature: "plan", cell: `"a,""b"""`, want: appliance.StringValue(`a,"b"`)},
		{name: "string multiline", feature: "plan", cell: "\"a\nb\"", want: appliance.StringValue("a\nb")},
		{name: "string invalid utf-8", feature: "plan", cell: "a\xff", field: "plan", reason: "invalid UTF-8"},
		{name: "bytes", feature: "blob", cell: "aGk=", want: appliance.BytesValue([]byte("hi"))},
		{name: "bytes unpadded", feature: "blob", cell: "aGk", want: appliance.BytesValue([]byte("hi"))},
		{name: "bytes bad", feature: "blob", cell: "a", field: "blob", reason: "invalid base64"},
		{name: "timestamp rfc3339", feature: "seen_at", cell: "2024-01-02T03:04:05.000009+01:00", want: appliance.Value{Kind: appliance.KindTimestamp, Int: baseMicros - 3600e6 + 9}},
		{name: "timestamp seconds", feature: "seen_at", cell: "1700000000.5", want: appliance.Value{Kind: appliance.KindTimestamp, Int: 1700000000_500000}},
		{name: "timestamp millis", feature: "seen_at", cell: "1700000000500", want: appliance.Value{Kind: appliance.KindTimestamp, Int: 1700000000_500000}},
		{name: "timestamp bad", feature: "seen_at", cell: "soon", field: "seen_at", reason: "not an RFC 3339 time"},
		{name: "list<int64>", feature: "ids", cell: `"[1, 2,""3""]"`, want: appliance.Value{Kind: appliance.KindInt64List, Ints: []int64{1, 2, 3}}},
		{name: "list<float64>", feature: "weights", cell: `[0.5]`, want: appliance.Value{Kind: appliance.KindFloat64List, Floats: []float64{0.5}}},
		{name: "list<string>", feature: "tags", cell: `"[""a"",""b""]"`, want: appliance.Value{Kind: appliance.KindStringList, Strs: []string{"a", "b"}}},
		{name: "list empty", feature: "tags", cell: `[]`, want: appliance.Value{Kind: appliance.KindStringList}},
		{name: "list not JSON", feature: "ids", cell: `1;2`, field: "ids", reason: "want a JSON array"},
		{name: "list bad JSON", feature: "ids", cell: `[1`, field: "ids", reason: "invalid JSON array: unexpected end of JSON input"},
		{name: "list trailing", feature: "ids", cell: `[1] x`, field: "ids", reason: "invalid JSON array: invalid character 'x'"},
		{name: "list null element", feature: "ids", cell: `[null]`, field: "ids", reason: "element 0 is null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "user_id,region,event_timestamp," + tt.feature + "\n1,eu," + baseTime + "," + tt.cell + "\n"
			b := mustDecode(t, FormatCSV, body)
			if tt.reason != "" {
				if len(b.Errors) != 1 || b.Errors[0].Row != 0 || b.Errors[0].Field != tt.field || !strings.Contains(b.Errors[0].Reason, tt.reason) {
					t.Fatalf("got errors %+v, want field %q reason %q", b.Errors, tt.field, tt.reason)
				}
				return
			}
			if len(b.Rows) != 1 {
				t.Fatalf("errors %+v", b.Errors)
			}
			r := b.Rows[0]
			if got := r.Values[testView().FeatureIndex(tt.feature)]; !got.Equal(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if want := key(appliance.Int64Value(1), appliance.StringValue("eu")); !bytes.Equal(r.Key, want) || r.EventTime != baseMicros {
				t.Fatalf("key %x time %d, want %x %d", r.Key, r.EventTime, want, baseMicros)
			}
		})
	}
}

func TestDecode_CSVRowErrors(t *testing.T) {
	tests := []struct {
		name   string
		header string
		row    string
		field  string
		reason string
	}{
		{"unknown column", "user_id,region,event_timestamp,nope", "1,eu,0,x", "nope", "not a join key, event_timestamp or a feature of user_stats@v3"},
		{"missing join key column", "region,event_timestamp", "eu,0", "user_id", "missing join key"},
		{"missing event_timestamp column", "user_id,region,plan", "1,eu,x", "event_timestamp", "missing event_timestamp"},
		{"empty int join key", "user_id,region,event_timestamp", ",eu,0", "user_id", "join key is empty"},
		{"empty string join key", "user_id,region,event_timestamp", `1,"",0`, "region", "join key is empty"},
		{"string join key too long", "user_id,region,event_timestamp", "1," + strings.Repeat("e", 2049) + ",0", "region", "a join key is at most 2048"},
		{"bad int join key", "user_id,region,event_timestamp", "x1,eu,0", "user_id", "not an integer"},
		{"float int join key", "user_id,region,event_timestamp", "1.0,eu,0", "user_id", "not an integer"},
		{"negative sign only join key", "user_id,region,event_timestamp", "-,eu,0", "user_id", "not an integer"},
		{"string join key invalid utf-8", "user_id,region,event_timestamp", "1,\xff,0", "region", "invalid UTF-8"},
		{"empty event_timestamp", "user_id,region,event_timestamp", "1,eu,", "event_timestamp", "event_timestamp is empty"},
		{"bad event_timestamp", "user_id,region,event_timestamp", "1,eu,now", "event_timestamp", "not an RFC 3339 time"},
		{"too few fields", "user_id,region,event_timestamp,plan", "1,eu,0", "", "has 3 fields, the header has 4"},
		{"too many fields", "user_id,region,event_timestamp", "1,eu,0,x", "", "has 4 fields, the header has 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.header + "\n" + tt.row + "\n"
			b := mustDecode(t, FormatCSV, body)
			if b.Total != 1 || b.Rejected != 1 || len(b.Errors) != 1 {
				t.Fatalf("got total %d rejected %d errors %+v", b.Total, b.Rejected, b.Errors)
			}
			if e := b.Errors[0]; e.Row != 0 || e.Field != tt.field || !strings.Contains(e.Reason, tt.reason) {
				t.Fatalf("got %+v, want field %q reason %q", e, tt.field, tt.reason)
			}
		})
	}
}

// TestDecode_RowNumbers checks that rows are numbered among data rows: no
// header, no blank lines.
func TestDecode_RowNumbers(t *testing.T) {
	bad := `{"user_id":1}`
	good := obj("")
	tests := []struct {
		name string
		f    Format
		body string
		want []int
	}{
		{"ndjson blank lines", FormatNDJSON, "\n" + good + "\n\n  \t\r\n" + bad + "\r\n" + good + "\n\n" + bad, []int{1, 3}},
		{"ndjson no final newline", FormatNDJSON, bad + "\n" + bad, []int{0, 1}},
		{"json", FormatJSON, "[" + good + ",\n" + bad + " , " + bad + "]", []int{1, 2}},
		{"csv", FormatCSV, "user_id,region,event_timestamp\r\n1,eu,0\r\n\r\n,eu,0\n1,eu,0\n1,,0", []int{1, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustDecode(t, tt.f, tt.body)
			var got []int
			for _, e := range b.Errors {
				got = append(got, e.Row)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("error rows %v, want %v (errors %+v)", got, tt.want, b.Errors)
			}
		})
	}
}

func TestDecode_Fatal(t *testing.T) {
	tests := []struct {
		name string
		f    Format
		body string
		opts Options
		want string // a substring of the message
	}{
		{"json empty", FormatJSON, "", Options{}, "body is empty"},
		{"json blank", FormatJSON, " \n ", Options{}, "body is empty"},
		{"json object", FormatJSON, obj(""), Options{}, "line 1, column 1 (byte 0): body is not a JSON array"},
		{"json not array after space", FormatJSON, "\n  5", Options{}, "line 2, column 3 (byte 3): body is not a JSON array"},
		{"json syntax error", FormatJSON, "[\n" + obj("") + ",\n" + `{"user_id":1 "region":"eu"}` + "]", Options{}, "line 3, column 14"},
		{"json syntax error message", FormatJSON, `[{"user_id":1 "region":"eu"}]`, Options{}, "invalid character '\"' after object key:value pair"},
		{"json unterminated", FormatJSON, "[" + obj(""), Options{}, "unexpected end of JSON input"},
		{"json unterminated element", FormatJSON, `[{"user_id":"`, Options{}, "unexpected end of JSON input"},
		{"json missing comma", FormatJSON, "[" + obj("") + obj("") + "]", Options{}, "after array element"},
		{"json trailing comma", FormatJSON, "[" + obj("") + ",]", Options{}, "invalid character ']' looking for beginning of value"},
		{"json leading comma", FormatJSON, "[," + obj("") + "]", Options{}, "invalid character ',' looking for beginning of value"},
		{"json trailing garbage", FormatJSON, "[]x", Options{}, "invalid character 'x' after the array"},
		{"json two arrays", FormatJSON, "[] []", Options{}, "after the array"},
		{"json bad scalar", FormatJSON, "[tru]", Options{}, "in literal true"},
		{"json bad string in element", FormatJSON, "[" + obj("\"plan\":\"a\nb\"") + "]", Options{}, "in string literal"},
		{"csv empty", FormatCSV, "", Options{}, "body is empty"},
		{"csv bare quote", FormatCSV, "user_id,region,event_timestamp\n1,e\"u,0\n", Options{}, "invalid CSV: parse error on line 2, column 4"},
		{"csv unterminated quote", FormatCSV, "user_id,region,event_timestamp\n1,\"eu,0\n", Options{}, "invalid CSV: "},
		{"csv duplicate header", FormatCSV, "user_id,region,plan,event_timestamp,plan\n", Options{}, `duplicate column "plan"`},
		{"ndjson max rows", FormatNDJSON, obj("") + "\n" + obj("") + "\n" + obj(""), Options{MaxRows: 2}, "more than 2 rows"},
		{"json max rows", FormatJSON, "[" + obj("") + "," + obj("") + "]", Options{MaxRows: 1}, "more than 1 rows"},
		{"csv max rows", FormatCSV, "user_id,region,event_timestamp\n1,eu,0\n1,eu,0\n", Options{MaxRows: 1}, "more than 1 rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := decode(t, tt.f, tt.body, tt.opts)
			var e *appliance.Error
			if !errors.As(err, &e) || e.Code != appliance.EINVALID || e.Field != "body" || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("got %v, %#v; want EINVALID body error containing %q", b, err, tt.want)
			}
		})
	}
}

func TestDecode_MaxRowsExact(t *testing.T) {
	b, err := decode(t, FormatNDJSON, obj("")+"\n\n"+obj("")+"\n", Options{MaxRows: 2})
	if err != nil || b.Total != 2 {
		t.Fatalf("got %+v, %v; want 2 rows", b, err)
	}
}

func TestDecode_EmptyBodies(t *testing.T) {
	for _, tt := range []struct {
		f    Format
		body string
	}{
		{FormatNDJSON, ""},
		{FormatNDJSON, "\n \n\r\n"},
		{FormatJSON, " [ ] \n"},
		{FormatCSV, "user_id,region,event_timestamp\n"},
		{FormatCSV, "user_id,region,event_timestamp"},
	} {
		b := mustDecode(t, tt.f, tt.body)
		if b.Total != 0 || len(b.Rows) != 0 || b.Errors != nil {
			t.Errorf("%v %q: got %+v, want an empty batch", tt.f, tt.body, b)
		}
	}
}

func TestDecode_BOM(t *testing.T) {
	for _, tt := range []struct {
		f    Format
		body string
	}{
		{FormatNDJSON, "\ufeff" + obj("")},
		{FormatJSON, "\ufeff[" + obj("") + "]"},
		{FormatCSV, "\ufeffuser_id,region,event_timestamp\n1,eu,0\n"},
	} {
		b := mustDecode(t, tt.f, tt.body)
		if len(b.Rows) != 1 {
			t.Errorf("%v: got errors %+v", tt.f, b.Errors)
		}
	}
}

func TestDecode_BadArguments(t *testing.T) {
	ctx := context.Background()
	if _, err := Decode(ctx, strings.NewReader(""), Format(0), testView(), Options{}); err == nil {
		t.Error("format 0: no error")
	}
	if _, err := Decode(ctx, strings.NewReader(""), FormatNDJSON, nil, Options{}); err == nil {
		t.Error("nil view: no error")
	}
	v := testView()
	v.JoinKeys = nil
	if _, err := Decode(ctx, strings.NewReader(""), FormatNDJSON, v, Options{}); err == nil {
		t.Error("view without join keys: no error")
	}
	v = testView()
	v.Features[0].Name = "region"
	if _, err := Decode(ctx, strings.NewReader(""), FormatNDJSON, v, Options{}); err == nil {
		t.Error("feature named like a join key: no error")
	}
	v = testView()
	v.Features[0].Dtype = "decimal"
	if _, err := Decode(ctx, strings.NewReader(""), FormatNDJSON, v, Options{}); err == nil {
		t.Error("unknown dtype: no error")
	}
}

func TestDecode_ContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, f := range []Format{FormatNDJSON, FormatJSON, FormatCSV} {
		body := map[Format]string{FormatNDJSON: obj(""), FormatJSON: "[" + obj("") + "]", FormatCSV: "user_id,region,event_timestamp\n1,eu,0\n"}[f]
		_, err := Decode(ctx, strings.NewReader(body), f, testView(), Options{})
		if appliance.ErrorCode(err) != appliance.EINVALID || !errors.Is(err, context.Canceled) {
			t.Errorf("%v: got %v, want EINVALID wrapping context.Canceled", f, err)
		}
	}
}

// TestDecode_ContextCancelledMidway checks that a long body stops soon
// after the context is done, not at its end.
func TestDecode_ContextCancelledMidway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	line := obj("") + "\n"
	r := &cancelReader{r: strings.NewReader(strings.Repeat(line, 3*ctxEvery)), after: len(line) * ctxEvery / 2, cancel: cancel}
	_, err := Decode(ctx, r, FormatNDJSON, testView(), Options{})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), fmt.Sprintf("at row %d", ctxEvery)) {
		t.Fatalf("got %v, want cancelled at row %d", err, ctxEvery)
	}
}

type cancelReader struct {
	r      io.Reader
	n      int
	after  int
	cancel func()
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
	}
	p = p[:min(len(p), 1024)]
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// limitReader fails like the HTTP layer's body limit: after n bytes, with
// an ETOOLARGE *appliance.Error.
type limitReader struct {
	r io.Reader
	n int
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, &appliance.Error{Code: appliance.ETOOLARGE, Message: "body is larger than the limit"}
	}
	p = p[:min(len(p), l.n)]
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

func TestDecode_ReaderErrorPassthrough(t *testing.T) {
	rows := 2000
	bodies := map[Format]string{
		FormatNDJSON: strings.Repeat(obj(`"plan":"x"`)+"\n", rows),
		FormatJSON:   "[" + strings.Repeat(obj(`"plan":"x"`)+",", rows) + obj("") + "]",
		FormatCSV:    "user_id,region,event_timestamp,plan\n" + strings.Repeat("1,eu,0,\"x\ny\"\n", rows),
	}
	for f, body := range bodies {
		for _, limit := range []int{0, 1, 10, 100, len(body) / 2, len(body) - 1} {
			t.Run(fmt.Sprintf("%v/%d", f, limit), func(t *testing.T) {
				_, err := Decode(context.Background(), &limitReader{r: strings.NewReader(body), n: limit}, f, testView(), Options{})
				if appliance.ErrorCode(err) != appliance.ETOOLARGE {
					t.Fatalf("got %v, want ETOOLARGE", err)
				}
			})
		}
	}
}

func TestDecode_MaxErrors(t *testing.T) {
	bad := `{"user_id":"x","region":"eu","event_timestamp":0}` + "\n"
	body := strings.Repeat(bad, 150) + obj("") + "\n"
	tests := []struct {
		name      string
		maxErrors int
		want      int
	}{
		{"default", 0, DefaultMaxErrors},
		{"capped", 10, 10},
		{"above rejected", 1000, 150},
		{"none", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := decode(t, FormatNDJSON, body, Options{MaxErrors: tt.maxErrors})
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Errors) != tt.want || b.Rejected != 150 || b.Total != 151 || len(b.Rows) != 1 {
				t.Fatalf("got %d errors, %d rejected, %d total, %d rows", len(b.Errors), b.Rejected, b.Total, len(b.Rows))
			}
			for i, e := range b.Errors {
				if e.Row != i || e.Field != "user_id" {
					t.Fatalf("error %d: %+v", i, e)
				}
			}
		})
	}
}

// TestDecode_LongLines checks values far beyond bufio.Scanner's 64 KiB
// line limit, in every format.
func TestDecode_LongLines(t *testing.T) {
	long := strings.Repeat("abcdefghij", 100_000) // 1 MB
	tests := []struct {
		f    Format
		body string
	}{
		{FormatNDJSON, obj("") + "\n" + obj(`"plan":"`+long+`"`) + "\n" + obj("")},
		{FormatJSON, "[" + obj("") + "," + obj(`"plan":"`+long+`"`) + "," + obj("") + "]"},
		{FormatCSV, "user_id,region,event_timestamp,plan\n1,eu,0,x\n1,eu,0," + long + "\n1,eu,0,x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.f.String(), func(t *testing.T) {
			// A reader handing out small pieces makes the buffer grow one
			// read at a time.
			b, err := Decode(context.Background(), &chunkReader{r: strings.NewReader(tt.body), size: 1000}, tt.f, testView(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Rows) != 3 {
				t.Fatalf("got %d rows, errors %+v", len(b.Rows), b.Errors)
			}
			if got := b.Rows[1].Values[testView().FeatureIndex("plan")].Str; got != long {
				t.Fatalf("got a string of %d bytes, want %d", len(got), len(long))
			}
		})
	}
}

type chunkReader struct {
	r    io.Reader
	size int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.size)]) }

// TestDecode_NoAliasing checks that nothing in a batch points into the
// body's buffers.
func TestDecode_NoAliasing(t *testing.T) {
	body := []byte(obj(`"plan":"pro","tags":["x","y"],"blob":"aGk="`) + "\n" + `{"user_id":2,"region":"us","event_timestamp":0,"plan":"free"}` + "\n")
	b, err := Decode(context.Background(), bytes.NewReader(body), FormatNDJSON, testView(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = '#'
	}
	p := testView().FeatureIndex("plan")
	if b.Rows[0].Values[p].Str != "pro" || b.Rows[1].Values[p].Str != "free" ||
		b.Rows[0].Values[testView().FeatureIndex("tags")].Strs[1] != "y" ||
		b.Rows[0].Values[testView().FeatureIndex("blob")].Str != "hi" {
		t.Fatalf("values changed with the body: %+v", b.Rows)
	}
	if want := key(appliance.Int64Value(2), appliance.StringValue("us")); !bytes.Equal(b.Rows[1].Key, want) {
		t.Fatalf("key %x, want %x", b.Rows[1].Key, want)
	}
	// Appending to one row's slices must not write into the next row.
	r0 := b.Rows[0]
	_ = append(r0.Values, appliance.Int64Value(99))
	_ = append(r0.Key, 0xff)
	if !b.Rows[1].Values[0].Null() || !bytes.Equal(b.Rows[1].Key, key(appliance.Int64Value(2), appliance.StringValue("us"))) {
		t.Fatal("appending to a row changed the next one")
	}
}

// TestDecode_InvalidRowsLeaveNoTrace checks that a rejected row's values do
// not leak into the next valid row, which reuses its slot.
func TestDecode_InvalidRowsLeaveNoTrace(t *testing.T) {
	body := obj(`"plan":"leak","clicks":"bad"`) + "\n" + obj("")
	b := mustDecode(t, FormatNDJSON, body)
	if len(b.Rows) != 1 {
		t.Fatalf("got %d rows", len(b.Rows))
	}
	for i, v := range b.Rows[0].Values {
		if !v.Null() {
			t.Fatalf("value %d is %+v, want null", i, v)
		}
	}
}

// TestDecode_ManyRows crosses slab and buffer boundaries and checks every
// row.
func TestDecode_ManyRows(t *testing.T) {
	var nd, csvb strings.Builder
	csvb.WriteString("event_timestamp,region,user_id,clicks,plan\n")
	n := 3*slabRows + 17
	for i := range n {
		fmt.Fprintf(&nd, `{"user_id":%d,"region":"r%d","event_timestamp":%d,"clicks":%d,"plan":"p%d"}`+"\n", i, i%7, i, i*3, i)
		fmt.Fprintf(&csvb, "%d,r%d,%d,%d,p%d\n", i, i%7, i, i*3, i)
	}
	js := "[" + strings.ReplaceAll(strings.TrimSpace(nd.String()), "\n", ",") + "]"
	for f, body := range map[Format]string{FormatNDJSON: nd.String(), FormatJSON: js, FormatCSV: csvb.String()} {
		b := mustDecode(t, f, body)
		if len(b.Rows) != n {
			t.Fatalf("%v: got %d rows, errors %+v", f, len(b.Rows), b.Errors)
		}
		for i, r := range b.Rows {
			wantKey := key(appliance.Int64Value(int64(i)), appliance.StringValue(fmt.Sprintf("r%d", i%7)))
			if !bytes.Equal(r.Key, wantKey) || r.EventTime != int64(i)*1e6 ||
				r.Values[0].Int != int64(i*3) || r.Values[3].Str != fmt.Sprintf("p%d", i) {
				t.Fatalf("%v: row %d is %+v", f, i, r)
			}
		}
	}
}

// TestDecode_ChunkedReads checks that how the body arrives changes nothing:
// values straddling refills, numbers cut in two, errors at a refill.
func TestDecode_ChunkedReads(t *testing.T) {
	lines := []string{
		obj(`"clicks":1234567,"score":-0.125e+2,"active":false,"plan":"a\"\u00e9\ud83d\ude00","blob":"aGVsbG8=","seen_at":"2024-01-02T03:04:05.123456+01:00","ids":[1,22,333],"weights":[1.5,2.25],"tags":["x","yy"]`),
		`{"user_id":12345678901,"region":"` + strings.Repeat("r", 300) + `","event_timestamp":1700000000123}`,
		obj(`"clicks":"bad"`),
		`12345`,
		`"string row"`,
		`true`,
		obj(`"nope":[{"a":[]},{}]`),
	}
	bodies := map[Format]string{
		FormatNDJSON: strings.Join(lines, "\n") + "\n\n",
		FormatJSON:   "[\n" + strings.Join(lines, " ,\n") + "\n]\n",
		FormatCSV: "user_id,region,event_timestamp,clicks,plan,ids\n1,eu,0,12345,\"multi\nline\",\"[1,2]\"\n" +
			"2,us,1700000000.5,,x,\n3,eu,bad,1,,\n",
	}
	for f, body := range bodies {
		want, err := Decode(context.Background(), strings.NewReader(body), f, testView(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if want.Total < 3 || len(want.Rows) < 2 {
			t.Fatalf("%v: %+v", f, want)
		}
		for _, size := range []int{1, 2, 3, 7, 64, 1000} {
			got, err := Decode(context.Background(), &chunkReader{r: strings.NewReader(body), size: size}, f, testView(), Options{})
			if err != nil {
				t.Fatalf("%v in chunks of %d: %v", f, size, err)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Fatalf("%v in chunks of %d:\ngot  %+v\nwant %+v", f, size, got, want)
			}
		}
	}
	// A syntax error is reported at the same place however the body comes.
	bad := "[" + obj("") + ",\n" + obj("") + "x]"
	_, want := Decode(context.Background(), strings.NewReader(bad), FormatJSON, testView(), Options{})
	for _, size := range []int{1, 5, 13} {
		_, err := Decode(context.Background(), &chunkReader{r: strings.NewReader(bad), size: size}, FormatJSON, testView(), Options{})
		if err == nil || err.Error() != want.Error() {
			t.Fatalf("chunks of %d: got %v, want %v", size, err, want)
		}
	}
}
