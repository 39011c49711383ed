package appliance

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Feature is one typed column of a feature view.
type Feature struct {
	Name    string `json:"name"`
	Dtype   DType  `json:"dtype"`
	Derived bool   `json:"derived,omitempty"` // an output of the view's transform
}

// JoinKey is a join key of a view, resolved from its entities when the view
// version is created so that reading a version never needs the entities.
type JoinKey struct {
	Name      string `json:"name"`
	Entity    string `json:"entity"`
	ValueType string `json:"value_type"`
}

// FeatureView is one version of a named group of features about the same
// entities. The schema (entities and features) makes the version and never
// changes; TTL, retention, tags, owner and description are the view's
// metadata, shared by all its versions and changed in place.
type FeatureView struct {
	Name     string    `json:"name"`
	Version  int       `json:"version"`
	Entities []string  `json:"entities"`
	Features []Feature `json:"features"`
	JoinKeys []JoinKey `json:"join_keys"`
	// Transform, if set, derives the features marked Derived.
	Transform *Transform `json:"transform,omitempty"`

	TTL         Duration          `json:"ttl"`
	Retention   Duration          `json:"retention"` // how long offline events are kept, by event time; 0: forever
	Tags        map[string]string `json:"tags"`
	Owner       string            `json:"owner,omitempty"`
	Description string            `json:"description,omitempty"`

	CreatedAt time.Time `json:"created_at"` // of this version
	CreatedBy string    `json:"created_by,omitempty"`
	UpdatedAt time.Time `json:"updated_at"` // of the metadata
}

// MaxFeatures bounds a view's width; rows are stored whole.
const MaxFeatures = 1024

// Validate checks the view definition, independent of other objects.
func (v *FeatureView) Validate() error {
	if err := ValidateName("name", v.Name); err != nil {
		return err
	}
	if len(v.Entities) == 0 {
		return Invalid("entities", "at least one entity is required")
	}
	seen := map[string]bool{}
	for i, e := range v.Entities {
		field := fmt.Sprintf("entities[%d]", i)
		if err := ValidateName(field, e); err != nil {
			return err
		}
		if seen[e] {
			return Invalid(field, "duplicate entity %q", e)
		}
		seen[e] = true
	}
	if len(v.Features) == 0 {
		return Invalid("features", "at least one feature is required")
	}
	if len(v.Features) > MaxFeatures {
		return Invalid("features", "more than %d features", MaxFeatures)
	}
	names := map[string]bool{}
	for i, f := range v.Features {
		field := fmt.Sprintf("features[%d].name", i)
		if f.Derived {
			return Invalid(fmt.Sprintf("features[%d].derived", i), "derived features come from the transform's outputs")
		}
		if err := ValidateName(field, f.Name); err != nil {
			return err
		}
		if names[f.Name] {
			return Invalid(field, "duplicate feature %q", f.Name)
		}
		names[f.Name] = true
		if !f.Dtype.Valid() {
			return Invalid(fmt.Sprintf("features[%d].dtype", i), "%q is not one of %s", f.Dtype, dtypeList())
		}
	}
	if err := v.normalizeTransform(); err != nil {
		return err
	}
	return v.validateMetadata()
}

// MinRetention is the shortest retention accepted: a bare number reads as
// seconds, so "retention": 30 meant as days would otherwise drop nearly all
// of a view's history at the next run.
const MinRetention = Duration(time.Hour)

func (v *FeatureView) validateMetadata() error {
	if v.Retention != 0 && v.Retention < MinRetention {
		return Invalid("retention", "%s is shorter than %s; 0 keeps events forever", v.Retention, MinRetention)
	}
	if len(v.Tags) > 64 {
		return Invalid("tags", "more than 64 tags")
	}
	for k, val := range v.Tags {
		if k == "" || len(k) > 128 || len(val) > 1024 {
			return Invalid("tags", "tag %q: keys are 1 to 128 bytes, values at most 1024", k)
		}
	}
	if len(v.Owner) > 256 {
		return Invalid("owner", "is longer than 256 bytes")
	}
	if len(v.Description) > 4096 {
		return Invalid("description", "is longer than 4096 bytes")
	}
	return nil
}

// ResolveJoinKeys fills v.JoinKeys from the view's entities, in order, and
// checks that no feature shadows a join key.
func (v *FeatureView) ResolveJoinKeys(entity func(name string) (*Entity, error)) error {
	v.JoinKeys = v.JoinKeys[:0]
	seen := map[string]bool{}
	for i, name := range v.Entities {
		e, err := entity(name)
		if err != nil {
			if ErrorCode(err) == ENOTFOUND {
				return &Error{Code: ENOTFOUND, Field: fmt.Sprintf("entities[%d]", i), Message: fmt.Sprintf("entity %q not found", name)}
			}
			return err
		}
		for _, k := range e.JoinKeys {
			if seen[k] {
				return Invalid(fmt.Sprintf("entities[%d]", i), "join key %q appears in two entities", k)
			}
			seen[k] = true
			v.JoinKeys = append(v.JoinKeys, JoinKey{Name: k, Entity: e.Name, ValueType: e.ValueType})
		}
	}
	for i, f := range v.Features {
		if seen[f.Name] {
			return Invalid(fmt.Sprintf("features[%d].name", i), "%q is also a join key", f.Name)
		}
	}
	return nil
}

