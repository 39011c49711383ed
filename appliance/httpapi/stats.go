package httpapi

import (
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/featstats"
)

// getFeatureStats shows a view version's feature statistics:
// GET /api/v1/feature-views/{name}/stats[?version=N], the latest version
// by default.
func (s *Server) getFeatureStats(c *fiber.Ctx) error {
	if s.svc.Stats == nil {
		return appliance.Errorf(appliance.EUNAVAILABLE, "this node keeps no feature statistics")
	}
	version := 0
	if q := c.Query("version"); q != "" {
		n, err := pathInt("version", q)
		if err != nil {
			return err
		}
		version = n
	}
	ctx := c.UserContext()
	view, err := s.svc.Registry.FeatureView(ctx, c.Params("name"), version)
	if err != nil {
		return err
	}
	rec, err := s.svc.Stats.Stats(ctx, view)
	if appliance.ErrorCode(err) == appliance.ENOTFOUND {
		return appliance.Errorf(appliance.ENOTFOUND, "feature view %s has no statistics yet; run the statistics job (kind %q)", view.Key(), featstats.JobKind)
	} else if err != nil {
		return err
	}
	st, err := featstats.FromRecord(rec)
	if err != nil {
		return fmt.Errorf("statistics of %s: %w", view.Key(), err)
	}
	return c.JSON(st.Summary())
}
