package httpapi

import (
	"bytes"
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
		cols, err := parseEntities("entities", raw)
		if err != nil {
			return
		}
		// What the scanner accepts, encoding/json accepts as the same data.
		var want map[string][]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", raw, err)
		}
		for _, c := range cols {
			if len(c.values) != len(cols[0].values) {
				t.Fatalf("ragged columns accepted: %s", raw)
			}
			for i, v := range c.values {
				switch w := want[c.name][i].(type) {
				case json.Number:
					if !v.num || v.text != w.String() {
						t.Fatalf("%s[%d] = %+v, encoding/json says %v", c.name, i, v, w)
					}
				case string:
					if v.num || v.text != w {
						t.Fatalf("%s[%d] = %+v, encoding/json says %q", c.name, i, v, w)
					}
				default:
					t.Fatalf("%s[%d]: accepted a %T", c.name, i, w)
				}
			}
		}
	})
}

// The hand-written request parser accepts only what encoding/json accepts,
// and reads the same features.
func FuzzParseFeastRequest(f *testing.F) {
	for _, s := range []string{`{"features":["a:b"],"entities":{"k":[1]}}`, `{"feature_service":"s","full_feature_names":true,"entities":{"k":["x"]},"extra":{"a":[1,{"b":null}]}}`, `{}`, `{"features":null}`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req feastRequest
		if parseFeastRequest(raw, &req) != nil {
			return
		}
		features, err := req.features()
		if err != nil {
			t.Fatalf("features of an accepted request: %v", err)
		}
		got := struct{ Features []string }{features}
		var want struct {
			Features         []string        `json:"features"`
			FeatureService   *string         `json:"feature_service"`
			FullFeatureNames *bool           `json:"full_feature_names"`
			Entities         json.RawMessage `json:"entities"`
		}
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", raw, err)
		}
		if len(got.Features) != len(want.Features) {
			t.Fatalf("features %q, encoding/json reads %q", got.Features, want.Features)
		}
		for i := range got.Features {
			if got.Features[i] != want.Features[i] {
				t.Fatalf("features %q, encoding/json reads %q", got.Features, want.Features)
			}
		}
	})
}
