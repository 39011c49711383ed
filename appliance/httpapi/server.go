package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/routing"
	"github.com/mlnode/mlnode/appliance/upload"
)

// Config configures the HTTP interface. Zero values take the defaults.
type Config struct {
	IngestBodyLimit int64 // bytes of one ingest body, default 256 MiB
	JSONBodyLimit   int64 // bytes of any other body, default 16 MiB
	ModuleBodyLimit int64 // bytes of one uploaded module, default 64 MiB
	BundleBodyLimit int64 // bytes of one model bundle, default 64 MiB
	// EntityUploadLimit bounds the entity rows of one historical request
	// (JSON body or file), default 1 GiB; they are spooled to SpoolDir.
	EntityUploadLimit int64
	// HistoricalMemoryBudget bounds the sort buffers of one historical
	// join, default 256 MiB; beyond it sorts spill to SpoolDir.
	HistoricalMemoryBudget int
	SpoolDir               string // temporary files of retrievals; default the system's
	// AliasPolicies are what each alias requires of its versions, e.g.
	// "production" requires a trusted signature.
	AliasPolicies map[string]appliance.AliasPolicy
	MetricsPublic bool // serve /metrics without a token
	Version       string
	Logger        *slog.Logger
	Now           func() time.Time
}

// Services are what the handlers call.
type Services struct {
	Registry appliance.FeatureRegistry
	Features appliance.FeatureStore
	Tokens   appliance.TokenService
	Audit    appliance.AuditLog
	// Modules stores uploaded WebAssembly modules; Runtime inspects and runs
	// them. Either may be nil on a node without the module endpoints.
	Modules    appliance.ModuleStore
	Inspector  appliance.ModuleInspector
	Transforms appliance.Transformer
	Models     appliance.ModelRegistry
	Predictor  *appliance.Predictor
	Uploader   *upload.Uploader
	// Stats holds feature statistics; nil on a node without them.
	Stats appliance.FeatureStatsStore
	// Offline reads the offline log for historical retrieval and export.
	Offline appliance.OfflineStore
	// Experiments runs the experiment lifecycle; nil: no such endpoints.
	Experiments *appliance.Experiments
	// Flags stores and evaluates feature flags; nil: no such endpoints.
	Flags *routing.Flags
	// Telemetry reads back prediction, exposure and shadow logs.
	Telemetry appliance.TelemetryReader
	// ExperimentData records outcome events and keeps experiment aggregates.
	ExperimentData appliance.ExperimentData
	// Drift keeps drift windows and alerts; nil: no such endpoints.
	Drift appliance.DriftStore
	// Schedules runs jobs on cron schedules; Jobs starts and reports on
	// jobs. Nil: no such endpoints.
	Schedules appliance.ScheduleService
	Jobs      appliance.JobRunner
	// Webhooks manages webhook subscriptions; nil: those endpoints answer 503.
	Webhooks appliance.WebhookService
	// Metrics receives the HTTP metrics; /metrics writes it and the process
	// metrics. Nil: a private set.
	Metrics *metrics.Set
	// Ready reports whether the node can serve; nil means always.
	Ready func() error
}

// Server is the HTTP interface of one node.
type Server struct {
	app  *fiber.App
	cfg  Config
	svc  Services
	log  *slog.Logger
	now  func() time.Time
	set  *metrics.Set
	reqM sync.Map // routeKey → *routeMetrics

	// Request ids are a random per-server prefix and a counter: unique,
	// and far cheaper than reading crypto/rand on every request.
	idPrefix string
	idSeq    atomic.Uint64

	tokenCache sync.Map // secret → *cachedToken
	tokenCount atomic.Int64
	tokenGen   atomic.Uint64 // bumped by forgetTokens

	plans, plansFull planCache // by feature list, without and with full_feature_names
	predM            sync.Map  // predictionKey → *predictionMetrics

	// requests is every request's base context (fiber's default is
	// Background): a shutdown that runs out of time cancels it, so that
	// handlers still running stop at their next check.
	requests       context.Context
	cancelRequests context.CancelFunc
}

// New builds the fiber app with every route.
func New(cfg Config, svc Services) *Server {
	if cfg.IngestBodyLimit <= 0 {
		cfg.IngestBodyLimit = 256 << 20
	}
	if cfg.EntityUploadLimit <= 0 {
		cfg.EntityUploadLimit = 1 << 30
	}
	if cfg.HistoricalMemoryBudget <= 0 {
		cfg.HistoricalMemoryBudget = 256 << 20
	}
	if cfg.JSONBodyLimit <= 0 {
		cfg.JSONBodyLimit = 16 << 20
	}
	if cfg.ModuleBodyLimit <= 0 {
		cfg.ModuleBodyLimit = 64 << 20
	}
	if cfg.BundleBodyLimit <= 0 {
		cfg.BundleBodyLimit = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if svc.Metrics == nil {
		svc.Metrics = metrics.NewSet()
	}
	s := &Server{cfg: cfg, svc: svc, log: cfg.Logger, now: cfg.Now, set: svc.Metrics, idPrefix: newRequestIDPrefix()}
	s.requests, s.cancelRequests = context.WithCancel(context.Background())
	s.app = fiber.New(fiber.Config{
		AppName:               "mlnode",
		DisableStartupMessage: true,
		ErrorHandler:          s.handleError,
		// Bodies stream; this is only how much fasthttp reads ahead into
		// memory. Limits are enforced by readBody and bodyReader.
		StreamRequestBody: true,
		BodyLimit:         1 << 20,
		ReadTimeout:       5 * time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		JSONEncoder:       jsonMarshal,
	})
	s.app.Use(s.observe)
	s.routes()
	return s
}

// App returns the fiber app, to serve or to test with app.Test.
func (s *Server) App() *fiber.App { return s.app }

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends; then it cancels the contexts of those still running.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.app.ShutdownWithContext(ctx)
	s.cancelRequests()
	return err
}

