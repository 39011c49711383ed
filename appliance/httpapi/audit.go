package httpapi

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

// listAudit pages through the audit log: ?since=RFC3339&action=&object=
// &after=SEQ&limit=N. The response's next_after continues the listing.
func (s *Server) listAudit(c *fiber.Ctx) error {
	f := appliance.AuditFilter{Action: copyString(c.Query("action")), Object: copyString(c.Query("object"))}
	if v := c.Query("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return appliance.Invalid("since", "%q is not an RFC 3339 time", v)
		}
		f.Since = t
	}
	if v := c.Query("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return appliance.Invalid("after", "%q is not a sequence number", v)
		}
		f.AfterSeq = n
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return appliance.Invalid("limit", "%q is not a number from 1 to 1000", v)
		}
		f.Limit = n
	}
	entries, more, err := s.svc.Audit.AuditEntries(c.UserContext(), f)
	if err != nil {
		return err
	}
	res := fiber.Map{"entries": entries}
	if entries == nil {
		res["entries"] = []any{}
	}
	if more && len(entries) > 0 {
		res["next_after"] = entries[len(entries)-1].Seq
	}
	return c.JSON(res)
}

func (s *Server) verifyAudit(c *fiber.Ctx) error {
	v, err := s.svc.Audit.VerifyAudit(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(v)
}
