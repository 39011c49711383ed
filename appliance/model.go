package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Model version statuses.
const (
	StatusActive   = "active"
	StatusArchived = "archived"
)

// Model is a named line of model versions, as in MLflow's registry.
type Model struct {
	Name          string            `json:"name"`
	Description   string            `json:"description,omitempty"`
	Tags          map[string]string `json:"tags"`
	LatestVersion int               `json:"latest_version"`
	Aliases       map[string]int    `json:"aliases"`
	CreatedAt     time.Time         `json:"created_at"`
	CreatedBy     string            `json:"created_by,omitempty"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// ModelVersion is one immutable upload of a model: a bundle, identified by
// the digest of its canonical manifest with every module digest filled in.
type ModelVersion struct {
	Model        string             `json:"model"`
	Version      int                `json:"version"`
	SHA256       string             `json:"sha256"`        // the version's identity: digest of the canonical manifest
	BundleSHA256 string             `json:"bundle_sha256"` // of the archive bytes as uploaded
	BundleSize   int                `json:"bundle_size"`
	Module       string             `json:"module"` // "sha256:<hex>" of the model's module
	Inputs       []string           `json:"inputs"`
	Outputs      []string           `json:"outputs"`
	Manifest     json.RawMessage    `json:"manifest"`
	Defaults     map[string]float64 `json:"defaults,omitempty"` // per input, from the manifest
	Limits       ModuleLimits       `json:"limits"`
	Lineage      Lineage            `json:"lineage"`
	Status       string             `json:"status"`
	Tags         map[string]string  `json:"tags"`
	Signatures   []Signature        `json:"signatures"`
	CreatedAt    time.Time          `json:"created_at"`
	CreatedBy    string             `json:"created_by,omitempty"`
}

// ModuleLimits bound one module's calls; zero means the node's defaults.
type ModuleLimits struct {
	MemoryPages uint32 `json:"memory_pages,omitempty"`
	TimeoutMS   int    `json:"timeout_ms,omitempty"`
}

// Lineage records what a version was built against, pinned at upload.
type Lineage struct {
	FeatureViews map[string]int `json:"feature_views"` // view → version used
	Modules      []string       `json:"modules"`       // every module's "sha256:<hex>"
}

// Signature is a detached ed25519 signature of a version's digest.
type Signature struct {
	KeyID     string    `json:"key_id"`
	Valid     bool      `json:"valid"`
	Trusted   bool      `json:"trusted"` // by a key in the node's configuration
	AddedAt   time.Time `json:"added_at"`
	AddedBy   string    `json:"added_by,omitempty"`
	Signature []byte    `json:"signature"`
}

// HasTrustedSignature reports whether a valid signature by a trusted key
// is on the version.
func (v *ModelVersion) HasTrustedSignature() bool {
	for _, s := range v.Signatures {
		if s.Valid && s.Trusted {
			return true
		}
	}
	return false
}

// AliasChange is one entry of an alias's history.
type AliasChange struct {
	Seq       uint64    `json:"seq"`
	Alias     string    `json:"alias"`
	Action    string    `json:"action"`  // "set", "delete", "rollback"
	Version   int       `json:"version"` // after the change; 0 when deleted
	Previous  int       `json:"previous"`
	Actor     string    `json:"actor"`
	RequestID string    `json:"request_id,omitempty"`
	Time      time.Time `json:"time"`
}

// ValidateModelName checks a model's name: [a-z][a-z0-9_-]*, at most 128
// bytes. Models allow '-' (they are named like packages, "churn-model").
func ValidateModelName(field, name string) error {
	if name == "" {
		return Invalid(field, "is required")
	}
	if len(name) > 128 {
		return Invalid(field, "%q is longer than 128 bytes", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '-'):
		default:
			return Invalid(field, "%q must match [a-z][a-z0-9_-]*", name)
		}
	}
	return nil
}

// ValidateAliasName checks an alias: [A-Za-z0-9_-]+, at most 64 bytes;
// "latest" and "v<digits>" are reserved, as in MLflow.
func ValidateAliasName(name string) error {
	if name == "" || len(name) > 64 {
		return Invalid("alias", "%q must be 1 to 64 characters", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return Invalid("alias", "%q must match [A-Za-z0-9_-]+", name)
		}
	}
	if strings.EqualFold(name, "latest") {
		return Invalid("alias", "%q is reserved: it always means the newest version", name)
	}
	if _, ok := VersionRef(strings.ToLower(name)); ok {
		return Invalid("alias", "%q is reserved: v<digits> names a version", name)
	}
	return nil
}

// VersionRef reads a version reference, "v<N>", as aliases resolve it.
func VersionRef(alias string) (int, bool) {
	if len(alias) > 1 && alias[0] == 'v' {
		if n, err := strconv.Atoi(alias[1:]); err == nil {
			return n, true
		}
	}
	return 0, false
}

// AliasPolicy is what an alias requires of the versions it points to.
type AliasPolicy struct {
	RequireSignature bool `json:"require_signature" yaml:"require_signature"`
}

// ModelVersionPatch changes a version's status or tags.
type ModelVersionPatch struct {
	Status *string            `json:"status"`
	Tags   *map[string]string `json:"tags"`
}

// ModelRegistry holds models, versions, aliases and their history. Every
// change is audited in the same transaction.
type ModelRegistry interface {
	// CreateModelVersion stores a validated version (its bundle and module
	// bytes content-addressed) as the next version of its model; an identical
	// bundle (same digest) returns the existing version with created false.
	CreateModelVersion(ctx context.Context, v *ModelVersion, bundle []byte, modules map[string][]byte) (*ModelVersion, bool, error)
	Models(ctx context.Context) ([]*Model, error)
	Model(ctx context.Context, name string) (*Model, error)
	ModelVersions(ctx context.Context, name string) ([]*ModelVersion, error)
	ModelVersion(ctx context.Context, name string, version int) (*ModelVersion, error)
	// ResolveModel returns the version an alias, "latest" or "v<N>" names.
	ResolveModel(ctx context.Context, name, alias string) (*ModelVersion, error)
	ModelBundle(ctx context.Context, name string, version int) ([]byte, error)
	PatchModel(ctx context.Context, name string, tags map[string]string, description *string) (*Model, error)
	PatchModelVersion(ctx context.Context, name string, version int, p *ModelVersionPatch) (*ModelVersion, error)
	AddSignature(ctx context.Context, name string, version int, sig Signature) (*ModelVersion, error)
	// SetAlias points an alias at a version; ECONFLICT for an archived
	// version or one that does not meet the alias's policy.
	SetAlias(ctx context.Context, name, alias string, version int, policy AliasPolicy) (*AliasChange, error)
	DeleteAlias(ctx context.Context, name, alias string) (*AliasChange, error)
	// RollbackAlias moves an alias back to the version it pointed to before
	// the current one; repeated rollbacks walk further back.
	RollbackAlias(ctx context.Context, name, alias string, policy AliasPolicy) (*AliasChange, error)
	AliasHistory(ctx context.Context, name, alias string) ([]*AliasChange, error)
}

// ModelRef formats a model version for audit objects and errors.
func ModelRef(name string, version int) string { return fmt.Sprintf("model/%s@%d", name, version) }
