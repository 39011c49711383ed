package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `mlnode — feature store, model registry, model server and experiments in one process.

Usage:
  mlnode serve [flags]                       start the node (see 'mlnode serve --help')
  mlnode bundle build DIR [-o FILE]          build a model bundle from DIR/manifest.json and its modules
                                             (default FILE: NAME.tar.gz)
  mlnode bundle sign --key FILE [-o OUT] BUNDLE   sign a bundle with an ed25519 key (signature inside the archive)
  mlnode bundle verify --key PUB BUNDLE      check a bundle's signature
  mlnode bundle inspect [--json] BUNDLE      print a bundle's manifest summary, digest and signer
  mlnode bundle push BUNDLE --url URL --token TOKEN [--timeout D]
                                             upload a bundle to a node (or MLNODE_URL, MLNODE_TOKEN)
  mlnode keygen -o PREFIX [--force]          write an ed25519 key pair PREFIX.key (0600) and PREFIX.pub
  mlnode restore FILE --data-dir DIR [--force] [--dry-run]
                                             verify a backup and put it in place (node stopped)
  mlnode version                             print the version
  mlnode help                                print this help

Each command's own --help lists its flags.

Quick start:
  mlnode serve --data-dir ./data --addr 127.0.0.1:8080
  The admin token is written to <data-dir>/admin.token at first start
  (or taken from MLNODE_ADMIN_TOKEN).
`

// run dispatches a command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdout, "mlnode", version)
		return 0
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "bundle":
		return bundleCommand(ctx, args[1:], stdout, stderr)
	case "keygen":
		return keygenCommand(ctx, args[1:], stdout, stderr)
	case "restore":
		return restoreCommand(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "mlnode: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	m := NewMain()
	m.Stdout, m.Stderr = stdout, stderr
	if err := m.ParseFlags(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "mlnode serve: %v\n", err)
		return 2
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "mlnode serve: %v\n", err)
		m.Close()
		return 1
	}
	select {
	case <-ctx.Done():
	case <-m.Served():
		// The listener failed: a node that no longer serves stops, so
		// that its supervisor (systemd) restarts it.
		fmt.Fprintf(stderr, "mlnode serve: stopped serving: %v\n", m.ServeErr())
		m.Close()
		return 1
	}
	if err := m.Close(); err != nil {
		fmt.Fprintf(stderr, "mlnode serve: shutdown: %v\n", err)
		return 1
	}
	return 0
}

// ParseFlags builds the configuration from defaults, the --config file, the
// environment and the flags, in that order of precedence (last wins).
func (m *Main) ParseFlags(args []string) error {
	// First pass: only to find --config.
	probe := flag.NewFlagSet("serve", flag.ContinueOnError)
	probe.SetOutput(io.Discard)
	var configPath string
	probe.StringVar(&configPath, "config", "", "")
	scratch := DefaultConfig()
	bindFlags(probe, &scratch)
	if err := probe.Parse(args); err != nil && !errors.Is(err, flag.ErrHelp) {
		return err
	}

	cfg := DefaultConfig()
	if configPath != "" {
		if err := loadConfigFile(configPath, &cfg); err != nil {
			return err
		}
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.String("config", "", "YAML `file` of settings (keys as in docs/operations.md); flags and env win over it")
	bindFlags(fs, &cfg)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mlnode serve [flags]\n\nStarts the node. Precedence: flags > MLNODE_* env > --config file > defaults.\nMLNODE_ADMIN_TOKEN sets the admin token at first start.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	for env, name := range envVars {
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(name, v); err != nil {
				return &ConfigError{Field: env, Value: v, Err: err}
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.Config = cfg
	return nil
}
