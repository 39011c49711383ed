package abtest_test

import (
	"fmt"

	"github.com/mlnode/mlnode/appliance/abtest"
)

func ExampleAnalyze() {
	r, err := abtest.Analyze(abtest.Input{
		Arms: []abtest.Arm{
			{Name: "control", Weight: 1, Metrics: map[string]abtest.Moments{
				"signup": {N: 10000, Sum: 1000, SumSq: 1000},
			}},
			{Name: "new-form", Weight: 1, Metrics: map[string]abtest.Moments{
				"signup": {N: 10100, Sum: 1111, SumSq: 1111},
			}},
		},
		Metrics: []abtest.MetricSpec{{Name: "signup", Type: abtest.BinomialMetric}},
	})
	if err != nil {
		panic(err)
	}
	c := r.Comparisons[0]
	fmt.Printf("lift %.1f%% [%.1f%%, %.1f%%], p = %.3f, %s\n",
		100*c.Relative, 100*c.RelativeCI.Low, 100*c.RelativeCI.High, c.PValue, c.Verdict)
	fmt.Printf("chance to beat control %.1f%%, sample ratio mismatch: %v\n", 100*c.ChanceToBeatControl, r.SRM.Mismatch)
	// Output:
	// lift 10.0% [1.1%, 18.9%], p = 0.028, better
	// chance to beat control 98.6%, sample ratio mismatch: false
}
