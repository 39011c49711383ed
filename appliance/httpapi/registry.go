package httpapi

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

type entityRequest struct {
	Name        string   `json:"name"`
	JoinKeys    []string `json:"join_keys"`
	ValueType   string   `json:"value_type"`
	Description string   `json:"description"`
}

func (s *Server) createEntity(c *fiber.Ctx) error {
	var req entityRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	e := &appliance.Entity{Name: req.Name, JoinKeys: req.JoinKeys, ValueType: req.ValueType, Description: req.Description}
	if len(e.JoinKeys) == 0 && req.JoinKeys == nil {
		// Feast's default: the entity's name is its join key.
		e.JoinKeys = []string{req.Name}
	}
	if e.ValueType == "" {
		e.ValueType = appliance.EntityString
	}
	created, err := s.svc.Registry.CreateEntity(c.UserContext(), e)
	if err != nil {
		return err
	}
	return c.Status(createdStatus(created)).JSON(e)
}

func createdStatus(created bool) int {
	if created {
		return fiber.StatusCreated
	}
	return fiber.StatusOK
}

func (s *Server) listEntities(c *fiber.Ctx) error {
	list, err := s.svc.Registry.Entities(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"entities": list})
}

func (s *Server) getEntity(c *fiber.Ctx) error {
	e, err := s.svc.Registry.Entity(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(e)
}

// eraseEntityKey removes one instance of an entity everywhere. {key} is the
// join key's value; an entity with several join keys takes them
// comma-separated in join key order.
func (s *Server) eraseEntityKey(c *fiber.Ctx) error {
	ctx := c.UserContext()
	e, err := s.svc.Registry.Entity(ctx, c.Params("name"))
	if err != nil {
		return err
	}
	raw := copyString(c.Params("key"))
	parts := []string{raw}
	if len(e.JoinKeys) > 1 {
		parts = strings.Split(raw, ",")
	}
	if len(parts) != len(e.JoinKeys) {
		return appliance.Invalid("key", "entity %q has join keys %v: give %d comma-separated values", e.Name, e.JoinKeys, len(e.JoinKeys))
	}
	key := make([]appliance.Value, len(parts))
	for i, p := range parts {
		if key[i], err = parseJoinKeyText(e.JoinKeys[i], e.ValueType, p); err != nil {
			return err
		}
	}
	res, err := s.svc.Features.EraseEntityKey(ctx, e, key)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

// parseJoinKeyText reads a join key value from a path or query string.
func parseJoinKeyText(field, valueType, text string) (appliance.Value, error) {
	if text == "" {
		return appliance.Value{}, appliance.Invalid(field, "is empty")
	}
	if valueType == appliance.EntityInt64 {
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return appliance.Value{}, appliance.Invalid(field, "%q is not an int64", text)
		}
		return appliance.Int64Value(n), nil
	}
	return appliance.StringValue(text), nil
}

type featureViewRequest struct {
	Name        string              `json:"name"`
	Entities    []string            `json:"entities"`
	Features    []appliance.Feature `json:"features"`
	TTL         json.RawMessage     `json:"ttl"`
	Retention   json.RawMessage     `json:"retention"`
	Tags        map[string]string   `json:"tags"`
	Owner       string              `json:"owner"`
	Description string              `json:"description"`
	Transform   *transformRequest   `json:"transform"`
}

type transformRequest struct {
	Module  string              `json:"module"`
	Mode    string              `json:"mode"`
	Inputs  []string            `json:"inputs"`
	Outputs []appliance.Feature `json:"outputs"`
}

// parseTTL reads "24h", "7d", a number of seconds, or null/absent (none).
func parseTTL(raw json.RawMessage) (appliance.Duration, error) { return parseDuration("ttl", raw) }

// parseDuration reads a duration field as parseTTL does.
func parseDuration(field string, raw json.RawMessage) (appliance.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var d appliance.Duration
	if err := json.Unmarshal(raw, &d); err != nil {
		return 0, appliance.Invalid(field, "%s is not a duration like \"24h\", \"7d\" or a number of seconds", raw)
	}
	return d, nil
}

// featureViewResponse adds the version's data counts to its definition.
type featureViewResponse struct {
	*appliance.FeatureView
	Stats *appliance.ViewStats `json:"stats,omitempty"`
}

func (s *Server) applyFeatureView(c *fiber.Ctx) error {
	var req featureViewRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return err
	}
	retention, err := parseDuration("retention", req.Retention)
	if err != nil {
		return err
	}
	view := &appliance.FeatureView{Name: req.Name, Entities: req.Entities,
		Features: req.Features, TTL: ttl, Retention: retention, Tags: req.Tags, Owner: req.Owner, Description: req.Description}
	if t := req.Transform; t != nil {
		view.Transform = &appliance.Transform{Module: t.Module, Mode: t.Mode, Inputs: t.Inputs, Outputs: t.Outputs}
	}
	v, created, err := s.svc.Registry.ApplyFeatureView(c.UserContext(), view)
	if err != nil {
		return err
	}
	return c.Status(createdStatus(created)).JSON(v)
}

