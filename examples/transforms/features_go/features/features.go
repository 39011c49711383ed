// Package features is the feature transform of the features_go example: the
// reference computation that the wasm module (examples/transforms/features_go)
// runs inside wasm and tests run natively.
//
// Inputs, in order: amount (number), country (string), age (number); each may
// be null. Outputs, in order (see Outputs):
//
//   - log_amount = log1p(max(amount, 0)); 0 when amount is null or NaN;
//   - age_bucket = the index of age in [0,18) [18,25) [25,35) [35,50) [50,65)
//     [65,∞); -1 when age is null, NaN or negative;
//   - country_AE … country_US: a one-hot of country over Countries, exact and
//     case-sensitive; all 0 for any other value or null.
package features

import (
	"math"

	"github.com/mlnode/mlnode/examples/internal/guest"
)

// Countries are the categories of the one-hot, in output order.
var Countries = [...]string{"AE", "DE", "FR", "GB", "US"}

// AgeBounds are the upper bounds of the age buckets but the last; buckets
// start at 0.
var AgeBounds = [...]float64{18, 25, 35, 50, 65}

// Inputs and Outputs name the row transform's inputs and outputs in order.
var (
	Inputs  = [...]string{"amount", "country", "age"}
	Outputs = [...]string{"log_amount", "age_bucket", "country_AE", "country_DE", "country_FR", "country_GB", "country_US"}
)

// NumericInputs and NumericOutputs name the numeric variant's (mlnode_transform).
var (
	NumericInputs  = [...]string{"amount", "age"}
	NumericOutputs = [...]string{"log_amount", "age_bucket"}
)

// Row computes the outputs for one row into out, which must hold
// len(Outputs) values. It returns guest.ErrInputType if amount or age is a
// string or country is a number.
func Row(amount, country, age guest.Value, out []float64) int32 {
	out = out[:len(Outputs)]
	if amount.Kind == guest.String || age.Kind == guest.String || country.Kind == guest.Number {
		return guest.ErrInputType
	}
	out[0] = LogAmount(number(amount))
	out[1] = AgeBucket(number(age))
	for i, c := range Countries {
		out[2+i] = 0
		if country.Kind == guest.String && string(country.Str) == c { // no allocation: the compiler compares in place
			out[2+i] = 1
		}
	}
	return guest.OK
}

// number returns v as a float64, NaN for null.
func number(v guest.Value) float64 {
	if v.Kind != guest.Number {
		return math.NaN()
	}
	return v.Num
}

// LogAmount returns log1p(max(amount, 0)), or 0 for NaN (null).
func LogAmount(amount float64) float64 {
	if math.IsNaN(amount) {
		return 0
	}
	return math.Log1p(max(amount, 0))
}

// AgeBucket returns the bucket index of age, or -1 for NaN (null) or a
// negative age.
func AgeBucket(age float64) float64 {
	if math.IsNaN(age) || age < 0 {
		return -1
	}
	for i, b := range AgeBounds {
		if age < b {
			return float64(i)
		}
	}
	return float64(len(AgeBounds))
}
