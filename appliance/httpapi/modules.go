package httpapi

import (
	"io"
	"mime"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

// uploadModule stores a WebAssembly module content-addressed after the
// runtime has checked it: POST /api/v1/modules with Content-Type
// application/wasm. 201 for a new module, 200 when it was there already.
func (s *Server) uploadModule(c *fiber.Ctx) error {
	if s.svc.Modules == nil || s.svc.Inspector == nil {
		return appliance.Errorf(appliance.EUNAVAILABLE, "this node has no WebAssembly runtime")
	}
	if mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType)); err != nil || (mt != "application/wasm" && mt != "application/octet-stream") {
		return &appliance.Error{Code: appliance.EMEDIATYPE, Field: "Content-Type", Message: "send the module as application/wasm"}
	}
	r, err := bodyReader(c, s.cfg.ModuleBodyLimit)
	if err != nil {
		return err
	}
	wasm, err := io.ReadAll(r)
	if err != nil {
		if appliance.ErrorCode(err) == appliance.ETOOLARGE {
			return err
		}
		return appliance.Invalid("body", "reading the module: %v", err)
	}
	m, err := s.svc.Inspector.InspectModule(c.UserContext(), wasm)
	if err != nil {
		return err
	}
	created, err := s.svc.Modules.PutModule(c.UserContext(), m, wasm)
	if err != nil {
		return err
	}
	return c.Status(createdStatus(created)).JSON(m)
}

func (s *Server) listModules(c *fiber.Ctx) error {
	if s.svc.Modules == nil {
		return appliance.Errorf(appliance.EUNAVAILABLE, "this node has no module store")
	}
	list, err := s.svc.Modules.Modules(c.UserContext())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*appliance.Module{}
	}
	return c.JSON(fiber.Map{"modules": list})
}

func (s *Server) moduleDigest(c *fiber.Ctx) (string, error) {
	if s.svc.Modules == nil {
		return "", appliance.Errorf(appliance.EUNAVAILABLE, "this node has no module store")
	}
	return appliance.ParseModuleRef("sha256", c.Params("sha256"))
}

func (s *Server) getModule(c *fiber.Ctx) error {
	digest, err := s.moduleDigest(c)
	if err != nil {
		return err
	}
	m, err := s.svc.Modules.Module(c.UserContext(), digest)
	if err != nil {
		return err
	}
	return c.JSON(m)
}

// downloadModule returns the exact bytes uploaded.
func (s *Server) downloadModule(c *fiber.Ctx) error {
	digest, err := s.moduleDigest(c)
	if err != nil {
		return err
	}
	wasm, err := s.svc.Modules.ModuleBytes(c.UserContext(), digest)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/wasm")
	return c.Send(wasm)
}
