package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mlnode/mlnode/appliance"
)

// ABI is the only module ABI a manifest may name (docs/abi.md).
const ABI = "mlnode/v1"

// Bounds on a manifest, so that one bundle cannot make the node allocate
// without limit when it resolves inputs or runs the sample.
const (
	MaxManifestSize  = 4 << 20 // bytes of manifest.json
	MaxInputs        = 4096
	MaxOutputs       = 1024
	MaxTransforms    = 16
	maxNameLen       = 128
	maxDescription   = 16 << 10
	maxShortText     = 1024 // framework, dataset, code_ref, metric names
	maxPathLen       = 256
	maxMemoryPages   = 65536     // 4 GiB, all a wasm32 memory can address
	maxTimeoutMS     = 3_600_000 // one hour
	defaultTolerance = 1e-6
)

// Manifest is manifest.json: what a model is, what it reads, what it
// writes and where it came from. docs/bundle.md describes every field.
type Manifest struct {
	Name        string                   `json:"name"`
	ABI         string                   `json:"abi"`
	Module      string                   `json:"module"`
	Modules     map[string]string        `json:"modules,omitempty"`    // path -> hex sha256, claims checked on open
	Transforms  []string                 `json:"transforms,omitempty"` // paths of transform modules shipped alongside
	Inputs      []string                 `json:"inputs"`
	Outputs     []string                 `json:"outputs"`
	Description string                   `json:"description,omitempty"`
	Framework   string                   `json:"framework,omitempty"`
	Metrics     map[string]float64       `json:"metrics,omitempty"`
	Training    *Training                `json:"training,omitempty"`
	Defaults    map[string]float64       `json:"defaults,omitempty"`  // input -> value used when it is missing
	Reference   map[string]*Distribution `json:"reference,omitempty"` // input or output -> distribution
	Sample      *Sample                  `json:"sample,omitempty"`
	Limits      *RunLimits               `json:"limits,omitempty"`
}

// Training is the lineage of a model: what it was trained on, by which code,
// when, with which parameters.
type Training struct {
	Dataset   string          `json:"dataset,omitempty"`
	CodeRef   string          `json:"code_ref,omitempty"`
	TrainedAt string          `json:"trained_at,omitempty"` // RFC 3339
	Params    json.RawMessage `json:"params,omitempty"`     // any JSON object
}

// Distribution is a reference distribution of one input or output, in the
// format the feature statistics share: a histogram with explicit bin edges
// ("numeric") or counts per value ("categorical").
type Distribution struct {
	Type   string    `json:"type"` // "numeric" or "categorical"
	Count  int64     `json:"count"`
	Mean   float64   `json:"mean,omitempty"`  // numeric only
	Std    float64   `json:"std,omitempty"`   // numeric only
	Edges  []float64 `json:"edges,omitempty"` // numeric only: len(Counts.Bins)+1, strictly increasing
	Counts Counts    `json:"counts"`
}

// Distribution types.
const (
	Numeric     = "numeric"
	Categorical = "categorical"
)

// Counts is a distribution's "counts": an array of bin counts for a numeric
// distribution, an object of counts by value for a categorical one.
type Counts struct {
	Bins   []int64
	Values map[string]int64
}

// Sample is an input and the output the module must give for it (within
// Tolerance), checked when the bundle is uploaded.
type Sample struct {
	Input     Vector   `json:"input"`
	Output    Vector   `json:"output"`
	Tolerance *float64 `json:"tolerance,omitempty"` // nil means 1e-6
}

// Vector is a sample's input or output: an array in the order of the
// manifest's inputs or outputs, or an object by name. An input object may
// leave out inputs that have a default.
type Vector struct {
	Values []float64
	Named  map[string]float64
}

// RunLimits are a model's own limits, each capped by the node's maximum;
// zero (or absent) means the node's default.
type RunLimits struct {
	MemoryPages int `json:"memory_pages,omitempty"` // 64 KiB pages
	TimeoutMS   int `json:"timeout_ms,omitempty"`
}

// ModulePaths returns the archive paths of every module the manifest names:
// the model first, then its transforms in order.
func (m *Manifest) ModulePaths() []string {
	return append([]string{m.Module}, m.Transforms...)
}

