package tabular

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

func errorAs(err error, target **appliance.Error) bool { return errors.As(err, target) }

// wantInvalid fails unless err is EINVALID on field.
func wantInvalid(t testing.TB, err error, field string) {
	t.Helper()
	var ae *appliance.Error
	if !errors.As(err, &ae) || ae.Code != appliance.EINVALID || ae.Field != field {
		t.Fatalf("got %v, want EINVALID on %q", err, field)
	}
}

// allColumns has one column of each dtype.
var allColumns = []Column{
	{"i", appliance.DTypeInt64},
	{"f", appliance.DTypeFloat64},
	{"b", appliance.DTypeBool},
	{"s", appliance.DTypeString},
	{"y", appliance.DTypeBytes},
	{"t", appliance.DTypeTimestamp},
	{"il", appliance.DTypeInt64List},
	{"fl", appliance.DTypeFloat64List},
	{"sl", appliance.DTypeStringList},
}

func ts(us int64) appliance.Value { return appliance.Value{Kind: appliance.KindTimestamp, Int: us} }

// allRows exercises each dtype: ordinary values, edges, and nulls.
func allRows() [][]appliance.Value {
	return [][]appliance.Value{
		{appliance.Int64Value(9007199254740993), appliance.Float64Value(0.1), appliance.BoolValue(true),
			appliance.StringValue("café, \"quoted\"\n<b>&"), appliance.BytesValue([]byte{0, 1, 0xfe, 0xff}),
			ts(1_700_000_000_123_456),
			{Kind: appliance.KindInt64List, Ints: []int64{1, -2, math.MaxInt64}},
			{Kind: appliance.KindFloat64List, Floats: []float64{1e21, 1e-7, -0.5}},
			{Kind: appliance.KindStringList, Strs: []string{"a", "", "x,y"}}},
		{appliance.Int64Value(math.MinInt64), appliance.Float64Value(-1.5e300), appliance.BoolValue(false),
			appliance.StringValue(""), appliance.BytesValue(nil), ts(-1),
			{Kind: appliance.KindInt64List}, {Kind: appliance.KindFloat64List, Floats: []float64{}}, {Kind: appliance.KindStringList}},
		make([]appliance.Value, len(allColumns)),
	}
}

func writeTable(t testing.TB, f Format, cols []Column, rows [][]appliance.Value) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, f, cols)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	for i, r := range rows {
		if err := w.WriteRow(r); err != nil {
			t.Fatalf("WriteRow %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}
