package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// feature_stats/<view key> → sealed(uvarint(len(header)) | header JSON |
// state): the feature statistics of a view version. The state stays
// binary (it is mostly sketch bins) rather than growing by a third in
// base64 inside JSON. The bucket is created by the first write: stores
// made before statistics existed need no migration.
var bucketFeatureStats = []byte("feature_stats")

// featureStatsHeader is the stored form of a record without its state.
// ViewCreatedAt ties the statistics to the view version they were computed
// for: a view deleted and created again under the same name starts at
// version 1 again, and must not inherit them.
type featureStatsHeader struct {
	View          string    `json:"view"`
	Version       int       `json:"version"`
	ThroughSeq    uint64    `json:"through_seq"`
	Rows          int64     `json:"rows"`
	ComputedAt    time.Time `json:"computed_at"`
	ViewCreatedAt time.Time `json:"view_created_at"`
}

// PutStats implements appliance.FeatureStatsStore.
func (s *Store) PutStats(ctx context.Context, view *appliance.FeatureView, st *appliance.FeatureStatsRecord) error {
	if st.View != view.Name || st.Version != view.Version {
		return fmt.Errorf("put statistics of %s: the record is of %s@%d", view.Key(), st.View, st.Version)
	}
	header, err := json.Marshal(featureStatsHeader{View: st.View, Version: st.Version, ThroughSeq: st.ThroughSeq, Rows: st.Rows,
		ComputedAt: st.ComputedAt.UTC(), ViewCreatedAt: view.CreatedAt.UTC()})
	if err != nil {
		return fmt.Errorf("encode statistics of %s: %w", view.Key(), err)
	}
	plain := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(header)+len(st.State)), uint64(len(header)))
	plain = append(append(plain, header...), st.State...)
	sealed := s.codec.Seal(nil, plain)
	viewKey := []byte(view.Key())
	return s.update(ctx, func(tx *bolt.Tx) error {
		// The events bucket lives exactly as long as the view version.
		if tx.Bucket(bucketEvents).Bucket(viewKey) == nil {
			return appliance.NotFound("feature view", view.Key())
		}
		b, err := tx.CreateBucketIfNotExists(bucketFeatureStats)
		if err != nil {
			return fmt.Errorf("put statistics of %s: %w", view.Key(), err)
		}
		return b.Put(viewKey, sealed)
	}, nil)
}

// Stats implements appliance.FeatureStatsStore.
func (s *Store) Stats(_ context.Context, view *appliance.FeatureView) (*appliance.FeatureStatsRecord, error) {
	var rec *appliance.FeatureStatsRecord
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFeatureStats)
		if b == nil {
			return nil
		}
		sealed := b.Get([]byte(view.Key()))
		if sealed == nil {
			return nil
		}
		plain, err := s.codec.Open(nil, sealed)
		if err != nil {
			return err
		}
		n, k := binary.Uvarint(plain)
		if k <= 0 || n > uint64(len(plain)-k) {
			return fmt.Errorf("corrupt header")
		}
		var h featureStatsHeader
		if err := json.Unmarshal(plain[k:k+int(n)], &h); err != nil {
			return fmt.Errorf("header: %w", err)
		}
		if !h.ViewCreatedAt.Equal(view.CreatedAt) {
			return nil // of an earlier view by that name
		}
		rec = &appliance.FeatureStatsRecord{View: h.View, Version: h.Version, ThroughSeq: h.ThroughSeq, Rows: h.Rows,
			ComputedAt: h.ComputedAt, State: bytes.Clone(plain[k+int(n):])}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read statistics of %s: %w", view.Key(), err)
	}
	if rec == nil {
		return nil, appliance.Errorf(appliance.ENOTFOUND, "feature view %s has no statistics yet; run the statistics job", view.Key())
	}
	return rec, nil
}
