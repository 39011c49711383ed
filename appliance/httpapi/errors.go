package httpapi

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

var statusOfCode = map[string]int{
	appliance.EINVALID:       fiber.StatusBadRequest,
	appliance.EUNAUTHORIZED:  fiber.StatusUnauthorized,
	appliance.EFORBIDDEN:     fiber.StatusForbidden,
	appliance.ENOTFOUND:      fiber.StatusNotFound,
	appliance.ECONFLICT:      fiber.StatusConflict,
	appliance.ETOOLARGE:      fiber.StatusRequestEntityTooLarge,
	appliance.EMEDIATYPE:     fiber.StatusUnsupportedMediaType,
	appliance.EUNPROCESSABLE: fiber.StatusUnprocessableEntity,
	appliance.EUNAVAILABLE:   fiber.StatusServiceUnavailable,
	appliance.EINTERNAL:      fiber.StatusInternalServerError,
}

var codeOfStatus = map[int]string{
	fiber.StatusBadRequest:            appliance.EINVALID,
	fiber.StatusUnauthorized:          appliance.EUNAUTHORIZED,
	fiber.StatusForbidden:             appliance.EFORBIDDEN,
	fiber.StatusNotFound:              appliance.ENOTFOUND,
	fiber.StatusMethodNotAllowed:      "method_not_allowed",
	fiber.StatusConflict:              appliance.ECONFLICT,
	fiber.StatusRequestEntityTooLarge: appliance.ETOOLARGE,
	// A URL or headers over fasthttp's read buffer: too large as well.
	fiber.StatusRequestHeaderFieldsTooLarge: appliance.ETOOLARGE,
	fiber.StatusRequestURITooLong:           appliance.ETOOLARGE,
	fiber.StatusUnsupportedMediaType:        appliance.EMEDIATYPE,
	fiber.StatusUnprocessableEntity:         appliance.EUNPROCESSABLE,
	fiber.StatusServiceUnavailable:          appliance.EUNAVAILABLE,
}

type errorBody struct {
	Error errorFields `json:"error"`
}

// errorFields is the envelope's body; every key is always there, field and
// details null when there is none.
type errorFields struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Field   *string `json:"field"`
	Details any     `json:"details"`
}

// envelopeOf is the envelope of a domain error.
func envelopeOf(e *appliance.Error) *errorFields {
	f := &errorFields{Code: e.Code, Message: e.Message, Details: e.Details}
	if e.Field != "" {
		f.Field = &e.Field
	}
	return f
}

// handleError is fiber's ErrorHandler: the one place where an error becomes
// a status and the JSON envelope. Internal errors are logged with the
// request id and shown to the client only as "internal error".
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	var ae *appliance.Error
	body := errorFields{}
	status := fiber.StatusInternalServerError
	switch {
	case errors.As(err, &ae):
		body = *envelopeOf(ae)
		if st, ok := statusOfCode[ae.Code]; ok {
			status = st
		}
		if ae.Code == appliance.EINTERNAL {
			// A fault of the node: logged below, not shown.
			body = errorFields{Code: appliance.EINTERNAL, Message: "internal error"}
		}
	case errors.As(err, &fe):
		status = fe.Code
		body.Code = codeOfStatus[fe.Code]
		if body.Code == "" {
			body.Code = appliance.EINTERNAL
		}
		body.Message = fe.Message
		if fe.Code == fiber.StatusNotFound {
			body.Message = "no route " + c.Method() + " " + c.Path()
		}
		if fe.Code == fiber.StatusBadRequest {
			// fasthttp could not read the request (a malformed multipart
			// body, say): the body is at fault.
			field := "body"
			body.Field = &field
		}
	default:
		body = errorFields{Code: appliance.EINTERNAL, Message: "internal error"}
	}
	if status >= 500 && status != fiber.StatusServiceUnavailable {
		s.log.Error("request failed", slog.String("method", c.Method()), slog.String("path", c.Path()),
			slog.String("request_id", requestID(c)), slog.Any("err", err))
	}
	if status == fiber.StatusRequestEntityTooLarge {
		// The rest of the body is not read: the connection cannot be reused.
		c.Context().SetConnectionClose()
	}
	return c.Status(status).JSON(errorBody{Error: body})
}
