package httpapi

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

// driftRoutes registers drift windows and alerts.
func (s *Server) driftRoutes(v1 fiber.Router, reader fiber.Handler) {
	v1.Get("/models/:name/drift", reader, s.modelDrift)
	v1.Get("/alerts", reader, s.listAlerts)
}

func (s *Server) driftStore() (appliance.DriftStore, error) {
	if s.svc.Drift == nil {
		return nil, appliance.Errorf(appliance.EUNAVAILABLE, "this node does not monitor drift")
	}
	return s.svc.Drift, nil
}

func limitQuery(c *fiber.Ctx) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, appliance.Invalid("limit", "must be an integer from 1 to 1000")
	}
	return n, nil
}

// modelDrift is GET /models/{name}/drift?limit=: the drift job's windows,
// newest first, each with every input and output compared.
func (s *Server) modelDrift(c *fiber.Ctx) error {
	d, err := s.driftStore()
	if err != nil {
		return err
	}
	if _, err := s.svc.Models.Model(c.UserContext(), c.Params("name")); err != nil {
		return err
	}
	limit, err := limitQuery(c)
	if err != nil {
		return err
	}
	list, err := d.DriftWindows(c.UserContext(), c.Params("name"), limit)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*appliance.DriftWindow{}
	}
	return c.JSON(fiber.Map{"model": c.Params("name"), "windows": list})
}

// listAlerts is GET /alerts?limit=: drift alerts, newest first.
func (s *Server) listAlerts(c *fiber.Ctx) error {
	d, err := s.driftStore()
	if err != nil {
		return err
	}
	limit, err := limitQuery(c)
	if err != nil {
		return err
	}
	list, err := d.Alerts(c.UserContext(), limit)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*appliance.Alert{}
	}
	return c.JSON(fiber.Map{"alerts": list})
}
