// Package drift measures how a feature's or a model output's current
// distribution has moved from a reference one — PSI, two-sample
// Kolmogorov–Smirnov, Jensen–Shannon, normed Wasserstein, chi-square — and
// decides, with Evidently's defaults, whether it drifted (Detect).
//
// A numeric distribution is a raw sample (NumericSample), a feature
// statistics sketch (NumericSketch, from featstats.Numeric: a reference's
// stored statistics, or a live window's accumulator), or a histogram
// (NumericHistogram: a model manifest's reference). A categorical one is
// counts (CategoricalCounts, CategoricalValues) or a frequent-value sketch
// (CategoricalSketch). The package is pure: no I/O, no clock, no state.
// docs/drift.md gives every formula and default.
//
// Decisions that differ from Evidently, and why:
//
//   - PSI and numeric Jensen–Shannon use bins fixed by the reference's
//     quantiles (deciles), not Sturges bins over both samples: the bins
//     then depend on the reference only, so that a stored reference gives
//     the same bins for every window, and each holds enough reference mass
//     for ln(c/r) to be stable. Bins empty on both sides are left out.
//   - Chi-square is the test of homogeneity of the 2×k table, not
//     goodness of fit against the reference taken as exact (see ChiSquare).
//   - Categorical measures itemize the reference's 20 most frequent values
//     and pool the rest, new values included, as OtherCategory.
//   - Numeric features with few distinct values are not switched to
//     categorical tests: the caller chooses the kind. A bool feature is
//     CategoricalCounts of its true and false counts.
//
// # Caveats
//
//   - Sketches see values at their bins' representatives, within
//     featstats.RelativeAccuracy (1%) of the value. Two sketches of the
//     same kind share representatives, so measures between them are those
//     of the binned data: the KS statistic is at most the raw one and
//     within the largest bin's mass of it; Wasserstein is within about 1%
//     of the values' magnitude. A sample compared with a sketch is sketched
//     first for that reason, and a timestamp sketch, shifted by its own
//     origin, compares well only with another sketch.
//   - Frequent-value sketches count tracked values low by up to MaxError;
//     the shortfall lands in OtherCategory.
//   - A histogram knows its CDF only at its edges: the other side is seen
//     through the histogram's bins (uniform within each), which hides any
//     change inside a bin. The KS statistic is then the largest difference
//     at an edge, a lower bound.
//   - KS p-values are exact only for two raw samples of at most MaxExactKS
//     values; otherwise they use the Kolmogorov distribution at the
//     effective size n·m/(n+m), as scipy. With sketches that p-value also
//     inherits the statistic's binning error, and at large n any real
//     difference, however small, is significant: that is why Detect
//     switches to a distance above SmallReference reference values.
//   - Ties make the KS p-value conservative (it assumes continuous data).
package drift
