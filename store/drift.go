package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// drift/<model> → bucket { i64(window end µs) | u32(version) → DriftWindow (JSON) }
// drift_baselines: key → opaque baseline (set once)
// alerts: u64(seq) → Alert (JSON); the newest 10,000 are kept
// All created by their first write.
var (
	bucketDrift          = []byte("drift")
	bucketDriftBaselines = []byte("drift_baselines")
	bucketAlerts         = []byte("alerts")
)

const keepAlerts = 10000

// PutDriftWindow implements appliance.DriftStore.
func (s *Store) PutDriftWindow(ctx context.Context, w *appliance.DriftWindow) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := subBucket(tx, bucketDrift, w.Model)
		if err != nil {
			return err
		}
		key := binary.BigEndian.AppendUint32(appendTime(nil, w.End.UnixMicro()), uint32(w.Version))
		return s.putJSON(b, key, w)
	}, nil)
}

// DriftWindows implements appliance.DriftStore: newest first.
func (s *Store) DriftWindows(_ context.Context, model string, limit int) ([]*appliance.DriftWindow, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []*appliance.DriftWindow
	err := s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketDrift)
		if root == nil {
			return nil
		}
		b := root.Bucket([]byte(model))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			w := new(appliance.DriftWindow)
			if err := s.decodeJSON(v, w); err != nil {
				return fmt.Errorf("drift window of %s: %w", model, err)
			}
			out = append(out, w)
		}
		return nil
	})
	return out, err
}

// DriftBaseline implements appliance.DriftStore.
func (s *Store) DriftBaseline(_ context.Context, key string) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketDriftBaselines); b != nil {
			if v := b.Get([]byte(key)); v != nil {
				plain, err := s.codec.Open(nil, v)
				if err != nil {
					return err
				}
				out = bytes.Clone(plain)
			}
		}
		return nil
	})
	return out, err
}

// PutDriftBaseline implements appliance.DriftStore.
func (s *Store) PutDriftBaseline(ctx context.Context, key string, data []byte) ([]byte, error) {
	var out []byte
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketDriftBaselines)
		if err != nil {
			return err
		}
		if v := b.Get([]byte(key)); v != nil {
			plain, err := s.codec.Open(nil, v)
			if err != nil {
				return err
			}
			out = bytes.Clone(plain)
			return nil
		}
		out = data
		return b.Put([]byte(key), s.codec.Seal(nil, data))
	}, nil)
	return out, err
}

// PutAlert implements appliance.DriftStore.
func (s *Store) PutAlert(ctx context.Context, a *appliance.Alert) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAlerts)
		if err != nil {
			return err
		}
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		a.ID = id
		if err := s.putJSON(b, u64(id), a); err != nil {
			return err
		}
		if id > keepAlerts {
			return b.Delete(u64(id - keepAlerts))
		}
		return nil
	}, nil)
}

// Alerts implements appliance.DriftStore: newest first.
func (s *Store) Alerts(_ context.Context, limit int) ([]*appliance.Alert, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []*appliance.Alert
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			a := new(appliance.Alert)
			if err := s.decodeJSON(v, a); err != nil {
				return fmt.Errorf("alert %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}
