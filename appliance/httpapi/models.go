package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

func (s *Server) models() (appliance.ModelRegistry, error) {
	if s.svc.Models == nil {
		return nil, appliance.Errorf(appliance.EUNAVAILABLE, "this node has no model registry")
	}
	return s.svc.Models, nil
}

func (s *Server) listModels(c *fiber.Ctx) error {
	reg, err := s.models()
	if err != nil {
		return err
	}
	list, err := reg.Models(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"models": list})
}

func (s *Server) getModel(c *fiber.Ctx) error {
	reg, err := s.models()
	if err != nil {
		return err
	}
	m, err := reg.Model(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(m)
}

type modelPatchRequest struct {
	Tags        map[string]string `json:"tags"`
	Description *string           `json:"description"`
}

func (s *Server) patchModel(c *fiber.Ctx) error {
	reg, err := s.models()
	if err != nil {
		return err
	}
	var req modelPatchRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	m, err := reg.PatchModel(c.UserContext(), copyString(c.Params("name")), req.Tags, req.Description)
	if err != nil {
		return err
	}
	return c.JSON(m)
}

func (s *Server) listModelVersions(c *fiber.Ctx) error {
	reg, err := s.models()
	if err != nil {
		return err
	}
	list, err := reg.ModelVersions(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"versions": list})
}

// versionTarget reads the registry, the model name and the version number
// of a /models/{name}/versions/{version} route.
func (s *Server) versionTarget(c *fiber.Ctx) (appliance.ModelRegistry, string, int, error) {
	reg, err := s.models()
	if err != nil {
		return nil, "", 0, err
	}
	v, err := pathInt("version", c.Params("version"))
	if err != nil {
		return nil, "", 0, err
	}
	return reg, copyString(c.Params("name")), v, nil
}

func (s *Server) getModelVersion(c *fiber.Ctx) error {
	reg, name, v, err := s.versionTarget(c)
	if err != nil {
		return err
	}
	mv, err := reg.ModelVersion(c.UserContext(), name, v)
	if err != nil {
		return err
	}
	return c.JSON(mv)
}

func (s *Server) downloadBundle(c *fiber.Ctx) error {
	reg, name, v, err := s.versionTarget(c)
	if err != nil {
		return err
	}
	b, err := reg.ModelBundle(c.UserContext(), name, v)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/gzip")
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-v%d.tar.gz"`, name, v))
	return c.Send(b)
}

// patchModelVersion changes tags (writer) or the status (admin: archiving
// takes a version out of service).
func (s *Server) patchModelVersion(c *fiber.Ctx) error {
	reg, name, v, err := s.versionTarget(c)
	if err != nil {
		return err
	}
	var p appliance.ModelVersionPatch
	if err := s.decodeJSONBody(c, &p); err != nil {
		return err
	}
	if caller := appliance.CallerFromContext(c.UserContext()); p.Status != nil && !caller.Role.Allows(appliance.RoleAdmin) {
		return appliance.Errorf(appliance.EFORBIDDEN, "changing a version's status needs the admin role")
	}
	mv, err := reg.PatchModelVersion(c.UserContext(), name, v, &p)
	if err != nil {
		return err
	}
	return c.JSON(mv)
}

func (s *Server) aliasPolicy(alias string) appliance.AliasPolicy {
	return s.cfg.AliasPolicies[alias]
}

type aliasRequest struct {
	Version int `json:"version"`
}

func (s *Server) setAlias(c *fiber.Ctx) error {
	reg, err := s.models()
	if err != nil {
		return err
	}
	var req aliasRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	if req.Version < 1 {
		return appliance.Invalid("version", "a version number is required")
	}
	alias := copyString(c.Params("alias"))
	ch, err := reg.SetAlias(c.UserContext(), copyString(c.Params("name")), alias, req.Version, s.aliasPolicy(alias))
	if err != nil {
		return err
	}
	return c.JSON(ch)
}

func (s *Server) deleteAlias(c *fiber.Ctx) error {
	reg, err := s.models()
	if err != nil {
		return err
	}
	if _, err := reg.DeleteAlias(c.UserContext(), copyString(c.Params("name")), copyString(c.Params("alias"))); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) rollbackAlias(c *fiber.Ctx) error {
	reg, err := s.models()
	if err != nil {
		return err
	}
	alias := copyString(c.Params("alias"))
	ch, err := reg.RollbackAlias(c.UserContext(), copyString(c.Params("name")), alias, s.aliasPolicy(alias))
	if err != nil {
		return err
	}
	return c.JSON(ch)
}

func (s *Server) aliasHistory(c *fiber.Ctx) error {
	reg, err := s.models()
	if err != nil {
		return err
	}
	h, err := reg.AliasHistory(c.UserContext(), c.Params("name"), c.Params("alias"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"history": h})
}

