package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// Retention deletes a view version's old offline events in many small
// write transactions, so that ingest, which shares the one writer, never
// waits long behind it. Each transaction deletes at most retentionRows
// events and visits at most retentionSteps keys, then commits where it got
// to; the next one resumes there.
const (
	retentionRows  = 50_000
	retentionSteps = 200_000
)

// DeleteEventsBefore implements appliance.OfflineStore: it deletes the
// events of a view version whose event time is before cutoff (unix
// microseconds) from every run and from the tail, keeps the run list, the
// tail count and the view's offline count right, and records one audit
// entry with the count when it deleted anything. It returns how many
// events it deleted; on an error or cancellation, how many it had deleted
// by then (those are audited too).
//
// Online values are not touched: the online table holds each entity's
// latest value, which serving needs whatever its age, and whose freshness
// the view's TTL governs.
//
// The compactor is held off while it runs, so that the runs it walks are
// neither merged nor joined by new ones under it; ingest continues into
// the tail, rows appended after the pass has gone by are left for the
// next run.
func (s *Store) DeleteEventsBefore(ctx context.Context, view *appliance.FeatureView, cutoff int64) (int, error) {
	return s.deleteEventsBefore(ctx, view, cutoff, retentionRows, retentionSteps)
}

// retentionPass is where a deletion pass is: per run the key to resume at
// (absent: from its start), and the tail sequence to resume at.
type retentionPass struct {
	runPos  map[uint64][]byte
	runDone map[uint64]bool
	tailPos uint64
	deleted int
}

func (p *retentionPass) clone() retentionPass {
	return retentionPass{runPos: maps.Clone(p.runPos), runDone: maps.Clone(p.runDone), tailPos: p.tailPos, deleted: p.deleted}
}

func (s *Store) deleteEventsBefore(ctx context.Context, view *appliance.FeatureView, cutoff int64, maxRows, maxSteps int) (int, error) {
	if err := s.lockCompaction(ctx); err != nil {
		return 0, err
	}
	defer s.compactMu.Unlock()
	viewKey := []byte(view.Key())
	pass := retentionPass{runPos: map[uint64][]byte{}, runDone: map[uint64]bool{}}
	for {
		if err := ctx.Err(); err != nil {
			return pass.deleted, s.auditInterrupted(ctx, view, cutoff, pass.deleted, err)
		}
		var next retentionPass
		finished := false
		err := s.update(ctx, func(tx *bolt.Tx) error {
			// The function may run again if another in its group fails:
			// it starts from pass each time and changes only next.
			next, finished = pass.clone(), false
			events := tx.Bucket(bucketEvents).Bucket(viewKey)
			if events == nil {
				return appliance.NotFound("feature view", view.Key())
			}
			n, done, err := s.retentionChunk(events, cutoff, &next, maxRows, maxSteps)
			if err != nil {
				return fmt.Errorf("retention of %s: %w", view.Key(), err)
			}
			if n > 0 {
				stats := tx.Bucket(bucketViewStats)
				c := readCounts(stats, viewKey)
				c.offline -= min(c.offline, uint64(n))
				if err := stats.Put(viewKey, c.bytes()); err != nil {
					return err
				}
			}
			next.deleted += n
			finished = done
			if done && next.deleted > 0 {
				return s.auditRetention(ctx, tx, view, cutoff, next.deleted, false)
			}
			return nil
		}, nil)
		if err != nil {
			return pass.deleted, s.auditInterrupted(ctx, view, cutoff, pass.deleted, err)
		}
		pass = next
		if finished {
			return pass.deleted, nil
		}
	}
}

// lockCompaction takes the compaction lock, waiting for a running
// compaction to finish, or gives up when ctx ends. It waits in line with
// Lock rather than polling, which a busy compactor could starve.
func (s *Store) lockCompaction(ctx context.Context) error {
	locked := make(chan struct{})
	go func() {
		s.compactMu.Lock()
		close(locked)
	}()
	select {
	case <-locked:
		return nil
	case <-ctx.Done():
		// The waiter still gets the lock: hand it straight back.
		go func() {
			<-locked
			s.compactMu.Unlock()
		}()
		return ctx.Err()
	}
}

