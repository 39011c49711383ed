package appliance

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status in appliance/httpapi.
const (
	EINVALID       = "invalid"                // bad input: 400
	EUNAUTHORIZED  = "unauthorized"           // missing or unknown token: 401
	EFORBIDDEN     = "forbidden"              // token lacks the role: 403
	ENOTFOUND      = "not_found"              // 404
	ECONFLICT      = "conflict"               // state forbids the change: 409
	ETOOLARGE      = "too_large"              // body over the limit: 413
	EMEDIATYPE     = "unsupported_media_type" // 415
	EUNPROCESSABLE = "unprocessable"          // well-formed but unusable: 422
	EUNAVAILABLE   = "unavailable"            // shutting down, or not ready: 503
	EINTERNAL      = "internal"               // a bug or an I/O fault: 500
)

// Error is a failure a user can act on. Message is safe to show; Field names
// the input at fault when there is one; Details carries structured extras
// such as per-row ingest errors.
type Error struct {
	Code    string
	Message string
	Field   string
	Details any
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error naming the field at fault.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound returns an ENOTFOUND error for a kind of object and its name.
func NotFound(kind, name string) *Error {
	return &Error{Code: ENOTFOUND, Message: fmt.Sprintf("%s %q not found", kind, name)}
}

// ErrorCode returns the code of an *Error in err's chain, or EINTERNAL for
// any other error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of an *Error in err's chain; any other
// error reads "internal error" so that internals never leak to a client.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
