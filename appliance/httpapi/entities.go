package httpapi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/mlnode/mlnode/appliance"
)

// scalar is one value of an entities or request_context column: the text
// of a JSON string (unquoted) or of a JSON number (as written).
type scalar struct {
	text string
	num  bool
}

// entityColumn is one join key's (or request input's) values, in order.
type entityColumn struct {
	name   string
	values []scalar
}

// parseEntities reads {"<name>": [scalar, ...], ...} keeping key order,
// which Feast uses for the response's join key columns. It is a small
// hand-written scanner: this object is on the hot path of every online
// read, and its grammar (an object of arrays of strings and numbers) is
// tiny. field names the object in errors ("entities", "request_context").
// maxEntityColumns bounds the join keys and request inputs of one read; it
// also keeps the duplicate check (each name against those before it) cheap.
const maxEntityColumns = 256

func parseEntities(field string, raw []byte) ([]entityColumn, error) {
	p := &objScanner{b: raw, field: field}
	p.ws()
	if p.eof() || (p.peek() == 'n' && string(p.rest()) == "null") {
		return nil, appliance.Invalid(field, "is required: {\"<join_key>\": [values...]}")
	}
	if !p.consume('{') {
		return nil, appliance.Invalid(field, "must be an object of name → list of values")
	}
	var cols []entityColumn
	p.ws()
	if p.consume('}') {
		return nil, appliance.Invalid(field, "at least one join key is required")
	}
	for {
		p.ws()
		name, err := p.str()
		if err != nil {
			return nil, err
		}
		if len(cols) == maxEntityColumns {
			return nil, appliance.Invalid(field, "has more than %d columns", maxEntityColumns)
		}
		for _, c := range cols {
			if c.name == name {
				return nil, appliance.Invalid(field+"."+name, "given twice")
			}
		}
		p.ws()
		if !p.consume(':') {
			return nil, p.syntax("':'")
		}
		p.ws()
		col := entityColumn{name: name}
		if !p.consume('[') {
			return nil, appliance.Invalid(field+"."+name, "must be a list of values")
		}
		p.ws()
		if !p.consume(']') {
			for {
				p.ws()
				v, err := p.scalar(field+"."+name, len(col.values))
				if err != nil {
					return nil, err
				}
				col.values = append(col.values, v)
				p.ws()
				if p.consume(']') {
					break
				}
				if !p.consume(',') {
					return nil, p.syntax("',' or ']'")
				}
			}
		}
		cols = append(cols, col)
		p.ws()
		if p.consume('}') {
			break
		}
		if !p.consume(',') {
			return nil, p.syntax("',' or '}'")
		}
	}
	p.ws()
	if !p.eof() {
		return nil, p.syntax("the end of the object")
	}
	for _, c := range cols[1:] {
		if len(c.values) != len(cols[0].values) {
			return nil, appliance.Invalid(field+"."+c.name, "has %d values but %s has %d: every name needs one value per entity row", len(c.values), cols[0].name, len(cols[0].values))
		}
	}
	return cols, nil
}

type objScanner struct {
	b     []byte
	i     int
	field string
}

func (p *objScanner) eof() bool    { return p.i >= len(p.b) }
func (p *objScanner) peek() byte   { return p.b[p.i] }
func (p *objScanner) rest() []byte { return p.b[p.i:] }

func (p *objScanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *objScanner) consume(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *objScanner) syntax(want string) error {
	return appliance.Invalid(p.field, "malformed at byte %d: expected %s", p.i, want)
}

// str reads a JSON string. Strings without escapes are sliced; others go
// through encoding/json, which knows every escape.
func (p *objScanner) str() (string, error) {
	if !p.consume('"') {
		return "", p.syntax("a string")
	}
	start, escaped := p.i, false
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '\\':
			escaped = true
			p.i += 2
			continue
		case c == '"':
			raw := p.b[start:p.i]
			p.i++
			if !escaped {
				if !utf8.Valid(raw) {
					return "", appliance.Invalid(p.field, "string at byte %d is not valid UTF-8", start)
				}
				return string(raw), nil
			}
			var s string
			if err := json.Unmarshal(p.b[start-1:p.i], &s); err != nil {
				return "", appliance.Invalid(p.field, "bad string at byte %d: %v", start, err)
			}
			return s, nil
		case c < 0x20:
			return "", appliance.Invalid(p.field, "control character in string at byte %d", p.i)
		}
		p.i++
	}
	return "", p.syntax("the end of a string")
}

