package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/bundle"
	"github.com/mlnode/mlnode/appliance/featstats"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/appliance/jobs"
	"github.com/mlnode/mlnode/appliance/monitoring"
	"github.com/mlnode/mlnode/appliance/results"
	"github.com/mlnode/mlnode/appliance/routing"
	"github.com/mlnode/mlnode/appliance/upload"
	"github.com/mlnode/mlnode/appliance/webhooks"
	"github.com/mlnode/mlnode/scheduler"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/wasm"
)

// Main is one running node: configuration, then wiring, then serving.
type Main struct {
	Config Config
	Stdout io.Writer
	Stderr io.Writer
	// AdminToken, when not empty, is used at first start instead of
	// MLNODE_ADMIN_TOKEN or a random one (tests).
	AdminToken string

	Store     *store.Store
	Wasm      *wasm.Runtime
	modules   *wasm.Service
	Jobs      *jobs.Runner
	Webhooks  *webhooks.Sender
	shadows   *appliance.ShadowRunner
	monitor   *results.Monitor
	Scheduler *scheduler.Scheduler
	HTTP      *httpapi.Server
	listener  net.Listener
	served    chan struct{} // closed when the HTTP server stops serving
	serveErr  error         // why, once served is closed
	pprof     *http.Server
	log       *slog.Logger
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{Config: DefaultConfig(), Stdout: os.Stdout, Stderr: os.Stderr}
}

