package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// flags/<name> → Flag (JSON). Created by the first flag.
var bucketFlags = []byte("flags")

// PutFlag implements appliance.FlagStore.
func (s *Store) PutFlag(ctx context.Context, f *appliance.Flag, createOnly bool) (bool, error) {
	created := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketFlags)
		if err != nil {
			return err
		}
		created = b.Get([]byte(f.Name)) == nil
		if !created && createOnly {
			return &appliance.Error{Code: appliance.ECONFLICT, Field: "name", Message: "flag " + f.Name + " exists; PUT /api/v1/flags/" + f.Name + " replaces it"}
		}
		if !created {
			var old appliance.Flag
			if _, err := s.getJSON(b, []byte(f.Name), &old); err != nil {
				return err
			}
			f.CreatedAt, f.CreatedBy = old.CreatedAt, old.CreatedBy
		}
		if err := s.putJSON(b, []byte(f.Name), f); err != nil {
			return err
		}
		action := "flag.update"
		if created {
			action = "flag.create"
		}
		raw, _ := json.Marshal(f)
		var summary map[string]any
		_ = json.Unmarshal(raw, &summary)
		delete(summary, "created_at")
		delete(summary, "updated_at")
		return s.audit(ctx, tx, appliance.AuditRecord{Action: action, Object: "flag/" + f.Name, Summary: summary})
	}, nil)
	return created, err
}

// Flag implements appliance.FlagStore.
func (s *Store) Flag(_ context.Context, name string) (*appliance.Flag, error) {
	var f appliance.Flag
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFlags)
		if b == nil {
			return nil
		}
		var err error
		ok, err = s.getJSON(b, []byte(name), &f)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, appliance.NotFound("flag", name)
	}
	return &f, nil
}

// Flags implements appliance.FlagStore, by name.
func (s *Store) Flags(context.Context) ([]*appliance.Flag, error) {
	var out []*appliance.Flag
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFlags)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			f := new(appliance.Flag)
			if err := s.decodeJSON(v, f); err != nil {
				return fmt.Errorf("flag %s: %w", k, err)
			}
			out = append(out, f)
			return nil
		})
	})
	return out, err
}

// DeleteFlag implements appliance.FlagStore.
func (s *Store) DeleteFlag(ctx context.Context, name string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFlags)
		if b == nil || b.Get([]byte(name)) == nil {
			return appliance.NotFound("flag", name)
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "flag.delete", Object: "flag/" + name})
	}, nil)
}
