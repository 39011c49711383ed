package tabular

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mlnode/mlnode/appliance"
)

func TestWriter_JSON(t *testing.T) {
	got := string(writeTable(t, FormatJSON, allColumns, allRows()))
	want := `[{"i":9007199254740993,"f":0.1,"b":true,"s":"café, \"quoted\"\n\u003cb\u003e\u0026","y":"AAH+/w==","t":"2023-11-14T22:13:20.123456Z","il":[1,-2,9223372036854775807],"fl":[1e+21,1e-7,-0.5],"sl":["a","","x,y"]},` +
		`{"i":-9223372036854775808,"f":-1.5e+300,"b":false,"s":"","y":"","t":"1969-12-31T23:59:59.999999Z","il":[],"fl":[],"sl":[]},` +
		`{"i":null,"f":null,"b":null,"s":null,"y":null,"t":null,"il":null,"fl":null,"sl":null}]`
	if got != want {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(got), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("not a JSON array of 3 objects: %v", err)
	}
}

func TestWriter_NDJSON(t *testing.T) {
	got := string(writeTable(t, FormatNDJSON, allColumns, allRows()))
	lines := strings.Split(got, "\n")
	if len(lines) != 4 || lines[3] != "" {
		t.Fatalf("want 3 lines, each ending in a newline: %q", got)
	}
	js := string(writeTable(t, FormatJSON, allColumns, allRows()))
	if "["+strings.Join(lines[:3], ",")+"]" != js {
		t.Fatalf("NDJSON lines are not the JSON array's objects:\n%s\n%s", got, js)
	}
}

func TestWriter_CSV(t *testing.T) {
	got := string(writeTable(t, FormatCSV, allColumns, allRows()))
	want := "i,f,b,s,y,t,il,fl,sl\n" +
		"9007199254740993,0.1,true,\"café, \"\"quoted\"\"\n<b>&\",AAH+/w==,2023-11-14T22:13:20.123456Z,\"[1,-2,9223372036854775807]\",\"[1e+21,1e-7,-0.5]\",\"[\"\"a\"\",\"\"\"\",\"\"x,y\"\"]\"\n" +
		"-9223372036854775808,-1.5e+300,false,\"\",,1969-12-31T23:59:59.999999Z,[],[],[]\n" +
		",,,,,,,,\n"
	if got != want {
		t.Fatalf("CSV\n got %q\nwant %q", got, want)
	}
	recs, err := csv.NewReader(strings.NewReader(got)).ReadAll()
	if err != nil || len(recs) != 4 {
		t.Fatalf("encoding/csv reads %d records: %v", len(recs), err)
	}
	if recs[1][3] != "café, \"quoted\"\n<b>&" || recs[1][8] != `["a","","x,y"]` {
		t.Fatalf("cells read back as %q", recs[1])
	}
}

func TestWriter_CSVQuoting(t *testing.T) {
	cols := []Column{{"a b", appliance.DTypeString}, {"c,d", appliance.DTypeString}}
	vals := []string{" lead", "trail\t", "cr\r", "plain", "x\"y", `\.`}
	var rows [][]appliance.Value
	for _, v := range vals {
		rows = append(rows, []appliance.Value{appliance.StringValue(v), appliance.StringValue(v)})
	}
	recs, err := csv.NewReader(bytes.NewReader(writeTable(t, FormatCSV, cols, rows))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if recs[0][0] != "a b" || recs[0][1] != "c,d" {
		t.Fatalf("header %q", recs[0])
	}
	for i, v := range vals {
		// encoding/csv turns \r\n into \n but keeps a lone \r only quoted.
		if recs[i+1][0] != v || recs[i+1][1] != v {
			t.Errorf("%q reads back as %q", v, recs[i+1])
		}
	}
}

func TestWriter_EmptyTable(t *testing.T) {
	cols := allColumns[:2]
	if got := string(writeTable(t, FormatJSON, cols, nil)); got != "[]" {
		t.Errorf("empty JSON: %q", got)
	}
	if got := string(writeTable(t, FormatNDJSON, cols, nil)); got != "" {
		t.Errorf("empty NDJSON: %q", got)
	}
	if got := string(writeTable(t, FormatCSV, cols, nil)); got != "i,f\n" {
		t.Errorf("empty CSV: %q", got)
	}
}

type failWriter struct{ n int }

var errDisk = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errDisk
	}
	f.n--
	return len(p), nil
}

