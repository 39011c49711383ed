package httpapi

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/routing"
)

// flagRoutes registers feature flags: definitions are a writer's;
// evaluation is every reader's, like predict.
func (s *Server) flagRoutes(v1 fiber.Router, reader, writer fiber.Handler) {
	v1.Post("/flags", writer, s.putFlag(false))
	v1.Put("/flags/:name", writer, s.putFlag(true))
	v1.Get("/flags", reader, s.listFlags)
	v1.Get("/flags/:name", reader, s.getFlag)
	v1.Delete("/flags/:name", writer, s.deleteFlag)
	v1.Get("/flags/:name/evaluate", reader, s.evaluateFlag)
}

func (s *Server) flags() (*routing.Flags, error) {
	if s.svc.Flags == nil {
		return nil, appliance.Errorf(appliance.EUNAVAILABLE, "this node has no feature flags")
	}
	return s.svc.Flags, nil
}

// putFlag is POST /flags (create; 409 if the name exists) and PUT
// /flags/{name} (create or replace).
func (s *Server) putFlag(replace bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		x, err := s.flags()
		if err != nil {
			return err
		}
		var f appliance.Flag
		body, err := s.decodeJSONBodyRaw(c, &f)
		if err != nil {
			return err
		}
		if err := checkCoverage(body); err != nil {
			return err
		}
		ctx := c.UserContext()
		if replace {
			name := copyString(c.Params("name"))
			if f.Name != "" && f.Name != name {
				return appliance.Invalid("name", "the body names %q but the path %q", f.Name, name)
			}
			f.Name = name
		}
		now := s.now().UTC()
		f.CreatedAt, f.UpdatedAt, f.CreatedBy = now, now, appliance.CallerFromContext(ctx).Name
		created, err := x.Put(ctx, &f, !replace)
		if err != nil {
			return err
		}
		if created {
			c.Status(fiber.StatusCreated)
		}
		return c.JSON(&f)
	}
}

func (s *Server) listFlags(c *fiber.Ctx) error {
	x, err := s.flags()
	if err != nil {
		return err
	}
	list, err := x.Store.Flags(c.UserContext())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*appliance.Flag{}
	}
	return c.JSON(fiber.Map{"flags": list})
}

func (s *Server) getFlag(c *fiber.Ctx) error {
	x, err := s.flags()
	if err != nil {
		return err
	}
	f, err := x.Store.Flag(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(f)
}

func (s *Server) deleteFlag(c *fiber.Ctx) error {
	x, err := s.flags()
	if err != nil {
		return err
	}
	if err := x.Delete(c.UserContext(), copyString(c.Params("name"))); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// evaluateFlag is GET /flags/{name}/evaluate?unit=…&<attribute>=…: query
// values that read as numbers are numbers, true and false are booleans,
// the rest strings.
func (s *Server) evaluateFlag(c *fiber.Ctx) error {
	x, err := s.flags()
	if err != nil {
		return err
	}
	attrs := map[string]any{}
	var unit string
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		key, val := string(k), string(v)
		if key == "unit" {
			unit = val
			return
		}
		switch {
		case val == "true" || val == "false":
			attrs[key] = val == "true"
		default:
			if f, err := strconv.ParseFloat(val, 64); err == nil {
				attrs[key] = f
			} else {
				attrs[key] = val
			}
		}
	})
	ev, err := x.Evaluate(c.UserContext(), copyString(c.Params("name")), unit, attrs)
	if err != nil {
		return err
	}
	return c.JSON(ev)
}
