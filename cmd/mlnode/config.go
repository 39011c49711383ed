package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mlnode/mlnode/appliance"
)

// Config is the node's configuration: defaults, then the YAML file named by
// --config, then MLNODE_* environment variables, then flags. It is fixed
// once the node starts.
type Config struct {
	DataDir         string        `yaml:"data_dir"`
	Addr            string        `yaml:"addr"`
	MetricsPublic   bool          `yaml:"metrics_public"`
	IngestBodyLimit ByteSize      `yaml:"ingest_body_limit"`
	JSONBodyLimit   ByteSize      `yaml:"json_body_limit"`
	LogLevel        string        `yaml:"log_level"`
	LogFormat       string        `yaml:"log_format"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	LockTimeout     time.Duration `yaml:"lock_timeout"`
	PprofAddr       string        `yaml:"pprof_addr"`
	// TelemetryRetention is how long prediction logs are kept.
	TelemetryRetention time.Duration `yaml:"telemetry_retention"`

	ModuleBodyLimit ByteSize `yaml:"module_body_limit"`
	BundleBodyLimit ByteSize `yaml:"bundle_body_limit"`
	// TrustedKeys are ed25519 public key files (mlnode keygen's .pub) whose
	// signatures count as trusted.
	TrustedKeys []string `yaml:"trusted_keys"`
	// AliasPolicies say what each alias requires, e.g.
	// production: {require_signature: true}.
	AliasPolicies      map[string]appliance.AliasPolicy `yaml:"alias_policies"`
	WasmPoolSize       int                              `yaml:"wasm_pool_size"`
	WasmMaxMemoryPages uint32                           `yaml:"wasm_max_memory_pages"`
	WasmTimeout        time.Duration                    `yaml:"wasm_timeout"`
	// BackupDir is where backup jobs write; empty means <data_dir>/backups.
	BackupDir  string `yaml:"backup_dir"`
	BackupKeep int    `yaml:"backup_keep"` // automatic backups kept
	// EntityUploadLimit bounds the entity rows of one historical request;
	// HistoricalMemoryBudget the sort buffers of one join (beyond it sorts
	// spill to SpoolDir, default <data_dir>/tmp: on disk, not in a tmpfs).
	EntityUploadLimit      ByteSize `yaml:"entity_upload_limit"`
	HistoricalMemoryBudget ByteSize `yaml:"historical_memory_budget"`
	SpoolDir               string   `yaml:"spool_dir"`
	// OnlineCache bounds the memory of recently read online rows; 0 turns
	// the cache off.
	OnlineCache CacheSize `yaml:"online_cache"`
	// GuardrailInterval is how often running experiments' guardrails are
	// checked (with the sequential test, so often is safe).
	GuardrailInterval time.Duration `yaml:"guardrail_interval"`
}

// DefaultConfig is what a node runs with when nothing is set.
func DefaultConfig() Config {
	return Config{
		DataDir:            "./data",
		Addr:               "127.0.0.1:8080",
		IngestBodyLimit:    256 << 20,
		JSONBodyLimit:      16 << 20,
		LogLevel:           "info",
		LogFormat:          "text",
		ShutdownTimeout:    30 * time.Second,
		LockTimeout:        3 * time.Second,
		TelemetryRetention: 30 * 24 * time.Hour,

		ModuleBodyLimit:    64 << 20,
		BundleBodyLimit:    64 << 20,
		WasmPoolSize:       runtime.GOMAXPROCS(0),
		WasmMaxMemoryPages: 512,
		WasmTimeout:        100 * time.Millisecond,
		BackupKeep:         appliance.DefaultBackupKeep,

		EntityUploadLimit:      1 << 30,
		HistoricalMemoryBudget: 256 << 20,
		OnlineCache:            64 << 20,
		GuardrailInterval:      10 * time.Second,
	}
}

// SpoolDirectory is spool_dir, or <data_dir>/tmp when it is not set.
func (c *Config) SpoolDirectory() string {
	if c.SpoolDir != "" {
		return c.SpoolDir
	}
	return filepath.Join(c.DataDir, "tmp")
}

// BackupDirectory is backup_dir, or <data_dir>/backups when it is not set.
func (c *Config) BackupDirectory() string {
	if c.BackupDir != "" {
		return c.BackupDir
	}
	return filepath.Join(c.DataDir, "backups")
}

// ConfigError names the setting at fault.
type ConfigError struct {
	Field string
	Value string
	Err   error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config %s=%q: %v", e.Field, e.Value, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// ByteSize is a size in bytes, written as a number or with a unit: 64MiB, 1GiB, 512KiB.
type ByteSize int64

func parseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive size such as 268435456, 256MiB or 1GiB")
	}
	return ByteSize(n * mult), nil
}

func (b *ByteSize) UnmarshalYAML(node *yaml.Node) error {
	v, err := parseByteSize(node.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func (b ByteSize) String() string { return strconv.FormatInt(int64(b), 10) }

func (b *ByteSize) Set(s string) error {
	v, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// CacheSize is a ByteSize where 0 (or "off") turns the cache off.
type CacheSize int64

func parseCacheSize(s string) (CacheSize, error) {
	if t := strings.TrimSpace(s); t == "0" || t == "off" {
		return 0, nil
	}
	v, err := parseByteSize(s)
	if err != nil {
		return 0, errors.New("want a size such as 64MiB, or 0 (off)")
	}
	return CacheSize(v), nil
}

func (c *CacheSize) UnmarshalYAML(node *yaml.Node) error {
	v, err := parseCacheSize(node.Value)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

func (c CacheSize) String() string { return strconv.FormatInt(int64(c), 10) }

func (c *CacheSize) Set(s string) error {
	v, err := parseCacheSize(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// loadConfigFile reads a YAML file over cfg; unknown keys are errors.
func loadConfigFile(path string, cfg *Config) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return &ConfigError{Field: "config", Value: path, Err: err}
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return &ConfigError{Field: "config", Value: path, Err: err}
	}
	return nil
}

// envVars maps environment variables to flags; flags win over them. Each
// flag's help names its variable; TestConfig_EveryEnvVarNamedInHelpIsRead
// keeps the two in step.
var envVars = map[string]string{
	"MLNODE_DATA_DIR":                 "data-dir",
	"MLNODE_ADDR":                     "addr",
	"MLNODE_METRICS_PUBLIC":           "metrics-public",
	"MLNODE_INGEST_BODY_LIMIT":        "ingest-body-limit",
	"MLNODE_JSON_BODY_LIMIT":          "json-body-limit",
	"MLNODE_LOG_LEVEL":                "log-level",
	"MLNODE_LOG_FORMAT":               "log-format",
	"MLNODE_SHUTDOWN_TIMEOUT":         "shutdown-timeout",
	"MLNODE_PPROF_ADDR":               "pprof-addr",
	"MLNODE_MODULE_BODY_LIMIT":        "module-body-limit",
	"MLNODE_BUNDLE_BODY_LIMIT":        "bundle-body-limit",
	"MLNODE_TRUSTED_KEYS":             "trusted-keys",
	"MLNODE_TELEMETRY_RETENTION":      "telemetry-retention",
	"MLNODE_WASM_POOL_SIZE":           "wasm-pool-size",
	"MLNODE_WASM_MAX_MEMORY_PAGES":    "wasm-max-memory-pages",
	"MLNODE_WASM_TIMEOUT":             "wasm-timeout",
	"MLNODE_BACKUP_DIR":               "backup-dir",
	"MLNODE_BACKUP_KEEP":              "backup-keep",
	"MLNODE_ENTITY_UPLOAD_LIMIT":      "entity-upload-limit",
	"MLNODE_HISTORICAL_MEMORY_BUDGET": "historical-memory-budget",
	"MLNODE_ONLINE_CACHE":             "online-cache",
	"MLNODE_SPOOL_DIR":                "spool-dir",
	"MLNODE_GUARDRAIL_INTERVAL":       "guardrail-interval",
}

// bindFlags declares the serve flags over cfg.
func bindFlags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "`directory` of the store file mlnode.db and admin.token (env MLNODE_DATA_DIR)")
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "address to listen on, host:port (env MLNODE_ADDR)")
	fs.BoolVar(&cfg.MetricsPublic, "metrics-public", cfg.MetricsPublic, "serve /metrics without a token (env MLNODE_METRICS_PUBLIC)")
	fs.Var(&cfg.IngestBodyLimit, "ingest-body-limit", "largest ingest body, e.g. 256MiB (env MLNODE_INGEST_BODY_LIMIT)")
	fs.Var(&cfg.JSONBodyLimit, "json-body-limit", "largest body of other requests, e.g. 16MiB (env MLNODE_JSON_BODY_LIMIT)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error (env MLNODE_LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json (env MLNODE_LOG_FORMAT)")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", cfg.PprofAddr, "serve Go's net/http/pprof on this loopback host:port for profiling; off when empty (env MLNODE_PPROF_ADDR)")
	fs.Var(&cfg.ModuleBodyLimit, "module-body-limit", "largest uploaded WebAssembly module, e.g. 64MiB (env MLNODE_MODULE_BODY_LIMIT)")
	fs.Var(&cfg.BundleBodyLimit, "bundle-body-limit", "largest uploaded model bundle, e.g. 64MiB (env MLNODE_BUNDLE_BODY_LIMIT)")
	fs.Func("trusted-keys", "comma-separated ed25519 public key files whose bundle signatures are trusted (env MLNODE_TRUSTED_KEYS)", func(v string) error {
		cfg.TrustedKeys = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				cfg.TrustedKeys = append(cfg.TrustedKeys, p)
			}
		}
		return nil
	})
	fs.IntVar(&cfg.WasmPoolSize, "wasm-pool-size", cfg.WasmPoolSize, "instances per loaded module: concurrent calls into it (env MLNODE_WASM_POOL_SIZE)")
	fs.Func("wasm-max-memory-pages", "most memory of any module, in 64 KiB pages (env MLNODE_WASM_MAX_MEMORY_PAGES; default 512 = 32 MiB)", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || n > 65536 {
			return errors.New("want 1 to 65536 pages")
		}
		cfg.WasmMaxMemoryPages = uint32(n)
		return nil
	})
	fs.DurationVar(&cfg.TelemetryRetention, "telemetry-retention", cfg.TelemetryRetention, "how long prediction logs are kept (env MLNODE_TELEMETRY_RETENTION)")
	fs.DurationVar(&cfg.WasmTimeout, "wasm-timeout", cfg.WasmTimeout, "deadline of one call into a module (env MLNODE_WASM_TIMEOUT)")
	fs.StringVar(&cfg.BackupDir, "backup-dir", cfg.BackupDir, "`directory` backup jobs write to (env MLNODE_BACKUP_DIR; default <data-dir>/backups)")
	fs.IntVar(&cfg.BackupKeep, "backup-keep", cfg.BackupKeep, "automatic backups kept; older ones are deleted (env MLNODE_BACKUP_KEEP)")
	fs.Var(&cfg.EntityUploadLimit, "entity-upload-limit", "largest set of entity rows of one historical request, e.g. 1GiB (env MLNODE_ENTITY_UPLOAD_LIMIT)")
	fs.Var(&cfg.OnlineCache, "online-cache", "memory for recently read online rows, served without a store read until a write to their view, e.g. 64MiB; 0 turns it off (env MLNODE_ONLINE_CACHE)")
	fs.Var(&cfg.HistoricalMemoryBudget, "historical-memory-budget", "sort memory of one historical join before it spills to disk, e.g. 256MiB (env MLNODE_HISTORICAL_MEMORY_BUDGET)")
	fs.StringVar(&cfg.SpoolDir, "spool-dir", cfg.SpoolDir, "`directory` of the temporary files of historical retrieval (env MLNODE_SPOOL_DIR; default <data-dir>/tmp)")
	fs.DurationVar(&cfg.GuardrailInterval, "guardrail-interval", cfg.GuardrailInterval, "how often running experiments' guardrails are checked (env MLNODE_GUARDRAIL_INTERVAL)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight requests may take to finish on SIGTERM (env MLNODE_SHUTDOWN_TIMEOUT)")
}

// Validate checks the configuration once, naming what is wrong.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return &ConfigError{Field: "data_dir", Value: c.DataDir, Err: errors.New("is required")}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return &ConfigError{Field: "addr", Value: c.Addr, Err: errors.New("want host:port, e.g. 127.0.0.1:8080")}
	}
	if c.IngestBodyLimit <= 0 {
		return &ConfigError{Field: "ingest_body_limit", Value: c.IngestBodyLimit.String(), Err: errors.New("must be positive")}
	}
	if c.JSONBodyLimit <= 0 {
		return &ConfigError{Field: "json_body_limit", Value: c.JSONBodyLimit.String(), Err: errors.New("must be positive")}
	}
	if _, err := c.slogLevel(); err != nil {
		return &ConfigError{Field: "log_level", Value: c.LogLevel, Err: err}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return &ConfigError{Field: "log_format", Value: c.LogFormat, Err: errors.New("want text or json")}
	}
	if c.PprofAddr != "" {
		host, _, err := net.SplitHostPort(c.PprofAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return &ConfigError{Field: "pprof_addr", Value: c.PprofAddr, Err: errors.New("want a loopback host:port, e.g. 127.0.0.1:6060: profiles expose internals")}
		}
	}
	if c.ModuleBodyLimit <= 0 {
		return &ConfigError{Field: "module_body_limit", Value: c.ModuleBodyLimit.String(), Err: errors.New("must be positive")}
	}
	if c.BundleBodyLimit <= 0 {
		return &ConfigError{Field: "bundle_body_limit", Value: c.BundleBodyLimit.String(), Err: errors.New("must be positive")}
	}
	for alias := range c.AliasPolicies {
		if err := appliance.ValidateAliasName(alias); err != nil {
			return &ConfigError{Field: "alias_policies", Value: alias, Err: errors.New(appliance.ErrorMessage(err))}
		}
	}
	if c.WasmPoolSize < 1 {
		return &ConfigError{Field: "wasm_pool_size", Value: strconv.Itoa(c.WasmPoolSize), Err: errors.New("must be at least 1")}
	}
	if c.WasmMaxMemoryPages < 1 || c.WasmMaxMemoryPages > 65536 {
		return &ConfigError{Field: "wasm_max_memory_pages", Value: strconv.Itoa(int(c.WasmMaxMemoryPages)), Err: errors.New("want 1 to 65536 pages")}
	}
	if c.WasmTimeout <= 0 {
		return &ConfigError{Field: "wasm_timeout", Value: c.WasmTimeout.String(), Err: errors.New("must be positive")}
	}
	if c.TelemetryRetention <= 0 {
		return &ConfigError{Field: "telemetry_retention", Value: c.TelemetryRetention.String(), Err: errors.New("must be positive")}
	}
	if c.EntityUploadLimit <= 0 {
		return &ConfigError{Field: "entity_upload_limit", Value: c.EntityUploadLimit.String(), Err: errors.New("must be positive")}
	}
	if c.HistoricalMemoryBudget < 1<<20 {
		return &ConfigError{Field: "historical_memory_budget", Value: c.HistoricalMemoryBudget.String(), Err: errors.New("must be at least 1MiB")}
	}
	if c.GuardrailInterval < time.Second {
		return &ConfigError{Field: "guardrail_interval", Value: c.GuardrailInterval.String(), Err: errors.New("must be at least 1s")}
	}
	if c.BackupKeep < 1 {
		return &ConfigError{Field: "backup_keep", Value: strconv.Itoa(c.BackupKeep), Err: errors.New("must be at least 1")}
	}
	if c.ShutdownTimeout <= 0 {
		return &ConfigError{Field: "shutdown_timeout", Value: c.ShutdownTimeout.String(), Err: errors.New("must be positive")}
	}
	return nil
}

func (c *Config) slogLevel() (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(c.LogLevel))
	return l, err
}
