package abtest

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

// synth draws n units for an arm: a conversion with probability p, a
// revenue that depends on a pre-exposure revenue (the CUPED covariate),
// and a latency.
func synth(rng *rand.Rand, n int, p, lift, latency float64) map[string]Moments {
	var conv, rev, lat Moments
	for range n {
		c := 0.0
		if rng.Float64() < p {
			c = 1
		}
		conv.Add(c)
		pre := math.Max(0, 20+8*rng.NormFloat64())
		rev.AddWithCovariate(0.9*pre+lift+4*rng.NormFloat64(), pre)
		lat.Add(latency + 10*rng.NormFloat64())
	}
	return map[string]Moments{"conversion": conv, "revenue": rev, "latency_ms": lat}
}

func specs() []MetricSpec {
	return []MetricSpec{
		{Name: "conversion", Type: BinomialMetric},
		{Name: "revenue", Type: MeanMetric},
		{Name: "latency_ms", Type: MeanMetric, Direction: Decrease, Role: Guardrail},
	}
}

func find(t *testing.T, r *Result, metric, arm string) Comparison {
	t.Helper()
	for _, c := range r.Comparisons {
		if c.Metric == metric && c.Arm == arm {
			return c
		}
	}
	t.Fatalf("no comparison %s/%s", metric, arm)
	return Comparison{}
}

