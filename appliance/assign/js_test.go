package assign

import (
	"math"
	"testing"
)

// Expected values are what Node.js 20 prints for String(x), Number(s) and
// s1 < s2.
func TestNumberToString(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {0.1, "0.1"}, {1e21, "1e+21"},
		{1e20, "100000000000000000000"}, {1.5e-7, "1.5e-7"}, {1e-7, "1e-7"}, {0.000001, "0.000001"},
		{123.456, "123.456"}, {-2.5, "-2.5"}, {1.0 / 3, "0.3333333333333333"}, {1 << 53, "9007199254740992"},
		{math.MaxFloat64, "1.7976931348623157e+308"}, {5e-324, "5e-324"}, {-1e-7, "-1e-7"}, {123e-20, "1.23e-18"},
		{math.NaN(), "NaN"}, {math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"},
	}
	for _, tt := range tests {
		if got := numberToString(tt.in); got != tt.want {
			t.Errorf("numberToString(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStringToNumber(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		in   string
		want float64
	}{
		{"", 0}, {" 12 ", 12}, {"0x1A", 26}, {"0b101", 5}, {"0o17", 15}, {"-0x10", nan}, {"1e3", 1000},
		{".5", 0.5}, {"5.", 5}, {".", nan}, {"inf", nan}, {"nan", nan}, {"Infinity", math.Inf(1)},
		{"-Infinity", math.Inf(-1)}, {"+Infinity", math.Inf(1)}, {"1_000", nan}, {"0x1p3", nan},
		{"\u00a0 7 \ufeff", 7}, {"+5", 5}, {"1e", nan}, {"abc", nan}, {"1e400", math.Inf(1)}, {"00012", 12},
		{"0x", nan}, {"0b2", nan}, {"-", nan}, {"+.5e-2", 0.005}, {"1e-400", 0}, {"\u180e5", nan},
	}
	for _, tt := range tests {
		got := stringToNumber(tt.in)
		if got != tt.want && !(math.IsNaN(got) && math.IsNaN(tt.want)) {
			t.Errorf("stringToNumber(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCompareUTF16(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"a", "b", -1}, {"a", "ab", -1}, {"ab", "a", 1}, {"", "", 0}, {"é", "z", 1}, {"Z", "a", -1},
		// Byte (code point) order says U+E000 < U+1F600; UTF-16 order the opposite.
		{"\uE000", "😀", 1}, {"😀", "\uE000", -1}, {"😀", "😁", -1}, {"😀", "😀", 0}, {"\U0001F600", "\U0001F400", 1},
	}
	for _, tt := range tests {
		if got := compareUTF16(tt.a, tt.b); got != tt.want {
			t.Errorf("compareUTF16(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestToString_Arrays(t *testing.T) {
	v := toJS([]any{1.0, []any{2.0, 3.0}, nil, "x", map[string]any{}})
	if got, want := toString(v), "1,2,3,,x,[object Object]"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