// Addr returns the address the node listens on, once Run has returned.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Run opens the store, makes sure an admin token exists, and starts serving
// in the background. It returns once the node accepts connections.
func (m *Main) Run(ctx context.Context) error {
	level, _ := m.Config.slogLevel()
	opts := &slog.HandlerOptions{Level: level}
	if m.Config.LogFormat == "json" {
		m.log = slog.New(slog.NewJSONHandler(m.Stderr, opts))
	} else {
		m.log = slog.New(slog.NewTextHandler(m.Stderr, opts))
	}
	set := metrics.NewSet()
	var err error
	m.Store, err = store.Open(ctx, m.Config.DataDir, store.Options{
		LockTimeout: m.Config.LockTimeout, Metrics: set, Logger: m.log.With("component", "store"),
		TelemetryRetention: m.Config.TelemetryRetention, OnlineCacheBytes: onlineCacheBytes(m.Config.OnlineCache),
	})
	if err != nil {
		return err
	}
	if err := m.bootstrapAdmin(ctx); err != nil {
		return err
	}
	m.Wasm, err = wasm.Open(ctx, wasm.Options{
		CacheDir: filepath.Join(m.Config.DataDir, "wasm-cache"), MaxMemoryPages: m.Config.WasmMaxMemoryPages,
		PoolSize: m.Config.WasmPoolSize, DefaultTimeout: m.Config.WasmTimeout,
		Metrics: set, Logger: m.log.With("component", "wasm"),
	})
	if err != nil {
		return fmt.Errorf("open wasm runtime: %w", err)
	}
	m.modules = wasm.NewService(m.Wasm, m.Store, 0)
	modules := m.modules
	trusted, err := loadTrustedKeys(m.Config.TrustedKeys)
	if err != nil {
		return err
	}
	spoolDir := m.Config.SpoolDirectory()
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		return fmt.Errorf("create spool directory: %w", err)
	}
	m.Webhooks = webhooks.New(m.Store, webhooks.Options{Logger: m.log.With("component", "webhooks")})
	if err := m.Webhooks.Start(ctx); err != nil {
		return fmt.Errorf("start webhooks: %w", err)
	}
	// Jobs resume before the scheduler starts new ones, so that a resumed
	// job takes its locks first.
	materializer := &jobs.Materializer{Registry: m.Store, Features: m.Store, Offline: m.Store}
	maint := &appliance.Maintenance{Backups: m.Store, BackupDir: m.Config.BackupDirectory(), BackupKeep: m.Config.BackupKeep,
		Registry: m.Store, Offline: m.Store}
	specs := append(materializer.Specs(), maint.Specs()...)
	specs = append(specs, featstats.JobSpec(m.Store, m.Store, m.Store))
	drift := &monitoring.Drift{Models: m.Store, Views: m.Store, Stats: m.Store, Telemetry: m.Store.Telemetry(), Store: m.Store, Notifier: m.Webhooks}
	specs = append(specs, drift.Spec())
	m.Jobs = jobs.New(m.Store, specs, jobs.Options{Logger: m.log.With("component", "jobs"), Notifier: m.Webhooks})
	if err := m.Jobs.Start(ctx); err != nil {
		return err
	}
	m.Scheduler = scheduler.New(m.Store, m.Jobs, scheduler.Options{Logger: m.log.With("component", "scheduler")})
	if err := m.Scheduler.Start(ctx); err != nil {
		return fmt.Errorf("start scheduler: %w", err)
	}

	router := &routing.Router{Store: m.Store}
	experiments := &appliance.Experiments{Store: m.Store, Models: m.Store, Policies: m.Config.AliasPolicies, Router: router,
		Notifier: m.Webhooks, Logger: m.log.With("component", "experiments")}
	m.monitor = &results.Monitor{Telemetry: m.Store.Telemetry(), Data: m.Store, Experiments: experiments, Notifier: m.Webhooks,
		Logger: m.log.With("component", "experiments"), GuardrailEvery: m.Config.GuardrailInterval}
	predictor := &appliance.Predictor{Models: m.Store, Views: m.Store, Features: m.Store, Runner: modules,
		Transforms: modules, Telemetry: m.Store.Telemetry(), Router: router}
	m.shadows = &appliance.ShadowRunner{Predictor: predictor, Logger: m.log.With("component", "shadow")}
	m.shadows.Start()
	predictor.Shadows = m.shadows
	m.monitor.Arms = predictor.ArmStats
	m.monitor.Start(ctx)
	m.HTTP = httpapi.New(httpapi.Config{
		EntityUploadLimit: int64(m.Config.EntityUploadLimit), HistoricalMemoryBudget: int(m.Config.HistoricalMemoryBudget), SpoolDir: spoolDir,
		IngestBodyLimit: int64(m.Config.IngestBodyLimit), JSONBodyLimit: int64(m.Config.JSONBodyLimit),
		ModuleBodyLimit: int64(m.Config.ModuleBodyLimit), BundleBodyLimit: int64(m.Config.BundleBodyLimit),
		AliasPolicies: m.Config.AliasPolicies,
		MetricsPublic: m.Config.MetricsPublic, Version: version, Logger: m.log.With("component", "http"),
	}, httpapi.Services{Registry: m.Store, Features: m.Store, Tokens: m.Store, Audit: m.Store, Metrics: set,
		Offline: m.Store, Jobs: m.Jobs, Schedules: m.Scheduler, Stats: m.Store,
		Experiments: experiments, ExperimentData: m.Store, Webhooks: m.Webhooks, Drift: m.Store,
		Flags:   &routing.Flags{Store: m.Store},
		Modules: m.Store, Inspector: modules, Transforms: modules, Models: m.Store,
		Predictor: predictor, Telemetry: m.Store.Telemetry(),
		Uploader: &upload.Uploader{Models: m.Store, Views: m.Store, Inspector: modules, Runner: modules, TrustedKeys: trusted,
			Limits: bundle.Limits{MaxCompressed: int64(m.Config.BundleBodyLimit)}}})

	m.listener, err = net.Listen("tcp", m.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.Config.Addr, err)
	}
	m.served = make(chan struct{})
	go func() {
		defer close(m.served)
		m.serveErr = m.HTTP.App().Listener(m.listener)
	}()
	if m.Config.PprofAddr != "" {
		if err := m.servePprof(); err != nil {
			return err
		}
	}

	url := "http://" + m.Addr()
	m.log.Info("mlnode serving", "addr", m.Addr(), "data_dir", m.Config.DataDir, "version", version)
	fmt.Fprintf(m.Stdout, "mlnode %s listening on %s\n  API:         %s/api/v1\n  health:      %s/healthz\n  admin token: %s\n",
		version, url, url, url, m.adminTokenHint())
	return nil
}

// loadTrustedKeys reads ed25519 public key files into a map by key id.
func loadTrustedKeys(paths []string) (map[string]ed25519.PublicKey, error) {
	keys := map[string]ed25519.PublicKey{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, &ConfigError{Field: "trusted_keys", Value: p, Err: err}
		}
		pub, err := bundle.ParsePublicKey(raw)
		if err != nil {
			return nil, &ConfigError{Field: "trusted_keys", Value: p, Err: errors.New(appliance.ErrorMessage(err))}
		}
		keys[bundle.KeyID(pub)] = pub
	}
	return keys, nil
}

// onlineCacheBytes maps the setting (0: off) to the store's option
// (negative: off).
func onlineCacheBytes(n CacheSize) int64 {
	if n == 0 {
		return -1
	}
	return int64(n)
}