// Validate checks the manifest on its own (not against the archive or the
// feature registry). Errors are EINVALID with Field the JSON path at fault,
// such as "inputs[2]" or "reference.age.counts".
func (m *Manifest) Validate() error {
	if err := ValidateModelName("name", m.Name); err != nil {
		return err
	}
	if m.ABI != ABI {
		return appliance.Invalid("abi", "%q is not a supported ABI; use %q", m.ABI, ABI)
	}
	if m.Module == "" {
		return appliance.Invalid("module", "is required: the path of the model's module in the archive")
	}
	if err := validateMemberPath("module", m.Module); err != nil {
		return err
	}
	if len(m.Transforms) > MaxTransforms {
		return appliance.Invalid("transforms", "has %d modules; at most %d", len(m.Transforms), MaxTransforms)
	}
	paths := map[string]string{m.Module: "module"}
	for i, p := range m.Transforms {
		field := indexPath("transforms", i)
		if err := validateMemberPath(field, p); err != nil {
			return err
		}
		if other, dup := paths[p]; dup {
			return appliance.Invalid(field, "%q is already named by %s", p, other)
		}
		paths[p] = field
	}
	for _, p := range sortedKeys(m.Modules) {
		field := keyPath("modules", p)
		if _, ok := paths[p]; !ok {
			return appliance.Invalid(field, "%q is neither the module nor a transform", p)
		}
		if !isHexDigest(m.Modules[p]) {
			return appliance.Invalid(field, "%q is not a sha256 of 64 lower-case hex digits", m.Modules[p])
		}
	}
	if err := m.validateInputs(); err != nil {
		return err
	}
	if err := m.validateOutputs(); err != nil {
		return err
	}
	if len(m.Description) > maxDescription {
		return appliance.Invalid("description", "is longer than %d bytes", maxDescription)
	}
	if err := validateText("framework", m.Framework); err != nil {
		return err
	}
	for _, k := range sortedKeys(m.Metrics) {
		if k == "" {
			return appliance.Invalid("metrics", "a metric name is empty")
		}
		if err := validateText(keyPath("metrics", k), k); err != nil {
			return err
		}
	}
	if err := m.Training.validate(); err != nil {
		return err
	}
	for _, k := range sortedKeys(m.Defaults) {
		if !slices.Contains(m.Inputs, k) {
			return appliance.Invalid(keyPath("defaults", k), "%q is not one of the inputs", k)
		}
	}
	for _, k := range sortedKeys(m.Reference) {
		field := keyPath("reference", k)
		if !slices.Contains(m.Inputs, k) && !slices.Contains(m.Outputs, k) {
			return appliance.Invalid(field, "%q is neither an input nor an output", k)
		}
		if err := m.Reference[k].validate(field); err != nil {
			return err
		}
	}
	if m.Sample != nil {
		if _, err := m.SampleInput(); err != nil {
			return err
		}
		if _, err := m.sampleOutput(); err != nil {
			return err
		}
		if t := m.Sample.Tolerance; t != nil && !(*t >= 0) {
			return appliance.Invalid("sample.tolerance", "must not be negative")
		}
	}
	if l := m.Limits; l != nil {
		if l.MemoryPages < 0 || l.MemoryPages > maxMemoryPages {
			return appliance.Invalid("limits.memory_pages", "%d is not between 0 (the node's default) and %d", l.MemoryPages, maxMemoryPages)
		}
		if l.TimeoutMS < 0 || l.TimeoutMS > maxTimeoutMS {
			return appliance.Invalid("limits.timeout_ms", "%d is not between 0 (the node's default) and %d", l.TimeoutMS, maxTimeoutMS)
		}
	}
	return nil
}

