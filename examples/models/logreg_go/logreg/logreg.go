// Package logreg is the 32-feature logistic regression of the logreg examples:
// its fixed weights and the reference computation. The Go module
// (examples/models/logreg_go) runs this code inside wasm; the C module
// (examples/models/logreg_c/model.c) carries the same weights, which
// examples_test checks digit for digit.
package logreg

import "math"

// NumInputs is the number of features; the model has one output, the
// probability of the positive class.
const NumInputs = 32

// Weights and Bias are short decimals so that Go and C parse every literal to
// the same float64.
var Weights = [NumInputs]float64{
	-0.282, -0.559, 0.241, -0.684, 0.057, -0.215, -0.707, 0.012,
	-0.74, -0.106, -0.688, -0.655, -0.121, 0.523, -0.602, -0.443,
	0.204, 0.716, 0.123, -0.165, 0.762, -0.725, 0.574, -0.337,
	-0.569, -0.612, -0.306, 0.506, -0.511, 0.131, 0.222, -0.204,
}

// Bias is the intercept.
const Bias = 0.125

// Predict returns sigmoid(Bias + Weights·x). x must hold NumInputs values.
// The sum runs left to right, as in the C module, so both round alike.
func Predict(x []float64) float64 {
	x = x[:NumInputs]
	z := Bias
	for i, w := range Weights {
		z += w * x[i]
	}
	return 1 / (1 + math.Exp(-z))
}
