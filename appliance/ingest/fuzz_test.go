package ingest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// The fuzzers read each input in chunks of a fuzzed size, so that values
// straddle buffer refills, and compare what the scanner accepts with
// encoding/json and encoding/csv.

var fuzzSeeds = []string{
	obj(""),
	obj(`"clicks":9007199254740993,"score":1.5e3,"active":true,"plan":"caf\u00e9 \ud83d\ude00","blob":"aGk=","seen_at":1700000000123,"ids":[1,"2"],"weights":[0.5],"tags":["a"]`),
	obj(`"clicks":"12","plan":null,"seen_at":"2024-01-02T03:04:05.123+01:00"`),
	obj(`"clicks":1.5`),
	obj(`"nope":{"a":[1,2,{"b":null}]}`),
	`{"user_id":"9223372036854775807","region":"\u0000","event_timestamp":-1e-7}`,
	`{"user_id":1,"user_id":2}`,
	`[1,2,3]`,
	`{"a":`,
	`"\ud800"`,
	"{\"user_id\":1,\"region\":\"\xff\",\"event_timestamp\":0}",
	"  \t\r",
}

func fuzzReader(body []byte, chunk uint16) io.Reader {
	return &chunkReader{r: bytes.NewReader(body), size: int(chunk%4096) + 1}
}

func FuzzDecodeNDJSON(f *testing.F) {
	f.Add([]byte(strings.Join(fuzzSeeds, "\n")), uint16(7))
	for i, s := range fuzzSeeds {
		f.Add([]byte(s), uint16(i*31))
	}
	view := testView()
	f.Fuzz(func(t *testing.T, body []byte, chunk uint16) {
		b, err := Decode(context.Background(), fuzzReader(body, chunk), FormatNDJSON, view, Options{MaxErrors: 1 << 30})
		if err != nil {
			t.Fatalf("NDJSON has no fatal errors, got %v", err)
		}
		checkBatch(t, view, b)
		if b.Rejected != len(b.Errors) {
			t.Fatalf("%d rejected, %d errors kept", b.Rejected, len(b.Errors))
		}
		errs := map[int]RowError{}
		for _, e := range b.Errors {
			errs[e.Row] = e
		}
		body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
		row, valid := 0, 0
		for line := range bytes.SplitSeq(body, []byte("\n")) {
			if blank(line) {
				continue
			}
			e, bad := errs[row]
			notObject := bad && e.Field == "" && strings.HasPrefix(e.Reason, "not a JSON object")
			isObject := json.Valid(line) && bytes.TrimLeft(line, " \t\r")[0] == '{'
			if notObject == isObject {
				t.Fatalf("row %d %q: encoding/json says object %v, got error %+v", row, line, isObject, e)
			}
			if !bad {
				checkAgainstEncodingJSON(t, view, line, b.Rows[valid])
				valid++
			}
			row++
		}
		if row != b.Total {
			t.Fatalf("%d non-blank lines, %d rows", row, b.Total)
		}
	})
}

