package featstats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// allTypes is a view with one feature of every dtype.
func allTypes() *appliance.FeatureView {
	v := &appliance.FeatureView{Name: "everything", Version: 3}
	for _, d := range appliance.DTypes {
		name := strings.NewReplacer("<", "_", ">", "").Replace(string(d))
		v.Features = append(v.Features, appliance.Feature{Name: name, Dtype: d})
	}
	return v
}

// randomRow returns values for allTypes, about a tenth of them null.
func randomRow(r *rand.Rand) []appliance.Value {
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	words := []string{"fr", "de", "us", "gb", "jp", "br", "in"}
	row := []appliance.Value{
		appliance.Int64Value(r.Int64N(1000) - 100),
		appliance.Float64Value(r.NormFloat64()*10 + 3),
		appliance.BoolValue(r.IntN(3) == 0),
		appliance.StringValue(words[min(r.IntN(10), len(words)-1)]),
		appliance.BytesValue([]byte{byte(r.IntN(4)), 0xff}),
		appliance.TimestampValue(base.Add(time.Duration(r.Int64N(int64(30 * 24 * time.Hour))))),
		{Kind: appliance.KindInt64List, Ints: []int64{r.Int64N(10), r.Int64N(100)}[:r.IntN(3)]},
		{Kind: appliance.KindFloat64List, Floats: []float64{r.Float64(), -r.Float64(), 2}[:r.IntN(4)]},
		{Kind: appliance.KindStringList, Strs: []string{words[r.IntN(3)], words[r.IntN(7)]}[:r.IntN(3)]},
	}
	for i := range row {
		if r.IntN(10) == 0 {
			row[i] = appliance.Value{}
		}
	}
	return row
}

func summaryJSON(t *testing.T, s *ViewStats) string {
	t.Helper()
	b, err := json.Marshal(s.Summary())
	if err != nil {
		t.Fatalf("summary: %v", err)
	}
	return string(b)
}

