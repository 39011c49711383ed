package drift

import (
	"math"

	"github.com/mlnode/mlnode/appliance"
)

// Distribution is a *Numeric or a *Categorical.
type Distribution interface {
	// Count is the number of values the distribution describes.
	Count() int64
	distribution()
}

// Method names a drift measure.
type Method string

// Drift measures. Tests report a p-value and drift when it is at or below
// the threshold; distances drift at or above it.
const (
	MethodKS              Method = "ks"               // numeric; test
	MethodChiSquare       Method = "chisquare"        // categorical; test
	MethodWassersteinNorm Method = "wasserstein_norm" // numeric; distance
	MethodJensenShannon   Method = "jensenshannon"    // both; distance
	MethodPSI             Method = "psi"              // both; distance
)

// Default thresholds: Evidently's for its default tests (p-value 0.05,
// distance 0.1), and the customary 0.2 for PSI ("significant shift").
const (
	DefaultPValue         = 0.05
	DefaultDistance       = 0.1
	DefaultPSIThreshold   = 0.2
	DefaultSmallReference = 1000
)

// Options configure Detect; the zero value is Evidently's default choice.
type Options struct {
	// Method forces a measure; "" chooses as Evidently: for a reference of
	// at most SmallReference values a test (KS for numeric, chi-square for
	// categorical features), above that a distance (normed Wasserstein for
	// numeric, Jensen–Shannon for categorical features).
	Method Method
	// PValue is the p-value at or below which a test reports drift; 0
	// means DefaultPValue.
	PValue float64
	// Distance is the normed Wasserstein or Jensen–Shannon distance at or
	// above which they report drift; 0 means DefaultDistance.
	Distance float64
	// SmallReference is the largest reference that gets a test; 0 means
	// DefaultSmallReference.
	SmallReference int64
	// Bins is the number of reference-quantile bins of numeric PSI and
	// Jensen–Shannon; 0 means DefaultBins.
	Bins int
	// TopK is how many of the reference's values categorical measures
	// itemize; 0 means DefaultTopK.
	TopK int
	// PSIThreshold is the PSI at or above which Report.PSIAlert is set,
	// and MethodPSI reports drift; 0 means DefaultPSIThreshold.
	PSIThreshold float64
}

// Report is the outcome of Detect.
type Report struct {
	Method    Method   `json:"method"`
	Statistic float64  `json:"statistic"`
	PValue    *float64 `json:"p_value,omitempty"` // tests only
	Threshold float64  `json:"threshold"`
	Drifted   bool     `json:"drifted"`
	// PSI is always computed, whatever Method decides, as a second signal
	// that reads the same for every feature.
	PSI          float64 `json:"psi"`
	PSIThreshold float64 `json:"psi_threshold"`
	PSIAlert     bool    `json:"psi_alert"`
	Reference    int64   `json:"reference_count"`
	Current      int64   `json:"current_count"`
	// Approximate is true when a side is a sketch or a histogram: see the
	// package documentation for the error that brings.
	Approximate bool `json:"approximate"`
}

