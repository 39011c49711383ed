package appliance

import (
	"context"
	"time"
)

// FeatureStatsRecord is the stored statistics of one view version: how far
// into the ingest log they reach and the accumulators' state, which
// appliance/featstats encodes and decodes. The store keeps State opaque so
// that the statistics can change shape without touching storage.
type FeatureStatsRecord struct {
	View    string
	Version int
	// ThroughSeq is the highest ingest sequence the statistics include:
	// updating them means adding the events ingested after it.
	ThroughSeq uint64
	Rows       int64 // events included
	ComputedAt time.Time
	State      []byte
}

// FeatureStatsStore keeps the feature statistics of each view version.
type FeatureStatsStore interface {
	// PutStats replaces a view version's statistics; ENOTFOUND if the
	// version no longer exists.
	PutStats(ctx context.Context, view *FeatureView, st *FeatureStatsRecord) error
	// Stats returns a view version's statistics; ENOTFOUND when none have
	// been computed yet.
	Stats(ctx context.Context, view *FeatureView) (*FeatureStatsRecord, error)
}