// servePprof serves Go's profiler on its own loopback listener, apart from
// the API and its tokens.
func (m *Main) servePprof() error {
	ln, err := net.Listen("tcp", m.Config.PprofAddr)
	if err != nil {
		return fmt.Errorf("listen for pprof on %s: %w", m.Config.PprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = m.pprof.Serve(ln) }()
	m.log.Info("pprof serving", "addr", ln.Addr().String())
	return nil
}

// bootstrapAdmin creates the admin token when the node has no token yet:
// MLNODE_ADMIN_TOKEN if set, else a random one written to
// <data-dir>/admin.token (0600). The token itself is never logged.
func (m *Main) bootstrapAdmin(ctx context.Context) error {
	tokens, err := m.Store.Tokens(ctx)
	if err != nil || len(tokens) > 0 {
		return err
	}
	secret := m.AdminToken
	if secret == "" {
		secret = os.Getenv("MLNODE_ADMIN_TOKEN")
	}
	if secret != "" {
		if _, err := m.Store.BootstrapAdmin(ctx, secret); err != nil {
			return fmt.Errorf("create admin token from MLNODE_ADMIN_TOKEN: %w", err)
		}
		m.log.Info("admin token created from MLNODE_ADMIN_TOKEN")
		return nil
	}
	secret = appliance.NewTokenSecret()
	path := m.adminTokenPath()
	// The file is written before the token exists so that a crash between
	// the two never leaves a token nobody can read.
	if err := writeFileAtomic(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	if _, err := m.Store.BootstrapAdmin(ctx, secret); err != nil {
		return fmt.Errorf("create admin token: %w", err)
	}
	m.log.Info("admin token created", "path", path)
	return nil
}

func (m *Main) adminTokenPath() string { return filepath.Join(m.Config.DataDir, "admin.token") }

func (m *Main) adminTokenHint() string {
	if _, err := os.Stat(m.adminTokenPath()); err == nil {
		return "cat " + m.adminTokenPath()
	}
	return "the MLNODE_ADMIN_TOKEN it was first started with"
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Served is closed when the HTTP server stops serving, on Close or because
// its listener failed; ServeErr then says why.
func (m *Main) Served() <-chan struct{} { return m.served }

// ServeErr is why the HTTP server stopped, once Served is closed.
func (m *Main) ServeErr() error { return m.serveErr }

// Close stops accepting connections, lets in-flight requests finish within
// the shutdown timeout, then closes the store. It is safe to call after a
// failed Run.
func (m *Main) Close() error {
	var firstErr error
	if m.HTTP != nil && m.listener != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		if err := m.HTTP.Shutdown(ctx); err != nil {
			firstErr = fmt.Errorf("stop http: %w", err)
		}
		cancel()
		// fasthttp's shutdown does nothing to a server that has not yet
		// started on its listener (a Close right after Run): closing the
		// listener makes that serve return at once instead of starting.
		_ = m.listener.Close()
		select {
		case <-m.served:
		case <-time.After(time.Second):
		}
	}
	if m.pprof != nil {
		_ = m.pprof.Close()
	}
	// No request is in flight any more: queued shadow predictions finish,
	// within the timeout.
	if m.shadows != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		m.shadows.Close(ctx)
		cancel()
		m.shadows = nil
	}
	if m.monitor != nil {
		m.monitor.Close()
		m.monitor = nil
	}
	// The scheduler stops first, so that no firing submits a job to a
	// runner that is closing; a run it has in flight is waited for within
	// the timeout, then cancelled (its job keeps its checkpoint).
	if m.Scheduler != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		if err := m.Scheduler.Close(ctx); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("stop scheduler: %w", err)
		}
		cancel()
		m.Scheduler = nil
	}
	// Jobs stop before the store: one interrupted here keeps its
	// checkpoint and resumes at the next start.
	if m.Jobs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		if err := m.Jobs.Close(ctx); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("stop jobs: %w", err)
		}
		cancel()
		m.Jobs = nil
	}
	// In-flight deliveries record their outcome in the store.
	if m.Webhooks != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		if err := m.Webhooks.Close(ctx); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("stop webhooks: %w", err)
		}
		cancel()
		m.Webhooks = nil
	}
	if m.modules != nil {
		m.modules.Close()
		m.modules = nil
	}
	if m.Wasm != nil {
		// Calls still running (a request that outlived the HTTP timeout,
		// a module allowed a long timeout) are stopped at the deadline.
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		if err := m.Wasm.Close(ctx); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("close wasm runtime: %w", err)
		}
		cancel()
		m.Wasm = nil
	}
	if m.Store != nil {
		if err := m.Store.Close(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("close store: %w", err)
		}
		m.Store = nil
	}
	if m.log != nil {
		m.log.Info("mlnode stopped")
	}
	return firstErr
}
