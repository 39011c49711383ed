package evalmetrics

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/mlnode/mlnode/appliance"
)

// Defaults of ClassifierOptions and RegressorOptions.
const (
	DefaultThreshold       = 0.5
	DefaultCalibrationBins = 10
	DefaultMaxExactRows    = 1_000_000
	DefaultAUCBins         = 4096
	DefaultMaxSegments     = 256
)

// LogLossEpsilon clips probabilities to [ε, 1−ε] in log loss:
// scikit-learn's default before 1.2, so that one confident mistake costs
// ln(10¹⁵) ≈ 34.5 rather than infinity.
const LogLossEpsilon = 1e-15

// OtherSegment collects the rows of segments past MaxSegments.
const OtherSegment = "(other)"

// ClassifierOptions configure a Classifier; zero fields take the defaults.
type ClassifierOptions struct {
	// Threshold: a row is predicted positive when its prediction is at
	// least Threshold, in (0, 1]. Default 0.5.
	Threshold float64
	// CalibrationBins is the number of equal-width bins of the reliability
	// table and the expected calibration error. Default 10.
	CalibrationBins int
	// MaxExactRows is how many rows are kept for the exact AUC. Default 10⁶.
	MaxExactRows int
	// AUCBins is the resolution of the AUC histogram past MaxExactRows.
	// Default 4096.
	AUCBins int
	// MaxSegments bounds the number of segments kept. Default 256.
	MaxSegments int
}

// Classifier accumulates a binary classifier's metrics.
type Classifier struct {
	opts     ClassifierOptions
	overall  *classAcc
	segments map[string]*classAcc
	rows     []scored // kept for the exact AUC; nil once histograms took over
	exact    bool
}

// scored is one row kept for the exact AUC; seg indexes Classifier.order,
// −1 for no segment.
type scored struct {
	p   float64
	seg int32
	pos bool
}

type classAcc struct {
	name             string
	index            int32
	n, pos           int64
	logLoss, brier   float64 // sums
	tp, fp, tn, fn   int64
	calN             []int64
	calPred, calPos  []float64
	posHist, negHist []float64 // AUC histograms, once past MaxExactRows
}

// NewClassifier returns an empty Classifier.
func NewClassifier(opts ClassifierOptions) (*Classifier, error) {
	switch {
	case !(opts.Threshold >= 0 && opts.Threshold <= 1):
		return nil, appliance.Invalid("threshold", "must be in (0, 1]")
	case opts.CalibrationBins < 0 || opts.CalibrationBins > 1000:
		return nil, appliance.Invalid("calibration_bins", "must be between 1 and 1000")
	case opts.MaxExactRows < 0:
		return nil, appliance.Invalid("max_exact_rows", "must not be negative")
	case opts.AUCBins < 0 || opts.AUCBins == 1 || opts.AUCBins > 1<<20:
		return nil, appliance.Invalid("auc_bins", "must be between 2 and 2^20")
	case opts.MaxSegments < 0:
		return nil, appliance.Invalid("max_segments", "must not be negative")
	}
	if opts.Threshold == 0 {
		opts.Threshold = DefaultThreshold
	}
	if opts.CalibrationBins == 0 {
		opts.CalibrationBins = DefaultCalibrationBins
	}
	if opts.MaxExactRows == 0 {
		opts.MaxExactRows = DefaultMaxExactRows
	}
	if opts.AUCBins == 0 {
		opts.AUCBins = DefaultAUCBins
	}
	if opts.MaxSegments == 0 {
		opts.MaxSegments = DefaultMaxSegments
	}
	c := &Classifier{opts: opts, segments: map[string]*classAcc{}, exact: true}
	c.overall = c.newAcc("", -1)
	return c, nil
}

func (c *Classifier) newAcc(name string, index int32) *classAcc {
	b := c.opts.CalibrationBins
	a := &classAcc{name: name, index: index, calN: make([]int64, b), calPred: make([]float64, b), calPos: make([]float64, b)}
	if !c.exact {
		a.posHist, a.negHist = make([]float64, c.opts.AUCBins), make([]float64, c.opts.AUCBins)
	}
	return a
}

// Add adds one scored row: the predicted probability of the positive
// class, the label (0 or 1), and the row's segment ("" for none).
func (c *Classifier) Add(prediction, label float64, segment string) error {
	if !(prediction >= 0 && prediction <= 1) {
		return appliance.Invalid("prediction", "%v is not a probability in [0, 1]", prediction)
	}
	if label != 0 && label != 1 {
		return appliance.Invalid("label", "%v is not 0 or 1", label)
	}
	pos := label == 1
	seg := c.segment(segment)
	c.overall.add(prediction, pos, c.opts)
	index := int32(-1)
	if seg != nil {
		seg.add(prediction, pos, c.opts)
		index = seg.index
	}
	if !c.exact {
		c.overall.addHist(prediction, pos, c.opts.AUCBins)
		if seg != nil {
			seg.addHist(prediction, pos, c.opts.AUCBins)
		}
		return nil
	}
	c.rows = append(c.rows, scored{p: prediction, seg: index, pos: pos})
	if len(c.rows) > c.opts.MaxExactRows {
		c.toHistograms()
	}
	return nil
}