func TestAnalyze_ReadsAnExperiment(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 1))
	in := Input{
		Arms: []Arm{
			{Name: "control", Weight: 1, Metrics: synth(rng, 20000, 0.10, 0, 100)},
			{Name: "faster", Weight: 1, Metrics: synth(rng, 20000, 0.115, 1, 95)},
			{Name: "slower", Weight: 1, Metrics: synth(rng, 20000, 0.10, 0, 110)},
		},
		Metrics: specs(),
	}
	r, err := Analyze(in)
	if err != nil {
		t.Fatal(err)
	}
	if r.Control != "control" || len(r.Comparisons) != 6 || r.SRM.Mismatch {
		t.Fatalf("control %q, %d comparisons, srm %+v", r.Control, len(r.Comparisons), r.SRM)
	}
	tests := []struct {
		metric, arm string
		verdict     Verdict
		breached    bool
	}{
		{"conversion", "faster", Better, false},
		{"revenue", "faster", Better, false},
		{"latency_ms", "faster", Better, false},
		{"latency_ms", "slower", Worse, true},
		{"conversion", "slower", Inconclusive, false},
	}
	for _, tt := range tests {
		c := find(t, r, tt.metric, tt.arm)
		if c.Verdict != tt.verdict || GuardrailBreached(c) != tt.breached {
			t.Errorf("%s/%s: verdict %s breached %v, want %s %v (%+v)", tt.metric, tt.arm, c.Verdict, GuardrailBreached(c), tt.verdict, tt.breached, c)
		}
	}
	rev := find(t, r, "revenue", "faster")
	if !(rev.CUPEDTheta > 0.8 && rev.VarianceReduction > 0.5) {
		t.Errorf("revenue CUPED theta %g reduction %g, want θ ≈ 0.9 and a large reduction", rev.CUPEDTheta, rev.VarianceReduction)
	}
	if !(rev.ChanceToBeatControl > 0.99 && rev.RiskTreatment < rev.RiskControl) {
		t.Errorf("revenue chance %g risks %g/%g", rev.ChanceToBeatControl, rev.RiskControl, rev.RiskTreatment)
	}
	lat := find(t, r, "latency_ms", "slower")
	if lat.AdjustedPValue != lat.PValue {
		t.Errorf("guardrail p adjusted: %g -> %g", lat.PValue, lat.AdjustedPValue)
	}
	if got := r.BreachedGuardrails(); len(got) != 1 || got[0].Arm != "slower" {
		t.Errorf("breached guardrails = %+v", got)
	}

	// Holm over the 4 goal comparisons: the adjusted p-value is never
	// below the raw one.
	for _, c := range r.Comparisons {
		if c.Role == Goal && c.AdjustedPValue < c.PValue {
			t.Errorf("%s/%s: adjusted %g < raw %g", c.Metric, c.Arm, c.AdjustedPValue, c.PValue)
		}
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

func TestAnalyze_Edges(t *testing.T) {
	one := func(ms ...Moments) []Arm {
		arms := make([]Arm, len(ms))
		for i, m := range ms {
			arms[i] = Arm{Name: fmt.Sprintf("arm%d", i), Weight: 1, Metrics: map[string]Moments{"m": m}}
		}
		return arms
	}
	tests := []struct {
		name        string
		typ         MetricType
		arms        []Arm
		scale       Scale   // of the test
		abs, rel    float64 // NaN: null
		pDefined    bool
		noteHas     string
		srmMismatch bool
	}{
		{"zero variance", MeanMetric, one(sampleMean(10, 10, 10), sampleMean(10, 10, 10)), Relative, 0, 0, false, "zero variance", false},
		{"N < 2", MeanMetric, one(sampleMean(3, 9, 1), sampleMean(5, 25, 1)), Relative, 2, 2.0 / 3, false, "too few units", false},
		{"no units", BinomialMetric, one(Moments{}, Moments{}), Relative, math.NaN(), math.NaN(), false, "too few units", false},
		{"control mean 0", BinomialMetric, one(proportion(0, 5000), proportion(25, 5000)), Absolute, 0.005, math.NaN(), true, "relative lift undefined", false},
		{"unequal weights honoured", BinomialMetric, []Arm{
			{Name: "a", Weight: 0.9, Metrics: map[string]Moments{"m": proportion(900, 9000)}},
			{Name: "b", Weight: 0.1, Metrics: map[string]Moments{"m": proportion(100, 1000)}},
		}, Relative, 0, 0, true, "", false},
		{"unequal weights ignored by assignment", BinomialMetric, []Arm{
			{Name: "a", Weight: 0.9, Metrics: map[string]Moments{"m": proportion(500, 5000)}},
			{Name: "b", Weight: 0.1, Metrics: map[string]Moments{"m": proportion(500, 5000)}},
		}, Relative, 0, 0, true, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, seq := range []bool{false, true} {
				r, err := Analyze(Input{Arms: tt.arms, Metrics: []MetricSpec{{Name: "m", Type: tt.typ}}, Options: Options{Sequential: seq}})
				if err != nil {
					t.Fatal(err)
				}
				c := r.Comparisons[0]
				same := func(got Float, want float64) bool {
					return math.IsNaN(want) == math.IsNaN(float64(got)) && (math.IsNaN(want) || math.Abs(float64(got)-want) < 1e-12)
				}
				if c.Scale != tt.scale || !same(c.Absolute, tt.abs) || !same(c.Relative, tt.rel) {
					t.Errorf("scale %s abs %g rel %g, want %s %g %g", c.Scale, c.Absolute, c.Relative, tt.scale, tt.abs, tt.rel)
				}
				if math.IsNaN(float64(c.PValue)) == tt.pDefined || !strings.Contains(c.Note, tt.noteHas) {
					t.Errorf("p %g note %q, want defined=%v and note with %q", c.PValue, c.Note, tt.pDefined, tt.noteHas)
				}
				if !tt.pDefined && (c.Significant || c.Verdict != Inconclusive || GuardrailBreached(c)) {
					t.Errorf("undefined test reads as a decision: %+v", c)
				}
				if r.SRM.Mismatch != tt.srmMismatch {
					t.Errorf("SRM mismatch %v, want %v (%+v)", r.SRM.Mismatch, tt.srmMismatch, r.SRM)
				}
				if _, err := json.Marshal(r); err != nil {
					t.Fatalf("JSON: %v", err)
				}
			}
		})
	}
}