// scalar reads a string or a number; anything else names the value.
func (p *objScanner) scalar(field string, index int) (scalar, error) {
	if p.eof() {
		return scalar{}, p.syntax("a value")
	}
	switch c := p.peek(); {
	case c == '"':
		s, err := p.str()
		return scalar{text: s}, err
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		for p.i < len(p.b) {
			c := p.b[p.i]
			if c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' || c >= '0' && c <= '9' {
				p.i++
				continue
			}
			break
		}
		text := string(p.b[start:p.i])
		if _, err := strconv.ParseFloat(text, 64); err != nil || !json.Valid(p.b[start:p.i]) {
			return scalar{}, appliance.Invalid(field, "value %d: %q is not a JSON number", index, text)
		}
		return scalar{text: text, num: true}, nil
	}
	at := fmt.Sprintf("%s[%d]", field, index)
	switch p.peek() {
	case 'n':
		return scalar{}, appliance.Invalid(at, "is null: an entity needs a string or a number")
	case 't', 'f':
		return scalar{}, appliance.Invalid(at, "is a boolean: an entity needs a string or a number")
	case '[', '{':
		return scalar{}, appliance.Invalid(at, "is an array or object: an entity needs a string or a number")
	}
	return scalar{}, appliance.Invalid(field, "malformed at byte %d: expected a string or a number", p.i)
}

// joinKeyValue converts a request value to a join key of the given type.
func joinKeyValue(field string, index int, valueType string, x scalar) (appliance.Value, error) {
	if x.num {
		if valueType != appliance.EntityInt64 {
			return appliance.Value{}, appliance.Invalid(fmt.Sprintf("%s[%d]", field, index), "%s is a number; this join key is a string", x.text)
		}
		n, err := strconv.ParseInt(x.text, 10, 64)
		if err != nil {
			return appliance.Value{}, appliance.Invalid(fmt.Sprintf("%s[%d]", field, index), "%s is not an int64", x.text)
		}
		return appliance.Int64Value(n), nil
	}
	if x.text == "" || valueType == appliance.EntityInt64 {
		v, err := parseJoinKeyText(field, valueType, x.text)
		if err != nil {
			err.(*appliance.Error).Field = fmt.Sprintf("%s[%d]", field, index)
		}
		return v, err
	}
	return appliance.StringValue(x.text), nil
}

// appendScalar writes a request value back as JSON, as it was sent.
func appendScalar(dst []byte, x scalar) []byte {
	if x.num {
		return append(dst, x.text...)
	}
	return appliance.AppendJSONString(dst, x.text)
}

// parseFeastRequest reads Feast's GetOnlineFeatures request by hand, for
// the same reason as parseEntities. Unknown members are skipped, as Feast's
// server ignores them; entities and request_context are kept as raw spans
// for parseEntities.
func parseFeastRequest(body []byte, req *feastRequest) error {
	p := &objScanner{b: body, field: "body"}
	p.ws()
	if !p.consume('{') {
		return appliance.Invalid("body", "must be a JSON object")
	}
	p.ws()
	if p.consume('}') {
		return p.end()
	}
	for {
		p.ws()
		key, err := p.str()
		if err != nil {
			return err
		}
		p.ws()
		if !p.consume(':') {
			return p.syntax("':'")
		}
		p.ws()
		if p.eof() {
			return p.syntax("a value")
		}
		start := p.i
		switch key {
		case "features":
			if p.null() {
				break
			}
			// Only checked here; the strings are read on a plan-cache miss
			// (feastRequest.features), so a cached request allocates none.
			if err := p.checkStringArray(); err != nil {
				return err
			}
			req.featuresRaw = p.b[start:p.i]
		case "feature_service":
			if p.null() {
				break
			}
			if req.FeatureService, err = p.str(); err != nil {
				return appliance.Invalid("feature_service", "must be a string")
			}
		case "full_feature_names":
			switch {
			case p.literal("true"):
				req.FullFeatureNames = true
			case p.literal("false"), p.null():
			default:
				return appliance.Invalid("full_feature_names", "must be true or false")
			}
		case "entities", "request_context":
			if err := p.skipValue(0); err != nil {
				return err
			}
			if key == "entities" {
				req.Entities = p.b[start:p.i]
			} else {
				req.RequestContext = p.b[start:p.i]
			}
		default:
			if err := p.skipValue(0); err != nil {
				return err
			}
		}
		p.ws()
		if p.consume('}') {
			return p.end()
		}
		if !p.consume(',') {
			return p.syntax("',' or '}'")
		}
	}
}