func (c *Classifier) segment(name string) *classAcc {
	if name == "" {
		return nil
	}
	if a, ok := c.segments[name]; ok {
		return a
	}
	if len(c.segments) >= c.opts.MaxSegments {
		name = OtherSegment
		if a, ok := c.segments[name]; ok {
			return a
		}
	}
	// The caller's string may alias a request buffer.
	name = strings.Clone(name)
	a := c.newAcc(name, int32(len(c.segments)))
	c.segments[name] = a
	return a
}

func (a *classAcc) add(p float64, pos bool, o ClassifierOptions) {
	a.n++
	y := 0.0
	if pos {
		a.pos++
		y = 1
	}
	q := min(max(p, LogLossEpsilon), 1-LogLossEpsilon)
	if pos {
		a.logLoss -= math.Log(q)
	} else {
		a.logLoss -= math.Log1p(-q)
	}
	a.brier += (p - y) * (p - y)
	switch predicted := p >= o.Threshold; {
	case predicted && pos:
		a.tp++
	case predicted:
		a.fp++
	case pos:
		a.fn++
	default:
		a.tn++
	}
	b := calibrationBin(p, o.CalibrationBins)
	a.calN[b]++
	a.calPred[b] += p
	a.calPos[b] += y
}

// calibrationBin returns the bin of p as scikit-learn's calibration_curve:
// the number of inner edges i/bins (computed as numpy's linspace does,
// i·(1/bins)) strictly below p, so that bins are (a, b] and the first
// [0, b].
func calibrationBin(p float64, bins int) int {
	step := 1 / float64(bins)
	b := min(max(int(math.Ceil(p*float64(bins)))-1, 0), bins-1)
	for b > 0 && !(float64(b)*step < p) {
		b--
	}
	for b < bins-1 && float64(b+1)*step < p {
		b++
	}
	return b
}

// toHistograms replaces the kept rows by score histograms.
func (c *Classifier) toHistograms() {
	c.exact = false
	byIndex := make([]*classAcc, len(c.segments))
	for _, a := range c.segments {
		byIndex[a.index] = a
	}
	for _, a := range append(byIndex, c.overall) {
		a.posHist, a.negHist = make([]float64, c.opts.AUCBins), make([]float64, c.opts.AUCBins)
	}
	for _, r := range c.rows {
		c.overall.addHist(r.p, r.pos, c.opts.AUCBins)
		if r.seg >= 0 {
			byIndex[r.seg].addHist(r.p, r.pos, c.opts.AUCBins)
		}
	}
	c.rows = nil
}

// logitRange is logit(1 − 10⁻⁷): the histogram spans [−logitRange,
// logitRange], scores beyond falling in the end bins.
var logitRange = math.Log((1 - 1e-7) / 1e-7)

func (a *classAcc) addHist(p float64, pos bool, bins int) {
	q := min(max(p, 1e-7), 1-1e-7)
	l := math.Log(q / (1 - q))
	b := min(max(int((l+logitRange)/(2*logitRange)*float64(bins)), 0), bins-1)
	if pos {
		a.posHist[b]++
	} else {
		a.negHist[b]++
	}
}

// ClassifierReport is a classifier's metrics, overall and per segment.
type ClassifierReport struct {
	Threshold float64             `json:"threshold"`
	Overall   ClassifierMetrics   `json:"overall"`
	Segments  []ClassifierMetrics `json:"segments,omitempty"` // by name
}

// ClassifierMetrics is the metrics of one set of rows.
type ClassifierMetrics struct {
	Segment   string `json:"segment,omitempty"`
	Count     int64  `json:"count"`
	Positives int64  `json:"positives"`
	// AUC is null when undefined (one class only), AUCUndefined saying why.
	AUC          *float64         `json:"auc"`
	AUCUndefined string           `json:"auc_undefined,omitempty"`
	AUCExact     bool             `json:"auc_exact"`
	AUCMaxError  float64          `json:"auc_max_error"` // 0 when exact
	LogLoss      float64          `json:"log_loss"`
	Brier        float64          `json:"brier"`
	Accuracy     float64          `json:"accuracy"`
	Confusion    Confusion        `json:"confusion"`
	ECE          float64          `json:"ece"` // Σ nᵦ/n·|mean predictionᵦ − fraction positiveᵦ|
	Reliability  []ReliabilityBin `json:"reliability"`
}

// Confusion is the confusion matrix at the report's threshold.
type Confusion struct {
	TruePositives  int64 `json:"tp"`
	FalsePositives int64 `json:"fp"`
	TrueNegatives  int64 `json:"tn"`
	FalseNegatives int64 `json:"fn"`
}

// ReliabilityBin is one non-empty bin of the reliability table: rows whose
// prediction is in (Lower, Upper] ([0, Upper] for the first).
type ReliabilityBin struct {
	Lower            float64 `json:"lower"`
	Upper            float64 `json:"upper"`
	Count            int64   `json:"count"`
	MeanPrediction   float64 `json:"mean_prediction"`
	FractionPositive float64 `json:"fraction_positive"`
}

