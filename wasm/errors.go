package wasm

import (
	"fmt"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// Errors of calls. All are *appliance.Error so that the HTTP layer can map
// them; those caused by the caller's context also wrap its error, for
// errors.Is(err, context.Canceled).

var (
	errClosed   = appliance.Errorf(appliance.EUNAVAILABLE, "WebAssembly runtime is closed")
	errUnloaded = appliance.Errorf(appliance.EUNAVAILABLE, "module was unloaded")
)

func unprocessable(format string, args ...any) error {
	return appliance.Errorf(appliance.EUNPROCESSABLE, format, args...)
}

func timedOut(timeout time.Duration) error {
	return appliance.Errorf(appliance.EUNPROCESSABLE, "call exceeded its %s deadline", timeout)
}

func canceled(err error) error {
	return fmt.Errorf("%w: %w", appliance.Errorf(appliance.EUNAVAILABLE, "call canceled: %v", err), err)
}

func errorCode(code int32) error {
	return appliance.Errorf(appliance.EUNPROCESSABLE, "module returned error code %d", code)
}