func (s *Server) routes() {
	a := s.app
	a.Get("/healthz", s.healthz)
	a.Get("/readyz", s.readyz)
	if s.cfg.MetricsPublic {
		a.Get("/metrics", s.metrics)
	} else {
		a.Get("/metrics", s.auth(appliance.RoleReader), s.metrics)
	}
	a.Post("/get-online-features", s.auth(appliance.RoleReader), s.getOnlineFeatures)

	v1 := a.Group("/api/v1")
	reader, writer, admin := s.auth(appliance.RoleReader), s.auth(appliance.RoleWriter), s.auth(appliance.RoleAdmin)

	v1.Post("/tokens", admin, s.createToken)
	v1.Get("/tokens", admin, s.listTokens)
	v1.Delete("/tokens/:name", admin, s.revokeToken)

	v1.Get("/audit", admin, s.listAudit)
	v1.Get("/audit/verify", admin, s.verifyAudit)

	v1.Post("/entities", writer, s.createEntity)
	v1.Get("/entities", reader, s.listEntities)
	v1.Get("/entities/:name", reader, s.getEntity)
	v1.Delete("/entities/:name/keys/:key", admin, s.eraseEntityKey)

	v1.Post("/feature-views", writer, s.applyFeatureView)
	v1.Get("/feature-views", reader, s.listFeatureViews)
	v1.Get("/feature-views/:name", reader, s.getFeatureView)
	v1.Patch("/feature-views/:name", writer, s.patchFeatureView)
	v1.Delete("/feature-views/:name", admin, s.deleteFeatureView)
	v1.Get("/feature-views/:name/versions", reader, s.listFeatureViewVersions)
	v1.Get("/feature-views/:name/versions/:version", reader, s.getFeatureViewVersion)
	v1.Post("/feature-views/:name/rows", writer, s.ingestRows)
	v1.Get("/feature-views/:name/online", reader, s.getOnlineRow)
	v1.Get("/feature-views/:name/stats", reader, s.getFeatureStats)

	v1.Post("/modules", writer, s.uploadModule)
	v1.Get("/modules", reader, s.listModules)
	v1.Get("/modules/:sha256", reader, s.getModule)
	v1.Get("/modules/:sha256/wasm", reader, s.downloadModule)

	v1.Post("/models", writer, s.uploadModel)
	v1.Post("/models/:name/versions/:version/signatures", writer, s.addSignature)
	v1.Get("/models", reader, s.listModels)
	v1.Get("/models/:name", reader, s.getModel)
	v1.Patch("/models/:name", writer, s.patchModel)
	v1.Get("/models/:name/versions", reader, s.listModelVersions)
	v1.Get("/models/:name/versions/:version", reader, s.getModelVersion)
	v1.Patch("/models/:name/versions/:version", writer, s.patchModelVersion)
	v1.Get("/models/:name/versions/:version/bundle", reader, s.downloadBundle)
	v1.Post("/models/:name/versions/:version/evaluate", reader, s.evaluateVersion)
	v1.Put("/models/:name/aliases/:alias", admin, s.setAlias)
	v1.Delete("/models/:name/aliases/:alias", admin, s.deleteAlias)
	v1.Get("/models/:name/aliases/:alias/history", reader, s.aliasHistory)
	v1.Post("/models/:name/aliases/:alias/rollback", admin, s.rollbackAlias)
	v1.Post("/predict/:name", reader, s.predict)
	v1.Post("/predict/:name/batch", reader, s.predictBatch)

	v1.Post("/feature-services", writer, s.applyFeatureService)
	v1.Get("/feature-services", reader, s.listFeatureServices)
	v1.Get("/feature-services/:name", reader, s.getFeatureService)
	v1.Delete("/feature-services/:name", admin, s.deleteFeatureService)

	s.scheduleRoutes(v1, reader, admin)
	s.jobRoutes(v1, reader, writer, admin)
	s.experimentRoutes(v1, reader, writer, admin)
	s.flagRoutes(v1, reader, writer)
	s.eventRoutes(v1, reader, writer)
	s.driftRoutes(v1, reader)
	s.webhookRoutes(v1, admin)
	v1.Post("/historical-features", reader, s.historicalFeatures)
	v1.Get("/feature-views/:name/export", reader, s.exportView)
}

