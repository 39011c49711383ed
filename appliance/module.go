package appliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Module is a WebAssembly module stored content-addressed: models and
// feature transforms refer to it by the SHA-256 of its bytes.
type Module struct {
	SHA256    string    `json:"sha256"`
	Size      int       `json:"size"`
	Kinds     []string  `json:"kinds"` // "model", "transform", "row_transform"
	HasBatch  bool      `json:"has_batch"`
	Imports   []string  `json:"imports"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// ModuleDigest returns the hex SHA-256 that names a module.
func ModuleDigest(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

// ParseModuleRef accepts "sha256:<hex>" or a bare 64-digit hex digest and
// returns the digest.
func ParseModuleRef(field, ref string) (string, error) {
	d := strings.TrimPrefix(ref, "sha256:")
	if len(d) != 64 {
		return "", Invalid(field, "%q is not a module reference like \"sha256:<64 hex digits>\"", ref)
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", Invalid(field, "%q is not a module reference like \"sha256:<64 lower-case hex digits>\"", ref)
		}
	}
	return d, nil
}

// Module kinds: the entry points a module exports (docs/abi.md).
const (
	KindModel        = "model"         // mlnode_predict
	KindTransform    = "transform"     // mlnode_transform
	KindRowTransform = "row_transform" // mlnode_transform_row
)

// HasKind reports whether the module exports an entry point of kind k.
func (m *Module) HasKind(k string) bool {
	for _, have := range m.Kinds {
		if have == k {
			return true
		}
	}
	return false
}

// ModuleInspector validates uploaded modules: that they are WebAssembly,
// import only what the sandbox allows and export the ABI's entry points
// with the right signatures. EINVALID (field "module") names the problem.
type ModuleInspector interface {
	InspectModule(ctx context.Context, wasm []byte) (*Module, error)
}

// ModuleStore keeps module bytes by digest.
type ModuleStore interface {
	// PutModule stores a module and its metadata unless a module with the
	// same digest exists; it reports whether it stored it. Audited.
	PutModule(ctx context.Context, m *Module, wasm []byte) (bool, error)
	// Module returns a module's metadata; ENOTFOUND if absent.
	Module(ctx context.Context, sha256 string) (*Module, error)
	// ModuleBytes returns a copy of a module's bytes.
	ModuleBytes(ctx context.Context, sha256 string) ([]byte, error)
	// Modules lists every module's metadata, oldest first.
	Modules(ctx context.Context) ([]*Module, error)
}
