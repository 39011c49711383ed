package featstats

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

func BenchmarkNumeric_Add(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	xs := make([]float64, 4096)
	for i := range xs {
		xs[i] = r.NormFloat64() * 100
	}
	var s Numeric
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s.Add(xs[i&4095])
	}
}

func BenchmarkNumeric_AddTimestamp(b *testing.B) {
	s := newNumeric(true, true)
	b.ReportAllocs()
	for i := range b.N {
		s.AddInt(1_780_000_000_000_000 + int64(i&65535)*1_000_003)
	}
}

// Strings over a skewed vocabulary larger than the counters, so that
// reductions and the distinct-count sketch are part of the cost.
func BenchmarkFeatureStats_AddString(b *testing.B) {
	vocab := zipf(2, 1<<16, 1.2, 20000)
	values := make([]appliance.Value, len(vocab))
	for i, v := range vocab {
		values[i] = appliance.StringValue(v)
	}
	s := NewFeatureStats(appliance.Feature{Name: "s", Dtype: appliance.DTypeString})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		_ = s.Add(values[i&(1<<16-1)])
	}
}

// Few distinct values: the common categorical feature, exact and unhashed.
func BenchmarkFeatureStats_AddStringFewValues(b *testing.B) {
	values := make([]appliance.Value, 64)
	for i := range values {
		values[i] = appliance.StringValue("country-" + strconv.Itoa(i%12))
	}
	s := NewFeatureStats(appliance.Feature{Name: "s", Dtype: appliance.DTypeString})
	b.ReportAllocs()
	for i := range b.N {
		_ = s.Add(values[i&63])
	}
}

func BenchmarkViewStats_AddRow(b *testing.B) {
	view := allTypes()
	r := rand.New(rand.NewPCG(3, 3))
	rows := make([][]appliance.Value, 1024)
	for i := range rows {
		rows[i] = randomRow(r)
	}
	s := New(view)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		_ = s.Add(uint64(i), rows[i&1023])
	}
}

func BenchmarkViewStats_MarshalBinary(b *testing.B) {
	view := allTypes()
	r := rand.New(rand.NewPCG(4, 4))
	s := New(view)
	for i := range 100000 {
		_ = s.Add(uint64(i), randomRow(r))
	}
	b.ReportAllocs()
	for range b.N {
		data, _ := s.MarshalBinary()
		b.SetBytes(int64(len(data)))
		var back ViewStats
		if err := back.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
}
