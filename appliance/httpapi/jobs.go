package httpapi

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/jobs"
)

// jobRoutes registers materialization and the job endpoints.
func (s *Server) jobRoutes(v1 fiber.Router, reader, writer, admin fiber.Handler) {
	v1.Post("/materialize", writer, s.submitKind(jobs.KindMaterialize))
	v1.Post("/materialize-incremental", writer, s.submitKind(jobs.KindMaterializeIncremental))
	v1.Post("/jobs", admin, s.submitJob)
	v1.Get("/jobs", reader, s.listJobs)
	v1.Get("/jobs/:id", reader, s.getJob)
	v1.Delete("/jobs/:id", writer, s.cancelJob)
}

func (s *Server) jobRunner() (appliance.JobRunner, error) {
	if s.svc.Jobs == nil {
		return nil, appliance.Errorf(appliance.EUNAVAILABLE, "this node runs no jobs")
	}
	return s.svc.Jobs, nil
}

// submitKind starts a job of one kind whose arguments are the body: POST
// /api/v1/materialize and /materialize-incremental answer 202 with the job,
// to follow at GET /api/v1/jobs/{id}.
func (s *Server) submitKind(kind string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		runner, err := s.jobRunner()
		if err != nil {
			return err
		}
		body, err := s.readBody(c)
		if err != nil {
			return err
		}
		if len(body) == 0 {
			body = []byte("{}")
		} else if !json.Valid(body) {
			return appliance.Invalid("body", "is not valid JSON")
		}
		j, err := runner.Submit(c.UserContext(), kind, body, "")
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderLocation, "/api/v1/jobs/"+j.ID)
		return c.Status(fiber.StatusAccepted).JSON(j)
	}
}

// submitJob is POST /api/v1/jobs {"kind","args"}: any kind of job, now.
func (s *Server) submitJob(c *fiber.Ctx) error {
	runner, err := s.jobRunner()
	if err != nil {
		return err
	}
	var req struct {
		Kind string          `json:"kind"`
		Args json.RawMessage `json:"args"`
	}
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	if req.Kind == "" {
		return appliance.Invalid("kind", "is required")
	}
	j, err := runner.Submit(c.UserContext(), req.Kind, req.Args, "")
	if err != nil {
		if e, ok := err.(*appliance.Error); ok && e.Field == "job" {
			e.Field = "kind"
		}
		return err
	}
	c.Set(fiber.HeaderLocation, "/api/v1/jobs/"+j.ID)
	return c.Status(fiber.StatusAccepted).JSON(j)
}

func (s *Server) listJobs(c *fiber.Ctx) error {
	runner, err := s.jobRunner()
	if err != nil {
		return err
	}
	f := appliance.JobFilter{Kind: c.Query("kind"), State: appliance.JobState(c.Query("state"))}
	switch f.State {
	case "", appliance.JobQueued, appliance.JobRunning, appliance.JobSucceeded, appliance.JobFailed, appliance.JobCancelled:
	default:
		return appliance.Invalid("state", "%q is not queued, running, succeeded, failed or cancelled", f.State)
	}
	// A misspelt kind is an error, as a misspelt state is, not an empty list.
	if k, ok := s.svc.Jobs.(interface{ Kinds() []string }); ok && f.Kind != "" && !slices.Contains(k.Kinds(), f.Kind) {
		return appliance.Invalid("kind", "%q is not a job kind (%s)", f.Kind, strings.Join(k.Kinds(), ", "))
	}
	if f.Limit, err = limitQuery(c); err != nil {
		return err
	}
	list, err := runner.Jobs(c.UserContext(), f)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*appliance.Job{}
	}
	return c.JSON(fiber.Map{"jobs": list})
}

func (s *Server) getJob(c *fiber.Ctx) error {
	runner, err := s.jobRunner()
	if err != nil {
		return err
	}
	j, err := runner.Job(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(j)
}

// cancelJob is DELETE /api/v1/jobs/{id}: stop a queued or running job. Work
// it committed stays (materialized rows are valid values either way).
func (s *Server) cancelJob(c *fiber.Ctx) error {
	runner, err := s.jobRunner()
	if err != nil {
		return err
	}
	j, err := runner.Cancel(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(j)
}
