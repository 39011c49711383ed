package appliance

// ReservedNames may not name an entity, view, feature or join key: `request`
// names request-time inputs of models and transforms.
var reservedNames = map[string]bool{"request": true, "event_timestamp": true}

// ValidateName checks a name of an entity, feature view, feature, feature
// service or join key: `[a-z][a-z0-9_]*`, at most 128 bytes, without `__`
// (Feast's full feature names join view and feature with `__`) and not
// reserved. field names the input for the error.
func ValidateName(field, name string) error {
	if name == "" {
		return Invalid(field, "is required")
	}
	if len(name) > 128 {
		return Invalid(field, "%q… is longer than 128 bytes", name[:32]) // not echoed whole
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '_'):
		default:
			return Invalid(field, "%q must match [a-z][a-z0-9_]*", name)
		}
	}
	if containsDoubleUnderscore(name) {
		return Invalid(field, "%q must not contain \"__\"", name)
	}
	if reservedNames[name] {
		return Invalid(field, "%q is reserved", name)
	}
	return nil
}

func containsDoubleUnderscore(s string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] == '_' && s[i-1] == '_' {
			return true
		}
	}
	return false
}
