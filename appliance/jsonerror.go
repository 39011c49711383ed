package appliance

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
)

// JSONError turns an error of encoding/json into an EINVALID one that
// names the field, under prefix ("args" for a job's arguments, "" for a
// request body, whose whole is then "body"), and says what JSON was
// expected rather than which Go type.
func JSONError(prefix string, err error) error {
	whole := prefix
	if whole == "" {
		whole = "body"
	}
	at := func(field string) string {
		switch {
		case field == "":
			return whole
		case prefix == "":
			return field
		}
		return prefix + "." + field
	}
	var ae *Error
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &syn):
		return Invalid(whole, "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return Invalid(at(typ.Field), "expected %s, got JSON %s", JSONKindOf(typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return Invalid(whole, "truncated or missing JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Invalid(at(name), "unknown field")
	}
	return Invalid(whole, "malformed JSON")
}

// JSONKindOf names what JSON a Go type is read from.
func JSONKindOf(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return JSONKindOf(t.Elem())
	}
	return "another value"
}
