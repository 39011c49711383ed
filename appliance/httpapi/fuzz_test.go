package httpapi

import (
	"encoding/json"
	"testing"
)

// The entities object of /get-online-features is parsed by hand to keep
// its key order: it must never panic, and what it accepts is consistent.
func FuzzParseEntities(f *testing.F) {
	for _, s := range []string{`{"user_id":["a","b"]}`, `{"a":[1],"b":[2]}`, `{}`, `[]`, `{"a":[[1]]}`, `{"a":[1],"a":[2]}`, `{"a":[1,2],"b":[1]}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cols, err := parseEntities(json.RawMessage(raw))
		if err != nil {
			return
		}
		for _, c := range cols {
			if len(c.values) != len(cols[0].values) || len(c.raw) != len(c.values) {
				t.Fatalf("ragged columns accepted: %s", raw)
			}
			for _, v := range c.values {
				switch v.(type) {
				case json.Number, string:
				default:
					t.Fatalf("value of type %T accepted: %s", v, raw)
				}
			}
		}
	})
}
