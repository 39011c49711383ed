package store

import (
	"context"
	"math"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

// Paging past the last possible sequence finds nothing (AfterSeq+1 wrapped
// to 0 and listed the log from its start).
func TestAudit_AfterTheLastSequenceIsEmpty(t *testing.T) {
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	defineView(t, s)
	entries, more, err := s.AuditEntries(context.Background(), appliance.AuditFilter{AfterSeq: math.MaxUint64})
	if err != nil || len(entries) != 0 || more {
		t.Fatalf("after the last sequence: %d entries, more %v, %v", len(entries), more, err)
	}
}
