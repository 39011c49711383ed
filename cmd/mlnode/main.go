// Command mlnode is the mlnode appliance: a feature store, model registry,
// WebAssembly model server and experimentation platform in one process.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The node's live heap is small and its garbage per request high, so Go's
	// default (GOGC=100) collects very often under load and request latency
	// pays for the assists. Memory is plentiful on an appliance; a GOGC set
	// in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