// auth checks the bearer token and the role a route needs, and puts the
// caller in the request's user context for the services and the audit log.
func (s *Server) auth(need appliance.Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		h := c.Get(fiber.HeaderAuthorization)
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || secret == "" {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="mlnode"`)
			return &appliance.Error{Code: appliance.EUNAUTHORIZED, Field: "Authorization", Message: "a bearer token is required: Authorization: Bearer <token>"}
		}
		tok, err := s.authenticate(c, secret)
		if err != nil {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="mlnode", error="invalid_token"`)
			return err
		}
		if !tok.Role.Allows(need) {
			return appliance.Errorf(appliance.EFORBIDDEN, "token %q has role %s; this needs %s", tok.Name, tok.Role, need)
		}
		ctx := appliance.NewContextWithCaller(c.UserContext(), appliance.Caller{Name: tok.Name, Role: tok.Role, RequestID: requestID(c)})
		c.SetUserContext(ctx)
		return c.Next()
	}
}

// authenticate asks the token service, remembering answers for a second:
// hashing the secret on every request is the middleware's largest cost.
// Revoking through this server empties the cache at once; the second bounds
// anything else.
func (s *Server) authenticate(c *fiber.Ctx, secret string) (*appliance.Token, error) {
	now := time.Now().UnixNano()
	if v, ok := s.tokenCache.Load(secret); ok {
		if e := v.(*cachedToken); now-e.at < int64(time.Second) {
			return e.tok, nil
		}
	}
	gen := s.tokenGen.Load()
	tok, err := s.svc.Tokens.Authenticate(c.UserContext(), secret)
	if err != nil {
		return nil, err
	}
	// Not cached if a revocation emptied the cache since the lookup began:
	// the token may be the one revoked. Checked again after the insert, for
	// a revocation that ran in between.
	if s.tokenCount.Load() < 1024 && s.tokenGen.Load() == gen {
		key := copyString(secret)
		if _, loaded := s.tokenCache.Swap(key, &cachedToken{tok: tok, at: now}); !loaded {
			s.tokenCount.Add(1)
		}
		if s.tokenGen.Load() != gen {
			s.tokenCache.Delete(key)
		}
	}
	return tok, nil
}

// forgetTokens empties the cache: a revoked token fails on the next request.
func (s *Server) forgetTokens() {
	s.tokenGen.Add(1)
	s.tokenCache.Range(func(k, _ any) bool {
		s.tokenCache.Delete(k)
		return true
	})
	s.tokenCount.Store(0)
}

type cachedToken struct {
	tok *appliance.Token
	at  int64
}

type routeKey struct {
	route  *fiber.Route // stable per route: its pattern and method
	status int
}

type routeMetrics struct {
	requests *metrics.Counter
	latency  *metrics.PrometheusHistogram
}

// observe assigns the request id, bounds the handler's context, and counts
// the request with its latency under its route pattern (not its path, which
// would make one series per entity).
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	id := c.Get("X-Request-ID")
	if id == "" || len(id) > 128 {
		id = s.idPrefix + strconv.FormatUint(s.idSeq.Add(1), 36)
	} else {
		id = copyString(id)
	}
	c.Locals(localRequestID, id)
	c.Set("X-Request-ID", id)
	c.SetUserContext(s.requests)
	err := c.Next()
	if err != nil {
		if herr := s.app.ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	m := s.routeMetrics(routeKey{c.Route(), c.Response().StatusCode()})
	m.requests.Inc()
	m.latency.UpdateDuration(start)
	return nil
}

func (s *Server) routeMetrics(k routeKey) *routeMetrics {
	if m, ok := s.reqM.Load(k); ok {
		return m.(*routeMetrics)
	}
	route := k.route.Path
	if k.status == fiber.StatusNotFound && route == "/" {
		route = "unmatched"
	}
	labels := fmt.Sprintf(`{route=%q,method=%q,status="%d"}`, route, k.route.Method, k.status)
	m := &routeMetrics{
		requests: s.set.GetOrCreateCounter("mlnode_http_requests_total" + labels),
		latency:  s.set.GetOrCreatePrometheusHistogram("mlnode_http_request_duration_seconds" + labels),
	}
	actual, _ := s.reqM.LoadOrStore(k, m)
	return actual.(*routeMetrics)
}

const localRequestID = "request_id"

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

func newRequestIDPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-"
}

// copyString detaches a string from fiber's reused buffers.
func copyString(s string) string { return strings.Clone(s) }

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) readyz(c *fiber.Ctx) error {
	if s.svc.Ready != nil {
		if err := s.svc.Ready(); err != nil {
			return appliance.Errorf(appliance.EUNAVAILABLE, "not ready: %v", err)
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

func (s *Server) metrics(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/plain; version=0.0.4; charset=utf-8")
	w := c.Response().BodyWriter()
	s.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
	return nil
}

// pathInt parses a positive integer path or query parameter.
func pathInt(field, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, appliance.Invalid(field, "%q is not a positive integer", s)
	}
	return n, nil
}