func TestWriter_Errors(t *testing.T) {
	for _, f := range []Format{FormatJSON, FormatNDJSON, FormatCSV, FormatParquet} {
		t.Run(f.String(), func(t *testing.T) {
			w, err := NewWriter(io.Discard, f, allColumns[:2])
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteRow([]appliance.Value{appliance.Int64Value(1)}); err == nil {
				t.Error("a short row was written")
			}
			if err := w.WriteRow([]appliance.Value{appliance.StringValue("1"), {}}); err == nil || !strings.Contains(err.Error(), `column "i" is int64, got a string value`) {
				t.Errorf("a value of the wrong kind: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteRow(make([]appliance.Value, 2)); err == nil {
				t.Error("a row was written after Close")
			}

			// A failing io.Writer fails the writer, with its error.
			w, _ = NewWriter(&failWriter{}, f, allColumns[:1])
			for i := 0; i < 200_000 && err == nil; i++ {
				err = w.WriteRow([]appliance.Value{appliance.Int64Value(int64(i))})
			}
			if err == nil {
				err = w.Close()
			}
			if !errors.Is(err, errDisk) {
				t.Errorf("got %v, want the io.Writer's error", err)
			}
		})
	}
	for _, cols := range [][]Column{nil, {{"a", "int"}}, {{"", appliance.DTypeBool}}, {{"a", appliance.DTypeBool}, {"a", appliance.DTypeBool}}} {
		_, err := NewWriter(io.Discard, FormatCSV, cols)
		wantInvalid(t, err, "columns")
	}
	if _, err := NewWriter(io.Discard, Format(0), allColumns); err == nil {
		t.Error("the zero Format made a writer")
	}
}

// httpapiString is how the API wrote strings before appliance.AppendJSONString
// (encoding/json for anything not plain), which it must match byte for byte.
func httpapiString(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(s)
			return string(b)
		}
	}
	return `"` + s + `"`
}

func TestAppendString_MatchesHTTPAPI(t *testing.T) {
	cases := []string{"", "plain", "<b>&</b>", "tab\there", "\x00\x1f\x7f", "quote\"back\\slash", "é<", "\u2028\u2029",
		"bad \xff utf8", "\xed\xa0\x80", "emoji 😀", "\b\f\n\r\t", strings.Repeat("é", 100)}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "<", ">", "&", "\"", "\\", "\n", "\x01", "é", "\u2028", "\xff", "\xe2\x80", "😀", " "}
	for range 2000 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		if got, want := string(appliance.AppendJSONString(nil, s)), httpapiString(s); got != want {
			t.Fatalf("appliance.AppendJSONString(%q) = %s, httpapi writes %s", s, got, want)
		}
	}
}

func TestAppendFloat_MatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e20, 1e21, 1e-6, 1e-7, 123456789e-15, math.MaxFloat64,
		math.SmallestNonzeroFloat64, 5e-324, 1.7976931348623157e308, 9007199254740993}
	for range 5000 {
		cases = append(cases, math.Float64frombits(r.Uint64()))
	}
	for _, f := range cases {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			if got := string(appliance.AppendJSONFloat(nil, f)); got != "null" {
				t.Fatalf("appliance.AppendJSONFloat(%v) = %s, want null", f, got)
			}
			continue
		}
		want, _ := json.Marshal(f)
		if got := string(appliance.AppendJSONFloat(nil, f)); got != string(want) {
			t.Fatalf("appliance.AppendJSONFloat(%v) = %s, encoding/json writes %s", f, got, want)
		}
	}
}

func TestAppendBase64_LongValues(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 767, 768, 769, 5000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		want, _ := json.Marshal(b)
		if got := `"` + string(appliance.AppendBase64String(nil, string(b))) + `"`; got != string(want) {
			t.Fatalf("%d bytes: %s, want %s", n, got, want)
		}
	}
}

func TestAppendTimestamp(t *testing.T) {
	for us, want := range map[int64]string{
		0:                     "1970-01-01T00:00:00Z",
		1_700_000_000_123_000: "2023-11-14T22:13:20.123Z",
		1_700_000_000_000_001: "2023-11-14T22:13:20.000001Z",
		-62135596800000000:    "0001-01-01T00:00:00Z",
		253402300799999999:    "9999-12-31T23:59:59.999999Z",
	} {
		got := string(appliance.AppendJSONTime(nil, us))
		if got != want || !utf8.ValidString(got) {
			t.Errorf("appliance.AppendJSONTime(%d) = %s, want %s", us, got, want)
		}
	}
}
