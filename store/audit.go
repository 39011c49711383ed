package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// AuditEntries implements appliance.AuditLog.
func (s *Store) AuditEntries(_ context.Context, f appliance.AuditFilter) ([]*appliance.AuditEntry, bool, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	var out []*appliance.AuditEntry
	more := false
	if f.AfterSeq == math.MaxUint64 {
		return out, false, nil // nothing comes after it (and +1 would wrap to the start)
	}
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(u64(f.AfterSeq + 1)); k != nil; k, v = c.Next() {
			var e appliance.AuditEntry
			if err := s.decodeJSON(v, &e); err != nil {
				return fmt.Errorf("audit entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if !f.Since.IsZero() && e.Time.Before(f.Since) || !matchPrefix(e.Action, f.Action, ".") || !matchPrefix(e.Object, f.Object, "/") {
				continue
			}
			if len(out) == f.Limit {
				more = true
				return nil
			}
			out = append(out, &e)
		}
		return nil
	})
	return out, more, err
}

// matchPrefix matches a filter that is either exact or a prefix ending in sep.
func matchPrefix(value, filter, sep string) bool {
	if filter == "" || value == filter {
		return true
	}
	return strings.HasSuffix(filter, sep) && strings.HasPrefix(value, filter)
}

// VerifyAudit implements appliance.AuditLog: sequences must run 1, 2, 3...,
// each entry's hash must match its canonical encoding and each prev_hash the
// hash before it; the meta head must name the last entry.
func (s *Store) VerifyAudit(context.Context) (*appliance.AuditVerification, error) {
	res := &appliance.AuditVerification{OK: true}
	err := s.view(func(tx *bolt.Tx) error {
		prev := ""
		var want uint64 = 1
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			fail := func(reason string) {
				res.OK = false
				res.Broken = &appliance.AuditBreak{Seq: seq, Reason: reason}
			}
			var e appliance.AuditEntry
			switch {
			case seq != want:
				fail(fmt.Sprintf("entry %d is missing", want))
			case s.decodeJSON(v, &e) != nil:
				fail("entry cannot be decoded")
			case e.Seq != seq:
				fail(fmt.Sprintf("entry says it is %d", e.Seq))
			case e.PrevHash != prev:
				fail("prev_hash does not match the previous entry's hash")
			case e.ComputeHash() != e.Hash:
				fail("hash does not match the entry's content")
			}
			if !res.OK {
				return nil
			}
			prev, want = e.Hash, want+1
			res.Entries++
		}
		if head := string(tx.Bucket(bucketMeta).Get(keyAuditHead)); head != prev {
			res.OK = false
			res.Broken = &appliance.AuditBreak{Seq: want, Reason: "the chain's head does not match the last entry (entries removed from the end?)"}
		}
		return nil
	})
	return res, err
}
