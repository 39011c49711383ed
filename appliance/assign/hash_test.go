package assign

import (
	"testing"
	"unicode/utf16"
)

// Vectors worked out from the algorithm (FNV-1a over UTF-16 code units)
// with the Python snippet of docs/experiments.md, and confirmed against
// the GrowthBook JavaScript SDK 1.8.0. They are the table of that page.
func TestHash_NonASCII(t *testing.T) {
	tests := []struct {
		unit   string
		v1, v2 float64
	}{
		{"123", 0.423, 0.9568},
		{"é", 0.176, 0.4526},     // U+00E9: one code unit, 0x00E9
		{"Zoë", 0.579, 0.4951},   // U+00EB
		{"日本", 0.224, 0.9802},    // two code units above 0xFF
		{"user-é", 0.336, 0.101}, // ASCII, then one non-ASCII unit
		{"😀", 0.012, 0.3881},     // U+1F600: surrogates 0xD83D 0xDE00
		{"ab😀cd", 0.924, 0.4016},
	}
	for _, tt := range tests {
		if got, _ := Hash("checkout", tt.unit, 1); got != tt.v1 {
			t.Errorf("Hash(checkout, %q, 1) = %v, want %v", tt.unit, got, tt.v1)
		}
		if got, _ := Hash("checkout", tt.unit, 2); got != tt.v2 {
			t.Errorf("Hash(checkout, %q, 2) = %v, want %v", tt.unit, got, tt.v2)
		}
	}
}

// referenceFNV is the definition, written the obvious way: encode to
// UTF-16, then hash each unit.
func referenceFNV(s string) uint32 {
	h := fnvOffset
	for _, u := range utf16.Encode([]rune(s)) {
		h = (h ^ uint32(u)) * fnvPrime
	}
	return h
}

func TestFNV1a_Reference(t *testing.T) {
	for _, s := range []string{"", "a", "é", "日本", "😀", "a😀b", "\xff", "a\xe2\x82", "\xed\xa0\x80", "\U0010FFFF", "\uFFFF\uE000"} {
		if got, want := fnv1a(fnvOffset, s), referenceFNV(s); got != want {
			t.Errorf("fnv1a(%q) = %#x, want %#x", s, got, want)
		}
	}
}

func FuzzFNV1a(f *testing.F) {
	for _, s := range []string{"", "user-123", "é", "日本", "😀", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := fnv1a(fnvOffset, s), referenceFNV(s); got != want {
			t.Errorf("fnv1a(%q) = %#x, want %#x", s, got, want)
		}
	})
}

func TestHash_Versions(t *testing.T) {
	for _, v := range []int{-1, 0, 3, 99} {
		if n, ok := Hash("s", "u", v); ok || n != 0 {
			t.Errorf("Hash version %d = %v, %v; want 0, false", v, n, ok)
		}
	}
	// The largest hash renders as ten digits.
	for _, u := range []string{"a", "b", "8952klfjas09ujkasdf", "😀"} {
		n, ok := Hash("seed", u, 2)
		if !ok || n < 0 || n >= 1 {
			t.Errorf("Hash(seed, %q, 2) = %v, %v", u, n, ok)
		}
	}
}

func TestHash_Allocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		Hash("checkout-2026", "user-1234567890-abcd", 2)
		Hash("checkout-2026", "ユーザー😀", 1)
		InNamespace("user-1234567890-abcd", Namespace{"pricing", 0, 0.5})
	})
	if allocs != 0 {
		t.Errorf("%v allocations, want 0", allocs)
	}
}
