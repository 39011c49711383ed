package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

// jsonMarshal is fiber's JSON encoder: like json.Marshal, without escaping
// <, > and & (responses are not embedded in HTML), and no trailing newline.
func jsonMarshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// limitReader returns ETOOLARGE once more than limit bytes were read.
type limitReader struct {
	r     io.Reader
	left  int64
	limit int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Probe one byte: a body of exactly the limit is fine.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, tooLarge(l.limit)
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func tooLarge(limit int64) error {
	return &appliance.Error{Code: appliance.ETOOLARGE, Field: "body", Message: fmt.Sprintf("the body is larger than the limit of %d bytes", limit)}
}

// bodyReader returns the request body as a stream bounded by limit. A
// declared Content-Length over the limit fails before anything is read.
func bodyReader(c *fiber.Ctx, limit int64) (io.Reader, error) {
	if n := c.Request().Header.ContentLength(); n > 0 && int64(n) > limit {
		return nil, tooLarge(limit)
	}
	var r io.Reader = c.Context().RequestBodyStream()
	if r == nil {
		r = bytes.NewReader(c.Request().Body())
	}
	return &limitReader{r: r, left: limit, limit: limit}, nil
}

// readBody reads a whole (small) body within the JSON limit.
func (s *Server) readBody(c *fiber.Ctx) ([]byte, error) {
	r, err := bodyReader(c, s.cfg.JSONBodyLimit)
	if err != nil {
		return nil, err
	}
	// A declared length sizes the buffer once (the limit was checked).
	var b []byte
	if n := c.Request().Header.ContentLength(); n > 0 {
		b = make([]byte, n)
		var got int
		got, err = io.ReadFull(r, b)
		b = b[:got]
		if err == io.ErrUnexpectedEOF {
			err = nil // a shorter body than declared: the parser reports it
		}
	} else {
		b, err = io.ReadAll(r)
	}
	if err != nil {
		if appliance.ErrorCode(err) == appliance.ETOOLARGE {
			return nil, err
		}
		return nil, appliance.Invalid("body", "reading the body: %v", err)
	}
	return b, nil
}

// decodeJSONBody reads a JSON body into v, refusing unknown fields, other
// content types and trailing data, with errors that name the field.
func (s *Server) decodeJSONBody(c *fiber.Ctx, v any) error {
	_, err := s.decodeJSONBodyRaw(c, v)
	return err
}

// decodeJSONBodyRaw is decodeJSONBody that also returns the body.
func (s *Server) decodeJSONBodyRaw(c *fiber.Ctx, v any) ([]byte, error) {
	if ct := c.Get(fiber.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != fiber.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
			return nil, &appliance.Error{Code: appliance.EMEDIATYPE, Field: "Content-Type", Message: fmt.Sprintf("%q is not application/json", ct)}
		}
	}
	body, err := s.readBody(c)
	if err != nil {
		return nil, err
	}
	return body, decodeJSON(body, v, true)
}

// checkCoverage refuses an explicit "coverage": 0. Coverage is in (0, 1]
// and an absent one means 1; the decoded zero cannot tell the two apart,
// and reading 0 as "every unit" would be the opposite of what was asked.
func checkCoverage(body []byte) error {
	var probe struct {
		Coverage *float64 `json:"coverage"`
	}
	if json.Unmarshal(body, &probe) == nil && probe.Coverage != nil && *probe.Coverage == 0 {
		return appliance.Invalid("coverage", "must be in (0, 1]; leave it out for every unit")
	}
	return nil
}

func decodeJSON(body []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return appliance.Invalid("body", "a JSON body is required")
	}
	// encoding/json takes the last of repeated keys and matches keys
	// case-insensitively, so {"role":"reader","Role":"admin"} would be
	// read as admin: such a body is refused instead.
	if err := checkObjectKeys(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonErrorIn(body, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return appliance.Invalid("body", "unexpected data after the JSON value")
	}
	return nil
}

// walkJSON reports the structure of a JSON text, up to byte limit, to
// visit: the opening and closing of objects and arrays ('{', '[', '}',
// ']'), commas (','), and object keys (':', with the key's bytes as
// written, at the offset of its opening quote, and whether it holds an
// escape). It stops when visit returns false or at a string left open;
// syntax is the decoder's business.
func walkJSON(b []byte, limit int, visit func(tok byte, at int, key []byte, escaped bool) bool) {
	for i := 0; i < len(b) && i < limit; i++ {
		switch c := b[i]; c {
		case '"':
			end, escaped := i+1, false
			for ; end < len(b) && b[end] != '"'; end++ {
				if b[end] == '\\' {
					escaped = true
					end++
				}
			}
			if end >= len(b) {
				return
			}
			j := end + 1
			for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
				j++
			}
			if j < len(b) && b[j] == ':' && !visit(':', i, b[i+1:end], escaped) {
				return
			}
			i = end
		case '{', '[', '}', ']', ',':
			if !visit(c, i, nil, false) {
				return
			}
		}
	}
}