func (m *Manifest) validateInputs() error {
	if len(m.Inputs) == 0 {
		return appliance.Invalid("inputs", "at least one input is required")
	}
	if len(m.Inputs) > MaxInputs {
		return appliance.Invalid("inputs", "has %d inputs; at most %d", len(m.Inputs), MaxInputs)
	}
	seen := make(map[string]bool, len(m.Inputs))
	for i, in := range m.Inputs {
		field := indexPath("inputs", i)
		if seen[in] {
			return appliance.Invalid(field, "duplicate input %q", in)
		}
		seen[in] = true
		if _, err := ParseInput(field, in); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) validateOutputs() error {
	if len(m.Outputs) == 0 {
		return appliance.Invalid("outputs", "at least one output is required")
	}
	if len(m.Outputs) > MaxOutputs {
		return appliance.Invalid("outputs", "has %d outputs; at most %d", len(m.Outputs), MaxOutputs)
	}
	seen := make(map[string]bool, len(m.Outputs))
	for i, out := range m.Outputs {
		field := indexPath("outputs", i)
		if seen[out] {
			return appliance.Invalid(field, "duplicate output %q", out)
		}
		seen[out] = true
		if err := appliance.ValidateName(field, out); err != nil {
			return err
		}
	}
	return nil
}

// Input is a parsed model input: a stored feature or a request value.
type Input struct {
	Request string               // the name of a "request:<name>" input
	Feature appliance.FeatureRef // otherwise
}

// ParseInput parses one of a manifest's inputs: "view:feature",
// "view@v2:feature" or "request:<name>".
func ParseInput(field, s string) (Input, error) {
	if name, ok := strings.CutPrefix(s, appliance.RequestPrefix); ok {
		if err := appliance.ValidateName(field, name); err != nil {
			return Input{}, appliance.Invalid(field, "%q: bad request input name", s)
		}
		return Input{Request: name}, nil
	}
	ref, err := appliance.ParseFeatureRef(field, s)
	if err != nil {
		return Input{}, appliance.Invalid(field, "%q is not \"view:feature\", \"view@v2:feature\" or \"request:name\"", s)
	}
	return Input{Feature: ref}, nil
}

// ValidateModelName checks a model name: [a-z][a-z0-9_-]*, at most 128
// bytes. Unlike feature names, '-' is allowed: model names appear in URLs
// and people name models "churn-v2".
func ValidateModelName(field, name string) error {
	return appliance.ValidateModelName(field, name)
}

// validPath checks a path inside the archive: relative, slash-separated,
// no empty, "." or ".." components, no backslashes, UTF-8 without control
// characters, at most 256 bytes.
func validPath(p string) error {
	switch {
	case p == "":
		return errors.New("is empty")
	case len(p) > maxPathLen:
		return fmt.Errorf("is longer than %d bytes", maxPathLen)
	case !utf8.ValidString(p):
		return errors.New("is not valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return errors.New("is absolute")
	case strings.ContainsRune(p, '\\'):
		return errors.New("contains a backslash; use '/'")
	}
	for _, r := range p {
		if r < 0x20 || r >= 0x7f && r < 0xa0 {
			return fmt.Errorf("contains the control character %U", r)
		}
	}
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "":
			return errors.New("has an empty component")
		case ".":
			return errors.New("has a '.' component")
		case "..":
			return errors.New("has a '..' component")
		}
	}
	return nil
}

// validateMemberPath checks a module path named by the manifest.
func validateMemberPath(field, p string) error {
	if err := validPath(p); err != nil {
		return appliance.Invalid(field, "%q %v", p, err)
	}
	if p == ManifestFile || p == SignatureFile {
		return appliance.Invalid(field, "%q is reserved", p)
	}
	return nil
}

func validateText(field, s string) error {
	if len(s) > maxShortText {
		return appliance.Invalid(field, "is longer than %d bytes", maxShortText)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return appliance.Invalid(field, "contains the control character %U", r)
		}
	}
	return nil
}

func (t *Training) validate() error {
	if t == nil {
		return nil
	}
	if err := validateText("training.dataset", t.Dataset); err != nil {
		return err
	}
	if err := validateText("training.code_ref", t.CodeRef); err != nil {
		return err
	}
	if t.TrainedAt != "" {
		if _, err := time.Parse(time.RFC3339, t.TrainedAt); err != nil {
			return appliance.Invalid("training.trained_at", "%q is not an RFC 3339 time like 2024-05-01T12:00:00Z", t.TrainedAt)
		}
	}
	if len(t.Params) > 0 && bytes.TrimSpace(t.Params)[0] != '{' {
		return appliance.Invalid("training.params", "must be a JSON object")
	}
	return nil
}

