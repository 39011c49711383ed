package appliance

import (
	"strconv"
	"testing"
)

func BenchmarkExposureSeen(b *testing.B) {
	var s exposureSet
	units := make([]string, 1024)
	for i := range units {
		units[i] = "u" + strconv.Itoa(i*7919)
		s.first(exposureKey("bench", 1764237000000000000, units[i]))
	}
	i := 0
	for b.Loop() {
		if s.first(exposureKey("bench", 1764237000000000000, units[i&1023])) {
			b.Fatal("seen unit taken as first")
		}
		i++
	}
}
