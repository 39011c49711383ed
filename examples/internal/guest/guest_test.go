package guest

import (
	"encoding/binary"
	"math"
	"testing"
	"unsafe"
)

func TestArena_Lookups(t *testing.T) {
	var a Arena
	p := a.Alloc(8 * 4)
	q := a.Alloc(3)
	if p == 0 || q == 0 || p%8 != 0 || q%8 != 0 {
		t.Fatalf("Alloc = %#x, %#x: want non-zero, 8-byte aligned", p, q)
	}
	if a.Alloc(-1) != 0 {
		t.Errorf("Alloc(-1) != 0")
	}
	if z := a.Alloc(0); z == 0 {
		t.Errorf("Alloc(0) = 0, want a valid address")
	}

	tests := []struct {
		name string
		addr uintptr
		n    int
		ok   bool
	}{
		{"whole", p, 4, true},
		{"tail", p + 8, 3, true},
		{"empty at end", p + 32, 0, true},
		{"past end", p + 8, 4, false},
		{"misaligned", p + 4, 1, false},
		{"before", p - 8, 1, false},
		{"negative", p, -1, false},
		{"unknown", 8, 1, false},
		{"small buffer rounds up to a word", q, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := a.Float64s(tt.addr, tt.n)
			if ok != tt.ok {
				t.Fatalf("Float64s(%#x, %d) ok = %v, want %v", tt.addr, tt.n, ok, tt.ok)
			}
			if ok && len(got) != tt.n {
				t.Fatalf("len = %d, want %d", len(got), tt.n)
			}
			if ok && tt.n > 0 && uintptr(unsafe.Pointer(&got[0])) != tt.addr {
				t.Fatalf("view starts at %#x, want %#x", uintptr(unsafe.Pointer(&got[0])), tt.addr)
			}
		})
	}

	// Writes through one view are seen through another: the views alias the buffer.
	in, _ := a.Float64s(p, 4)
	in[2] = 2.5
	b, ok := a.Bytes(p+16, 8)
	if !ok || math.Float64frombits(binary.LittleEndian.Uint64(b)) != 2.5 {
		t.Fatalf("Bytes does not alias Float64s")
	}
	if _, ok := a.Bytes(p+1, 31); !ok {
		t.Errorf("Bytes rejects an unaligned range inside a buffer")
	}
	if _, ok := a.Bytes(p+1, 32); ok {
		t.Errorf("Bytes accepts a range past the end")
	}
}

func TestParseRow(t *testing.T) {
	num := func(f float64) []byte {
		return binary.LittleEndian.AppendUint64([]byte{1}, math.Float64bits(f))
	}
	str := func(s string) []byte {
		return append(binary.LittleEndian.AppendUint32([]byte{2}, uint32(len(s))), s...)
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	tests := []struct {
		name string
		in   []byte
		n    int
		want []Value
		code int32
	}{
		{"number string null", cat(num(1.5), str("DE"), []byte{0}), 3,
			[]Value{{Kind: Number, Num: 1.5}, {Kind: String, Str: []byte("DE")}, {Kind: Null}}, OK},
		{"empty string", str(""), 1, []Value{{Kind: String, Str: []byte{}}}, OK},
		{"truncated number", num(1)[:5], 1, nil, ErrRowFormat},
		{"truncated length", str("x")[:3], 1, nil, ErrRowFormat},
		{"string past end", str("abc")[:7], 1, nil, ErrRowFormat},
		{"huge length", []byte{2, 0xff, 0xff, 0xff, 0xff}, 1, nil, ErrRowFormat},
		{"unknown tag", []byte{9}, 1, nil, ErrRowFormat},
		{"too few records", num(1), 2, nil, ErrRowFormat},
		{"trailing bytes", cat(num(1), []byte{0}), 1, nil, ErrRowFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make([]Value, tt.n)
			if code := ParseRow(tt.in, got); code != tt.code {
				t.Fatalf("code = %d, want %d", code, tt.code)
			}
			if tt.code != OK {
				return
			}
			for i := range tt.want {
				if got[i].Kind != tt.want[i].Kind || got[i].Num != tt.want[i].Num || string(got[i].Str) != string(tt.want[i].Str) {
					t.Errorf("record %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzParseRow(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 2, 2, 0, 0, 0, 'U', 'S', 0}, 3)
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0x7f}, 1)
	f.Fuzz(func(t *testing.T, row []byte, n int) {
		if n < 0 || n > 64 {
			return
		}
		dst := make([]Value, n)
		if ParseRow(row, dst) != OK {
			return
		}
		// A row that parses re-encodes to the same bytes.
		var enc []byte
		for _, v := range dst {
			enc = append(enc, byte(v.Kind))
			switch v.Kind {
			case Number:
				enc = binary.LittleEndian.AppendUint64(enc, math.Float64bits(v.Num))
			case String:
				enc = binary.LittleEndian.AppendUint32(enc, uint32(len(v.Str)))
				enc = append(enc, v.Str...)
			}
		}
		if string(enc) != string(row) {
			t.Fatalf("re-encoding %x gives %x", row, enc)
		}
	})
}
