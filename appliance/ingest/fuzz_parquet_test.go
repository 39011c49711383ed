package ingest

import (
	"bytes"
	"context"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/tabular"
)

// parquetSeeds are small valid files: an export of testView's rows, rows
// with errors, other layouts and codecs; and cuts of them.
func parquetSeeds(t testing.TB) [][]byte {
	view := testView()
	files := [][]byte{
		table(t, tabular.FormatParquet, viewColumns(view), fullRows()),
		table(t, tabular.FormatParquet, []tabular.Column{{Name: "region", Dtype: appliance.DTypeString}, {Name: "user_id", Dtype: appliance.DTypeString},
			{Name: EventTimestamp, Dtype: appliance.DTypeInt64}, {Name: "clicks", Dtype: appliance.DTypeFloat64}, {Name: "nope", Dtype: appliance.DTypeBool}},
			[][]appliance.Value{
				{appliance.StringValue("eu"), appliance.StringValue("7"), appliance.Int64Value(1_700_000_000), appliance.Float64Value(2), {}},
				{{}, appliance.StringValue("x"), appliance.Int64Value(-1e15), appliance.Float64Value(2.5), appliance.BoolValue(true)},
			}),
	}
	type row struct {
		UserID uint64   `parquet:"user_id"`
		Region []byte   `parquet:"region"`
		Time   int32    `parquet:"event_timestamp,date"`
		Weight []int32  `parquet:"weights,list"`
		Tags   []string `parquet:"tags"`
	}
	for _, codec := range []parquet.WriterOption{parquet.Compression(&parquet.Zstd), parquet.Compression(&parquet.Gzip)} {
		var buf bytes.Buffer
		w := parquet.NewGenericWriter[row](&buf, codec, parquet.DataPageVersion(2))
		w.Write([]row{{UserID: 1, Region: []byte("eu"), Time: 19000, Weight: []int32{1, 2}, Tags: []string{"a"}}, {UserID: 1 << 63}})
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		files = append(files, buf.Bytes())
	}
	var seeds [][]byte
	for _, b := range files {
		seeds = append(seeds, b, b[:len(b)/2], b[:len(b)-1], b[:len(b)-12])
	}
	return seeds
}

// FuzzDecodeParquet decodes arbitrary bytes as a Parquet body: the result is
// a consistent batch or a body error, never a panic, a hang or an
// allocation of what the bytes merely claim.
func FuzzDecodeParquet(f *testing.F) {
	for _, s := range parquetSeeds(f) {
		f.Add(s)
	}
	view := testView()
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeParquet(context.Background(), bytes.NewReader(body), int64(len(body)), view,
			Options{MaxErrors: 1 << 30, MaxBytes: 1 << 20, MaxRows: 1 << 16})
		if err != nil {
			if code := appliance.ErrorCode(err); code != appliance.EINVALID && code != appliance.ETOOLARGE {
				t.Fatalf("%v is not a body error", err)
			}
			return
		}
		checkBatch(t, view, b)
		if b.Rejected != len(b.Errors) {
			t.Fatalf("%d rejected, %d errors kept", b.Rejected, len(b.Errors))
		}
	})
}
