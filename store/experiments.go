package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// experiments/<name> → Experiment (JSON). Created by the first experiment:
// stores made before experiments existed need no migration.
var bucketExperiments = []byte("experiments")

// CreateExperiment implements appliance.ExperimentStore.
func (s *Store) CreateExperiment(ctx context.Context, e *appliance.Experiment) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketExperiments)
		if err != nil {
			return err
		}
		if b.Get([]byte(e.Name)) != nil {
			return &appliance.Error{Code: appliance.ECONFLICT, Field: "name", Message: fmt.Sprintf("experiment %q exists", e.Name)}
		}
		if err := s.putJSON(b, []byte(e.Name), e); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "experiment.create", Object: "experiment/" + e.Name,
			Summary: experimentSummary(e)})
	}, nil)
}

// experimentSummary is what the audit log keeps of an experiment: its whole
// definition, so that any change can be reconstructed.
func experimentSummary(e *appliance.Experiment) map[string]any {
	raw, _ := json.Marshal(e)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	delete(m, "created_at")
	delete(m, "updated_at")
	return m
}

// UpdateExperiment implements appliance.ExperimentStore.
func (s *Store) UpdateExperiment(ctx context.Context, name, action string, change func(cur *appliance.Experiment, others []*appliance.Experiment) (*appliance.Experiment, error)) (*appliance.Experiment, error) {
	var out *appliance.Experiment
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketExperiments)
		if b == nil {
			return appliance.NotFound("experiment", name)
		}
		var cur *appliance.Experiment
		var others []*appliance.Experiment
		err := b.ForEach(func(k, v []byte) error {
			e := new(appliance.Experiment)
			if err := s.decodeJSON(v, e); err != nil {
				return fmt.Errorf("experiment %s: %w", k, err)
			}
			if string(k) == name {
				cur = e
			} else {
				others = append(others, e)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if cur == nil {
			return appliance.NotFound("experiment", name)
		}
		next, err := change(cur, others)
		if err != nil {
			return err
		}
		if next.Name != name {
			return fmt.Errorf("BUG: experiment update renamed %s to %s", name, next.Name)
		}
		next.UpdatedAt = s.now().UTC()
		if next.HashSeed() != cur.HashSeed() || !slices.Equal(cur.Arms, next.Arms) || !cur.SameMetrics(next) {
			// A new seed (or new arms) reassigns every unit: the results so
			// far belong to the old assignment, so a new phase starts with
			// no units and no aggregates. The events themselves stay.
			for _, root := range [][]byte{bucketExpUnits, bucketExpAggs} {
				if r := tx.Bucket(root); r != nil && r.Bucket([]byte(name)) != nil {
					if err := r.DeleteBucket([]byte(name)); err != nil {
						return err
					}
				}
			}
		}
		if err := s.putJSON(b, []byte(name), next); err != nil {
			return err
		}
		out = next
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "experiment." + action, Object: "experiment/" + name,
			Summary: experimentSummary(next)})
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Experiment implements appliance.ExperimentStore.
func (s *Store) Experiment(_ context.Context, name string) (*appliance.Experiment, error) {
	var e appliance.Experiment
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketExperiments)
		if b == nil {
			return nil
		}
		var err error
		ok, err = s.getJSON(b, []byte(name), &e)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, appliance.NotFound("experiment", name)
	}
	return &e, nil
}

// Experiments implements appliance.ExperimentStore, by name.
func (s *Store) Experiments(context.Context) ([]*appliance.Experiment, error) {
	var out []*appliance.Experiment
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketExperiments)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			e := new(appliance.Experiment)
			if err := s.decodeJSON(v, e); err != nil {
				return fmt.Errorf("experiment %s: %w", k, err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}
