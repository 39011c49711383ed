package drift_test

import (
	"fmt"

	"github.com/mlnode/mlnode/appliance/drift"
	"github.com/mlnode/mlnode/appliance/featstats"
)

// A feature's stored statistics as the reference, and the statistics of a
// recent window as the current distribution.
func ExampleDetect() {
	var training, window featstats.Numeric
	for _, x := range normal(1, 5000, 40, 8) {
		training.Add(x)
	}
	for _, x := range normal(2, 2000, 44, 8) { // the mean moved by half a deviation
		window.Add(x)
	}
	ref, err := drift.NumericSketch(&training)
	if err != nil {
		panic(err)
	}
	cur, err := drift.NumericSketch(&window)
	if err != nil {
		panic(err)
	}
	r, err := drift.Detect(ref, cur, drift.Options{})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %.2f (threshold %.1f): drifted %v, PSI alert %v\n", r.Method, r.Statistic, r.Threshold, r.Drifted, r.PSIAlert)
	// Output: wasserstein_norm 0.58 (threshold 0.1): drifted true, PSI alert true
}