func (s *Server) listFeatureViews(c *fiber.Ctx) error {
	list, err := s.svc.Registry.FeatureViews(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"feature_views": list})
}

func (s *Server) viewWithStats(c *fiber.Ctx, v *appliance.FeatureView) error {
	st, err := s.svc.Features.ViewStats(c.UserContext(), v)
	if err != nil {
		return err
	}
	return c.JSON(featureViewResponse{FeatureView: v, Stats: st})
}

func (s *Server) getFeatureView(c *fiber.Ctx) error {
	v, err := s.svc.Registry.FeatureView(c.UserContext(), c.Params("name"), 0)
	if err != nil {
		return err
	}
	return s.viewWithStats(c, v)
}

func (s *Server) getFeatureViewVersion(c *fiber.Ctx) error {
	n, err := pathInt("version", c.Params("version"))
	if err != nil {
		return err
	}
	v, err := s.svc.Registry.FeatureView(c.UserContext(), c.Params("name"), n)
	if err != nil {
		return err
	}
	return s.viewWithStats(c, v)
}

func (s *Server) listFeatureViewVersions(c *fiber.Ctx) error {
	list, err := s.svc.Registry.FeatureViewVersions(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"versions": list})
}

type featureViewPatchRequest struct {
	TTL         json.RawMessage    `json:"ttl"`
	Retention   json.RawMessage    `json:"retention"`
	Tags        *map[string]string `json:"tags"`
	Owner       *string            `json:"owner"`
	Description *string            `json:"description"`
}

func (s *Server) patchFeatureView(c *fiber.Ctx) error {
	var req featureViewPatchRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	p := &appliance.FeatureViewPatch{Tags: req.Tags, Owner: req.Owner, Description: req.Description}
	if req.TTL != nil {
		ttl, err := parseTTL(req.TTL)
		if err != nil {
			return err
		}
		p.TTL = &ttl
	}
	if req.Retention != nil {
		r, err := parseDuration("retention", req.Retention)
		if err != nil {
			return err
		}
		p.Retention = &r
	}
	v, err := s.svc.Registry.PatchFeatureView(c.UserContext(), copyString(c.Params("name")), p)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Server) deleteFeatureView(c *fiber.Ctx) error {
	force, err := boolQuery(c, "force")
	if err != nil {
		return err
	}
	if err := s.svc.Registry.DeleteFeatureView(c.UserContext(), c.Params("name"), force); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func boolQuery(c *fiber.Ctx, name string) (bool, error) {
	v := c.Query(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, appliance.Invalid(name, "%q is not true or false", v)
	}
	return b, nil
}

type featureServiceRequest struct {
	Name        string   `json:"name"`
	Features    []string `json:"features"`
	Description string   `json:"description"`
}

func (s *Server) applyFeatureService(c *fiber.Ctx) error {
	var req featureServiceRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	fs := &appliance.FeatureService{Name: req.Name, Features: req.Features, Description: req.Description}
	created, err := s.svc.Registry.ApplyFeatureService(c.UserContext(), fs)
	if err != nil {
		return err
	}
	return c.Status(createdStatus(created)).JSON(fs)
}

func (s *Server) listFeatureServices(c *fiber.Ctx) error {
	list, err := s.svc.Registry.FeatureServices(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"feature_services": list})
}

func (s *Server) getFeatureService(c *fiber.Ctx) error {
	fs, err := s.svc.Registry.FeatureService(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(fs)
}

func (s *Server) deleteFeatureService(c *fiber.Ctx) error {
	if err := s.svc.Registry.DeleteFeatureService(c.UserContext(), c.Params("name")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type tokenRequest struct {
	Name string         `json:"name"`
	Role appliance.Role `json:"role"`
}

func (s *Server) createToken(c *fiber.Ctx) error {
	var req tokenRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	t, secret, err := s.svc.Tokens.CreateToken(c.UserContext(), req.Name, req.Role)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"name": t.Name, "role": t.Role, "token": secret, "created_at": t.CreatedAt})
}

func (s *Server) listTokens(c *fiber.Ctx) error {
	list, err := s.svc.Tokens.Tokens(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"tokens": list})
}

func (s *Server) revokeToken(c *fiber.Ctx) error {
	if err := s.svc.Tokens.RevokeToken(c.UserContext(), copyString(c.Params("name"))); err != nil {
		return err
	}
	s.forgetTokens()
	return c.SendStatus(fiber.StatusNoContent)
}
