package tabular

import (
	"io"
	"strconv"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

// benchTable is a training-set row of 10 columns: a string key, the event
// time, and eight features of the common dtypes.
func benchTable(n int) ([]Column, [][]appliance.Value) {
	cols := []Column{
		{"user_id", appliance.DTypeString},
		{"event_timestamp", appliance.DTypeTimestamp},
		{"clicks", appliance.DTypeInt64},
		{"orders", appliance.DTypeInt64},
		{"score", appliance.DTypeFloat64},
		{"ctr", appliance.DTypeFloat64},
		{"spend", appliance.DTypeFloat64},
		{"active", appliance.DTypeBool},
		{"country", appliance.DTypeString},
		{"embedding", appliance.DTypeFloat64List},
	}
	countries := []string{"AE", "FR", "DE", "US", "JP", "BR"}
	rows := make([][]appliance.Value, n)
	for i := range rows {
		v := make([]appliance.Value, len(cols))
		v[0] = appliance.StringValue("user-" + strconv.Itoa(i*7919%100000))
		v[1] = appliance.Value{Kind: appliance.KindTimestamp, Int: 1_700_000_000_000_000 + int64(i)*1_000_123}
		v[2] = appliance.Int64Value(int64(i % 1000))
		if i%5 != 0 {
			v[3] = appliance.Int64Value(int64(i % 17))
		}
		v[4] = appliance.Float64Value(float64(i%977) / 977)
		v[5] = appliance.Float64Value(float64(i%13) * 0.0123)
		v[6] = appliance.Float64Value(float64(i) * 1.25)
		v[7] = appliance.BoolValue(i%3 == 0)
		v[8] = appliance.StringValue(countries[i%len(countries)])
		v[9] = appliance.Value{Kind: appliance.KindFloat64List, Floats: []float64{float64(i%7) / 7, 0.5, -1.25, float64(i%11) / 11}}
		rows[i] = v
	}
	return cols, rows
}

func benchmarkWriter(b *testing.B, f Format) {
	cols, rows := benchTable(4096)
	w, err := NewWriter(io.Discard, f, cols)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.WriteRow(rows[i%len(rows)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkWriter_JSON(b *testing.B)    { benchmarkWriter(b, FormatJSON) }
func BenchmarkWriter_NDJSON(b *testing.B)  { benchmarkWriter(b, FormatNDJSON) }
func BenchmarkWriter_CSV(b *testing.B)     { benchmarkWriter(b, FormatCSV) }
func BenchmarkWriter_Parquet(b *testing.B) { benchmarkWriter(b, FormatParquet) }