// checkObjectKeys refuses a JSON text in which an object repeats a key,
// exactly or in another case, naming the key's path. The text's syntax is
// left to the decoder: this only looks at keys. It runs on every request
// body (predict's too), so it keeps its state in fixed arrays.
func checkObjectKeys(b []byte) error {
	type frame struct {
		object bool
		first  int    // where this object's keys start in keys
		at     []byte // its latest key
		// folded holds the object's keys, case-folded, once it has more
		// than a few: comparing each key with all before it would be
		// quadratic in a body of a million keys.
		folded map[string][]byte
	}
	var stackBuf [16]frame
	var keysBuf [32][]byte
	stack, keys := stackBuf[:0], keysBuf[:0]
	path := func(key []byte) string {
		var parts []string
		for _, f := range stack[:len(stack)-1] {
			if f.object {
				parts = append(parts, string(f.at))
			}
		}
		return strings.Join(append(parts, string(key)), ".")
	}
	var err error
	walkJSON(b, len(b), func(tok byte, at int, key []byte, escaped bool) bool {
		switch tok {
		case '{', '[':
			stack = append(stack, frame{object: tok == '{', first: len(keys)})
		case '}', ']':
			if len(stack) > 0 {
				keys = keys[:stack[len(stack)-1].first]
				stack = stack[:len(stack)-1]
			}
		case ':':
			if len(stack) == 0 || !stack[len(stack)-1].object {
				return true
			}
			if escaped {
				var s string
				if json.Unmarshal(b[at:at+len(key)+2], &s) != nil {
					return false // the decoder reports the bad string
				}
				key = []byte(s)
			}
			top := &stack[len(stack)-1]
			var dup []byte
			if top.folded != nil {
				dup = top.folded[string(bytes.ToLower(key))]
			} else {
				for _, k := range keys[top.first:] {
					if bytes.EqualFold(k, key) {
						dup = k
						break
					}
				}
			}
			if dup != nil {
				if bytes.Equal(dup, key) {
					err = appliance.Invalid(path(key), "is given twice")
				} else {
					err = appliance.Invalid(path(key), "is given twice, as %q and %q: keys are case-sensitive", dup, key)
				}
				return false
			}
			keys = append(keys, key)
			top.at = key
			if top.folded != nil {
				top.folded[string(bytes.ToLower(key))] = key
			} else if len(keys)-top.first > 16 {
				top.folded = make(map[string][]byte, 64)
				for _, k := range keys[top.first:] {
					top.folded[string(bytes.ToLower(k))] = k
				}
			}
		}
		return true
	})
	return err
}

// jsonErrorIn is jsonError with the field's full path found in body:
// encoding/json names a mistyped field without array indexes
// ("arms.weight") and an unknown one without its place at all.
func jsonErrorIn(body []byte, err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Offset > 0 {
		if at := jsonPath(body, typ.Offset, ""); at != "" {
			return appliance.Invalid(at, "expected %s, got JSON %s", appliance.JSONKindOf(typ.Type), typ.Value)
		}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if at := jsonPath(body, int64(len(body)), strings.Trim(name, `"`)); at != "" {
			return appliance.Invalid(at, "unknown field")
		}
	}
	return jsonError(err)
}

// jsonPath returns the path (a.b[2].c) of the value being read at byte
// offset of body, or, given a key, of the first object key spelled so.
func jsonPath(b []byte, offset int64, key string) string {
	type frame struct {
		object bool
		key    []byte
		index  int
		at     int // where it opens
	}
	var stack []frame
	path := func(last string) string {
		var sb strings.Builder
		for _, f := range stack {
			if f.object {
				if f.key != nil {
					if sb.Len() > 0 {
						sb.WriteByte('.')
					}
					sb.Write(f.key)
				}
			} else {
				fmt.Fprintf(&sb, "[%d]", f.index)
			}
		}
		if last != "" {
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(last)
		}
		return sb.String()
	}
	found := ""
	walkJSON(b, int(min(offset, int64(len(b)))), func(tok byte, at int, k []byte, _ bool) bool {
		top := len(stack) - 1
		switch {
		case tok == '{' || tok == '[':
			stack = append(stack, frame{object: tok == '{', at: at})
		case tok == '}' || tok == ']':
			if top >= 0 {
				stack = stack[:top]
			}
		case tok == ',' && top >= 0 && !stack[top].object:
			stack[top].index++
		case tok == ':' && top >= 0 && stack[top].object:
			stack[top].key = nil // the previous key's value has ended
			if key != "" && string(k) == key {
				found = path(key)
				return false
			}
			stack[top].key = k
		}
		return true
	})
	if key != "" {
		return found
	}
	// A mistyped object or array is reported just inside its opening: it
	// is the value at fault, not its first element.
	if n := len(stack); n > 0 && int64(stack[n-1].at) == offset-1 {
		stack = stack[:n-1]
	}
	return path("")
}

// jsonError turns encoding/json's errors into ones that name the field.
func jsonError(err error) error { return appliance.JSONError("", err) }

// appendValue appends v as JSON (appliance.AppendJSONValue), timestamps as
// unix seconds when feastTime (Feast's UnixTimestamp).
func appendValue(dst []byte, v appliance.Value, feastTime bool) []byte {
	if feastTime && v.Kind == appliance.KindTimestamp {
		return strconv.AppendInt(dst, v.Int/1e6, 10)
	}
	return appliance.AppendJSONValue(dst, &v)
}

// spoolFile copies a request body to a temporary file in dir, unlinked at
// once so that it goes with its handle whatever happens; Parquet is read
// from its footer, so a Parquet body is read from such a file. The caller
// closes it.
func spoolFile(dir string, body io.Reader) (*os.File, int64, error) {
	f, err := os.CreateTemp(dir, "mlnode-upload-*.parquet")
	if err != nil {
		return nil, 0, fmt.Errorf("spool the body: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("spool the body: %w", err)
	}
	size, err := spoolBody(f, body)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

// spoolBody copies a request body to a temporary file. A failure to read
// the body is the client's (400, or 413 over the limit); a failure to write
// the file is the node's (a full disk: 500).
func spoolBody(f io.Writer, body io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, rerr := body.Read(buf)
		if m > 0 {
			if _, werr := f.Write(buf[:m]); werr != nil {
				return n, fmt.Errorf("spool the body to disk: %w", werr)
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			if appliance.ErrorCode(rerr) == appliance.ETOOLARGE {
				return n, rerr
			}
			return n, appliance.Invalid("body", "reading the body: %v", rerr)
		}
	}
}