// predictRequest is the body of POST /api/v1/predict/{name}.
type predictRequest struct {
	Entities   map[string]json.RawMessage `json:"entities"`
	Request    map[string]json.RawMessage `json:"request"`
	Features   map[string]float64         `json:"features"`
	Alias      string                     `json:"alias"`
	Version    *int                       `json:"version"`
	Unit       string                     `json:"unit"`
	Attributes map[string]any             `json:"attributes"`
}

func (r *predictRequest) domain(model string) *appliance.PredictRequest {
	return &appliance.PredictRequest{Model: model, Alias: r.Alias, Version: versionOf(r.Version), Entities: r.Entities,
		Request: r.Request, Features: r.Features, Unit: r.Unit, Attributes: r.Attributes}
}

func (s *Server) predictor() (*appliance.Predictor, error) {
	if s.svc.Predictor == nil {
		return nil, appliance.Errorf(appliance.EUNAVAILABLE, "this node does not serve models")
	}
	return s.svc.Predictor, nil
}

func (s *Server) predict(c *fiber.Ctx) error {
	p, err := s.predictor()
	if err != nil {
		return err
	}
	var req predictRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	if err := checkVersionOrAlias(req.Version, req.Alias); err != nil {
		return err
	}
	name := copyString(c.Params("name"))
	start := time.Now()
	res, err := p.Predict(c.UserContext(), req.domain(name))
	s.countPrediction(name, res, req.Alias, err, start)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

// predictBatchRequest is the body of POST /api/v1/predict/{name}/batch.
type predictBatchRequest struct {
	Entities []map[string]json.RawMessage `json:"entities"`
	Request  []map[string]json.RawMessage `json:"request"`
	Alias    string                       `json:"alias"`
	Version  *int                         `json:"version"`
}

// versionOf is a request's version, 0 when it names none.
func versionOf(v *int) int {
	if v == nil {
		return 0
	}
	return *v
}

// checkVersionOrAlias refuses a version below 1 (an explicit 0 would
// otherwise read as "none" and serve production) and both at once.
func checkVersionOrAlias(version *int, alias string) error {
	if version != nil && *version < 1 {
		return appliance.Invalid("version", "must be 1 or more")
	}
	if alias != "" && version != nil {
		return appliance.Invalid("alias", "give alias or version, not both")
	}
	return nil
}

type batchResult struct {
	*appliance.Prediction
	Error *errorFields `json:"error,omitempty"`
}

// predictBatch answers one result or one error per item, in order.
func (s *Server) predictBatch(c *fiber.Ctx) error {
	p, err := s.predictor()
	if err != nil {
		return err
	}
	var req predictBatchRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	if len(req.Entities) == 0 {
		return appliance.Invalid("entities", "a list of entity objects is required")
	}
	if len(req.Entities) > 10000 {
		return appliance.Invalid("entities", "at most 10,000 items per batch")
	}
	if req.Request != nil && len(req.Request) != len(req.Entities) {
		return appliance.Invalid("request", "has %d items but entities has %d", len(req.Request), len(req.Entities))
	}
	if err := checkVersionOrAlias(req.Version, req.Alias); err != nil {
		return err
	}
	name := copyString(c.Params("name"))
	// A named version or alias is resolved once: every item is answered by
	// the same version, even if the alias moves while the batch runs. A
	// version or alias that does not exist is the request's error, not
	// each item's. Without either, each item is routed (an experiment may
	// give units different versions).
	pinned, label := 0, ""
	if req.Version != nil || req.Alias != "" {
		mv, alias, err := p.Resolve(c.UserContext(), &appliance.PredictRequest{Model: name, Alias: req.Alias, Version: versionOf(req.Version)})
		if err != nil {
			return err
		}
		pinned, label = mv.Version, alias
	}
	results := make([]batchResult, len(req.Entities))
	for i, ents := range req.Entities {
		one := &appliance.PredictRequest{Model: name, Version: pinned, Entities: ents}
		if req.Request != nil {
			one.Request = req.Request[i]
		}
		start := time.Now()
		res, err := p.Predict(c.UserContext(), one)
		if res != nil && label != "" {
			res.Alias = label
		}
		s.countPrediction(name, res, label, err, start)
		if err != nil {
			if appliance.ErrorCode(err) == appliance.EINTERNAL {
				return err
			}
			var e *appliance.Error
			e, _ = err.(*appliance.Error)
			if e == nil {
				e = &appliance.Error{Code: appliance.ErrorCode(err), Message: appliance.ErrorMessage(err)}
			}
			results[i].Error = envelopeOf(e)
			continue
		}
		results[i].Prediction = res
	}
	return c.JSON(fiber.Map{"results": results})
}

// predictionMetrics are one model version's series under one alias.
type predictionMetrics struct {
	ok, failed *metrics.Counter
	latency    *metrics.PrometheusHistogram
}

// canonicalAlias spells a version reference one way, so that "v01" and
// "v+1" (version 1 to the registry) make one series, not one each.
func canonicalAlias(alias string) string {
	if n, ok := appliance.VersionRef(alias); ok {
		return "v" + strconv.Itoa(n)
	}
	return alias
}

type predictionKey struct {
	model, alias string
	version      int
}

// countPrediction updates mlnode_predictions_total, …_errors_total and the
// latency histogram per model, version and alias. Label values come from
// validated names, so they need no escaping.
func (s *Server) countPrediction(model string, res *appliance.Prediction, alias string, err error, start time.Time) {
	k := predictionKey{model: model, alias: alias}
	if res != nil {
		k.version, k.alias = res.Version, res.Alias
	}
	k.alias = canonicalAlias(k.alias)
	if err != nil && appliance.ErrorCode(err) == appliance.ENOTFOUND {
		return // unknown models and aliases must not mint series
	}
	m, ok := s.predM.Load(k)
	if !ok {
		labels := fmt.Sprintf(`{model=%q,version="%s",alias=%q}`, k.model, strconv.Itoa(k.version), k.alias)
		m, _ = s.predM.LoadOrStore(k, &predictionMetrics{
			ok:      s.set.GetOrCreateCounter("mlnode_predictions_total" + labels),
			failed:  s.set.GetOrCreateCounter("mlnode_prediction_errors_total" + labels),
			latency: s.set.GetOrCreatePrometheusHistogram("mlnode_prediction_duration_seconds" + labels),
		})
	}
	pm := m.(*predictionMetrics)
	if err != nil {
		pm.failed.Inc()
		return
	}
	pm.ok.Inc()
	pm.latency.UpdateDuration(start)
}

// uploadModel stores a model bundle: POST /api/v1/models with the
// .tar.gz as the body (application/gzip) or as the multipart field
// "bundle". 201 for a new version, 200 when identical content was stored
// before.
func (s *Server) uploadModel(c *fiber.Ctx) error {
	if s.svc.Uploader == nil {
		return appliance.Errorf(appliance.EUNAVAILABLE, "this node does not take model uploads")
	}
	ct := c.Get(fiber.HeaderContentType)
	mt, _, _ := mime.ParseMediaType(ct)
	var raw []byte
	switch mt {
	case "application/gzip", "application/x-gzip", "application/octet-stream", "application/x-tar+gzip":
		r, err := bodyReader(c, s.cfg.BundleBodyLimit)
		if err != nil {
			return err
		}
		if raw, err = io.ReadAll(r); err != nil {
			if appliance.ErrorCode(err) == appliance.ETOOLARGE {
				return err
			}
			return appliance.Invalid("body", "reading the bundle: %v", err)
		}
	case "multipart/form-data":
		if n := c.Request().Header.ContentLength(); n > 0 && int64(n) > s.cfg.BundleBodyLimit {
			return tooLarge(s.cfg.BundleBodyLimit)
		}
		fh, err := c.FormFile("bundle")
		if err != nil {
			return appliance.Invalid("bundle", "a multipart field \"bundle\" with the .tar.gz is required")
		}
		if fh.Size > s.cfg.BundleBodyLimit {
			return tooLarge(s.cfg.BundleBodyLimit)
		}
		f, err := fh.Open()
		if err != nil {
			return appliance.Invalid("bundle", "reading the upload: %v", err)
		}
		defer f.Close()
		if raw, err = io.ReadAll(io.LimitReader(f, s.cfg.BundleBodyLimit+1)); err != nil {
			return appliance.Invalid("bundle", "reading the upload: %v", err)
		}
	default:
		return &appliance.Error{Code: appliance.EMEDIATYPE, Field: "Content-Type", Message: "send the bundle as application/gzip or as the multipart field \"bundle\""}
	}
	mv, created, err := s.svc.Uploader.Upload(c.UserContext(), raw)
	if err != nil {
		return err
	}
	return c.Status(createdStatus(created)).JSON(mv)
}

// addSignature attaches a detached signature (the content of a
// signature.ed25519 file) to a stored version.
func (s *Server) addSignature(c *fiber.Ctx) error {
	if s.svc.Uploader == nil {
		return appliance.Errorf(appliance.EUNAVAILABLE, "this node does not verify signatures")
	}
	reg, name, v, err := s.versionTarget(c)
	if err != nil {
		return err
	}
	mv, err := reg.ModelVersion(c.UserContext(), name, v)
	if err != nil {
		return err
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	sig, err := s.svc.Uploader.VerifyDetached(mv, body)
	if err != nil {
		return err
	}
	mv, err = reg.AddSignature(c.UserContext(), name, v, *sig)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(mv)
}
