package httpapi

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

// experimentRoutes registers the experiment lifecycle. Definitions are a
// writer's; starting, stopping and concluding change what production
// traffic gets, so they are an admin's.
func (s *Server) experimentRoutes(v1 fiber.Router, reader, writer, admin fiber.Handler) {
	v1.Post("/experiments", writer, s.createExperiment)
	v1.Get("/experiments", reader, s.listExperiments)
	v1.Get("/experiments/:name", reader, s.getExperiment)
	v1.Put("/experiments/:name", writer, s.updateExperiment)
	v1.Post("/experiments/:name/start", admin, s.startExperiment)
	v1.Post("/experiments/:name/stop", admin, s.stopExperiment)
	v1.Post("/experiments/:name/conclude", admin, s.concludeExperiment)
	v1.Get("/experiments/:name/shadow", reader, s.experimentShadow)
}

// experimentShadow is GET /experiments/{name}/shadow: per shadow version,
// agreement with the primary, mean absolute difference and latencies,
// from the shadow logs in the telemetry buffer.
func (s *Server) experimentShadow(c *fiber.Ctx) error {
	x, err := s.experiments()
	if err != nil {
		return err
	}
	e, err := x.Store.Experiment(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	if s.svc.Telemetry == nil {
		return appliance.Errorf(appliance.EUNAVAILABLE, "this node keeps no telemetry")
	}
	reports, err := appliance.ShadowReports(s.svc.Telemetry, e.Name, func(b []byte, l *appliance.ShadowLog) error { return json.Unmarshal(b, l) })
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"experiment": e.Name, "shadows": reports})
}

func (s *Server) experiments() (*appliance.Experiments, error) {
	if s.svc.Experiments == nil {
		return nil, appliance.Errorf(appliance.EUNAVAILABLE, "this node runs no experiments")
	}
	return s.svc.Experiments, nil
}

func (s *Server) createExperiment(c *fiber.Ctx) error {
	x, err := s.experiments()
	if err != nil {
		return err
	}
	var e appliance.Experiment
	body, err := s.decodeJSONBodyRaw(c, &e)
	if err != nil {
		return err
	}
	if err := checkCoverage(body); err != nil {
		return err
	}
	out, err := x.Create(c.UserContext(), &e)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderLocation, "/api/v1/experiments/"+out.Name)
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (s *Server) listExperiments(c *fiber.Ctx) error {
	x, err := s.experiments()
	if err != nil {
		return err
	}
	list, err := x.Store.Experiments(c.UserContext())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*appliance.Experiment{}
	}
	return c.JSON(fiber.Map{"experiments": list})
}

func (s *Server) getExperiment(c *fiber.Ctx) error {
	x, err := s.experiments()
	if err != nil {
		return err
	}
	e, err := x.Store.Experiment(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(e)
}

func (s *Server) updateExperiment(c *fiber.Ctx) error {
	x, err := s.experiments()
	if err != nil {
		return err
	}
	var e appliance.Experiment
	body, err := s.decodeJSONBodyRaw(c, &e)
	if err != nil {
		return err
	}
	if err := checkCoverage(body); err != nil {
		return err
	}
	name := copyString(c.Params("name"))
	if e.Name != "" && e.Name != name {
		return appliance.Invalid("name", "the body names %q but the path %q; experiments are not renamed", e.Name, name)
	}
	out, err := x.Update(c.UserContext(), name, &e)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) startExperiment(c *fiber.Ctx) error {
	x, err := s.experiments()
	if err != nil {
		return err
	}
	out, err := x.Start(c.UserContext(), copyString(c.Params("name")))
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) stopExperiment(c *fiber.Ctx) error {
	x, err := s.experiments()
	if err != nil {
		return err
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if len(c.Body()) > 0 {
		if err := s.decodeJSONBody(c, &req); err != nil {
			return err
		}
	}
	if req.Reason == "" {
		req.Reason = "stopped by " + appliance.CallerFromContext(c.UserContext()).Name
	}
	out, err := x.Stop(c.UserContext(), copyString(c.Params("name")), req.Reason)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// concludeExperiment is POST /experiments/{name}/conclude {"arm",
// "promote"}: promote (default true) moves the production alias to the
// winning arm's version.
func (s *Server) concludeExperiment(c *fiber.Ctx) error {
	x, err := s.experiments()
	if err != nil {
		return err
	}
	var req struct {
		Arm     string `json:"arm"`
		Promote *bool  `json:"promote"`
	}
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	if req.Arm == "" {
		return appliance.Invalid("arm", "is required: the arm that won")
	}
	promote := req.Promote == nil || *req.Promote
	out, change, err := x.Conclude(c.UserContext(), copyString(c.Params("name")), req.Arm, promote)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"experiment": out, "alias_change": change})
}
