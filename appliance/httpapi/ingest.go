package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/ingest"
)

type ingestResponse struct {
	View          string            `json:"view"`
	Version       int               `json:"version"`
	Accepted      int               `json:"accepted"`
	Rejected      []ingest.RowError `json:"rejected"`
	RejectedCount int               `json:"rejected_count"`
}

// ingestRows streams a batch of rows into a view version. By default the
// batch is atomic: one invalid row fails it and nothing is written;
// ?mode=skip-invalid writes the valid rows and reports the rest.
// ?online=false writes the offline log only (a history backfill).
func (s *Server) ingestRows(c *fiber.Ctx) error {
	ctx := c.UserContext()
	version := 0
	if v := c.Query("version"); v != "" {
		n, err := pathInt("version", v)
		if err != nil {
			return err
		}
		version = n
	}
	view, err := s.svc.Registry.FeatureView(ctx, c.Params("name"), version)
	if err != nil {
		return err
	}
	skipInvalid := false
	switch mode := c.Query("mode"); mode {
	case "", "atomic":
	case "skip-invalid":
		skipInvalid = true
	default:
		return appliance.Invalid("mode", "%q is not atomic or skip-invalid", mode)
	}
	online := true
	if v := c.Query("online"); v != "" {
		b, err := boolQuery(c, "online")
		if err != nil {
			return err
		}
		online = b
	}
	format, err := ingest.FormatFromContentType(c.Get(fiber.HeaderContentType))
	if err != nil {
		return err
	}
	body, err := bodyReader(c, s.cfg.IngestBodyLimit)
	if err != nil {
		return err
	}
	hash := sha256.New()
	body = io.TeeReader(body, hash)

	var idem *appliance.Idempotency
	if key := c.Get("Idempotency-Key"); key != "" {
		if len(key) > 255 {
			return appliance.Invalid("Idempotency-Key", "is longer than 255 bytes")
		}
		caller := appliance.CallerFromContext(ctx)
		// Scoped by view name, not version: a retry that lands after a
		// schema change made a new latest version must replay, not write
		// the rows again into the new version.
		idem = &appliance.Idempotency{Key: fmt.Sprintf("%s|%s|%s", caller.Name, view.Name, key)}
		stored, storedHash, ok, err := s.svc.Features.IdempotentResponse(ctx, idem.Key)
		if err != nil {
			return err
		}
		if ok {
			// A retry: answer as the first time if the body is the same.
			if _, err := io.Copy(io.Discard, body); err != nil {
				return err
			}
			var sum [32]byte
			copy(sum[:], hash.Sum(nil))
			if sum != storedHash {
				return &appliance.Error{Code: appliance.ECONFLICT, Field: "Idempotency-Key",
					Message: "this key was used for a request with a different body; use a new key for new data"}
			}
			c.Set("Idempotent-Replayed", "true")
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(stored)
		}
	}

	decodeView := view
	if view.Transform != nil {
		// Rows carry the declared features; the transform's are derived.
		cp := *view
		cp.Features = view.DeclaredFeatures()
		decodeView = &cp
	}
	var batch *ingest.Batch
	if format == ingest.FormatParquet {
		batch, err = decodeParquetBody(ctx, s.cfg.SpoolDir, body, decodeView, s.cfg.IngestBodyLimit)
	} else {
		batch, err = ingest.Decode(ctx, body, format, decodeView, ingest.Options{})
	}
	if err != nil {
		return err
	}
	if batch.Total == 0 {
		// The same for every format: an empty NDJSON body, "[]" or a CSV
		// header alone (whose columns no row ever checked) is a mistake.
		return appliance.Invalid("body", "has no rows")
	}
	if view.Transform != nil {
		if err := s.deriveFeatures(ctx, view, batch); err != nil {
			return err
		}
	}
	res := ingestResponse{View: view.Name, Version: view.Version, Accepted: len(batch.Rows), Rejected: batch.Errors, RejectedCount: batch.Rejected}
	if res.Rejected == nil {
		res.Rejected = []ingest.RowError{}
	}
	if batch.Rejected > 0 && !skipInvalid {
		return &appliance.Error{Code: appliance.EINVALID, Field: "rows",
			Message: fmt.Sprintf("%d of %d rows are invalid; nothing was written (?mode=skip-invalid writes the valid rows)", batch.Rejected, batch.Total),
			Details: batch.Errors}
	}
	answer, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if len(batch.Rows) > 0 || idem != nil {
		req := &appliance.WriteRequest{View: view, Rows: batch.Rows, OfflineOnly: !online}
		if idem != nil {
			copy(idem.BodyHash[:], hash.Sum(nil))
			idem.Response = answer
			req.Idempotency = idem
		}
		wr, err := s.svc.Features.WriteRows(ctx, req)
		if err != nil {
			return err
		}
		if wr.Duplicate {
			// A concurrent retry got there first.
			c.Set("Idempotent-Replayed", "true")
			answer = wr.Replayed
		}
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(answer)
}

// decodeParquetBody spools a Parquet body to a temporary file, since a
// Parquet file is read from its footer, and decodes it. The file is
// unlinked at once, so that it goes with its handle whatever happens. Its
// rows may come to no more than limit bytes as text, as a text body.
func decodeParquetBody(ctx context.Context, spoolDir string, body io.Reader, view *appliance.FeatureView, limit int64) (*ingest.Batch, error) {
	f, size, err := spoolFile(spoolDir, body)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ingest.DecodeParquet(ctx, f, size, view, ingest.Options{MaxBytes: limit})
}

// deriveFeatures widens each row to the view's full schema and, for an
// ingest-time transform, computes the derived values. A row whose transform
// fails becomes a row error like any other invalid row.
func (s *Server) deriveFeatures(ctx context.Context, view *appliance.FeatureView, batch *ingest.Batch) error {
	if view.Transform.Mode == appliance.TransformIngest && s.svc.Transforms == nil {
		return appliance.Errorf(appliance.EUNAVAILABLE, "this node has no WebAssembly runtime for %s's transform", view.Key())
	}
	n := len(view.Features)
	slab := make([]appliance.Value, n*len(batch.Rows))
	scratchIn := make([]appliance.TransformValue, 0, len(view.Transform.Inputs))
	nums := make([]float64, 0, len(view.Transform.Inputs))
	out := make([]float64, len(view.Transform.Outputs))
	kept, keptIndex := batch.Rows[:0], batch.Index[:0]
	var failures []ingest.RowError
	for i, row := range batch.Rows {
		values := slab[i*n : (i+1)*n : (i+1)*n]
		copy(values, row.Values)
		if view.Transform.Mode == appliance.TransformIngest {
			if err := view.RunTransform(ctx, s.svc.Transforms, values, nil, scratchIn, nums, out); err != nil {
				if appliance.ErrorCode(err) != appliance.EUNPROCESSABLE {
					return err
				}
				failures = append(failures, ingest.RowError{Row: batch.Index[i], Field: "transform", Reason: appliance.ErrorMessage(err) +
					fmt.Sprintf(" (the transform was given %d inputs and %d outputs, as the view declares: a module that refuses every row may expect others)", len(view.Transform.Inputs), len(view.Transform.Outputs))})
				continue
			}
		}
		row.Values = values
		kept = append(kept, row)
		keptIndex = append(keptIndex, batch.Index[i])
	}
	batch.Rows, batch.Index = kept, keptIndex
	if len(failures) > 0 {
		batch.Rejected += len(failures)
		batch.Errors = append(batch.Errors, failures...)
		slices.SortStableFunc(batch.Errors, func(a, b ingest.RowError) int { return a.Row - b.Row })
		if len(batch.Errors) > ingest.DefaultMaxErrors {
			batch.Errors = batch.Errors[:ingest.DefaultMaxErrors]
		}
	}
	return nil
}