// SameSchema reports whether two views have the same schema, which is what
// makes a version: posting a view with the same schema makes no new version.
func (v *FeatureView) SameSchema(o *FeatureView) bool {
	if len(v.Entities) != len(o.Entities) || len(v.Features) != len(o.Features) {
		return false
	}
	for i := range v.Entities {
		if v.Entities[i] != o.Entities[i] {
			return false
		}
	}
	for i := range v.Features {
		if v.Features[i] != o.Features[i] {
			return false
		}
	}
	return v.Transform.same(o.Transform)
}

func (t *Transform) same(o *Transform) bool {
	if t == nil || o == nil {
		return t == o
	}
	if t.Module != o.Module || t.Mode != o.Mode || len(t.Inputs) != len(o.Inputs) || len(t.Outputs) != len(o.Outputs) {
		return false
	}
	for i := range t.Inputs {
		if t.Inputs[i] != o.Inputs[i] {
			return false
		}
	}
	for i := range t.Outputs {
		if t.Outputs[i] != o.Outputs[i] {
			return false
		}
	}
	return true
}

// FeatureIndex returns the position of a feature in the schema, or -1.
func (v *FeatureView) FeatureIndex(name string) int {
	for i, f := range v.Features {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// HasEntity reports whether the view is keyed by the named entity.
func (v *FeatureView) HasEntity(name string) bool {
	for _, e := range v.Entities {
		if e == name {
			return true
		}
	}
	return false
}

// Key returns the storage name of this version: "name@version".
func (v *FeatureView) Key() string { return v.Name + "@" + strconv.Itoa(v.Version) }

// Expired reports whether a value with the given event time is older than
// the view's TTL at time now.
func (v *FeatureView) Expired(eventTime, now time.Time) bool {
	return v.TTL > 0 && now.Sub(eventTime) > time.Duration(v.TTL)
}

// FeatureViewPatch changes a view's metadata; nil fields stay as they are.
type FeatureViewPatch struct {
	TTL         *Duration          `json:"ttl"`
	Retention   *Duration          `json:"retention"`
	Tags        *map[string]string `json:"tags"`
	Owner       *string            `json:"owner"`
	Description *string            `json:"description"`
}

// Apply changes v's metadata and validates the result.
func (p *FeatureViewPatch) Apply(v *FeatureView) error {
	if p.TTL != nil {
		v.TTL = *p.TTL
	}
	if p.Retention != nil {
		v.Retention = *p.Retention
	}
	if p.Tags != nil {
		v.Tags = *p.Tags
	}
	if p.Owner != nil {
		v.Owner = *p.Owner
	}
	if p.Description != nil {
		v.Description = *p.Description
	}
	return v.validateMetadata()
}

func dtypeList() string {
	s := make([]string, len(DTypes))
	for i, d := range DTypes {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}

// FeatureRef names a feature: "view:feature" (latest version) or
// "view@v2:feature" (pinned), as in Feast.
type FeatureRef struct {
	View    string
	Version int // 0 means the latest version
	Feature string
}

// ParseFeatureRef parses a feature reference.
func ParseFeatureRef(field, s string) (FeatureRef, error) {
	view, feature, ok := strings.Cut(s, ":")
	if !ok || view == "" || feature == "" {
		return FeatureRef{}, Invalid(field, "%q is not a feature reference like \"view:feature\" or \"view@v2:feature\"", s)
	}
	ref := FeatureRef{View: view, Feature: feature}
	if name, ver, ok := strings.Cut(view, "@"); ok {
		n, err := strconv.Atoi(strings.TrimPrefix(ver, "v"))
		if err != nil || n < 1 || !strings.HasPrefix(ver, "v") {
			return FeatureRef{}, Invalid(field, "%q: version must be like \"@v2\"", s)
		}
		ref.View, ref.Version = name, n
	}
	if err := ValidateName(field, ref.View); err != nil {
		return FeatureRef{}, Invalid(field, "%q: bad view name", s)
	}
	if err := ValidateName(field, ref.Feature); err != nil {
		return FeatureRef{}, Invalid(field, "%q: bad feature name", s)
	}
	return ref, nil
}

func (r FeatureRef) String() string {
	if r.Version > 0 {
		return fmt.Sprintf("%s@v%d:%s", r.View, r.Version, r.Feature)
	}
	return r.View + ":" + r.Feature
}

// FeatureService is a named list of feature references, usable wherever a
// feature list is, as in Feast.
type FeatureService struct {
	Name        string    `json:"name"`
	Features    []string  `json:"features"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Validate checks the service's name and the syntax of its references.
func (s *FeatureService) Validate() error {
	if err := ValidateName("name", s.Name); err != nil {
		return err
	}
	if len(s.Features) == 0 {
		return Invalid("features", "at least one feature reference is required")
	}
	seen := map[string]bool{}
	for i, f := range s.Features {
		field := fmt.Sprintf("features[%d]", i)
		if _, err := ParseFeatureRef(field, f); err != nil {
			return err
		}
		if seen[f] {
			return Invalid(field, "duplicate reference %q", f)
		}
		seen[f] = true
	}
	if len(s.Description) > 4096 {
		return Invalid("description", "is longer than 4096 bytes")
	}
	return nil
}
