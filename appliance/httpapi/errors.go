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
	fiber.StatusUnsupportedMediaType:  appliance.EMEDIATYPE,
	fiber.StatusUnprocessableEntity:   appliance.EUNPROCESSABLE,
	fiber.StatusServiceUnavailable:    appliance.EUNAVAILABLE,
}

type errorBody struct {
	Error errorFields `json:"error"`
}

type errorFields struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	Details any    `json:"details,omitempty"`
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
		body = errorFields{Code: ae.Code, Message: ae.Message, Field: ae.Field, Details: ae.Details}
		if st, ok := statusOfCode[ae.Code]; ok {
			status = st
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