// Report returns the metrics of the rows added so far; it is an error when
// there are none. Adding more rows afterwards is allowed.
func (c *Classifier) Report() (*ClassifierReport, error) {
	if c.overall.n == 0 {
		return nil, appliance.Errorf(appliance.EUNPROCESSABLE, "no rows to evaluate")
	}
	segs := make([]*classAcc, len(c.segments))
	for _, a := range c.segments {
		segs[a.index] = a
	}
	r := &ClassifierReport{Threshold: c.opts.Threshold, Overall: c.overall.metrics(c.opts)}
	for _, a := range segs {
		r.Segments = append(r.Segments, a.metrics(c.opts))
	}
	if c.exact {
		c.exactAUC(r, len(segs))
	} else {
		c.overall.histogramAUC(&r.Overall)
		for i, a := range segs {
			a.histogramAUC(&r.Segments[i])
		}
	}
	slices.SortFunc(r.Segments, func(a, b ClassifierMetrics) int { return strings.Compare(a.Segment, b.Segment) })
	return r, nil
}

func (a *classAcc) metrics(o ClassifierOptions) ClassifierMetrics {
	n := float64(a.n)
	m := ClassifierMetrics{
		Segment: a.name, Count: a.n, Positives: a.pos,
		LogLoss: a.logLoss / n, Brier: a.brier / n, Accuracy: float64(a.tp+a.tn) / n,
		Confusion: Confusion{TruePositives: a.tp, FalsePositives: a.fp, TrueNegatives: a.tn, FalseNegatives: a.fn},
	}
	step := 1 / float64(o.CalibrationBins)
	for b, k := range a.calN {
		if k == 0 {
			continue
		}
		bin := ReliabilityBin{Lower: float64(b) * step, Upper: float64(b+1) * step, Count: k,
			MeanPrediction: a.calPred[b] / float64(k), FractionPositive: a.calPos[b] / float64(k)}
		if b == o.CalibrationBins-1 {
			bin.Upper = 1
		}
		m.Reliability = append(m.Reliability, bin)
		m.ECE += float64(k) / n * math.Abs(bin.MeanPrediction-bin.FractionPositive)
	}
	if a.pos == 0 {
		m.AUCUndefined = "no positive labels: AUC needs both classes"
	} else if a.pos == a.n {
		m.AUCUndefined = "no negative labels: AUC needs both classes"
	}
	return m
}

// exactAUC computes every AUC in one pass over the rows sorted by score:
// AUC = Σ over positives of the negatives scored below, plus half those
// tied, over P·N (the Mann–Whitney U; equal to the area under
// roc_curve's trapezoids).
func (c *Classifier) exactAUC(r *ClassifierReport, nseg int) {
	slices.SortFunc(c.rows, func(a, b scored) int { return cmp.Compare(a.p, b.p) })
	type tally struct{ pairs, negBelow, groupPos, groupNeg float64 }
	all := tally{}
	segs := make([]tally, nseg)
	var touched []int32
	flush := func(t *tally) {
		t.pairs += t.groupPos*t.negBelow + t.groupPos*t.groupNeg/2
		t.negBelow += t.groupNeg
		t.groupPos, t.groupNeg = 0, 0
	}
	count := func(t *tally, pos bool) {
		if pos {
			t.groupPos++
		} else {
			t.groupNeg++
		}
	}
	for i, row := range c.rows {
		if i > 0 && row.p != c.rows[i-1].p {
			flush(&all)
			for _, s := range touched {
				flush(&segs[s])
			}
			touched = touched[:0]
		}
		count(&all, row.pos)
		if row.seg >= 0 {
			s := &segs[row.seg]
			if s.groupPos+s.groupNeg == 0 {
				touched = append(touched, row.seg)
			}
			count(s, row.pos)
		}
	}
	flush(&all)
	for _, s := range touched {
		flush(&segs[s])
	}
	setAUC(&r.Overall, all.pairs, 0, true)
	for i := range r.Segments {
		setAUC(&r.Segments[i], segs[i].pairs, 0, true)
	}
}

func (a *classAcc) histogramAUC(m *ClassifierMetrics) {
	var pairs, ties, negBelow float64
	for b := range a.posHist {
		pairs += a.posHist[b]*negBelow + a.posHist[b]*a.negHist[b]/2
		ties += a.posHist[b] * a.negHist[b]
		negBelow += a.negHist[b]
	}
	setAUC(m, pairs, ties/2, false)
}

// setAUC sets the AUC from the count of ordered pairs (ties counted half)
// unless AUC is undefined; maxError is in pairs.
func setAUC(m *ClassifierMetrics, pairs, maxError float64, exact bool) {
	if m.AUCUndefined != "" {
		return
	}
	total := float64(m.Positives) * float64(m.Count-m.Positives)
	auc := pairs / total
	m.AUC, m.AUCExact, m.AUCMaxError = &auc, exact, maxError/total
}