// Detect measures how cur drifted from ref, both *Numeric or both
// *Categorical, and decides whether it did (see Options for the choice of
// method). Empty distributions, mismatched kinds and methods that do not
// apply to the kind are errors.
func Detect(ref, cur Distribution, opts Options) (Report, error) {
	if err := check(ref, cur); err != nil {
		return Report{}, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return Report{}, err
	}
	var r Report
	switch ref := ref.(type) {
	case *Numeric:
		cur, ok := cur.(*Numeric)
		if !ok {
			return Report{}, appliance.Invalid("current", "a numeric reference needs a numeric current distribution")
		}
		r, err = detectNumeric(ref, cur, o)
		r.Approximate = ref.src != fromSample || cur.src != fromSample
	case *Categorical:
		cur, ok := cur.(*Categorical)
		if !ok {
			return Report{}, appliance.Invalid("current", "a categorical reference needs a categorical current distribution")
		}
		r, err = detectCategorical(ref, cur, o)
		r.Approximate = ref.sketch || cur.sketch
	default:
		return Report{}, appliance.Invalid("reference", "unknown kind of distribution %T", ref)
	}
	if err != nil {
		return Report{}, err
	}
	switch r.Method {
	case MethodKS, MethodChiSquare:
		r.Threshold = o.PValue
	case MethodPSI:
		r.Threshold = o.PSIThreshold
	default:
		r.Threshold = o.Distance
	}
	if r.PValue != nil {
		r.Drifted = *r.PValue <= r.Threshold
	} else {
		r.Drifted = r.Statistic >= r.Threshold
	}
	r.PSIThreshold = o.PSIThreshold
	r.PSIAlert = r.PSI >= o.PSIThreshold
	r.Reference, r.Current = ref.Count(), cur.Count()
	return r, nil
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case !(o.PValue >= 0 && o.PValue < 1):
		return o, appliance.Invalid("p_value", "must be in [0, 1)")
	case !(o.Distance >= 0) || math.IsInf(o.Distance, 0):
		return o, appliance.Invalid("distance", "must be a finite number, not negative")
	case o.SmallReference < 0:
		return o, appliance.Invalid("small_reference", "must not be negative")
	case o.Bins < 0 || o.Bins == 1 || o.Bins > MaxBins:
		return o, appliance.Invalid("bins", "must be between 2 and %d", MaxBins)
	case o.TopK < 0:
		return o, appliance.Invalid("top_k", "must not be negative")
	case !(o.PSIThreshold >= 0) || math.IsInf(o.PSIThreshold, 0):
		return o, appliance.Invalid("psi_threshold", "must be a finite number, not negative")
	}
	switch o.Method {
	case "", MethodKS, MethodChiSquare, MethodWassersteinNorm, MethodJensenShannon, MethodPSI:
	default:
		return o, appliance.Invalid("method", "unknown method %q", o.Method)
	}
	if o.PValue == 0 {
		o.PValue = DefaultPValue
	}
	if o.Distance == 0 {
		o.Distance = DefaultDistance
	}
	if o.SmallReference == 0 {
		o.SmallReference = DefaultSmallReference
	}
	if o.Bins == 0 {
		o.Bins = DefaultBins
	}
	if o.TopK == 0 {
		o.TopK = DefaultTopK
	}
	if o.PSIThreshold == 0 {
		o.PSIThreshold = DefaultPSIThreshold
	}
	return o, nil
}

func detectNumeric(ref, cur *Numeric, o Options) (Report, error) {
	m := o.Method
	if m == "" {
		m = MethodWassersteinNorm
		if ref.n <= o.SmallReference {
			m = MethodKS
		}
	}
	psi, err := PSI(ref, cur, o.Bins)
	if err != nil {
		return Report{}, err
	}
	r := Report{Method: m, PSI: psi}
	switch m {
	case MethodKS:
		ks, err := KS(ref, cur)
		if err != nil {
			return Report{}, err
		}
		r.Statistic, r.PValue = ks.Statistic, &ks.PValue
	case MethodWassersteinNorm:
		r.Statistic, err = WassersteinNorm(ref, cur)
	case MethodJensenShannon:
		r.Statistic, err = JensenShannon(ref, cur, o.Bins)
	case MethodPSI:
		r.Statistic = psi
	default:
		return Report{}, appliance.Invalid("method", "%s does not apply to numeric features", m)
	}
	return r, err
}

func detectCategorical(ref, cur *Categorical, o Options) (Report, error) {
	m := o.Method
	if m == "" {
		m = MethodJensenShannon
		if ref.n <= o.SmallReference {
			m = MethodChiSquare
		}
	}
	psi, err := CategoricalPSI(ref, cur, o.TopK)
	if err != nil {
		return Report{}, err
	}
	r := Report{Method: m, PSI: psi}
	switch m {
	case MethodChiSquare:
		c, err := ChiSquare(ref, cur, o.TopK)
		if err != nil {
			return Report{}, err
		}
		r.Statistic, r.PValue = c.Statistic, &c.PValue
	case MethodJensenShannon:
		r.Statistic, err = CategoricalJensenShannon(ref, cur, o.TopK)
	case MethodPSI:
		r.Statistic = psi
	default:
		return Report{}, appliance.Invalid("method", "%s does not apply to categorical features", m)
	}
	return r, err
}
