package ingest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// benchView is the product's sizing case: one int64 entity and ten features
// of mixed types.
func benchView() *appliance.FeatureView {
	v := &appliance.FeatureView{
		Name:     "user_stats",
		Version:  1,
		Entities: []string{"user"},
		JoinKeys: []appliance.JoinKey{{Name: "user_id", Entity: "user", ValueType: appliance.EntityInt64}},
	}
	dtypes := []appliance.DType{appliance.DTypeInt64, appliance.DTypeFloat64, appliance.DTypeString, appliance.DTypeBool}
	for i := range 10 {
		v.Features = append(v.Features, appliance.Feature{Name: fmt.Sprintf("f%d_%s", i, dtypes[i%4]), Dtype: dtypes[i%4]})
	}
	return v
}

const benchRows = 10000

func benchNDJSON() []byte {
	var b bytes.Buffer
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range benchRows {
		fmt.Fprintf(&b, `{"user_id":%d,"event_timestamp":"%s","f0_int64":%d,"f1_float64":%g,"f2_string":"plan_%d","f3_bool":%t,"f4_int64":%d,"f5_float64":%g,"f6_string":"country_%d","f7_bool":%t,"f8_int64":%d,"f9_float64":%g}`+"\n",
			1000000+i, t0.Add(time.Duration(i)*time.Second+123456*time.Microsecond).Format(time.RFC3339Nano),
			i*7, float64(i)*0.25+0.1, i%5, i%2 == 0, int64(i)*1_000_003, float64(i)/3, i%200, i%3 == 0, -i, 1e6/float64(i+1))
	}
	return b.Bytes()
}

func benchCSV() []byte {
	var b bytes.Buffer
	b.WriteString("user_id,event_timestamp,f0_int64,f1_float64,f2_string,f3_bool,f4_int64,f5_float64,f6_string,f7_bool,f8_int64,f9_float64\n")
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range benchRows {
		fmt.Fprintf(&b, "%d,%s,%d,%g,plan_%d,%t,%d,%g,country_%d,%t,%d,%g\n",
			1000000+i, t0.Add(time.Duration(i)*time.Second+123456*time.Microsecond).Format(time.RFC3339Nano),
			i*7, float64(i)*0.25+0.1, i%5, i%2 == 0, int64(i)*1_000_003, float64(i)/3, i%200, i%3 == 0, -i, 1e6/float64(i+1))
	}
	return b.Bytes()
}

func benchmarkDecode(b *testing.B, f Format, body []byte) {
	view := benchView()
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		batch, err := Decode(ctx, bytes.NewReader(body), f, view, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(batch.Rows) != benchRows {
			b.Fatalf("got %d rows, %d rejected: %+v", len(batch.Rows), batch.Rejected, batch.Errors)
		}
	}
	b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkDecodeNDJSON(b *testing.B) { benchmarkDecode(b, FormatNDJSON, benchNDJSON()) }

func BenchmarkDecodeJSON(b *testing.B) {
	body := append([]byte("["), bytes.ReplaceAll(bytes.TrimSpace(benchNDJSON()), []byte("\n"), []byte(",\n"))...)
	benchmarkDecode(b, FormatJSON, append(body, ']'))
}

func BenchmarkDecodeCSV(b *testing.B) { benchmarkDecode(b, FormatCSV, benchCSV()) }
