package appliance

import (
	"context"
	"time"
)

// Row is one validated event of a feature view version, ready to store.
type Row struct {
	Key       []byte  // the entity key: AppendEntityKeyPart of each join key, in order
	EventTime int64   // unix microseconds
	Values    []Value // one per feature of the version, KindNull where absent
}

// WriteRequest asks the store to write validated rows of one view version.
type WriteRequest struct {
	View *FeatureView
	Rows []Row
	// Offline only: the rows go to the offline log but not the online table
	// (history backfills).
	OfflineOnly bool
	// Idempotency makes a retried request a no-op: when set, the response is
	// stored with the rows, and a later write with the same key returns it.
	Idempotency *Idempotency
}

// Idempotency identifies a request that may be retried and its answer.
type Idempotency struct {
	Key      string // scope and client key, e.g. "token|view|key"
	BodyHash [32]byte
	Response []byte // what to answer to a retry
}

// WriteResult reports what a write did.
type WriteResult struct {
	Written   int    // rows appended to the offline log
	Online    int    // rows that became the online value of their entity
	FirstSeq  uint64 // ingest sequence of the first row; rows are numbered consecutively
	LastSeq   uint64
	Replayed  []byte // set when an identical idempotent request was done before: its stored answer
	Duplicate bool
}

// OnlineRow is the online value of one entity of a view version.
type OnlineRow struct {
	Found     bool
	EventTime int64 // unix microseconds
	Values    []Value
}

// EraseResult counts what an erasure removed.
type EraseResult struct {
	Views   []string `json:"views"`
	Offline int      `json:"offline_rows"`
	Online  int      `json:"online_rows"`
}

// FeatureRegistry holds entity, feature view and feature service definitions.
// Every change is audited in the same transaction.
type FeatureRegistry interface {
	// CreateEntity stores a new entity and reports whether it did; an
	// identical definition is a no-op (false, nil), a different one ECONFLICT.
	CreateEntity(ctx context.Context, e *Entity) (bool, error)
	// Entity returns an entity; ENOTFOUND if there is none.
	Entity(ctx context.Context, name string) (*Entity, error)
	Entities(ctx context.Context) ([]*Entity, error)

	// ApplyFeatureView creates the view, or the next version of it if the
	// schema changed; an identical schema returns the latest version with
	// created false. ENOTFOUND for an unknown entity.
	ApplyFeatureView(ctx context.Context, v *FeatureView) (view *FeatureView, created bool, err error)
	// PatchFeatureView changes the view's metadata (all versions).
	PatchFeatureView(ctx context.Context, name string, p *FeatureViewPatch) (*FeatureView, error)
	// FeatureView returns a version of a view, the latest for version 0.
	FeatureView(ctx context.Context, name string, version int) (*FeatureView, error)
	// FeatureViews returns the latest version of every view.
	FeatureViews(ctx context.Context) ([]*FeatureView, error)
	// FeatureViewVersions returns every version of a view, oldest first.
	FeatureViewVersions(ctx context.Context, name string) ([]*FeatureView, error)
	// DeleteFeatureView removes a view, every version and its data. A view
	// with data needs force, else ECONFLICT.
	DeleteFeatureView(ctx context.Context, name string, force bool) error

	// ApplyFeatureService creates or replaces a service; ENOTFOUND if a
	// reference names an unknown view, version or feature.
	ApplyFeatureService(ctx context.Context, s *FeatureService) (created bool, err error)
	FeatureService(ctx context.Context, name string) (*FeatureService, error)
	FeatureServices(ctx context.Context) ([]*FeatureService, error)
	DeleteFeatureService(ctx context.Context, name string) error
}

// FeatureStore holds feature data: the offline log of every event and the
// online table of the latest value per entity.
type FeatureStore interface {
	// WriteRows appends rows durably: when it returns nil, they survive a
	// crash. Each row gets the next ingest sequence number.
	WriteRows(ctx context.Context, req *WriteRequest) (*WriteResult, error)
	// IdempotentResponse returns the stored answer to an earlier request with
	// this key and the hash of its body, if any.
	IdempotentResponse(ctx context.Context, key string) (response []byte, bodyHash [32]byte, ok bool, err error)
	// ReadOnline reads the online rows of the given entity keys of one view
	// version into out, which has one element per key.
	ReadOnline(ctx context.Context, view *FeatureView, keys [][]byte, out []OnlineRow) error
	// EraseEntityKey removes every row of one instance of an entity (its join
	// key values, in the entity's join key order) from every view keyed by it.
	EraseEntityKey(ctx context.Context, entity *Entity, key []Value) (*EraseResult, error)
	// ViewStats reports how many events a view version holds.
	ViewStats(ctx context.Context, view *FeatureView) (*ViewStats, error)
}

// ViewStats are counts about a view version's stored data.
type ViewStats struct {
	OfflineRows int       `json:"offline_rows"`
	OnlineRows  int       `json:"online_rows"`
	LastSeq     uint64    `json:"last_ingest_seq"`
	UpdatedAt   time.Time `json:"-"`
}