func TestAnalyze_SequentialGuardrailIgnoresAPeekedBlip(t *testing.T) {
	// Latency 1% worse on 4,000 units per arm: significant at a fixed
	// horizon (p ≈ 0.025), not under the always-valid interval. A check run
	// at every look must not stop the experiment on it.
	lat := func(mean float64) Moments {
		const n, sd = 4000, 20.0
		return sampleMean(n*mean, n*(mean*mean+sd*sd*(n-1)/n), n)
	}
	r, err := Analyze(Input{
		Arms: []Arm{
			{Name: "control", Weight: 1, Metrics: map[string]Moments{"latency": lat(100)}},
			{Name: "new", Weight: 1, Metrics: map[string]Moments{"latency": lat(101)}},
		},
		Metrics: []MetricSpec{{Name: "latency", Type: MeanMetric, Direction: Decrease, Role: Guardrail}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Comparisons[0]
	if c.Verdict != Worse || GuardrailBreached(c) {
		t.Errorf("verdict %s (p %g), breached %v (always-valid %v); want worse at a fixed horizon, not breached", c.Verdict, c.PValue, GuardrailBreached(c), c.AlwaysValidCI)
	}
}

func TestAnalyze_MultipleComparisons(t *testing.T) {
	// Five goal metrics with raw p-values between 0.01 and 0.04: all are
	// significant uncorrected; Holm needs the smallest below 0.05/5 and
	// keeps none; BH needs the largest below 0.05·5/5 and keeps all.
	arms := []Arm{{Name: "c", Weight: 1, Metrics: map[string]Moments{}}, {Name: "t", Weight: 1, Metrics: map[string]Moments{}}}
	var metrics []MetricSpec
	for i, diff := range []float64{0.011, 0.0105, 0.0100, 0.0095, 0.0090} {
		name := fmt.Sprintf("g%d", i)
		metrics = append(metrics, MetricSpec{Name: name, Type: BinomialMetric})
		arms[0].Metrics[name] = proportion(1000, 10000)
		arms[1].Metrics[name] = proportion(math.Round((0.1+diff)*10000), 10000)
	}
	count := func(c Correction) (n int) {
		r, err := Analyze(Input{Arms: arms, Metrics: metrics, Options: Options{Correction: c, Scale: Absolute}})
		if err != nil {
			t.Fatal(err)
		}
		for _, cmp := range r.Comparisons {
			if cmp.Significant {
				n++
			}
		}
		return n
	}
	none, holm, bh := count(CorrectionNone), count(CorrectionHolm), count(CorrectionBH)
	if none != 5 || holm != 0 || bh != 5 {
		t.Errorf("significant: none %d, holm %d, bh %d", none, holm, bh)
	}
}

func TestAnalyze_Invalid(t *testing.T) {
	ok := func() Input {
		return Input{
			Arms: []Arm{
				{Name: "a", Weight: 1, Metrics: map[string]Moments{"m": proportion(1, 10)}},
				{Name: "b", Weight: 1, Metrics: map[string]Moments{"m": proportion(2, 10)}},
			},
			Metrics: []MetricSpec{{Name: "m", Type: BinomialMetric}},
		}
	}
	tests := []struct {
		name      string
		edit      func(*Input)
		wantField string
	}{
		{"one arm", func(in *Input) { in.Arms = in.Arms[:1] }, "arms"},
		{"no metrics", func(in *Input) { in.Metrics = nil }, "metrics"},
		{"duplicate arm", func(in *Input) { in.Arms[1].Name = "a" }, "arms[1].name"},
		{"negative weight", func(in *Input) { in.Arms[0].Weight = -1 }, "arms[0].weight"},
		{"NaN weight", func(in *Input) { in.Arms[0].Weight = math.NaN() }, "arms[0].weight"},
		{"zero weights", func(in *Input) { in.Arms[0].Weight, in.Arms[1].Weight = 0, 0 }, "weights"},
		{"missing metric", func(in *Input) { delete(in.Arms[1].Metrics, "m") }, `arms[1].metrics["m"]`},
		{"binomial sum above n", func(in *Input) { in.Arms[0].Metrics["m"] = proportion(11, 10) }, `arms[0].metrics["m"].sum`},
		{"infinite sum", func(in *Input) { in.Arms[0].Metrics["m"] = Moments{N: 2, Sum: math.Inf(1)} }, `arms[0].metrics["m"]`},
		{"n above units", func(in *Input) { in.Arms[0].Units = 5 }, `arms[0].metrics["m"].n`},
		{"unknown type", func(in *Input) { in.Metrics[0].Type = "ratio" }, "metrics[0].type"},
		{"unknown direction", func(in *Input) { in.Metrics[0].Direction = "up" }, "metrics[0].direction"},
		{"unknown control", func(in *Input) { in.Control = "z" }, "control"},
		{"alpha", func(in *Input) { in.Options.Alpha = 1.5 }, "options.alpha"},
		{"tuning", func(in *Input) { in.Options.SequentialTuning = -1 }, "options.sequential_tuning"},
		{"correction", func(in *Input) { in.Options.Correction = "sidak" }, "options.correction"},
		{"breakdown metric", func(in *Input) { in.Breakdowns = []Breakdown{{Metric: "x"}} }, "breakdowns[0].metric"},
		{"breakdown arm", func(in *Input) {
			in.Breakdowns = []Breakdown{{Metric: "m", Groups: []Group{{Name: "g", Arms: map[string]Moments{"z": {}}}}}}
		}, "breakdowns[0].groups[0].arms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ok()
			tt.edit(&in)
			_, err := Analyze(in)
			e, isErr := err.(*appliance.Error)
			if !isErr || e.Code != appliance.EINVALID || e.Field != tt.wantField {
				t.Fatalf("err = %v, want invalid %s", err, tt.wantField)
			}
		})
	}
	if _, err := Analyze(ok()); err != nil {
		t.Fatalf("valid input: %v", err)
	}
}

func TestAnalyzeBreakdown_FindsTheGroupLeftBehind(t *testing.T) {
	// The treatment lifts conversion by 2 points in three countries and does
	// nothing in the fourth.
	lifts := map[string]float64{"de": 0.02, "fr": 0.02, "it": 0.02, "es": 0}
	var b Breakdown
	b.Attribute, b.Metric = "country", "conversion"
	for _, g := range []string{"de", "fr", "it", "es"} {
		b.Groups = append(b.Groups, Group{Name: g, Arms: map[string]Moments{
			"control": proportion(1000, 10000),
			"new":     proportion(math.Round((0.1+lifts[g])*10000), 10000),
		}})
	}
	b.Groups = append(b.Groups, Group{Name: "empty", Arms: map[string]Moments{"control": proportion(0, 1)}})
	r := AnalyzeBreakdown(b, "control", "new", BinomialMetric, Options{})
	if len(r.Groups) != 5 || r.Groups[4].Note == "" {
		t.Fatalf("groups %+v", r.Groups)
	}
	if r.Gap == nil || r.Gap.Low != "es" || math.Abs(float64(r.Gap.Difference)-0.02) > 1e-12 || !(r.Gap.CI.Low > 0) {
		t.Errorf("gap %+v, want es lowest by 0.02, excluding 0", r.Gap)
	}
	h := r.Heterogeneity
	if h.DF != 3 || !(h.PValue < 0.01) || !(h.I2 > 0.5) {
		t.Errorf("heterogeneity %+v, want df 3, p < 0.01", h)
	}

	// Same lift everywhere: no heterogeneity.
	for i := range b.Groups[:4] {
		b.Groups[i].Arms["new"] = proportion(1200, 10000)
	}
	h = AnalyzeBreakdown(b, "control", "new", BinomialMetric, Options{}).Heterogeneity
	if h.Q != 0 || h.PValue != 1 || h.I2 != 0 {
		t.Errorf("uniform lift: heterogeneity %+v", h)
	}
}

func TestCochranQ_Reference(t *testing.T) {
	// Q = Σ((dᵢ − d̄)/SEᵢ)² with d̄ the inverse-variance mean: for estimates
	// 0, 1, 2 with SE 1, d̄ = 1 and Q = 2, so p = exp(−Q/2) with 2 df.
	h := CochranQ([]Effect{{Estimate: 0, StdErr: 1}, {Estimate: 1, StdErr: 1}, {Estimate: 2, StdErr: 1}})
	near(t, "Q", float64(h.Q), 2, 1e-12)
	near(t, "p", float64(h.PValue), math.Exp(-1), 1e-12)
	near(t, "I2", float64(h.I2), 0, 0)
	if h := CochranQ(nil); !math.IsNaN(float64(h.Q)) || h.DF != 0 {
		t.Errorf("no effects: %+v", h)
	}
}
