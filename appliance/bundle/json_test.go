package bundle

import (
	"math"
	"strings"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

// The test vectors of RFC 8785, appendix B: IEEE 754 bits and the string
// ECMAScript (and so JCS) writes for them.
func TestAppendES6Number_RFC8785(t *testing.T) {
	tests := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, tt := range tests {
		f := math.Float64frombits(tt.bits)
		if got := string(appendES6Number(nil, f)); got != tt.want {
			t.Errorf("%016x (%v): got %s, want %s", tt.bits, f, got, tt.want)
		}
	}
}

// The examples of RFC 8785 sections 3.2.2 and 3.2.3.
func TestAppendCanonical_RFC8785(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{
			"section 3.2.2",
			`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			"section 3.2.3 sorting by UTF-16 code units",
			`{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\"," +
				"\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{"nested and empty", `{"b":[],"a":{"z":{},"y":[1,{"d":0,"c":-0.0}]}}`, `{"a":{"y":[1,{"c":0,"d":0}],"z":{}},"b":[]}`},
		{"no HTML escaping, DEL and U+2028 as they are", "{\"k\":\"<&>\u007f\u2028\"}", "{\"k\":\"<&>\u007f\u2028\"}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := parseJSON([]byte(tt.in), "test")
			if err != nil {
				t.Fatal(err)
			}
			if got := string(appendCanonical(nil, v)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseJSON_Refuses(t *testing.T) {
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	tests := []struct{ name, in, field, msg string }{
		{"duplicate key", `{"a":1,"b":{"c":1,"c":2}}`, "b.c", "duplicate key"},
		{"duplicate key at the root", `{"a":1,"a":1}`, "a", "duplicate key"},
		{"duplicate odd key", `{"m":{"x.wasm":1,"x.wasm":2}}`, `m["x.wasm"]`, "duplicate key"},
		{"number out of range", `{"a":[1e400]}`, "a[0]", "outside the range"},
		{"lone high surrogate", `{"a":"\ud800x"}`, "test", "surrogate"},
		{"lone low surrogate", `{"a":"\udc00"}`, "test", "surrogate"},
		{"reversed pair", `{"a":"\udc00\ud800"}`, "test", "surrogate"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "test", "UTF-8"},
		{"trailing data", `{} {}`, "test", "after the JSON value"},
		{"truncated", `{"a":`, "test", "truncated"},
		{"empty", ``, "test", "truncated or empty"},
		{"syntax", `{"a" 1}`, "test", "malformed"},
		{"too deep", deep, "[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]", "deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseJSON([]byte(tt.in), "test")
			e, ok := err.(*appliance.Error)
			if !ok || e.Field != tt.field || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("got %v, want field %q and %q", err, tt.field, tt.msg)
			}
		})
	}
	// A surrogate pair escaped correctly is fine, and an escaped backslash
	// before "u" is not an escape.
	for _, ok := range []string{`{"a":"\ud83d\ude00"}`, `{"a":"\\ud800"}`, `{"\ud83d\ude00":"\\"}`} {
		if _, err := parseJSON([]byte(ok), "test"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestKeyPath(t *testing.T) {
	tests := []struct{ path, key, want string }{
		{"", "inputs", "inputs"},
		{"reference", "user_stats:age", "reference.user_stats:age"},
		{"reference", "user_stats@v2:age", "reference.user_stats@v2:age"},
		{"modules", "model.wasm", `modules["model.wasm"]`},
		{"", "a b", `["a b"]`},
		{"x", "", `x[""]`},
	}
	for _, tt := range tests {
		if got := keyPath(tt.path, tt.key); got != tt.want {
			t.Errorf("keyPath(%q, %q) = %s, want %s", tt.path, tt.key, got, tt.want)
		}
	}
}
