package tabular

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

// FuzzOpenParquet reads arbitrary bytes as Parquet: whatever they are, the
// reader returns rows or EINVALID, and never panics, hangs or allocates
// what the bytes merely claim.
func FuzzOpenParquet(f *testing.F) {
	for _, b := range smallFiles(f) {
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-9])
	}
	fixtures, _ := filepath.Glob("testdata/duckdb/*.parquet")
	for _, name := range fixtures {
		if b, err := os.ReadFile(name); err == nil && len(b) < 8<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := OpenParquet(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if appliance.ErrorCode(err) != appliance.EINVALID {
				t.Fatalf("open: %v is not EINVALID", err)
			}
			return
		}
		var cols []int
		for i, c := range p.Columns() {
			if c.Dtype != "" || c.AllNull {
				cols = append(cols, i)
			}
		}
		n := int64(0)
		err = p.Scan(context.Background(), cols, func(row []appliance.Value, problems []Problem) error {
			if len(row) != len(cols) {
				t.Fatalf("a row of %d values for %d columns", len(row), len(cols))
			}
			n++
			return nil
		})
		if err != nil && appliance.ErrorCode(err) != appliance.EINVALID {
			t.Fatalf("scan: %v is not EINVALID", err)
		}
		if err == nil && n != p.NumRows() {
			t.Fatalf("read %d rows of %d", n, p.NumRows())
		}
	})
}
