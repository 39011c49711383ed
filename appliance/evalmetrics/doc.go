// Package evalmetrics computes the offline evaluation metrics of a model
// scored on a labeled set, streaming one row at a time, overall and per
// segment: for classifiers (Classifier) ROC AUC, log loss, Brier score,
// accuracy and the confusion counts at a threshold, expected calibration
// error and the reliability table; for regressors (Regressor) RMSE, MAE,
// mean error and R². The package is pure: no I/O, no clock.
//
// Definitions follow scikit-learn, so that numbers agree with what a data
// scientist computed before uploading a model: roc_auc_score,
// log_loss(eps=1e-15), brier_score_loss, accuracy_score,
// calibration_curve(strategy="uniform"), mean_squared_error,
// mean_absolute_error, r2_score.
//
// Memory is constant per segment, except for AUC, which needs the ranking
// of every score: up to MaxExactRows rows (16 bytes each) are kept and
// sorted, which gives the exact AUC; past that every accumulator switches
// to a histogram of scores and reports the AUC with a bound on its error.
//
// # Caveats
//
//   - A Classifier or Regressor is not safe for concurrent use.
//   - Classifier predictions are probabilities of the positive class, in
//     [0, 1]: log loss and calibration need them. A model that outputs a
//     margin must be calibrated (or passed through a sigmoid) first.
//   - The histogram AUC counts the positive–negative pairs within one bin
//     as half-ordered; AUCMaxError, half the fraction of such pairs, bounds
//     the difference from the exact AUC. Bins are even in logit between
//     10⁻⁷ and 1 − 10⁻⁷ (4096 by default: a step of 0.8% in odds), so that
//     scores crowded near 0 for rare positives still fall in many bins.
//   - At most MaxSegments segments are kept; the rows of later ones count
//     under OtherSegment (and in the overall metrics as always). Memory per
//     segment is a few hundred bytes, or 64 KiB with the AUC histogram.
//   - Sums are plain float64 sums: over 10⁹ rows the relative rounding of
//     log loss or RMSE is still far below what their sampling error is.
package evalmetrics