// checkStringArray passes over an array of JSON strings without copying
// them.
func (p *objScanner) checkStringArray() error {
	// Built only when needed: this runs on every online read.
	bad := func() error { return appliance.Invalid("features", "must be a list of \"view:feature\" strings") }
	if !p.consume('[') {
		return bad()
	}
	p.ws()
	if p.consume(']') {
		return nil
	}
	for {
		p.ws()
		if p.eof() {
			return appliance.Invalid("body", "truncated JSON")
		}
		if p.peek() != '"' {
			return bad()
		}
		if err := p.skipString(); err != nil {
			return bad()
		}
		p.ws()
		if p.consume(']') {
			return nil
		}
		if !p.consume(',') {
			return p.syntax("',' or ']'")
		}
	}
}

// skipString passes over a JSON string, validating it as str does.
func (p *objScanner) skipString() error {
	start := p.i
	p.i++
	escaped := false
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '\\':
			escaped = true
			p.i += 2
			continue
		case c == '"':
			p.i++
			if escaped {
				return checkEscapedString(p.b[start:p.i])
			}
			if !utf8.Valid(p.b[start+1 : p.i-1]) {
				return appliance.Invalid(p.field, "string at byte %d is not valid UTF-8", start)
			}
			return nil
		case c < 0x20:
			return appliance.Invalid(p.field, "control character in string at byte %d", p.i)
		}
		p.i++
	}
	return p.syntax("the end of a string")
}

func checkEscapedString(quoted []byte) error {
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return appliance.Invalid("features", "bad string: %v", err)
	}
	return nil
}

// features reads the features list (checked already by the parser).
func (r *feastRequest) features() ([]string, error) {
	if r.featuresRaw == nil {
		return nil, nil
	}
	p := &objScanner{b: r.featuresRaw, field: "features"}
	p.consume('[')
	var out []string
	p.ws()
	if p.consume(']') {
		return out, nil
	}
	for {
		p.ws()
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		p.ws()
		if p.consume(']') {
			return out, nil
		}
		p.consume(',')
	}
}

func (p *objScanner) end() error {
	p.ws()
	if !p.eof() {
		return appliance.Invalid("body", "unexpected data after the JSON value")
	}
	return nil
}

func (p *objScanner) literal(word string) bool {
	if len(p.b)-p.i >= len(word) && string(p.b[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

func (p *objScanner) null() bool { return p.literal("null") }

// skipValue passes over any JSON value, checking its syntax.
func (p *objScanner) skipValue(depth int) error {
	if depth > 64 {
		return appliance.Invalid(p.field, "nested too deeply at byte %d", p.i)
	}
	p.ws()
	if p.eof() {
		return p.syntax("a value")
	}
	switch c := p.peek(); {
	case c == '"':
		_, err := p.str()
		return err
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		p.i++
		p.ws()
		if p.consume(closer) {
			return nil
		}
		for {
			if c == '{' {
				p.ws()
				if _, err := p.str(); err != nil {
					return err
				}
				p.ws()
				if !p.consume(':') {
					return p.syntax("':'")
				}
			}
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			p.ws()
			if p.consume(closer) {
				return nil
			}
			if !p.consume(',') {
				return p.syntax("',' or the end of a container")
			}
		}
	case p.literal("true"), p.literal("false"), p.literal("null"):
		return nil
	}
	_, err := p.scalar(p.field, 0)
	return err
}
