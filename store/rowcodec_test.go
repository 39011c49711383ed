package store

import (
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

func TestRowCodec_RoundTrip(t *testing.T) {
	values := []appliance.Value{
		{},
		appliance.Int64Value(-9007199254740993),
		appliance.Float64Value(-0.125),
		appliance.BoolValue(true),
		appliance.StringValue("héllo"),
		appliance.BytesValue([]byte{0, 1, 255}),
		{Kind: appliance.KindTimestamp, Int: 1_700_000_000_123_456},
		{Kind: appliance.KindInt64List, Ints: []int64{1, -2, 1 << 60}},
		{Kind: appliance.KindFloat64List, Floats: []float64{0.5, -1e300}},
		{Kind: appliance.KindStringList, Strs: []string{"", "a", "bc"}},
		{Kind: appliance.KindStringList, Strs: []string{}},
	}
	enc := encodeValues(nil, values)
	got, err := decodeValues(nil, enc, len(values))
	if err != nil {
		t.Fatal(err)
	}
	for i := range values {
		if !got[i].Equal(values[i]) {
			t.Errorf("value %d: got %+v, want %+v", i, got[i], values[i])
		}
	}
	for cut := 0; cut < len(enc); cut++ {
		if _, err := decodeValues(nil, enc[:cut], len(values)); err == nil {
			t.Fatalf("truncated encoding (%d of %d bytes) decoded", cut, len(enc))
		}
	}
}

// Stored rows are the store's own, but a corrupt file must fail cleanly,
// never panic or allocate without bound.
func FuzzDecodeValues(f *testing.F) {
	f.Add(encodeValues(nil, []appliance.Value{appliance.Int64Value(1), appliance.StringValue("x")}), 2)
	f.Add([]byte{byte(appliance.KindStringList), 0xff, 0xff, 0xff, 0xff, 0x0f}, 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 64 {
			return
		}
		decodeValues(nil, b, n)
	})
}
