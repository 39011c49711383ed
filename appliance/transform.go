package appliance

import (
	"context"
	"fmt"
	"math"
	"strings"
)

// Transform modes.
const (
	TransformIngest   = "ingest"    // outputs computed when rows arrive and stored like any feature
	TransformOnDemand = "on_demand" // outputs computed when read, from stored features and request values
)

// RequestPrefix marks a request-time input ("request:basket_size"): a value
// the caller sends with the read, not a stored feature.
const RequestPrefix = "request:"

// Transform names a WebAssembly module that derives features of a view. It
// is part of the view's schema: changing it makes a new version, and the
// version's lineage records the module's digest.
type Transform struct {
	Module  string    `json:"module"` // "sha256:<hex>"
	Mode    string    `json:"mode"`
	Inputs  []string  `json:"inputs"` // declared features of the view, or request:<name> (on_demand only)
	Outputs []Feature `json:"outputs"`
}

// Derived features come from the transform; they are listed in the view's
// Features after the declared ones, marked Derived.

// TransformValue is one input of a row transform.
type TransformValue struct {
	Null  bool
	IsStr bool
	Num   float64
	Str   string
}

// Transformer runs transform modules by digest ("sha256:<hex>"). The wasm
// package implements it; a module that exports only the row entry point is
// run through it for numeric inputs too. Failures of the module itself are
// EUNPROCESSABLE.
type Transformer interface {
	// Transform runs a numeric transform: in and out per docs/abi.md.
	Transform(ctx context.Context, module string, in, out []float64) error
	// TransformRow runs a transform with string inputs.
	TransformRow(ctx context.Context, module string, in []TransformValue, out []float64) error
}

// normalizeTransform checks the transform against the declared features and
// appends its outputs to v.Features as derived features.
func (v *FeatureView) normalizeTransform() error {
	t := v.Transform
	if t == nil {
		return nil
	}
	digest, err := ParseModuleRef("transform.module", t.Module)
	if err != nil {
		return err
	}
	t.Module = "sha256:" + digest
	switch t.Mode {
	case TransformIngest, TransformOnDemand:
	default:
		return Invalid("transform.mode", "%q is not %q or %q", t.Mode, TransformIngest, TransformOnDemand)
	}
	if len(t.Inputs) == 0 {
		return Invalid("transform.inputs", "at least one input is required")
	}
	seen := map[string]bool{}
	for i, in := range t.Inputs {
		field := fmt.Sprintf("transform.inputs[%d]", i)
		if seen[in] {
			return Invalid(field, "duplicate input %q", in)
		}
		seen[in] = true
		if name, ok := strings.CutPrefix(in, RequestPrefix); ok {
			if t.Mode != TransformOnDemand {
				return Invalid(field, "%q: request inputs exist only for on_demand transforms", in)
			}
			if err := ValidateName(field, name); err != nil {
				return err
			}
			continue
		}
		idx := v.FeatureIndex(in)
		if idx < 0 {
			return Invalid(field, "%q is not a declared feature of %q (or request:<name>)", in, v.Name)
		}
		switch v.Features[idx].Dtype {
		case DTypeInt64, DTypeFloat64, DTypeBool, DTypeTimestamp, DTypeString:
		default:
			return Invalid(field, "%q is %s: transform inputs are numbers, bools, timestamps or strings", in, v.Features[idx].Dtype)
		}
	}
	if len(t.Outputs) == 0 {
		return Invalid("transform.outputs", "at least one output is required")
	}
	for i, out := range t.Outputs {
		field := fmt.Sprintf("transform.outputs[%d]", i)
		if err := ValidateName(field+".name", out.Name); err != nil {
			return err
		}
		if v.FeatureIndex(out.Name) >= 0 {
			return Invalid(field+".name", "%q is already a feature of the view", out.Name)
		}
		switch out.Dtype {
		case DTypeFloat64, DTypeInt64, DTypeBool:
		default:
			return Invalid(field+".dtype", "%q: transform outputs are float64, int64 or bool", out.Dtype)
		}
		v.Features = append(v.Features, Feature{Name: out.Name, Dtype: out.Dtype, Derived: true})
	}
	return nil
}

// NeedsRowTransform reports whether the transform has string or request
// inputs, which only the row ABI can carry.
func (v *FeatureView) NeedsRowTransform() bool {
	for _, in := range v.Transform.Inputs {
		if strings.HasPrefix(in, RequestPrefix) {
			return true
		}
		if i := v.FeatureIndex(in); i >= 0 && v.Features[i].Dtype == DTypeString {
			return true
		}
	}
	return false
}

// DeclaredFeatures returns the features rows carry: all but the derived ones.
func (v *FeatureView) DeclaredFeatures() []Feature {
	n := len(v.Features)
	for n > 0 && v.Features[n-1].Derived {
		n--
	}
	return v.Features[:n]
}

// TransformInputs gathers the transform's inputs for one row: stored
// values by feature, request values by name (nil if absent).
func (v *FeatureView) TransformInputs(values []Value, request map[string]Value, dst []TransformValue) []TransformValue {
	dst = dst[:0]
	for _, in := range v.Transform.Inputs {
		var val Value
		if name, ok := strings.CutPrefix(in, RequestPrefix); ok {
			val = request[name]
		} else if i := v.FeatureIndex(in); i >= 0 && i < len(values) {
			val = values[i]
		}
		dst = append(dst, toTransformValue(val))
	}
	return dst
}

func toTransformValue(v Value) TransformValue {
	switch v.Kind {
	case KindInt64:
		return TransformValue{Num: float64(v.Int)}
	case KindBool:
		return TransformValue{Num: float64(v.Int)}
	case KindTimestamp:
		return TransformValue{Num: float64(v.Int) / 1e6} // unix seconds
	case KindFloat64:
		return TransformValue{Num: v.Float}
	case KindString:
		return TransformValue{IsStr: true, Str: v.Str}
	}
	return TransformValue{Null: true, Num: math.NaN()}
}

// RunTransform computes the derived values of one row into values (whose
// derived positions it overwrites) using the view's transform.
func (v *FeatureView) RunTransform(ctx context.Context, t Transformer, values []Value, request map[string]Value, scratchIn []TransformValue, scratchNums, scratchOut []float64) error {
	tr := v.Transform
	inputs := v.TransformInputs(values, request, scratchIn)
	out := scratchOut[:len(tr.Outputs)]
	var err error
	if v.NeedsRowTransform() {
		err = t.TransformRow(ctx, tr.Module, inputs, out)
	} else {
		nums := scratchNums[:0]
		for _, in := range inputs {
			nums = append(nums, in.Num)
		}
		err = t.Transform(ctx, tr.Module, nums, out)
	}
	if err != nil {
		return err
	}
	base := len(v.Features) - len(tr.Outputs)
	for i, o := range tr.Outputs {
		values[base+i] = numberAs(out[i], o.Dtype)
	}
	return nil
}

// numberAs converts a transform's float64 output to its declared dtype:
// int64 truncates toward zero, bool is true when non-zero; NaN is null.
func numberAs(f float64, dtype DType) Value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return Value{}
	}
	switch dtype {
	case DTypeInt64:
		return Int64Value(int64(f))
	case DTypeBool:
		return BoolValue(f != 0)
	}
	return Float64Value(f)
}