// checkAgainstEncodingJSON decodes a valid row's line with encoding/json
// and compares the scalar features.
func checkAgainstEncodingJSON(t *testing.T, view *appliance.FeatureView, line []byte, r appliance.Row) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%q: scanner accepted what encoding/json does not: %v", line, err)
	}
	for i, f := range view.Features {
		raw, ok := m[f.Name]
		got := r.Values[i]
		if !ok || string(raw) == "null" {
			if !got.Null() {
				t.Fatalf("%q: %s is %+v, want null", line, f.Name, got)
			}
			continue
		}
		switch f.Dtype {
		case appliance.DTypeString:
			var s string
			if err := json.Unmarshal(raw, &s); err != nil || s != got.Str {
				t.Fatalf("%q: %s is %q, encoding/json says %q (%v)", line, f.Name, got.Str, s, err)
			}
		case appliance.DTypeFloat64:
			var x float64
			if err := json.Unmarshal(raw, &x); err != nil || x != got.Float {
				t.Fatalf("%q: %s is %v, encoding/json says %v (%v)", line, f.Name, got.Float, x, err)
			}
		case appliance.DTypeInt64:
			var x int64
			err := json.Unmarshal(raw, &x)
			if err != nil {
				// encoding/json refuses 3.0 and "3"; the exact value
				// must still be what the text says.
				var n json.Number
				if json.Unmarshal(raw, &n) != nil {
					var s string
					json.Unmarshal(raw, &s)
					n = json.Number(s)
				}
				if fl, ferr := strconv.ParseFloat(string(n), 64); ferr != nil || fl != float64(got.Int) {
					t.Fatalf("%q: %s is %d, text says %s", line, f.Name, got.Int, n)
				}
			} else if x != got.Int {
				t.Fatalf("%q: %s is %d, encoding/json says %d", line, f.Name, got.Int, x)
			}
		case appliance.DTypeBool:
			var x bool
			if err := json.Unmarshal(raw, &x); err != nil || x != (got.Int == 1) {
				t.Fatalf("%q: %s is %d, encoding/json says %v (%v)", line, f.Name, got.Int, x, err)
			}
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte("["+strings.Join(fuzzSeeds[:len(fuzzSeeds)-1], ",")+"]"), uint16(3))
	f.Add([]byte(`[]`), uint16(0))
	f.Add([]byte(` [ {"user_id":1} , "x" ] `), uint16(1))
	f.Add([]byte(`[{"user_id":1}`), uint16(2))
	f.Add([]byte(`[tru]`), uint16(2))
	f.Add([]byte(`{}`), uint16(2))
	for i, s := range fuzzSeeds {
		f.Add([]byte("["+s+"]"), uint16(i*17))
	}
	view := testView()
	f.Fuzz(func(t *testing.T, body []byte, chunk uint16) {
		b, err := Decode(context.Background(), fuzzReader(body, chunk), FormatJSON, view, Options{MaxErrors: 1 << 30})
		body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
		var elems []json.RawMessage
		isArray := json.Unmarshal(body, &elems) == nil && bytes.TrimLeft(body, " \t\r\n")[0] == '['
		if !isArray {
			if appliance.ErrorCode(err) != appliance.EINVALID {
				t.Fatalf("%q is not a JSON array, got %v", body, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q is a JSON array, got %v", body, err)
		}
		checkBatch(t, view, b)
		if b.Total != len(elems) {
			t.Fatalf("%d elements, %d rows", len(elems), b.Total)
		}
		errs := map[int]RowError{}
		for _, e := range b.Errors {
			errs[e.Row] = e
		}
		valid := 0
		for i, el := range elems {
			e, bad := errs[i]
			notObject := bad && strings.HasPrefix(e.Reason, "not a JSON object")
			if isObject := bytes.TrimLeft(el, " \t\r\n")[0] == '{'; notObject == isObject {
				t.Fatalf("element %d %q: object %v, got error %+v", i, el, isObject, e)
			}
			if !bad {
				checkAgainstEncodingJSON(t, view, el, b.Rows[valid])
				valid++
			}
		}
	})
}

func FuzzDecodeCSV(f *testing.F) {
	f.Add([]byte("user_id,region,event_timestamp,clicks,score,active,plan,blob,seen_at,ids,weights,tags\n"+
		"1,eu,2024-01-02T03:04:05Z,9007199254740993,1.5,True,pro,aGk=,1700000000,\"[1,2]\",[0.5],\"[\"\"a\"\"]\"\n"+
		",eu,0,,,,,,,,,\n1,eu,x,1.5,NaN,yes,\xff,!,soon,[null],[\"\"x\"\"],[1]\n"), uint16(5))
	f.Add([]byte("user_id,region,event_timestamp\r\n1,\"e\"\"u\",0\r\n\r\n2,us\n"), uint16(3))
	f.Add([]byte("user_id,user_id\n"), uint16(1))
	f.Add([]byte("a,\"b\nc\",d\n1,2,3\n"), uint16(1))
	f.Add([]byte("user_id,region,event_timestamp\n1,e\"u,0\n"), uint16(2))
	f.Add([]byte("\xef\xbb\xbfuser_id,region,event_timestamp\n1,eu,0"), uint16(9))
	f.Add([]byte(""), uint16(0))
	view := testView()
	f.Fuzz(func(t *testing.T, body []byte, chunk uint16) {
		b, err := Decode(context.Background(), fuzzReader(body, chunk), FormatCSV, view, Options{MaxErrors: 1 << 30})
		cr := csv.NewReader(bytes.NewReader(body))
		cr.FieldsPerRecord = -1
		recs, cerr := cr.ReadAll()
		if cerr != nil || len(recs) == 0 || hasDuplicates(recs[0]) {
			if appliance.ErrorCode(err) != appliance.EINVALID {
				t.Fatalf("encoding/csv: %v, %d records; got %v", cerr, len(recs), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("got %v", err)
		}
		checkBatch(t, view, b)
		if b.Total != len(recs)-1 {
			t.Fatalf("%d records, %d rows", len(recs)-1, b.Total)
		}
	})
}

func hasDuplicates(header []string) bool {
	header[0] = strings.TrimPrefix(header[0], "\ufeff")
	seen := map[string]bool{}
	for _, h := range header {
		if seen[h] {
			return true
		}
		seen[h] = true
	}
	return false
}

var rfc3339Shape = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$`)

// FuzzParseRFC3339 compares the hand-written time parser with time.Parse.
func FuzzParseRFC3339(f *testing.F) {
	for _, s := range []string{"2024-01-02T03:04:05Z", "2024-02-29T23:59:59.999999999+14:00", "0001-01-01T00:00:00-00:30",
		"9999-12-31T23:59:59.1Z", "2024-01-02 03:04:05z", "1970-01-01T00:00:00.000001-23:59", "2023-02-29T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, reason := parseRFC3339(s)
		// Compare in the syntax both accept: upper-case T and Z, and a
		// period before the fraction.
		norm := s
		if len(s) > 10 {
			norm = s[:10] + strings.ToUpper(strings.Replace(s[10:11], " ", "T", 1)) + strings.Replace(s[11:], "z", "Z", 1)
		}
		tm, err := time.Parse(time.RFC3339Nano, norm)
		if reason == "" {
			if err != nil {
				t.Fatalf("%q: accepted, time.Parse says %v", s, err)
			}
			if want := appliance.TruncateTime(tm).UnixMicro(); got != want {
				t.Fatalf("%q: got %d, time.Parse says %d", s, got, want)
			}
			return
		}
		// time.Parse is laxer than RFC 3339 (one-digit hours, a comma before
		// the fraction), so only strictly shaped input must be accepted.
		if err == nil && rfc3339Shape.MatchString(norm) && tm.UTC().Year() >= 1 && tm.UTC().Year() <= 9999 {
			t.Fatalf("%q: %s, but time.Parse reads %v", s, reason, tm)
		}
	})
}
