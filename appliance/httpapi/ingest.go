package httpapi

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"

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
		idem = &appliance.Idempotency{Key: fmt.Sprintf("%s|%s|%s", caller.Name, view.Key(), key)}
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

	batch, err := ingest.Decode(ctx, body, format, view, ingest.Options{})
	if err != nil {
		return err
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
