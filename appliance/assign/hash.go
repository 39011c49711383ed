package assign

import "unicode/utf8"

// The 32-bit FNV-1a parameters.
const (
	fnvOffset uint32 = 2166136261
	fnvPrime  uint32 = 16777619
)

// fnv1a continues an FNV-1a hash over the UTF-16 code units of s. The SDK
// XORs whole code units (String.charCodeAt), not bytes: "é" is one step
// with 0xE9 where a byte-wise hash takes two with 0xC3 0xA9, and a
// character outside the BMP is two steps, one per surrogate. Decoding runes
// in place keeps the hash free of the []uint16 that utf16.Encode would
// allocate.
func fnv1a(h uint32, s string) uint32 {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			h = (h ^ uint32(c)) * fnvPrime
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r >= 0x10000 {
			r -= 0x10000
			h = (h ^ (0xD800 + uint32(r>>10))) * fnvPrime
			h = (h ^ (0xDC00 + uint32(r&0x3FF))) * fnvPrime
			continue
		}
		h = (h ^ uint32(r)) * fnvPrime
	}
	return h
}

// Hash returns the unit's position in [0, 1) for a seed, as the SDK's hash:
//
//	version 1: fnv(value + seed) % 1000 / 1000
//	version 2: fnv(decimal(fnv(seed + value))) % 10000 / 10000
//
// where fnv is 32-bit FNV-1a over UTF-16 code units. Version 1 ends with
// the seed, and FNV mixes its last characters weakly: experiments whose
// seeds differ only there ("exp-1", "exp-2") get correlated splits. Version
// 2 rehashes the decimal digits of a first hash to break that. ok is false
// for any other version.
func Hash(seed, value string, version int) (n float64, ok bool) {
	switch version {
	case 1:
		h := fnv1a(fnv1a(fnvOffset, value), seed)
		return float64(h%1000) / 1000, true
	case 2:
		h := fnv1a(fnv1a(fnvOffset, seed), value)
		// The SDK renders the uint32 with `+ ""`: plain decimal digits.
		var digits [10]byte
		i := len(digits)
		for {
			i--
			digits[i] = byte('0' + h%10)
			h /= 10
			if h == 0 {
				break
			}
		}
		h = fnvOffset
		for _, d := range digits[i:] {
			h = (h ^ uint32(d)) * fnvPrime
		}
		return float64(h%10000) / 10000, true
	}
	return 0, false
}