// retentionChunk deletes, in one transaction, old events from the runs
// (those being built by a merge too, like erasure) and then from the tail,
// within the budget, and advances p. It returns how many events it
// deleted, not counting copies in a run being built, and whether the pass
// is complete.
func (s *Store) retentionChunk(events *bolt.Bucket, cutoff int64, p *retentionPass, maxRows, maxSteps int) (int, bool, error) {
	runs, meta, err := s.runs(events, true)
	if err != nil {
		return 0, false, err
	}
	deleted, found, steps := 0, 0, 0
	changed := false
	complete := true
	for _, src := range runs {
		if p.runDone[src.id] {
			continue
		}
		if found >= maxRows || steps >= maxSteps {
			complete = false
			break
		}
		keys, resume := scanRunBefore(src.run, p.runPos[src.id], cutoff, maxRows-found, maxSteps, &steps)
		// Deleting under a cursor can skip keys: the scan only collects.
		for _, k := range keys {
			if err := src.run.Delete(k); err != nil {
				return 0, false, err
			}
		}
		if resume == nil {
			p.runDone[src.id] = true
			delete(p.runPos, src.id)
		} else {
			p.runPos[src.id] = resume
			complete = false
		}
		if len(keys) == 0 {
			continue
		}
		changed = true
		found += len(keys)
		info := &meta.Runs[runIndex(meta, src.id)]
		info.Rows -= min(info.Rows, uint64(len(keys)))
		if !info.Building {
			deleted += len(keys)
		}
	}
	if complete {
		tailKeys, resume, err := s.scanTailBefore(events.Bucket(keyTail), p.tailPos, cutoff, maxRows-found, maxSteps, &steps)
		if err != nil {
			return 0, false, err
		}
		tail := events.Bucket(keyTail)
		for _, k := range tailKeys {
			if err := tail.Delete(k); err != nil {
				return 0, false, err
			}
		}
		if len(tailKeys) > 0 {
			changed = true
			meta.TailRows -= min(meta.TailRows, uint64(len(tailKeys)))
			deleted += len(tailKeys)
		}
		p.tailPos = resume
		complete = resume == 0
	}
	if changed {
		if err := s.putJSON(events, keyEventMeta, meta); err != nil {
			return 0, false, err
		}
	}
	return deleted, complete, nil
}

// scanRunBefore collects up to maxRows keys of a sorted run whose event
// time is before cutoff, starting at from, while *steps stays under
// maxSteps. It returns them and the key to resume at, nil at the run's end.
//
// Keys are entity | time | seq, so an entity's old events come first among
// its own: at its first recent event, the scan seeks past the entity's
// keys. Entity keys of one view are self-delimiting (AppendEntityKeyPart),
// so no other entity's keys lie between.
func scanRunBefore(run *bolt.Bucket, from []byte, cutoff int64, maxRows, maxSteps int, steps *int) (keys [][]byte, resume []byte) {
	c := run.Cursor()
	var k []byte
	if from == nil {
		k, _ = c.First()
	} else {
		k, _ = c.Seek(from)
	}
	var past []byte
	for k != nil {
		if len(keys) >= maxRows || *steps >= maxSteps {
			return keys, slices.Clone(k)
		}
		*steps++
		if len(k) < 16 {
			k, _ = c.Next()
			continue
		}
		if readTime(k[len(k)-16:]) < cutoff {
			keys = append(keys, slices.Clone(k))
			k, _ = c.Next()
			continue
		}
		// The largest key this entity can have: its last time and seq.
		past = append(append(past[:0], k[:len(k)-16]...), maxTimeSeq[:]...)
		k, _ = c.Seek(past)
		if k != nil && bytes.Equal(k, past) {
			k, _ = c.Next()
		}
	}
	return keys, nil
}

var maxTimeSeq = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// scanTailBefore is scanRunBefore for the tail, which is in ingest order:
// every row is opened to read its time. It returns the sequence to resume
// at, 0 at the tail's end.
func (s *Store) scanTailBefore(tail *bolt.Bucket, from uint64, cutoff int64, maxRows, maxSteps int, steps *int) ([][]byte, uint64, error) {
	var keys [][]byte
	c := tail.Cursor()
	for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		if len(keys) >= maxRows || *steps >= maxSteps {
			return keys, seq, nil
		}
		*steps++
		plain, err := s.codec.Open(nil, v)
		if err != nil {
			return nil, 0, err
		}
		row, err := decodeTailValue(plain)
		if err != nil {
			return nil, 0, fmt.Errorf("tail seq %d: %w", seq, err)
		}
		if row.micros < cutoff {
			keys = append(keys, slices.Clone(k))
		}
	}
	return keys, 0, nil
}

func (s *Store) auditRetention(ctx context.Context, tx *bolt.Tx, view *appliance.FeatureView, cutoff int64, deleted int, interrupted bool) error {
	summary := map[string]any{"cutoff": time.UnixMicro(cutoff).UTC(), "deleted": deleted}
	if interrupted {
		summary["interrupted"] = true
	}
	return s.audit(ctx, tx, appliance.AuditRecord{Action: "feature_view.retention", Object: "feature_view/" + view.Key(), Summary: summary})
}

// auditInterrupted records the deletions that committed before a pass
// stopped early, which the last transaction of a complete pass would have
// recorded, and returns cause.
func (s *Store) auditInterrupted(ctx context.Context, view *appliance.FeatureView, cutoff int64, deleted int, cause error) error {
	if deleted == 0 {
		return cause
	}
	actx := context.WithoutCancel(ctx)
	err := s.update(actx, func(tx *bolt.Tx) error {
		return s.auditRetention(actx, tx, view, cutoff, deleted, true)
	}, nil)
	if err != nil {
		return errors.Join(cause, fmt.Errorf("audit retention of %s: %w", view.Key(), err))
	}
	return cause
}
