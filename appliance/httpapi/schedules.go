package httpapi

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

// scheduleRoutes registers the schedule endpoints. Changing schedules and
// starting runs is for admins; reading them is for every token.
func (s *Server) scheduleRoutes(v1 fiber.Router, reader, admin fiber.Handler) {
	v1.Post("/schedules", admin, s.createSchedule)
	v1.Get("/schedules", reader, s.listSchedules)
	v1.Get("/schedules/:name", reader, s.getSchedule)
	v1.Put("/schedules/:name", admin, s.replaceSchedule)
	v1.Delete("/schedules/:name", admin, s.deleteSchedule)
	v1.Post("/schedules/:name/run", admin, s.runSchedule)
	v1.Get("/schedules/:name/runs", reader, s.listScheduleRuns)
}

type scheduleRequest struct {
	Name     string          `json:"name"`
	Cron     string          `json:"cron"`
	Timezone string          `json:"timezone"`
	Job      string          `json:"job"`
	Args     json.RawMessage `json:"args"`
}

// scheduleResponse is a schedule with when it runs next, in its own zone
// and in UTC, and how its last run went.
type scheduleResponse struct {
	Name       string                 `json:"name"`
	Cron       string                 `json:"cron"`
	Timezone   string                 `json:"timezone"`
	Job        string                 `json:"job"`
	Args       json.RawMessage        `json:"args,omitempty"`
	CreatedAt  time.Time              `json:"created_at"`
	CreatedBy  string                 `json:"created_by,omitempty"`
	UpdatedAt  time.Time              `json:"updated_at"`
	NextRun    *time.Time             `json:"next_run,omitempty"`
	NextRunUTC *time.Time             `json:"next_run_utc,omitempty"`
	Running    bool                   `json:"running"`
	LastRun    *appliance.ScheduleRun `json:"last_run,omitempty"`
	// Not "error": a client must be able to tell a response from the
	// error envelope by its top-level keys.
	Unschedulable string `json:"unschedulable,omitempty"`
}

func newScheduleResponse(st *appliance.ScheduleStatus) *scheduleResponse {
	r := &scheduleResponse{Name: st.Name, Cron: st.Cron, Timezone: st.Timezone, Job: st.Job, Args: st.Args,
		CreatedAt: st.CreatedAt, CreatedBy: st.CreatedBy, UpdatedAt: st.UpdatedAt,
		Running: st.Running, LastRun: st.LastRun, Unschedulable: st.Error}
	if !st.NextRun.IsZero() {
		local, utc := st.NextRun, st.NextRun.UTC()
		r.NextRun, r.NextRunUTC = &local, &utc
	}
	return r
}

func (s *Server) schedules() (appliance.ScheduleService, error) {
	if s.svc.Schedules == nil {
		return nil, appliance.Errorf(appliance.EUNAVAILABLE, "this node has no scheduler")
	}
	return s.svc.Schedules, nil
}

func (req *scheduleRequest) schedule() *appliance.Schedule {
	return &appliance.Schedule{Name: req.Name, Cron: req.Cron, Timezone: req.Timezone, Job: req.Job, Args: req.Args}
}

// createSchedule: POST /api/v1/schedules. 201 for a new schedule, 200 when
// an identical one exists (a retried request), 409 when the name holds a
// different one: replacing is PUT's job, so that a typo never overwrites.
func (s *Server) createSchedule(c *fiber.Ctx) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	var req scheduleRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	st, created, err := svc.CreateSchedule(c.UserContext(), req.schedule())
	if err != nil {
		return err
	}
	return c.Status(createdStatus(created)).JSON(newScheduleResponse(st))
}

// replaceSchedule: PUT /api/v1/schedules/{name} creates or replaces. The
// body's name may be left out; if given it must be the path's.
func (s *Server) replaceSchedule(c *fiber.Ctx) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	var req scheduleRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	name := copyString(c.Params("name"))
	if req.Name == "" {
		req.Name = name
	} else if req.Name != name {
		return appliance.Invalid("name", "%q differs from the path's %q", req.Name, name)
	}
	st, created, err := svc.ReplaceSchedule(c.UserContext(), req.schedule())
	if err != nil {
		return err
	}
	return c.Status(createdStatus(created)).JSON(newScheduleResponse(st))
}

func (s *Server) listSchedules(c *fiber.Ctx) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	list, err := svc.Schedules(c.UserContext())
	if err != nil {
		return err
	}
	out := make([]*scheduleResponse, len(list))
	for i, st := range list {
		out[i] = newScheduleResponse(st)
	}
	return c.JSON(fiber.Map{"schedules": out})
}

func (s *Server) getSchedule(c *fiber.Ctx) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	st, err := svc.Schedule(c.UserContext(), copyString(c.Params("name")))
	if err != nil {
		return err
	}
	return c.JSON(newScheduleResponse(st))
}

func (s *Server) deleteSchedule(c *fiber.Ctx) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	if err := svc.DeleteSchedule(c.UserContext(), copyString(c.Params("name"))); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// runSchedule: POST /api/v1/schedules/{name}/run starts a run now and
// answers 202 with its record; the run goes on after the response.
func (s *Server) runSchedule(c *fiber.Ctx) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	run, err := svc.RunSchedule(c.UserContext(), copyString(c.Params("name")))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(run)
}

// listScheduleRuns: GET /api/v1/schedules/{name}/runs?limit=N&before=ID,
// newest first; next_before continues the listing.
func (s *Server) listScheduleRuns(c *fiber.Ctx) error {
	svc, err := s.schedules()
	if err != nil {
		return err
	}
	var f appliance.RunFilter
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return appliance.Invalid("limit", "%q is not a number from 1 to 1000", v)
		}
		f.Limit = n
	}
	if v := c.Query("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return appliance.Invalid("before", "%q is not a run id", v)
		}
		f.Before = n
	}
	runs, more, err := svc.ScheduleRuns(c.UserContext(), copyString(c.Params("name")), f)
	if err != nil {
		return err
	}
	if runs == nil {
		runs = []*appliance.ScheduleRun{}
	}
	out := fiber.Map{"runs": runs}
	if more && len(runs) > 0 {
		out["next_before"] = runs[len(runs)-1].ID
	}
	return c.JSON(out)
}
