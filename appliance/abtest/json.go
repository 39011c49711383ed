package abtest

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// Float is a float64 that encodes NaN and infinities as JSON null, because
// encoding/json refuses them and an undefined statistic (a lift over a zero
// baseline, a variance of one unit) is a normal outcome here, not an error.
// null decodes back to NaN.
type Float float64

// MarshalJSON encodes a finite value as a number and any other as null.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON decodes a number, or null as NaN.
func (f *Float) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*f = Float(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Float(v)
	return nil
}

// Interval is a two-sided interval. It encodes as [low, high] in JSON, with
// null for an undefined bound.
type Interval struct {
	Low, High float64
}

// undefinedInterval is the interval of a statistic that cannot be computed.
func undefinedInterval() Interval { return Interval{math.NaN(), math.NaN()} }

// Contains reports whether x lies in the closed interval; false when the
// interval is undefined.
func (iv Interval) Contains(x float64) bool {
	return iv.Low <= x && x <= iv.High
}

// MarshalJSON encodes the interval as a two-element array.
func (iv Interval) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]Float{Float(iv.Low), Float(iv.High)})
}

// UnmarshalJSON decodes a two-element array; null bounds become NaN.
func (iv *Interval) UnmarshalJSON(b []byte) error {
	var a [2]Float
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	iv.Low, iv.High = float64(a[0]), float64(a[1])
	return nil
}
