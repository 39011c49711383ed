package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// jobs/<u64 number> → Job (JSON through the codec). Job ids are the decimal
// number, so that listing newest first is a reverse cursor walk. The bucket
// is created by the first job: stores made before jobs existed need no
// migration.
var bucketJobs = []byte("jobs")

// keepJobs bounds the job history; finished jobs beyond it are dropped,
// oldest first.
const keepJobs = 10000

func jobKey(id string) ([]byte, error) {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil || n == 0 {
		return nil, appliance.NotFound("job", id)
	}
	return u64(n), nil
}

// NextJobID reserves a job number.
func (s *Store) nextJobID(tx *bolt.Tx) (string, error) {
	b, err := tx.CreateBucketIfNotExists(bucketJobs)
	if err != nil {
		return "", err
	}
	n, err := b.NextSequence()
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(n, 10), nil
}

// PutJob implements appliance.JobStore. A job without an id is new: it gets
// one, and its creation is audited (who started what).
func (s *Store) PutJob(ctx context.Context, j *appliance.Job) error {
	// Decided once: the write may run more than once (group commit), and
	// each attempt of a new job takes its number afresh.
	created := j.ID == ""
	return s.update(ctx, func(tx *bolt.Tx) error {
		if created {
			id, err := s.nextJobID(tx)
			if err != nil {
				return err
			}
			j.ID = id
		}
		if err := s.putJobTx(tx, j); err != nil {
			return err
		}
		if created {
			if err := s.trimJobs(tx); err != nil {
				return err
			}
			return s.audit(ctx, tx, appliance.AuditRecord{Action: "job.create", Object: "job/" + j.ID,
				Summary: map[string]any{"kind": j.Kind, "args": string(j.Args), "schedule": j.Schedule}})
		}
		if j.State == appliance.JobCancelled {
			return s.audit(ctx, tx, appliance.AuditRecord{Action: "job.cancel", Object: "job/" + j.ID,
				Summary: map[string]any{"kind": j.Kind, "rows_done": j.RowsDone}})
		}
		return nil
	}, nil)
}

func (s *Store) putJobTx(tx *bolt.Tx, j *appliance.Job) error {
	key, err := jobKey(j.ID)
	if err != nil {
		return err
	}
	b, err := tx.CreateBucketIfNotExists(bucketJobs)
	if err != nil {
		return err
	}
	if j.Checkpoint == nil && !j.State.Finished() {
		// A progress update must not roll back a checkpoint that a job's
		// own write committed meanwhile.
		var old appliance.Job
		if ok, err := s.getJSON(b, key, &old); err != nil {
			return err
		} else if ok && old.Checkpoint != nil {
			cp := *j
			cp.Checkpoint = old.Checkpoint
			j = &cp
		}
	}
	return s.putJSON(b, key, j)
}

// trimJobs drops the oldest finished jobs beyond keepJobs. Keys are
// counted by walking them: Bucket.Stats does not see this transaction's
// own writes, and job numbers are dense, so below keepJobs of them there is
// nothing to walk.
func (s *Store) trimJobs(tx *bolt.Tx) error {
	b := tx.Bucket(bucketJobs)
	if b.Sequence() <= keepJobs {
		return nil
	}
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	excess := n - keepJobs
	for k, _ := c.First(); k != nil && excess > 0; k, _ = c.Next() {
		var j appliance.Job
		if _, err := s.getJSON(b, k, &j); err != nil {
			return err
		}
		if j.State.Finished() {
			if err := c.Delete(); err != nil {
				return err
			}
			excess--
		}
	}
	return nil
}

// saveCheckpoint stores a job's resume state inside a write transaction.
func (s *Store) saveCheckpoint(tx *bolt.Tx, jobID string, state []byte) error {
	key, err := jobKey(jobID)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketJobs)
	if b == nil {
		return appliance.NotFound("job", jobID)
	}
	var j appliance.Job
	ok, err := s.getJSON(b, key, &j)
	if err != nil {
		return err
	}
	if !ok {
		return appliance.NotFound("job", jobID)
	}
	j.Checkpoint = bytes.Clone(state)
	return s.putJSON(b, key, &j)
}

