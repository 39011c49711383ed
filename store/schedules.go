package store

import (
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// schedules → { defs → name → Schedule, state → name → ScheduleState,
// runs → name → { u64(id) → ScheduleRun } }; run ids come from the root
// bucket's sequence, so that they are never reused, not even by a schedule
// deleted and made again under the same name. Created by the first write:
// stores made before schedules existed need no migration.
var (
	bucketSchedules = []byte("schedules")
	keyScheduleDefs = []byte("defs")
	keyScheduleSt   = []byte("state")
	keyScheduleRuns = []byte("runs")
)

// keepRuns bounds each schedule's run history; older runs are dropped as
// new ones come.
const keepRuns = 1000

// scheduleBuckets are the parts of the schedules bucket in one transaction.
type scheduleBuckets struct {
	root, defs, state, runs *bolt.Bucket
}

// scheduleBucketsTx returns the buckets, creating them in a write
// transaction; ok is false in a read transaction of a store that has none.
func scheduleBucketsTx(tx *bolt.Tx) (scheduleBuckets, bool, error) {
	root, subs, ok, err := lazyBuckets(tx, bucketSchedules, keyScheduleDefs, keyScheduleSt, keyScheduleRuns)
	return scheduleBuckets{root: root, defs: subs[0], state: subs[1], runs: subs[2]}, ok, err
}

// PutSchedule implements appliance.ScheduleStore.
func (s *Store) PutSchedule(ctx context.Context, sc *appliance.Schedule) (bool, error) {
	if err := sc.Validate(); err != nil {
		return false, err
	}
	createdAt, createdBy := sc.CreatedAt, sc.CreatedBy
	created := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		sb, _, err := scheduleBucketsTx(tx)
		if err != nil {
			return err
		}
		key := []byte(sc.Name)
		// Reset what an earlier attempt of this function set: the group
		// commit may run it more than once.
		sc.CreatedAt, sc.CreatedBy = createdAt, createdBy
		var old appliance.Schedule
		found, err := s.getJSON(sb.defs, key, &old)
		if err != nil {
			return fmt.Errorf("schedule %s: %w", sc.Name, err)
		}
		created = !found
		action := "schedule.create"
		if found {
			action = "schedule.replace"
			sc.CreatedAt, sc.CreatedBy = old.CreatedAt, old.CreatedBy
		}
		if err := s.putJSON(sb.defs, key, sc); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: action, Object: "schedule/" + sc.Name,
			Summary: map[string]any{"cron": sc.Cron, "timezone": sc.Timezone, "job": sc.Job}})
	}, nil)
	return created, err
}

// Schedule implements appliance.ScheduleStore.
func (s *Store) Schedule(_ context.Context, name string) (*appliance.Schedule, error) {
	var sc appliance.Schedule
	found := false
	err := s.view(func(tx *bolt.Tx) error {
		sb, ok, err := scheduleBucketsTx(tx)
		if err != nil || !ok {
			return err
		}
		found, err = s.getJSON(sb.defs, []byte(name), &sc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", name, err)
	}
	if !found {
		return nil, appliance.NotFound("schedule", name)
	}
	return &sc, nil
}

// Schedules implements appliance.ScheduleStore.
func (s *Store) Schedules(context.Context) ([]*appliance.Schedule, error) {
	out := []*appliance.Schedule{}
	err := s.view(func(tx *bolt.Tx) error {
		sb, ok, err := scheduleBucketsTx(tx)
		if err != nil || !ok {
			return err
		}
		return sb.defs.ForEach(func(k, v []byte) error {
			sc := new(appliance.Schedule)
			if err := s.decodeJSON(v, sc); err != nil {
				return fmt.Errorf("schedule %s: %w", k, err)
			}
			out = append(out, sc)
			return nil
		})
	})
	return out, err
}

// DeleteSchedule implements appliance.ScheduleStore. The run history goes
// with the schedule: a schedule made again under the name starts afresh,
// and the audit log keeps the deletion.
func (s *Store) DeleteSchedule(ctx context.Context, name string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		sb, _, err := scheduleBucketsTx(tx)
		if err != nil {
			return err
		}
		key := []byte(name)
		var old appliance.Schedule
		found, err := s.getJSON(sb.defs, key, &old)
		if err != nil {
			return fmt.Errorf("schedule %s: %w", name, err)
		}
		if !found {
			return appliance.NotFound("schedule", name)
		}
		if err := sb.defs.Delete(key); err != nil {
			return err
		}
		if err := sb.state.Delete(key); err != nil {
			return err
		}
		if sb.runs.Bucket(key) != nil {
			if err := sb.runs.DeleteBucket(key); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "schedule.delete", Object: "schedule/" + name,
			Summary: map[string]any{"cron": old.Cron, "timezone": old.Timezone, "job": old.Job}})
	}, nil)
}

