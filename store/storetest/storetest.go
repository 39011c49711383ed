// Package storetest opens real stores in temporary directories for tests.
package storetest

import (
	"context"
	"os"
	"testing"

	"github.com/mlnode/mlnode/store"
)

// Open opens a store in a fresh temporary directory and closes it, checking
// the audit chain, when the test ends.
func Open(tb testing.TB, opts store.Options) *store.Store {
	tb.Helper()
	return OpenDir(tb, tb.TempDir(), opts)
}

// OpenDir opens a store in dir, closed with the same checks at the end.
func OpenDir(tb testing.TB, dir string, opts store.Options) *store.Store {
	tb.Helper()
	if os.Getenv("MLNODE_TEST_RERUN_WRITES") == "1" {
		opts.RerunWritesForTesting = true
	}
	s, err := store.Open(context.Background(), dir, opts)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() {
		v, err := s.VerifyAudit(context.Background())
		if err != nil {
			tb.Errorf("verify audit: %v", err)
		} else if !v.OK {
			tb.Errorf("audit chain broken at close: %+v", v.Broken)
		}
		if err := s.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return s
}
