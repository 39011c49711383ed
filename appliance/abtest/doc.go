// Package abtest computes the statistics of an A/B experiment from
// incremental aggregates: per arm and metric, the count of exposed units and
// the sums of their values, of the squared values and, for CUPED, of a
// pre-exposure covariate and its products. Raw events are never read, so an
// analysis of a million units costs a few arithmetic operations per arm and
// metric, and aggregates computed on different days or nodes merge by
// addition.
//
// For each metric and each treatment arm against control it gives the
// absolute and relative difference with confidence intervals, a two-sided
// p-value (Welch's t test for means, a z test for proportions), an
// always-valid confidence sequence that survives peeking (Waudby-Smith et
// al.), the Bayesian chance to beat control and risk under a Gaussian
// approximation, variance reduction with a pre-exposure covariate (CUPED),
// Holm or Benjamini–Hochberg adjusted p-values across goal metrics, a
// sample-ratio-mismatch check, and effects broken down by a unit attribute
// with a test of heterogeneity. The formulas follow GrowthBook's gbstats so
// that numbers agree with a widely used reference; docs/experiment-statistics.md
// lists every formula, its source and the defaults.
//
// The package is pure: no I/O, no clock, no shared state. [Analyze] is the
// entry point; the functions it is made of are exported for callers that
// need one piece.
//
// # Caveats
//
//   - Moments keep raw sums, not centred ones, so that they merge by plain
//     addition. Variance is then SumSq/N − Mean², which loses digits when
//     the mean is much larger than the spread (timestamps, ids): centre such
//     values (subtract a constant) before accumulating.
//   - Every interval and p-value is asymptotic: it relies on the central
//     limit theorem for the arm means. With heavy-tailed metrics (revenue)
//     and a few hundred units per arm, coverage can be well below nominal.
//   - Binomial metrics use the population variance p(1−p) and a z test where
//     gbstats uses a Welch t test; the two agree to four digits once each
//     arm has a few hundred units.
//   - The relative lift divides by |control mean|, so that a negative
//     control mean does not flip the sign of an improvement (gbstats divides
//     by the signed mean). With a control mean of 0 the relative lift is
//     undefined: it is reported as null, and the test falls back to the
//     absolute difference.
//   - A value that cannot be computed (N < 2, zero variance, an undefined
//     lift) is NaN in Go and null in JSON, with a note saying why; nothing
//     panics on such input.
//   - Confidence intervals are not adjusted for multiple comparisons; only
//     the p-values of goal metrics are. Guardrails are never adjusted,
//     because adjusting would make harm harder to detect.
//   - The sequential interval is valid at every look only if the same
//     tuning parameter N* is used throughout an experiment; changing N*
//     after looking voids the guarantee.
//   - CUPED assumes the covariate was measured before exposure. A covariate
//     that the treatment can change biases the adjusted effect.
package abtest
