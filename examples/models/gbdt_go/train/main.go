// Command train trains the gradient-boosted tree ensemble of the gbdt_go
// example and writes it as Go source for the wasm module.
//
// It generates a synthetic binary-classification dataset (20,000 rows × 16
// features, uniform in [0,1), a nonlinear rule plus noise, fixed seed), trains
// 200 rounds of gradient boosting with log-loss (depth-4 regression trees on
// histogram splits, Newton leaves with L2 regularisation, learning rate 0.1),
// reports train and holdout AUC, and writes
//
//   - -out (trees_gen.go): the trees as flat node arrays in package gbdt;
//   - -manifest (manifest.json): inputs, outputs, training figures and a sample
//     input with its output computed natively.
//
// Usage, from examples/models/gbdt_go/gbdt (what go generate runs):
//
//	go run ../train -out trees_gen.go -manifest ../manifest.json
//
// Only the standard library is used. The output is deterministic for a given
// Go version and GOARCH (the compiler may fuse multiply-adds on some
// architectures, and math.Exp has per-architecture implementations).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
)

func main() {
	out := flag.String("out", "trees_gen.go", "write the generated Go source to `file`")
	manifest := flag.String("manifest", "../manifest.json", "write the manifest to `file`")
	flag.Parse()
	if err := run(defaultConfig, *out, *manifest, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
}

// config is everything that determines the model.
type config struct {
	Seed         uint64  `json:"seed"`
	Rows         int     `json:"rows"`
	TrainRows    int     `json:"train_rows"` // the first TrainRows rows; the rest is the holdout
	Features     int     `json:"features"`
	Rounds       int     `json:"rounds"`
	MaxDepth     int     `json:"max_depth"`
	LearningRate float64 `json:"learning_rate"`
	Lambda       float64 `json:"lambda"`         // L2 regularisation of leaf values
	MinLeafRows  int     `json:"min_leaf_rows"`  // rows a leaf must keep
	MinLeafHess  float64 `json:"min_leaf_hess"`  // hessian a leaf must keep
	MaxBins      int     `json:"max_bins"`       // histogram bins per feature, at most 256
	NoiseScale   float64 `json:"noise_scale"`    // of the label noise
	InformativeF int     `json:"informative"`    // features the rule uses; the rest are noise
	Rule         string  `json:"rule,omitempty"` // for readers of the manifest
}

var defaultConfig = config{
	Seed:         20240601,
	Rows:         20000,
	TrainRows:    16000,
	Features:     16,
	Rounds:       200,
	MaxDepth:     4,
	LearningRate: 0.1,
	Lambda:       1,
	MinLeafRows:  20,
	MinLeafHess:  1e-3,
	MaxBins:      256,
	NoiseScale:   2,
	InformativeF: 9,
	Rule: "y = [12(x0-.5)(x1-.5) + (x2>.65 ? 1.5 : -1) + 12(x3-.5)^2 - 1 + 2(x4-.5) + (x5>x6 ? .8 : -.8) " +
		"+ 3 x7 x8 - .75 + 2(u1+u2+u3+u4-2) > 0], x_i, u_i ~ U[0,1); x9..x15 are noise",
}

func run(cfg config, outPath, manifestPath string, log io.Writer) error {
	d := synthesize(cfg)
	m := train(cfg, d, log)

	train, hold := d.split(cfg.TrainRows)
	trainAUC := auc(m.predictAll(train), train.y)
	holdAUC := auc(m.predictAll(hold), hold.y)
	holdLoss := logLoss(m.predictAll(hold), hold.y)
	// The noiseless rule as a score: the best AUC any model can reach here.
	ruleScore := make([]float64, hold.rows())
	for i := range ruleScore {
		ruleScore[i] = rule(hold.row(i))
	}
	ruleAUC := auc(ruleScore, hold.y)
	fmt.Fprintf(log, "trees %d, nodes %d, train AUC %.4f, holdout AUC %.4f (the rule itself: %.4f), holdout log-loss %.4f\n",
		len(m.roots), len(m.nodes), trainAUC, holdAUC, ruleAUC, holdLoss)

	src, err := m.goSource(cfg, trainAUC, holdAUC)
	if err != nil {
		return err
	}
	if err := os.WriteFile(outPath, src, 0o644); err != nil {
		return err
	}

	sample := slices.Clone(hold.row(0))
	man := manifest{
		Name:        "gbdt_go",
		ABI:         "mlnode/v1",
		Description: "gradient-boosted trees (log-loss) on a synthetic binary-classification dataset",
		Exports:     []string{"mlnode_alloc", "mlnode_predict", "mlnode_predict_batch"},
		Outputs:     []field{{Name: "probability", Dtype: "float64"}},
		NumInputs:   cfg.Features,
		NumOutputs:  1,
		Trees:       len(m.roots),
		Nodes:       len(m.nodes),
		Training:    cfg,
		Metrics: metrics{TrainAUC: round4(trainAUC), HoldoutAUC: round4(holdAUC), HoldoutLogLoss: round4(holdLoss),
			RuleHoldoutAUC: round4(ruleAUC)},
		Sample: sampleIO{Input: sample, Output: []float64{m.predict(sample)}},
	}
	for j := range cfg.Features {
		man.Inputs = append(man.Inputs, field{Name: fmt.Sprintf("f%02d", j), Dtype: "float64"})
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(man); err != nil {
		return err
	}
	return os.WriteFile(manifestPath, js.Bytes(), 0o644)
}

type manifest struct {
	Name        string   `json:"name"`
	ABI         string   `json:"abi"`
	Description string   `json:"description"`
	Exports     []string `json:"exports"`
	Inputs      []field  `json:"inputs"`
	Outputs     []field  `json:"outputs"`
	NumInputs   int      `json:"n_inputs"`
	NumOutputs  int      `json:"n_outputs"`
	Trees       int      `json:"trees"`
	Nodes       int      `json:"nodes"`
	Training    config   `json:"training"`
	Metrics     metrics  `json:"metrics"`
	Sample      sampleIO `json:"sample"`
}

type field struct {
	Name  string `json:"name"`
	Dtype string `json:"dtype"`
}

type metrics struct {
	TrainAUC       float64 `json:"train_auc"`
	HoldoutAUC     float64 `json:"holdout_auc"`
	HoldoutLogLoss float64 `json:"holdout_log_loss"`
	RuleHoldoutAUC float64 `json:"rule_holdout_auc"` // the noiseless rule as a score: the ceiling
}

type sampleIO struct {
	Input  []float64 `json:"input"`
	Output []float64 `json:"output"`
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// dataset holds rows row-major in x, labels 0/1 in y.
type dataset struct {
	nf int
	x  []float64
	y  []float64
}

func (d dataset) rows() int           { return len(d.y) }
func (d dataset) row(i int) []float64 { return d.x[i*d.nf : (i+1)*d.nf] }
func (d dataset) at(i, j int) float64 { return d.x[i*d.nf+j] }
func (d dataset) split(n int) (a, b dataset) {
	return dataset{d.nf, d.x[:n*d.nf], d.y[:n]}, dataset{d.nf, d.x[n*d.nf:], d.y[n:]}
}

// splitmix64: tiny, fast, and fixed forever (math/rand's streams are not
// promised to stay the same across Go versions).
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a uniform float64 in [0, 1), exactly representable.
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func synthesize(cfg config) dataset {
	r := rng{cfg.Seed}
	d := dataset{nf: cfg.Features, x: make([]float64, cfg.Rows*cfg.Features), y: make([]float64, cfg.Rows)}
	for i := range cfg.Rows {
		x := d.row(i)
		for j := range x {
			x[j] = r.float()
		}
		noise := cfg.NoiseScale * (r.float() + r.float() + r.float() + r.float() - 2)
		if rule(x)+noise > 0 {
			d.y[i] = 1
		}
	}
	return d
}

// rule is the signal: an interaction, a step, a parabola, a linear term, a
// comparison of two features and a product, over features 0..8. Explicit
// float64 conversions keep the compiler from fusing multiply-adds.
func rule(x []float64) float64 {
	s := float64(12*(x[0]-0.5)) * (x[1] - 0.5)
	if x[2] > 0.65 {
		s += 1.5
	} else {
		s -= 1
	}
	s += float64(12*(x[3]-0.5))*(x[3]-0.5) - 1
	s += float64(2 * (x[4] - 0.5))
	if x[5] > x[6] {
		s += 0.8
	} else {
		s -= 0.8
	}
	s += float64(3*x[7])*x[8] - 0.75
	return s
}

// node is a node of the flat tree arrays, as written to trees_gen.go.
type node struct {
	feature   int // -1 for a leaf
	threshold float64
	left      int
	right     int
	value     float64
}

type model struct {
	base  float64
	roots []int
	nodes []node
}

func (m *model) margin(x []float64) float64 {
	s := m.base
	for _, i := range m.roots {
		s += m.leaf(i, x)
	}
	return s
}

func (m *model) leaf(i int, x []float64) float64 {
	for m.nodes[i].feature >= 0 {
		n := &m.nodes[i]
		if x[n.feature] < n.threshold {
			i = n.left
		} else {
			i = n.right
		}
	}
	return m.nodes[i].value
}

func (m *model) predict(x []float64) float64 { return sigmoid(m.margin(x)) }

func (m *model) predictAll(d dataset) []float64 {
	p := make([]float64, d.rows())
	for i := range p {
		p[i] = m.predict(d.row(i))
	}
	return p
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// binned is the training data quantised per feature: bins[j][i] is the
// number of cuts[j] that are <= x[i][j], so bin <= b exactly when
// x < cuts[j][b], the test the generated trees apply to raw values.
type binned struct {
	cuts [][]float64
	bins [][]uint8
}

func quantise(d dataset, maxBins int) binned {
	n := d.rows()
	q := binned{cuts: make([][]float64, d.nf), bins: make([][]uint8, d.nf)}
	col := make([]float64, n)
	for j := range d.nf {
		for i := range n {
			col[i] = d.at(i, j)
		}
		sort.Float64s(col)
		var cuts []float64
		for k := 1; k < maxBins; k++ {
			i := k * n / maxBins
			if i == 0 || col[i-1] == col[i] {
				continue
			}
			c := col[i-1] + (col[i]-col[i-1])/2
			if len(cuts) == 0 || c > cuts[len(cuts)-1] {
				cuts = append(cuts, c)
			}
		}
		q.cuts[j] = cuts
		q.bins[j] = make([]uint8, n)
		for i := range n {
			v := d.at(i, j)
			q.bins[j][i] = uint8(sort.Search(len(cuts), func(k int) bool { return cuts[k] > v }))
		}
	}
	return q
}

// trainer holds the state of one boosting run.
type trainer struct {
	cfg        config
	q          binned
	grad, hess []float64
	m          *model
	// histogram scratch: one slot per bin
	hg, hh []float64
	hn     []int
}

func train(cfg config, d dataset, log io.Writer) *model {
	tr, _ := d.split(cfg.TrainRows)
	n := tr.rows()
	pos := 0.0
	for _, y := range tr.y {
		pos += y
	}
	p0 := pos / float64(n)
	t := &trainer{
		cfg:  cfg,
		q:    quantise(tr, cfg.MaxBins),
		grad: make([]float64, n),
		hess: make([]float64, n),
		m:    &model{base: math.Log(p0 / (1 - p0))},
		hg:   make([]float64, cfg.MaxBins),
		hh:   make([]float64, cfg.MaxBins),
		hn:   make([]int, cfg.MaxBins),
	}
	f := make([]float64, n) // the margin of each training row so far
	for i := range f {
		f[i] = t.m.base
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	for round := range cfg.Rounds {
		for i := range n {
			p := sigmoid(f[i])
			t.grad[i] = p - tr.y[i]
			t.hess[i] = max(p*(1-p), 1e-16)
		}
		root := len(t.m.nodes)
		t.grow(all, 0)
		t.m.roots = append(t.m.roots, root)
		for i := range n {
			f[i] += t.m.leaf(root, tr.row(i))
		}
		if (round+1)%50 == 0 {
			fmt.Fprintf(log, "round %d: train log-loss %.4f\n", round+1, logLoss(sigmoidAll(f), tr.y))
		}
	}
	return t.m
}

// grow appends the subtree over rows at the given depth, preorder, and
// returns the index of its root.
func (t *trainer) grow(rows []int, depth int) int {
	var g, h float64
	for _, i := range rows {
		g += t.grad[i]
		h += t.hess[i]
	}
	self := len(t.m.nodes)
	t.m.nodes = append(t.m.nodes, node{feature: -1, value: -t.cfg.LearningRate * g / (h + t.cfg.Lambda)})
	if depth == t.cfg.MaxDepth || len(rows) < 2*t.cfg.MinLeafRows {
		return self
	}

	lambda := t.cfg.Lambda
	parent := g * g / (h + lambda)
	bestGain, bestF, bestB := 1e-9, -1, -1
	for j := range t.q.bins {
		nb := len(t.q.cuts[j]) + 1
		hg, hh, hn := t.hg[:nb], t.hh[:nb], t.hn[:nb]
		clear(hg)
		clear(hh)
		clear(hn)
		col := t.q.bins[j]
		for _, i := range rows {
			b := col[i]
			hg[b] += t.grad[i]
			hh[b] += t.hess[i]
			hn[b]++
		}
		var gl, hl float64
		nl := 0
		for b := 0; b < nb-1; b++ {
			gl += hg[b]
			hl += hh[b]
			nl += hn[b]
			nr := len(rows) - nl
			gr, hr := g-gl, h-hl
			if nl < t.cfg.MinLeafRows || nr < t.cfg.MinLeafRows || hl < t.cfg.MinLeafHess || hr < t.cfg.MinLeafHess {
				continue
			}
			gain := gl*gl/(hl+lambda) + gr*gr/(hr+lambda) - parent
			if gain > bestGain {
				bestGain, bestF, bestB = gain, j, b
			}
		}
	}
	if bestF < 0 {
		return self
	}

	var left, right []int
	col := t.q.bins[bestF]
	for _, i := range rows {
		if int(col[i]) <= bestB {
			left = append(left, i)
		} else {
			right = append(right, i)
		}
	}
	l := t.grow(left, depth+1)
	r := t.grow(right, depth+1)
	t.m.nodes[self] = node{feature: bestF, threshold: t.q.cuts[bestF][bestB], left: l, right: r}
	return self
}

func sigmoidAll(f []float64) []float64 {
	p := make([]float64, len(f))
	for i, v := range f {
		p[i] = sigmoid(v)
	}
	return p
}

func logLoss(p, y []float64) float64 {
	var s float64
	for i := range p {
		q := min(max(p[i], 1e-15), 1-1e-15)
		if y[i] == 1 {
			s -= math.Log(q)
		} else {
			s -= math.Log(1 - q)
		}
	}
	return s / float64(len(p))
}

// auc is the area under the ROC curve: the Mann-Whitney U statistic with
// tied scores sharing their average rank.
func auc(score, y []float64) float64 {
	idx := make([]int, len(score))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return score[idx[a]] < score[idx[b]] })
	var rankSum, npos float64
	for i := 0; i < len(idx); {
		k := i
		for k < len(idx) && score[idx[k]] == score[idx[i]] {
			k++
		}
		avg := float64(i+k+1) / 2 // ranks i+1..k
		for _, j := range idx[i:k] {
			if y[j] == 1 {
				rankSum += avg
				npos++
			}
		}
		i = k
	}
	nneg := float64(len(score)) - npos
	return (rankSum - npos*(npos+1)/2) / (npos * nneg)
}

// goSource renders the model as package gbdt source, gofmt-ed.
func (m *model) goSource(cfg config, trainAUC, holdAUC float64) ([]byte, error) {
	var b bytes.Buffer
	ff := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	fmt.Fprintf(&b, "// Code generated by go run ../train; DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "package gbdt\n\n")
	fmt.Fprintf(&b, "// %d trees of depth <= %d, learning rate %s, trained on %d of %d synthetic rows (seed %d);\n",
		len(m.roots), cfg.MaxDepth, ff(cfg.LearningRate), cfg.TrainRows, cfg.Rows, cfg.Seed)
	fmt.Fprintf(&b, "// train AUC %.4f, holdout AUC %.4f.\n", trainAUC, holdAUC)
	fmt.Fprintf(&b, "const (\n")
	fmt.Fprintf(&b, "\t// NumFeatures is the number of inputs.\n\tNumFeatures = %d\n", cfg.Features)
	fmt.Fprintf(&b, "\t// NumTrees is the number of trees.\n\tNumTrees = %d\n", len(m.roots))
	fmt.Fprintf(&b, "\t// BaseScore is the initial log-odds (the training prior).\n\tBaseScore = %s\n", ff(m.base))
	fmt.Fprintf(&b, ")\n\n")
	fmt.Fprintf(&b, "// roots holds the index in nodes of each tree's root.\n")
	fmt.Fprintf(&b, "var roots = [NumTrees]int32{")
	for i, r := range m.roots {
		if i%16 == 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%d, ", r)
	}
	fmt.Fprintf(&b, "\n}\n\n")
	fmt.Fprintf(&b, "// nodes holds every tree, preorder: {feature, threshold, left, right, value}.\n")
	fmt.Fprintf(&b, "var nodes = [%d]node{\n", len(m.nodes))
	tree := 0
	for i, n := range m.nodes {
		if tree < len(m.roots) && m.roots[tree] == i {
			fmt.Fprintf(&b, "// tree %d\n", tree)
			tree++
		}
		if n.feature < 0 {
			fmt.Fprintf(&b, "{-1, 0, 0, 0, %s},\n", ff(n.value))
		} else {
			fmt.Fprintf(&b, "{%d, %s, %d, %d, 0},\n", n.feature, ff(n.threshold), n.left, n.right)
		}
	}
	fmt.Fprintf(&b, "}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("format generated source: %w", err)
	}
	return src, nil
}