func (d *Distribution) validate(field string) error {
	if d == nil {
		return appliance.Invalid(field, "must be a distribution object")
	}
	if d.Count < 0 {
		return appliance.Invalid(field+".count", "must not be negative")
	}
	var sum int64
	add := func(f string, n int64) error {
		if n < 0 {
			return appliance.Invalid(f, "counts must not be negative")
		}
		if sum > math.MaxInt64-n {
			return appliance.Invalid(f, "the counts overflow a 64-bit integer")
		}
		sum += n
		return nil
	}
	switch d.Type {
	case Numeric:
		if d.Counts.Values != nil {
			return appliance.Invalid(field+".counts", "a numeric distribution's counts are an array of bin counts")
		}
		if len(d.Edges) < 2 {
			return appliance.Invalid(field+".edges", "a numeric distribution needs at least 2 bin edges")
		}
		for i := 1; i < len(d.Edges); i++ {
			if !(d.Edges[i] > d.Edges[i-1]) {
				return appliance.Invalid(indexPath(field+".edges", i), "edges must be strictly increasing")
			}
		}
		if len(d.Counts.Bins) != len(d.Edges)-1 {
			return appliance.Invalid(field+".counts", "has %d bins; %d edges make %d", len(d.Counts.Bins), len(d.Edges), len(d.Edges)-1)
		}
		for i, n := range d.Counts.Bins {
			if err := add(indexPath(field+".counts", i), n); err != nil {
				return err
			}
		}
		if d.Std < 0 {
			return appliance.Invalid(field+".std", "must not be negative")
		}
	case Categorical:
		if d.Counts.Bins != nil {
			return appliance.Invalid(field+".counts", "a categorical distribution's counts are an object of counts by value")
		}
		if d.Edges != nil || d.Mean != 0 || d.Std != 0 {
			return appliance.Invalid(field, "a categorical distribution has no edges, mean or std")
		}
		for _, k := range sortedKeys(d.Counts.Values) {
			if err := add(keyPath(field+".counts", k), d.Counts.Values[k]); err != nil {
				return err
			}
		}
	default:
		return appliance.Invalid(field+".type", "%q is not %q or %q", d.Type, Numeric, Categorical)
	}
	if sum != d.Count {
		return appliance.Invalid(field+".count", "is %d but the counts add up to %d", d.Count, sum)
	}
	return nil
}

// SampleInput returns the sample's input in the order of the manifest's
// inputs, with defaults for inputs an object form leaves out; nil if there
// is no sample.
func (m *Manifest) SampleInput() ([]float64, error) {
	if m.Sample == nil {
		return nil, nil
	}
	return m.Sample.Input.ordered("sample.input", m.Inputs, m.Defaults)
}

func (m *Manifest) sampleOutput() ([]float64, error) {
	return m.Sample.Output.ordered("sample.output", m.Outputs, nil)
}

// CheckSample compares what the module gave for the sample input with the
// sample output: each value within Tolerance × max(1, |want|). It returns
// EUNPROCESSABLE naming the first output that differs, nil without a sample.
func (m *Manifest) CheckSample(got []float64) error {
	if m.Sample == nil {
		return nil
	}
	want, err := m.sampleOutput()
	if err != nil {
		return err
	}
	if len(got) != len(want) {
		return &appliance.Error{Code: appliance.EUNPROCESSABLE, Field: "sample.output", Message: fmt.Sprintf("the module gave %d outputs, the sample has %d", len(got), len(want))}
	}
	tol := m.Sample.Tol()
	for i := range want {
		if !(math.Abs(got[i]-want[i]) <= tol*math.Max(1, math.Abs(want[i]))) {
			return &appliance.Error{Code: appliance.EUNPROCESSABLE, Field: indexPath("sample.output", i),
				Message: fmt.Sprintf("the module gave %v for %q, the sample says %v (tolerance %g)", got[i], m.Outputs[i], want[i], tol)}
		}
	}
	return nil
}

// Tol returns the sample's tolerance, 1e-6 unless the manifest says.
func (s *Sample) Tol() float64 {
	if s.Tolerance == nil {
		return defaultTolerance
	}
	return *s.Tolerance
}

func (v *Vector) ordered(field string, names []string, defaults map[string]float64) ([]float64, error) {
	switch {
	case v.Values != nil:
		if len(v.Values) != len(names) {
			return nil, appliance.Invalid(field, "has %d values for %d names", len(v.Values), len(names))
		}
		return v.Values, nil
	case v.Named != nil:
		out := make([]float64, len(names))
		for i, n := range names {
			x, ok := v.Named[n]
			if !ok {
				if x, ok = defaults[n]; !ok {
					return nil, appliance.Invalid(keyPath(field, n), "is missing (and has no default)")
				}
			}
			out[i] = x
		}
		for _, k := range sortedKeys(v.Named) {
			if !slices.Contains(names, k) {
				return nil, appliance.Invalid(keyPath(field, k), "%q is not one of the manifest's names", k)
			}
		}
		return out, nil
	}
	return nil, appliance.Invalid(field, "is required: an array, or an object by name")
}

// MarshalJSON writes the array or object form.
func (v Vector) MarshalJSON() ([]byte, error) {
	if v.Named != nil {
		return json.Marshal(v.Named)
	}
	if v.Values == nil {
		return []byte("null"), nil
	}
	return json.Marshal(v.Values)
}