func TestFeatureStats_ByDtype(t *testing.T) {
	ts := func(s string) appliance.Value {
		tm, _ := time.Parse(time.RFC3339, s)
		return appliance.TimestampValue(tm)
	}
	null := appliance.Value{}
	tests := []struct {
		name   string
		dtype  appliance.DType
		values []appliance.Value
		want   string // the summary's JSON, without name and dtype
	}{
		{"int64", appliance.DTypeInt64, []appliance.Value{appliance.Int64Value(1), appliance.Int64Value(2), appliance.Int64Value(3), null},
			`"count":3,"nulls":1,"null_rate":0.25,"numeric":{"count":3,"min":1,"max":3,"mean":2,"stddev":1,"quantiles":{"p01":1,"p05":1,"p25":1,"p50":2,"p75":2,"p95":2,"p99":2}}`},
		{"float64", appliance.DTypeFloat64, []appliance.Value{appliance.Float64Value(-2.5), appliance.Float64Value(2.5)},
			`"count":2,"nulls":0,"null_rate":0,"numeric":{"count":2,"min":-2.5,"max":2.5,"mean":0,"stddev":3.5355339059327378,"quantiles":{"p01":-2.4842736738326896,"p05":-2.4842736738326896,"p25":-2.4842736738326896,"p50":-2.4842736738326896,"p75":-2.4842736738326896,"p95":-2.4842736738326896,"p99":-2.4842736738326896}}`},
		{"bool", appliance.DTypeBool, []appliance.Value{appliance.BoolValue(true), appliance.BoolValue(false), appliance.BoolValue(true), appliance.BoolValue(true)},
			`"count":4,"nulls":0,"null_rate":0,"bool":{"true_count":3,"true_rate":0.75}`},
		{"string", appliance.DTypeString, []appliance.Value{appliance.StringValue("fr"), appliance.StringValue("de"), appliance.StringValue("fr"), null},
			`"count":3,"nulls":1,"null_rate":0.25,"categorical":{"count":3,"distinct":2,"distinct_exact":true,"max_error":0,"top":[{"value":"fr","count":2,"rate":0.6666666666666666},{"value":"de","count":1,"rate":0.3333333333333333}]},"length":{"count":3,"min":2,"max":2,"mean":2,"stddev":0,"quantiles":{"p01":2,"p05":2,"p25":2,"p50":2,"p75":2,"p95":2,"p99":2}}`},
		{"bytes", appliance.DTypeBytes, []appliance.Value{appliance.BytesValue([]byte{0, 1, 2})},
			`"count":1,"nulls":0,"null_rate":0,"categorical":{"count":1,"distinct":1,"distinct_exact":true,"max_error":0,"encoding":"base64","top":[{"value":"AAEC","count":1,"rate":1}]},"length":{"count":1,"min":3,"max":3,"mean":3,"stddev":0,"quantiles":{"p01":3,"p05":3,"p25":3,"p50":3,"p75":3,"p95":3,"p99":3}}`},
		{"timestamp", appliance.DTypeTimestamp, []appliance.Value{ts("2026-01-01T00:00:00Z"), ts("2026-01-03T00:00:00Z")},
			`"count":2,"nulls":0,"null_rate":0,"timestamp":{"min":"2026-01-01T00:00:00Z","max":"2026-01-03T00:00:00Z","mean":"2026-01-02T00:00:00Z","stddev_seconds":122188.05178903541,"quantiles":{"p01":"2026-01-01T00:00:00Z","p05":"2026-01-01T00:00:00Z","p25":"2026-01-01T00:00:00Z","p50":"2026-01-01T00:00:00Z","p75":"2026-01-01T00:00:00Z","p95":"2026-01-01T00:00:00Z","p99":"2026-01-01T00:00:00Z"}}`},
		{"list of int64", appliance.DTypeInt64List, []appliance.Value{{Kind: appliance.KindInt64List, Ints: []int64{5, 7}}, {Kind: appliance.KindInt64List}},
			`"count":2,"nulls":0,"null_rate":0,"numeric":{"count":2,"min":5,"max":7,"mean":6,"stddev":1.4142135623730951,"quantiles":{"p01":5,"p05":5,"p25":5,"p50":5,"p75":5,"p95":5,"p99":5}},"length":{"count":2,"min":0,"max":2,"mean":1,"stddev":1.4142135623730951,"quantiles":{"p01":0,"p05":0,"p25":0,"p50":0,"p75":0,"p95":0,"p99":0}}`},
		{"list of string", appliance.DTypeStringList, []appliance.Value{{Kind: appliance.KindStringList, Strs: []string{"a", "b", "a"}}},
			`"count":1,"nulls":0,"null_rate":0,"categorical":{"count":3,"distinct":2,"distinct_exact":true,"max_error":0,"top":[{"value":"a","count":2,"rate":0.6666666666666666},{"value":"b","count":1,"rate":0.3333333333333333}]},"length":{"count":1,"min":3,"max":3,"mean":3,"stddev":0,"quantiles":{"p01":3,"p05":3,"p25":3,"p50":3,"p75":3,"p95":3,"p99":3}}`},
		{"only nulls", appliance.DTypeFloat64List, []appliance.Value{null, null},
			`"count":0,"nulls":2,"null_rate":1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewFeatureStats(appliance.Feature{Name: "f", Dtype: tt.dtype})
			for _, v := range tt.values {
				if err := s.Add(v); err != nil {
					t.Fatal(err)
				}
			}
			var buf strings.Builder
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(s.Summary()); err != nil {
				t.Fatal(err)
			}
			b := strings.TrimSpace(buf.String())
			want := `{"name":"f","dtype":"` + string(tt.dtype) + `",` + tt.want + `}`
			if b != want {
				t.Fatalf("summary\n got %s\nwant %s", b, want)
			}
		})
	}
}

func TestFeatureStats_WrongKind(t *testing.T) {
	s := NewFeatureStats(appliance.Feature{Name: "f", Dtype: appliance.DTypeInt64})
	if err := s.Add(appliance.StringValue("x")); err == nil {
		t.Fatal("a string value counted as an int64")
	}
	v := New(&appliance.FeatureView{Name: "v", Version: 1, Features: []appliance.Feature{{Name: "a", Dtype: appliance.DTypeInt64}, {Name: "b", Dtype: appliance.DTypeBool}}})
	if err := v.Add(1, []appliance.Value{appliance.Int64Value(1), appliance.Int64Value(1)}); err == nil {
		t.Fatal("a row with a wrong kind was accepted")
	}
	if err := v.Add(1, []appliance.Value{appliance.Int64Value(1)}); err == nil {
		t.Fatal("a short row was accepted")
	}
	if v.Rows != 0 || v.Features[0].Count != 0 || v.ThroughSeq != 0 {
		t.Fatalf("a refused row was half counted: rows %d, a counted %d, seq %d", v.Rows, v.Features[0].Count, v.ThroughSeq)
	}
}

// The incremental rule: statistics through S, stored and loaded, plus the
// events after S, are the statistics of all events in one pass.
func TestViewStats_IncrementalEqualsSinglePass(t *testing.T) {
	view := allTypes()
	r := rand.New(rand.NewPCG(21, 22))
	rows := make([][]appliance.Value, 5000)
	for i := range rows {
		rows[i] = randomRow(r)
	}
	whole := New(view)
	for i, row := range rows {
		if err := whole.Add(uint64(i+1), row); err != nil {
			t.Fatal(err)
		}
	}
	st := New(view)
	for _, cut := range []int{0, 1, 700, 2500, 4999, 5000} {
		for i := int(st.Rows); i < cut; i++ {
			if err := st.Add(uint64(i+1), rows[i]); err != nil {
				t.Fatal(err)
			}
		}
		rec, err := st.Record()
		if err != nil {
			t.Fatal(err)
		}
		if st, err = FromRecord(rec); err != nil {
			t.Fatalf("through %d: %v", cut, err)
		}
	}
	if got, want := summaryJSON(t, st), summaryJSON(t, whole); got != want {
		t.Fatalf("incremental\n%s\nsingle pass\n%s", got, want)
	}
	if st.ThroughSeq != 5000 || st.Rows != 5000 {
		t.Fatalf("through %d, %d rows", st.ThroughSeq, st.Rows)
	}
}

// Merging statistics of parts gives those of the whole: exactly for counts,
// to 1e-9 for moments, within the sketch's guarantee for quantiles.
func TestViewStats_MergeEqualsSinglePass(t *testing.T) {
	view := allTypes()
	r := rand.New(rand.NewPCG(23, 24))
	whole := New(view)
	parts := []*ViewStats{New(view), New(view), New(view)}
	for i := range 6000 {
		row := randomRow(r)
		if err := whole.Add(uint64(i+1), row); err != nil {
			t.Fatal(err)
		}
		if err := parts[i*len(parts)/6000].Add(uint64(i+1), row); err != nil {
			t.Fatal(err)
		}
	}
	merged := New(view)
	for _, p := range parts {
		if err := merged.Merge(p); err != nil {
			t.Fatal(err)
		}
	}
	if merged.Rows != whole.Rows || merged.ThroughSeq != whole.ThroughSeq {
		t.Fatalf("merged %d rows through %d, want %d through %d", merged.Rows, merged.ThroughSeq, whole.Rows, whole.ThroughSeq)
	}
	sameStats(t, merged, whole)
	if err := merged.Merge(New(&appliance.FeatureView{Name: "other", Version: 3, Features: view.Features})); err == nil {
		t.Fatal("merged statistics of another view")
	}
}

func TestViewStats_RecordChecksItsHeader(t *testing.T) {
	st := New(allTypes())
	st.ComputedAt = time.Date(2026, 6, 1, 12, 0, 0, 123456789, time.UTC)
	rec, err := st.Record()
	if err != nil {
		t.Fatal(err)
	}
	if !rec.ComputedAt.Equal(time.Date(2026, 6, 1, 12, 0, 0, 123456000, time.UTC)) {
		t.Fatalf("computed at %v", rec.ComputedAt)
	}
	back, err := FromRecord(rec)
	if err != nil || !back.ComputedAt.Equal(rec.ComputedAt) || !back.Matches(allTypes()) {
		t.Fatalf("round trip: %v, %v", err, back)
	}
	rec.ThroughSeq = 9
	if _, err := FromRecord(rec); err == nil {
		t.Fatal("a record whose header disagrees with its state was accepted")
	}
}

func TestViewStats_UnmarshalDamaged(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	st := New(allTypes())
	for i := range 300 {
		if err := st.Add(uint64(i+1), randomRow(r)); err != nil {
			t.Fatal(err)
		}
	}
	good, _ := st.MarshalBinary()
	for n := range len(good) {
		if err := new(ViewStats).UnmarshalBinary(good[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(good))
		}
	}
	for i := range 2000 {
		bad := append([]byte(nil), good...)
		bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
		_ = new(ViewStats).UnmarshalBinary(bad) // must not panic
		_ = i
	}
}

func FuzzViewStats_UnmarshalBinary(f *testing.F) {
	r := rand.New(rand.NewPCG(27, 28))
	st := New(allTypes())
	f.Add([]byte{viewFormat})
	b, _ := st.MarshalBinary()
	f.Add(b)
	for i := range 50 {
		_ = st.Add(uint64(i+1), randomRow(r))
	}
	b, _ = st.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var s ViewStats
		if s.UnmarshalBinary(data) != nil {
			return
		}
		// What decodes must encode, summarize and keep accumulating.
		if _, err := json.Marshal(s.Summary()); err != nil {
			t.Fatalf("summary of decoded statistics: %v", err)
		}
		if _, err := s.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

// sameStats checks that got are the statistics of the same events as want,
// added in another order or merged from parts: counts exactly, moments to
// 1e-9, quantiles within the sketch's guarantee (twice it for timestamps,
// which may have been re-binned at another origin).
func sameStats(t *testing.T, got, want *ViewStats) {
	t.Helper()
	if got.Rows != want.Rows || got.ThroughSeq != want.ThroughSeq {
		t.Fatalf("%d rows through %d, want %d through %d", got.Rows, got.ThroughSeq, want.Rows, want.ThroughSeq)
	}
	for i, m := range got.Features {
		w := want.Features[i]
		if m.Count != w.Count || m.Nulls != w.Nulls || m.Trues != w.Trues {
			t.Errorf("%s: counts %d/%d/%d, want %d/%d/%d", m.Name, m.Count, m.Nulls, m.Trues, w.Count, w.Nulls, w.Trues)
		}
		for _, pair := range [][2]*Numeric{{m.Values, w.Values}, {m.Lengths, w.Lengths}} {
			a, b := pair[0], pair[1]
			if a == nil {
				continue
			}
			if a.Count() != b.Count() || a.Min() != b.Min() || a.Max() != b.Max() ||
				!closeTo(a.Mean(), b.Mean(), 1e-9) || !closeTo(a.Stddev(), b.Stddev(), 1e-9) {
				t.Errorf("%s: n=%d [%v,%v] mean %v sd %v, want n=%d [%v,%v] mean %v sd %v", m.Name,
					a.Count(), a.Min(), a.Max(), a.Mean(), a.Stddev(), b.Count(), b.Min(), b.Max(), b.Mean(), b.Stddev())
			}
			for _, q := range []float64{0.05, 0.5, 0.95} {
				x, _ := a.Quantile(q)
				y, _ := b.Quantile(q)
				// Timestamps seen from another origin are binned apart.
				if math.Abs(x-y) > 2*RelativeAccuracy*math.Abs(y-b.sketchOrigin())+1e-9 {
					t.Errorf("%s: q%v = %v, want %v", m.Name, q, x, y)
				}
			}
		}
		if m.Categories != nil {
			a, b := m.Categories.Top(counters), w.Categories.Top(counters)
			if len(a) != len(b) {
				t.Fatalf("%s: %d categories, want %d", m.Name, len(a), len(b))
			}
			for j := range a {
				if a[j] != b[j] {
					t.Errorf("%s: category %d is %v, want %v", m.Name, j, a[j], b[j])
				}
			}
		}
	}
}
