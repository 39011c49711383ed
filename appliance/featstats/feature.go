package featstats

import (
	"encoding/binary"
	"fmt"

	"github.com/mlnode/mlnode/appliance"
)

// FeatureStats accumulates the statistics of one feature; which
// accumulators it has depends on the dtype:
//
//	int64, float64, timestamp   Values
//	bool                        Trues
//	string, bytes               Categories, Lengths (in bytes)
//	list<int64>, list<float64>  Values (of the elements), Lengths (elements per list)
//	list<string>                Categories (of the elements), Lengths
type FeatureStats struct {
	Name  string
	Dtype appliance.DType
	Count int64 // values that are not null
	Nulls int64
	Trues int64

	Values     *Numeric
	Categories *Categorical
	Lengths    *Numeric
}

// NewFeatureStats returns empty statistics for a feature.
func NewFeatureStats(f appliance.Feature) *FeatureStats {
	s := &FeatureStats{Name: f.Name, Dtype: f.Dtype}
	switch f.Dtype {
	case appliance.DTypeInt64, appliance.DTypeInt64List:
		s.Values = newNumeric(true, false)
	case appliance.DTypeFloat64, appliance.DTypeFloat64List:
		s.Values = newNumeric(false, false)
	case appliance.DTypeTimestamp:
		s.Values = newNumeric(true, true)
	case appliance.DTypeString, appliance.DTypeBytes, appliance.DTypeStringList:
		s.Categories = &Categorical{}
	}
	switch f.Dtype {
	case appliance.DTypeString, appliance.DTypeBytes, appliance.DTypeInt64List, appliance.DTypeFloat64List, appliance.DTypeStringList:
		s.Lengths = newNumeric(true, false)
	}
	return s
}

// Add adds one value; a kind that does not match the dtype is an error.
func (s *FeatureStats) Add(v appliance.Value) error {
	if v.Kind == appliance.KindNull {
		s.Nulls++
		return nil
	}
	if v.Kind != s.Dtype.Kind() {
		return fmt.Errorf("feature %s (%s): a value of kind %d", s.Name, s.Dtype, v.Kind)
	}
	s.Count++
	switch v.Kind {
	case appliance.KindInt64, appliance.KindTimestamp:
		s.Values.AddInt(v.Int)
	case appliance.KindFloat64:
		s.Values.Add(v.Float)
	case appliance.KindBool:
		if v.Int != 0 {
			s.Trues++
		}
	case appliance.KindString, appliance.KindBytes:
		s.Categories.Add(v.Str)
		s.Lengths.AddInt(int64(len(v.Str)))
	case appliance.KindInt64List:
		s.Lengths.AddInt(int64(len(v.Ints)))
		for _, x := range v.Ints {
			s.Values.AddInt(x)
		}
	case appliance.KindFloat64List:
		s.Lengths.AddInt(int64(len(v.Floats)))
		for _, x := range v.Floats {
			s.Values.Add(x)
		}
	case appliance.KindStringList:
		s.Lengths.AddInt(int64(len(v.Strs)))
		for _, x := range v.Strs {
			s.Categories.Add(x)
		}
	}
	return nil
}

// Merge adds o's values to s; both must be of the same feature.
func (s *FeatureStats) Merge(o *FeatureStats) error {
	if s.Name != o.Name || s.Dtype != o.Dtype {
		return fmt.Errorf("merge statistics of feature %s (%s) with %s (%s)", s.Name, s.Dtype, o.Name, o.Dtype)
	}
	if (s.Values == nil) != (o.Values == nil) || (s.Categories == nil) != (o.Categories == nil) || (s.Lengths == nil) != (o.Lengths == nil) {
		return fmt.Errorf("merge statistics of feature %s: different accumulators", s.Name)
	}
	s.Count += o.Count
	s.Nulls += o.Nulls
	s.Trues += o.Trues
	if s.Values != nil {
		if err := s.Values.Merge(o.Values); err != nil {
			return fmt.Errorf("feature %s: %w", s.Name, err)
		}
	}
	if s.Categories != nil {
		s.Categories.Merge(o.Categories)
	}
	if s.Lengths != nil {
		if err := s.Lengths.Merge(o.Lengths); err != nil {
			return fmt.Errorf("feature %s lengths: %w", s.Name, err)
		}
	}
	return nil
}

const featureFormat = 1

// MarshalBinary encodes the feature's statistics, accumulators included.
func (s *FeatureStats) MarshalBinary() ([]byte, error) { return s.appendBinary(nil), nil }

func (s *FeatureStats) appendBinary(b []byte) []byte {
	b = append(b, featureFormat)
	b = appendString(b, s.Name)
	b = appendString(b, string(s.Dtype))
	b = binary.AppendUvarint(b, uint64(s.Count))
	b = binary.AppendUvarint(b, uint64(s.Nulls))
	b = binary.AppendUvarint(b, uint64(s.Trues))
	// The dtype says which accumulators follow.
	if s.Values != nil {
		b = s.Values.appendBinary(b)
	}
	if s.Categories != nil {
		b = s.Categories.appendBinary(b)
	}
	if s.Lengths != nil {
		b = s.Lengths.appendBinary(b)
	}
	return b
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (s *FeatureStats) UnmarshalBinary(data []byte) error {
	d := &decoder{b: data}
	if err := s.decode(d); err != nil {
		return err
	}
	return d.done()
}

func (s *FeatureStats) decode(d *decoder) error {
	if f := d.byte(); d.err == nil && f != featureFormat {
		return fmt.Errorf("feature statistics: unknown format %d", f)
	}
	name, dtype := d.string(), appliance.DType(d.string())
	if d.err != nil {
		return fmt.Errorf("feature statistics: %w", d.err)
	}
	if !dtype.Valid() {
		return fmt.Errorf("feature statistics of %q: unknown dtype %q", name, dtype)
	}
	n := NewFeatureStats(appliance.Feature{Name: name, Dtype: dtype})
	n.Count, n.Nulls, n.Trues = d.count(), d.count(), d.count()
	if d.err != nil {
		return fmt.Errorf("feature statistics of %s: %w", name, d.err)
	}
	if err := decodeNumeric(d, n.Values); err != nil {
		return fmt.Errorf("feature %s: %w", name, err)
	}
	if n.Categories != nil {
		if err := n.Categories.decode(d); err != nil {
			return fmt.Errorf("feature %s: %w", name, err)
		}
	}
	if err := decodeNumeric(d, n.Lengths); err != nil {
		return fmt.Errorf("feature %s lengths: %w", name, err)
	}
	*s = *n
	return nil
}

// decodeNumeric decodes into s, if the dtype has it, and checks that the
// stored kind is the one the dtype makes.
func decodeNumeric(d *decoder, s *Numeric) error {
	if s == nil {
		return nil
	}
	integer, shifted := s.integer, s.shifted
	if err := s.decode(d); err != nil {
		return err
	}
	if s.integer != integer || s.shifted != shifted {
		return fmt.Errorf("numeric statistics of the wrong kind")
	}
	return nil
}
