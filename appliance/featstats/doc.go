// Package featstats computes the statistics of a feature view version's
// events — count, nulls, min, max, mean, standard deviation, approximate
// quantiles, true rate, most frequent values, distinct count, lengths — with
// accumulators that merge and serialize, so that statistics through ingest
// sequence S plus the events after S give the statistics through a later
// sequence without reading the older events again. It also defines the
// "statistics" job that keeps them up to date (JobSpec), and the summary
// the API shows.
//
// The stored quantile sketches and category counters are the reference
// distributions for drift measures (PSI, KS): Numeric.Bins, Numeric.CDF and
// Categorical.Top give them at the sketches' resolution.
//
// The package is pure: it reads events through appliance.OfflineStore and
// keeps state through appliance.FeatureStatsStore. Quantiles come from
// DDSketch (github.com/DataDog/sketches-go), whose relative-error guarantee
// holds on any distribution, merges exactly, and handles negative values.
//
// # Caveats
//
//   - Quantiles are within 1% of the true value, relative to the value, not
//     to its rank: fine for amounts and durations, coarse for numbers far
//     from zero with a narrow spread (years, ids). Timestamps are measured
//     from the first timestamp seen for that reason. Integer quantiles in
//     summaries are rounded to the nearest integer.
//   - Frequent-value counts are lower bounds, off by at most MaxError, and
//     values longer than MaxCategoryBytes are counted by their prefix.
//   - Statistics describe every event ingested through ThroughSeq: retention
//     and erasure do not subtract from them. A full recomputation does, and
//     after erasing personal data it is needed to drop erased values from
//     the frequent-value lists.
//   - The job keeps a view version's new statistics in memory until its
//     scan ends and stores them at once: an interrupted scan is redone from
//     the stored sequence, never half counted.
//   - The sample standard deviation is reported (n-1 in the denominator).
package featstats
