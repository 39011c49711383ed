package evalmetrics_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/evalmetrics"
)

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-12*math.Max(1, math.Abs(want)) }

func newClassifier(t testing.TB, o evalmetrics.ClassifierOptions) *evalmetrics.Classifier {
	t.Helper()
	c, err := evalmetrics.NewClassifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A scored set with tied scores (0.3 and 0.5 each on a positive and a
// negative) and the extremes 0 and 1, in two segments.
var (
	scores   = []float64{0.1, 0.4, 0.35, 0.8, 0.65, 0.2, 0.9, 0.5, 0.5, 0.3, 0.7, 0.05, 0.95, 0.6, 0.3, 0.45, 0.0, 1.0, 0.55, 0.25}
	labels   = []float64{0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0}
	segments = []string{"a", "a", "b", "b", "a", "a", "b", "b", "a", "a", "b", "b", "a", "a", "b", "b", "a", "a", "b", "b"}
)

type classifierWant struct {
	count, positives              int64
	auc, logLoss, brier, acc, ece float64
	confusion                     evalmetrics.Confusion
	meanPred, fracPos             []float64 // of the non-empty reliability bins
}

// Reference values: scikit-learn 1.2.1 (Debian bookworm) on the set above
// and its segments: roc_auc_score, log_loss(eps=1e-15), brier_score_loss,
// accuracy_score(y, p >= 0.5), confusion_matrix, and
// calibration_curve(n_bins=10) for the reliability table, whose bins also
// give ECE = Σ n_b/n·|prob_pred − prob_true|.
var classifierRef = map[string]classifierWant{
	"": {count: 20, positives: 10, auc: 0.89, logLoss: 0.4227144623118383, brier: 0.140375, acc: 0.8, ece: 0.1175,
		confusion: evalmetrics.Confusion{TrueNegatives: 8, FalsePositives: 2, FalseNegatives: 2, TruePositives: 8},
		meanPred:  []float64{0.05, 0.2, 0.2833333333333333, 0.375, 0.48333333333333334, 0.575, 0.675, 0.8, 0.9, 0.975},
		fracPos:   []float64{0, 0, 0.3333333333333333, 0.5, 0.3333333333333333, 0.5, 1, 1, 1, 1}},
	"a": {count: 10, positives: 4, auc: 0.9583333333333334, logLoss: 0.32875187575908665, brier: 0.1035, acc: 0.9, ece: 0.25,
		confusion: evalmetrics.Confusion{TrueNegatives: 5, FalsePositives: 1, FalseNegatives: 0, TruePositives: 4},
		meanPred:  []float64{0.05, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.975},
		fracPos:   []float64{0, 0, 0, 0, 1, 0, 1, 1}},
	"b": {count: 10, positives: 6, auc: 0.8333333333333333, logLoss: 0.51667704886459, brier: 0.17725, acc: 0.7, ece: 0.315,
		confusion: evalmetrics.Confusion{TrueNegatives: 3, FalsePositives: 1, FalseNegatives: 2, TruePositives: 4},
		meanPred:  []float64{0.05, 0.275, 0.35, 0.475, 0.55, 0.7, 0.8, 0.9},
		fracPos:   []float64{0, 0.5, 1, 0, 1, 1, 1, 1}},
}

func checkClassifier(t *testing.T, got evalmetrics.ClassifierMetrics, want classifierWant, exact bool) {
	t.Helper()
	if got.Count != want.count || got.Positives != want.positives || got.Confusion != want.confusion {
		t.Errorf("segment %q: counts %d/%d %+v, want %d/%d %+v", got.Segment, got.Count, got.Positives, got.Confusion, want.count, want.positives, want.confusion)
	}
	if got.AUC == nil || got.AUCExact != exact || exact && !near(*got.AUC, want.auc) || !exact && math.Abs(*got.AUC-want.auc) > got.AUCMaxError+1e-12 {
		t.Errorf("segment %q: AUC %v (exact %v, max error %v), want %v", got.Segment, deref(got.AUC), got.AUCExact, got.AUCMaxError, want.auc)
	}
	for _, m := range []struct {
		name      string
		got, want float64
	}{{"log loss", got.LogLoss, want.logLoss}, {"Brier", got.Brier, want.brier}, {"accuracy", got.Accuracy, want.acc}, {"ECE", got.ECE, want.ece}} {
		if !near(m.got, m.want) {
			t.Errorf("segment %q: %s %v, want %v", got.Segment, m.name, m.got, m.want)
		}
	}
	if len(got.Reliability) != len(want.meanPred) {
		t.Fatalf("segment %q: %d reliability bins, want %d: %+v", got.Segment, len(got.Reliability), len(want.meanPred), got.Reliability)
	}
	for i, b := range got.Reliability {
		if !near(b.MeanPrediction, want.meanPred[i]) || !near(b.FractionPositive, want.fracPos[i]) || !(b.Lower < b.Upper) {
			t.Errorf("segment %q: reliability bin %d = %+v, want mean prediction %v, fraction positive %v", got.Segment, i, b, want.meanPred[i], want.fracPos[i])
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestClassifier_Sklearn(t *testing.T) {
	for _, tt := range []struct {
		name  string
		opts  evalmetrics.ClassifierOptions
		exact bool
	}{
		{"exact", evalmetrics.ClassifierOptions{}, true},
		// Past 5 rows the AUC comes from histograms, whose bound must
		// contain the exact value.
		{"histogram", evalmetrics.ClassifierOptions{MaxExactRows: 5}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newClassifier(t, tt.opts)
			for i := range scores {
				if err := c.Add(scores[i], labels[i], segments[i]); err != nil {
					t.Fatal(err)
				}
			}
			r, err := c.Report()
			if err != nil {
				t.Fatal(err)
			}
			if r.Threshold != 0.5 || len(r.Segments) != 2 || r.Segments[0].Segment != "a" || r.Segments[1].Segment != "b" {
				t.Fatalf("report %+v", r)
			}
			checkClassifier(t, r.Overall, classifierRef[""], tt.exact)
			checkClassifier(t, r.Segments[0], classifierRef["a"], tt.exact)
			checkClassifier(t, r.Segments[1], classifierRef["b"], tt.exact)
		})
	}
}

// Documented examples: roc_auc_score on y = [0, 0, 1, 1], scores [0.1,
// 0.4, 0.35, 0.8] is 0.75 (scikit-learn user guide, "Receiver operating
// characteristic"); log_loss(["spam", "ham", "ham", "spam"], [[.1, .9],
// [.9, .1], [.8, .2], [.35, .65]]) is 0.21616… (log_loss docstring), "spam"
// being the positive class; a confident mistake is clipped to
// −ln(10⁻¹⁵) = 34.538776394910684.
func TestClassifier_DocumentedExamples(t *testing.T) {
	tests := []struct {
		name            string
		scores, labels  []float64
		auc             *float64
		logLoss, margin float64
	}{
		{"roc_auc_score", []float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, ptr(0.75), math.NaN(), 0},
		{"log_loss", []float64{0.9, 0.1, 0.2, 0.65}, []float64{1, 0, 0, 1}, ptr(1), 0.21616187468057912, 0},
		{"clipped", []float64{0}, []float64{1}, nil, 34.538776394910684, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClassifier(t, evalmetrics.ClassifierOptions{})
			for i := range tt.scores {
				if err := c.Add(tt.scores[i], tt.labels[i], ""); err != nil {
					t.Fatal(err)
				}
			}
			r, err := c.Report()
			if err != nil {
				t.Fatal(err)
			}
			if (tt.auc == nil) != (r.Overall.AUC == nil) || tt.auc != nil && !near(*r.Overall.AUC, *tt.auc) {
				t.Errorf("AUC %v, want %v", deref(r.Overall.AUC), deref(tt.auc))
			}
			if !math.IsNaN(tt.logLoss) && !near(r.Overall.LogLoss, tt.logLoss) {
				t.Errorf("log loss %v, want %v", r.Overall.LogLoss, tt.logLoss)
			}
		})
	}
}

func ptr(f float64) *float64 { return &f }

func TestClassifier_OneClass_AUCUndefined(t *testing.T) {
	c := newClassifier(t, evalmetrics.ClassifierOptions{})
	for _, row := range []struct {
		p, y float64
		seg  string
	}{{0.2, 0, "negatives only"}, {0.7, 0, "negatives only"}, {0.9, 0, "mixed"}, {0.4, 1, "mixed"}} {
		if err := c.Add(row.p, row.y, row.seg); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.Report()
	if err != nil {
		t.Fatal(err)
	}
	if r.Overall.AUC == nil || !near(*r.Overall.AUC, 1.0/3) {
		t.Errorf("overall AUC %v, want 1/3", deref(r.Overall.AUC))
	}
	neg := r.Segments[1]
	if neg.Segment != "negatives only" || neg.AUC != nil || neg.AUCUndefined == "" || neg.AUCExact || math.IsNaN(neg.LogLoss) {
		t.Errorf("segment %+v: want a null AUC with a reason", neg)
	}
	mixed := r.Segments[0]
	if mixed.AUC == nil || *mixed.AUC != 0 {
		t.Errorf("segment %+v: want AUC 0 (the positive scored below the negative)", mixed)
	}
}

// Past MaxExactRows the histogram AUC must stay within its stated bound of
// the exact one, and the bound must be small for spread-out scores.
func TestClassifier_HistogramAUC_WithinBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	exact := newClassifier(t, evalmetrics.ClassifierOptions{})
	approx := newClassifier(t, evalmetrics.ClassifierOptions{MaxExactRows: 1000})
	for range 200000 {
		y := 0.0
		if rng.Float64() < 0.03 { // rare positives, scored low as they are in practice
			y = 1
		}
		logit := -4 + 1.5*y + rng.NormFloat64()
		p := 1 / (1 + math.Exp(-logit))
		seg := []string{"web", "app"}[rng.IntN(2)]
		for _, c := range []*evalmetrics.Classifier{exact, approx} {
			if err := c.Add(p, y, seg); err != nil {
				t.Fatal(err)
			}
		}
	}
	re, err := exact.Report()
	if err != nil {
		t.Fatal(err)
	}
	ra, err := approx.Report()
	if err != nil {
		t.Fatal(err)
	}
	pairs := [][2]evalmetrics.ClassifierMetrics{{re.Overall, ra.Overall}, {re.Segments[0], ra.Segments[0]}, {re.Segments[1], ra.Segments[1]}}
	for _, p := range pairs {
		e, a := p[0], p[1]
		t.Logf("segment %q: exact AUC %v, histogram %v ± %v", e.Segment, *e.AUC, *a.AUC, a.AUCMaxError)
		if !e.AUCExact || a.AUCExact || a.AUCMaxError > 1e-3 || math.Abs(*a.AUC-*e.AUC) > a.AUCMaxError {
			t.Errorf("segment %q: exact AUC %v, histogram %v ± %v", e.Segment, *e.AUC, *a.AUC, a.AUCMaxError)
		}
		if !near(a.LogLoss, e.LogLoss) || a.Confusion != e.Confusion || !near(a.ECE, e.ECE) {
			t.Errorf("segment %q: streaming metrics differ: %+v vs %+v", e.Segment, a, e)
		}
	}
}

func TestClassifier_Threshold(t *testing.T) {
	c := newClassifier(t, evalmetrics.ClassifierOptions{Threshold: 0.3})
	for i := range scores {
		if err := c.Add(scores[i], labels[i], ""); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.Report()
	if err != nil {
		t.Fatal(err)
	}
	// Every positive scores at least 0.3 (one exactly: ≥ counts), and so do
	// five negatives.
	want := evalmetrics.Confusion{TruePositives: 10, FalsePositives: 5, TrueNegatives: 5, FalseNegatives: 0}
	if r.Overall.Confusion != want || r.Threshold != 0.3 || !near(r.Overall.Accuracy, 0.75) {
		t.Errorf("confusion %+v accuracy %v, want %+v 0.75", r.Overall.Confusion, r.Overall.Accuracy, want)
	}
}

func TestClassifier_MaxSegments(t *testing.T) {
	c := newClassifier(t, evalmetrics.ClassifierOptions{MaxSegments: 2})
	for i, seg := range []string{"x", "y", "z", "w", "x"} {
		if err := c.Add(0.5, float64(i%2), seg); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.Report()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var counts []int64
	for _, s := range r.Segments {
		names, counts = append(names, s.Segment), append(counts, s.Count)
	}
	if len(names) != 3 || names[0] != evalmetrics.OtherSegment || counts[0] != 2 || names[1] != "x" || counts[1] != 2 || r.Overall.Count != 5 {
		t.Errorf("segments %v %v", names, counts)
	}
}

func TestErrors(t *testing.T) {
	c := newClassifier(t, evalmetrics.ClassifierOptions{})
	reg, err := evalmetrics.NewRegressor(evalmetrics.RegressorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		err      error
		wantCode string
	}{
		{"label 2", c.Add(0.5, 2, ""), appliance.EINVALID},
		{"NaN label", c.Add(0.5, math.NaN(), ""), appliance.EINVALID},
		{"NaN prediction", c.Add(math.NaN(), 1, ""), appliance.EINVALID},
		{"prediction above 1", c.Add(1.5, 1, ""), appliance.EINVALID},
		{"negative prediction", c.Add(-0.1, 0, ""), appliance.EINVALID},
		{"infinite regression label", reg.Add(1, math.Inf(-1), ""), appliance.EINVALID},
		{"NaN regression prediction", reg.Add(math.NaN(), 1, ""), appliance.EINVALID},
		{"classifier without rows", second(c.Report()), appliance.EUNPROCESSABLE},
		{"regressor without rows", second(reg.Report()), appliance.EUNPROCESSABLE},
		{"threshold", second(evalmetrics.NewClassifier(evalmetrics.ClassifierOptions{Threshold: 1.5})), appliance.EINVALID},
		{"one AUC bin", second(evalmetrics.NewClassifier(evalmetrics.ClassifierOptions{AUCBins: 1})), appliance.EINVALID},
		{"negative segments", second(evalmetrics.NewRegressor(evalmetrics.RegressorOptions{MaxSegments: -1})), appliance.EINVALID},
	}
	for _, tt := range tests {
		if code := appliance.ErrorCode(tt.err); code != tt.wantCode {
			t.Errorf("%s: error code %q (%v), want %q", tt.name, code, tt.err, tt.wantCode)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// Reference values: scikit-learn's documented example (mean_squared_error
// and mean_absolute_error docstrings, r2_score's): y_true [3, −0.5, 2, 7],
// y_pred [2.5, 0, 2, 8] give MSE 0.375, MAE 0.5, R² 0.948…; and
// scikit-learn 1.2.1 on the segmented set below (RMSE is
// mean_squared_error(squared=False)).
func TestRegressor_Sklearn(t *testing.T) {
	type want struct {
		count               int64
		rmse, mae, r2, bias float64
	}
	tests := []struct {
		name        string
		pred, label []float64
		seg         []string
		overall     want
		segments    []want
	}{
		{"documented", []float64{2.5, 0, 2, 8}, []float64{3, -0.5, 2, 7}, []string{"", "", "", ""},
			want{4, 0.6123724356957945, 0.5, 0.9486081370449679, 0.25}, nil},
		{"segmented",
			[]float64{1.0, 2.5, 3.0, 5.0, 8.0, -1.0, 0.5, 7.0}, []float64{1.5, 2.0, 3.5, 4.0, 10.0, -2.0, 0.5, 7.25},
			[]string{"x", "x", "y", "y", "x", "y", "y", "x"},
			want{8, 0.9228014412645875, 0.71875, 0.93312370580566, -0.09375},
			[]want{{4, 1.0680004681646913, 0.8125, 0.9108396946564885, -0.5625}, {4, 0.75, 0.625, 0.9042553191489362, 0.375}}},
	}
	check := func(t *testing.T, got evalmetrics.RegressorMetrics, w want) {
		t.Helper()
		if got.Count != w.count || !near(got.RMSE, w.rmse) || !near(got.MAE, w.mae) || got.R2 == nil || !near(*got.R2, w.r2) || !near(got.MeanError, w.bias) {
			t.Errorf("segment %q: %+v (R² %v), want %+v", got.Segment, got, deref(got.R2), w)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := evalmetrics.NewRegressor(evalmetrics.RegressorOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.pred {
				if err := r.Add(tt.pred[i], tt.label[i], tt.seg[i]); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := r.Report()
			if err != nil {
				t.Fatal(err)
			}
			check(t, rep.Overall, tt.overall)
			if len(rep.Segments) != len(tt.segments) {
				t.Fatalf("%d segments, want %d", len(rep.Segments), len(tt.segments))
			}
			for i, w := range tt.segments {
				check(t, rep.Segments[i], w)
			}
		})
	}
}

func TestRegressor_ConstantLabels_R2Undefined(t *testing.T) {
	r, err := evalmetrics.NewRegressor(evalmetrics.RegressorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []float64{1, 2, 3} {
		if err := r.Add(p, 2, "s"); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := r.Report()
	if err != nil {
		t.Fatal(err)
	}
	if m := rep.Overall; m.R2 != nil || m.R2Undefined == "" || !near(m.RMSE, math.Sqrt(2.0/3)) || !near(m.MAE, 2.0/3) {
		t.Errorf("overall %+v: want a null R² with a reason", m)
	}
}