// SaveJobCheckpoint commits a job's resume state on its own.
func (s *Store) SaveJobCheckpoint(ctx context.Context, jobID string, state []byte) error {
	return s.update(ctx, func(tx *bolt.Tx) error { return s.saveCheckpoint(tx, jobID, state) }, nil)
}

// Job implements appliance.JobStore.
func (s *Store) Job(_ context.Context, id string) (*appliance.Job, error) {
	key, err := jobKey(id)
	if err != nil {
		return nil, err
	}
	var j appliance.Job
	var ok bool
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		if b == nil {
			return nil
		}
		ok, err = s.getJSON(b, key, &j)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, appliance.NotFound("job", id)
	}
	return &j, nil
}

// Jobs implements appliance.JobStore: newest first.
func (s *Store) Jobs(_ context.Context, f appliance.JobFilter) ([]*appliance.Job, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []*appliance.Job
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			j := new(appliance.Job)
			if err := s.decodeJSON(v, j); err != nil {
				return fmt.Errorf("job %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if (f.Kind == "" || j.Kind == f.Kind) && (f.State == "" || j.State == f.State) {
				out = append(out, j)
			}
		}
		return nil
	})
	return out, err
}

// UnfinishedJobs implements appliance.JobStore.
func (s *Store) UnfinishedJobs(_ context.Context) ([]*appliance.Job, error) {
	var out []*appliance.Job
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			j := new(appliance.Job)
			if err := s.decodeJSON(v, j); err != nil {
				return fmt.Errorf("job %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if !j.State.Finished() {
				out = append(out, j)
			}
			return nil
		})
	})
	return out, err
}

// watermarks/<view key> → u64: the ingest sequence through which the view
// version has been materialized incrementally. Created by the first write.
var bucketWatermarks = []byte("watermarks")

// Watermark implements appliance.OfflineStore.
func (s *Store) Watermark(_ context.Context, view *appliance.FeatureView) (uint64, error) {
	var w uint64
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketWatermarks); b != nil {
			if v := b.Get([]byte(view.Key())); len(v) == 8 {
				w = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return w, err
}

// WriteOnline implements appliance.OfflineStore.
func (s *Store) WriteOnline(ctx context.Context, w *appliance.OnlineWrite) (int, error) {
	defer s.online.writeView(w.View.Key())() // see onlineCache
	view := w.View
	viewKey := []byte(view.Key())
	applied := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		applied = 0
		online := tx.Bucket(bucketOnline).Bucket(viewKey)
		if online == nil {
			return appliance.NotFound("feature view", view.Key())
		}
		stats := tx.Bucket(bucketViewStats)
		counts := readCounts(stats, viewKey)
		tombs, err := erasuresOf(tx, view)
		if err != nil {
			return err
		}
		var buf []byte
		for i := range w.Rows {
			row := &w.Rows[i]
			if tombs != nil && erased(tombs, row.Key, row.Seq) {
				continue // scanned before an erasure: never written back
			}
			if old := online.Get(row.Key); old != nil {
				plain, err := s.codec.Open(buf[:0], old)
				if err != nil || len(plain) < 16 {
					return fmt.Errorf("online row of %s: corrupt (%v)", view.Key(), err)
				}
				buf = plain
				oldTime, oldSeq := readTime(plain), binary.BigEndian.Uint64(plain[8:])
				if row.EventTime < oldTime || row.EventTime == oldTime && row.Seq <= oldSeq {
					continue
				}
			} else {
				counts.online++
			}
			plain := appendTime(nil, row.EventTime)
			plain = binary.BigEndian.AppendUint64(plain, row.Seq)
			plain = encodeValues(plain, row.Values)
			if err := online.Put(bytes.Clone(row.Key), s.codec.Seal(nil, plain)); err != nil {
				return fmt.Errorf("put online row: %w", err)
			}
			applied++
		}
		if err := stats.Put(viewKey, counts.bytes()); err != nil {
			return err
		}
		if w.Watermark != 0 {
			b, err := tx.CreateBucketIfNotExists(bucketWatermarks)
			if err != nil {
				return err
			}
			if err := b.Put(viewKey, u64(w.Watermark)); err != nil {
				return err
			}
		}
		if w.JobID != "" {
			return s.saveCheckpoint(tx, w.JobID, w.Checkpoint)
		}
		return nil
	}, nil)
	if err != nil {
		return 0, err
	}
	return applied, nil
}