// UnmarshalJSON reads an array of numbers or an object of numbers.
func (v *Vector) UnmarshalJSON(b []byte) error {
	*v = Vector{}
	switch firstByte(b) {
	case '[':
		return json.Unmarshal(b, &v.Values)
	case '{':
		return json.Unmarshal(b, &v.Named)
	case 'n':
		return nil
	}
	return errors.New("must be an array or an object of numbers")
}

// MarshalJSON writes an array for bins, an object for values.
func (c Counts) MarshalJSON() ([]byte, error) {
	if c.Values != nil {
		return json.Marshal(c.Values)
	}
	if c.Bins == nil {
		return []byte("null"), nil
	}
	return json.Marshal(c.Bins)
}

// UnmarshalJSON reads an array of bin counts or an object of counts.
func (c *Counts) UnmarshalJSON(b []byte) error {
	*c = Counts{}
	switch firstByte(b) {
	case '[':
		return json.Unmarshal(b, &c.Bins)
	case '{':
		return json.Unmarshal(b, &c.Values)
	case 'n':
		return nil
	}
	return errors.New("must be an array of bin counts or an object of counts by value")
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ParseManifest parses manifest.json strictly and validates it: UTF-8 JSON
// without duplicate keys or unknown fields (either is an error naming the
// field), then Validate.
func ParseManifest(raw []byte) (*Manifest, error) {
	m, _, err := parseManifest(raw)
	return m, err
}

func parseManifest(raw []byte) (*Manifest, *value, error) {
	if len(raw) > MaxManifestSize {
		return nil, nil, &appliance.Error{Code: appliance.ETOOLARGE, Field: ManifestFile, Message: fmt.Sprintf("is larger than %d bytes", MaxManifestSize)}
	}
	tree, err := parseJSON(raw, ManifestFile)
	if err != nil {
		return nil, nil, err
	}
	if tree.kind != jObject {
		return nil, nil, appliance.Invalid(ManifestFile, "must be a JSON object")
	}
	if err := checkFields(tree); err != nil {
		return nil, nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, nil, decodeError(err)
	}
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}
	return &m, tree, nil
}

// Field names of the manifest's objects, from their struct tags.
var (
	manifestFields     = jsonFields(reflect.TypeFor[Manifest]())
	trainingFields     = jsonFields(reflect.TypeFor[Training]())
	distributionFields = jsonFields(reflect.TypeFor[Distribution]())
	sampleFields       = jsonFields(reflect.TypeFor[Sample]())
	limitsFields       = jsonFields(reflect.TypeFor[RunLimits]())
)

func jsonFields(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

// checkFields refuses unknown fields with their full JSON path, which
// encoding/json's DisallowUnknownFields does not give, and the wrong kind
// of JSON where a field takes two forms.
func checkFields(tree *value) error {
	if err := knownFields(tree, "", manifestFields); err != nil {
		return err
	}
	for _, f := range []struct {
		name   string
		fields []string
	}{{"training", trainingFields}, {"sample", sampleFields}, {"limits", limitsFields}} {
		if err := knownFields(tree.get(f.name), f.name, f.fields); err != nil {
			return err
		}
	}
	if s := tree.get("sample"); s != nil && s.kind == jObject {
		for _, name := range []string{"input", "output"} {
			if v := s.get(name); v != nil && v.kind != jArray && v.kind != jObject {
				return appliance.Invalid("sample."+name, "must be an array in manifest order or an object by name")
			}
		}
	}
	if ref := tree.get("reference"); ref != nil && ref.kind == jObject {
		for _, m := range ref.obj {
			field := keyPath("reference", m.key)
			if err := knownFields(m.val, field, distributionFields); err != nil {
				return err
			}
			if m.val.kind != jObject {
				return appliance.Invalid(field, "must be a distribution object")
			}
			if c := m.val.get("counts"); c == nil || c.kind != jArray && c.kind != jObject {
				return appliance.Invalid(field+".counts", "is required: an array of bin counts or an object of counts by value")
			}
		}
	}
	return nil
}

func knownFields(v *value, path string, fields []string) error {
	if v == nil || v.kind != jObject {
		return nil // absent, or a type error that decoding reports
	}
	for _, m := range v.obj {
		if !slices.Contains(fields, m.key) {
			return appliance.Invalid(keyPath(path, m.key), "unknown field")
		}
	}
	return nil
}

// decodeError names the field of a type error from encoding/json.
func decodeError(err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		field := typ.Field
		if field == "" {
			field = ManifestFile
		}
		return appliance.Invalid(field, "expected %s, got JSON %s", typ.Type, typ.Value)
	}
	return appliance.Invalid(ManifestFile, "%v", err)
}