// AppendRun implements appliance.ScheduleStore.
func (s *Store) AppendRun(ctx context.Context, r *appliance.ScheduleRun) error {
	return s.update(ctx, func(tx *bolt.Tx) error { return s.appendRun(tx, r, keepRuns) }, nil)
}

func (s *Store) appendRun(tx *bolt.Tx, r *appliance.ScheduleRun, keep int) error {
	sb, _, err := scheduleBucketsTx(tx)
	if err != nil {
		return err
	}
	key := []byte(r.Schedule)
	if sb.defs.Get(key) == nil {
		return appliance.NotFound("schedule", r.Schedule)
	}
	runs, err := sb.runs.CreateBucketIfNotExists(key)
	if err != nil {
		return err
	}
	id, err := sb.root.NextSequence()
	if err != nil {
		return err
	}
	r.ID = id
	runs.FillPercent = 1 // append-only, ids increase
	if err := s.putJSON(runs, u64(id), r); err != nil {
		return err
	}
	return trimRuns(runs, keep)
}

// trimRuns drops the oldest runs beyond keep. Usually it finds one.
func trimRuns(b *bolt.Bucket, keep int) error {
	c := b.Cursor()
	k, _ := c.Last()
	for i := 1; i < keep && k != nil; i++ {
		k, _ = c.Prev()
	}
	if k == nil {
		return nil
	}
	var drop [][]byte
	for k, _ = c.Prev(); k != nil; k, _ = c.Prev() {
		drop = append(drop, append([]byte(nil), k...))
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// UpdateRun implements appliance.ScheduleStore.
func (s *Store) UpdateRun(ctx context.Context, r *appliance.ScheduleRun) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		sb, _, err := scheduleBucketsTx(tx)
		if err != nil {
			return err
		}
		notFound := appliance.Errorf(appliance.ENOTFOUND, "run %d of schedule %q not found", r.ID, r.Schedule)
		runs := sb.runs.Bucket([]byte(r.Schedule))
		if runs == nil || runs.Get(u64(r.ID)) == nil {
			return notFound
		}
		return s.putJSON(runs, u64(r.ID), r)
	}, nil)
}

// Runs implements appliance.ScheduleStore.
func (s *Store) Runs(_ context.Context, name string, f appliance.RunFilter) ([]*appliance.ScheduleRun, bool, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	out := []*appliance.ScheduleRun{}
	more := false
	err := s.view(func(tx *bolt.Tx) error {
		sb, ok, err := scheduleBucketsTx(tx)
		if err != nil {
			return err
		}
		key := []byte(name)
		if !ok || sb.defs.Get(key) == nil {
			return appliance.NotFound("schedule", name)
		}
		runs := sb.runs.Bucket(key)
		if runs == nil {
			return nil
		}
		c := runs.Cursor()
		var k, v []byte
		if f.Before == 0 {
			k, v = c.Last()
		} else {
			// Seek lands on the first key >= Before (or nothing): step
			// back from there, or from the end.
			if k, _ = c.Seek(u64(f.Before)); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil; k, v = c.Prev() {
			if len(out) == limit {
				more = true
				return nil
			}
			r := new(appliance.ScheduleRun)
			if err := s.decodeJSON(v, r); err != nil {
				return fmt.Errorf("run %d of schedule %s: %w", binary.BigEndian.Uint64(k), name, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, more, nil
}

// ScheduleState implements appliance.ScheduleStore.
func (s *Store) ScheduleState(_ context.Context, name string) (*appliance.ScheduleState, error) {
	var st appliance.ScheduleState
	err := s.view(func(tx *bolt.Tx) error {
		sb, ok, err := scheduleBucketsTx(tx)
		if err != nil || !ok {
			return err
		}
		_, err = s.getJSON(sb.state, []byte(name), &st)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state of schedule %s: %w", name, err)
	}
	return &st, nil
}

// PutScheduleStates implements appliance.ScheduleStore.
func (s *Store) PutScheduleStates(ctx context.Context, states map[string]appliance.ScheduleState) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		sb, _, err := scheduleBucketsTx(tx)
		if err != nil {
			return err
		}
		for name, st := range states {
			key := []byte(name)
			if sb.defs.Get(key) == nil {
				continue // deleted meanwhile: do not leave an orphan state
			}
			st.CheckedAt = st.CheckedAt.UTC()
			if !st.LastFiredAt.IsZero() {
				st.LastFiredAt = st.LastFiredAt.UTC()
			}
			if err := s.putJSON(sb.state, key, &st); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}
