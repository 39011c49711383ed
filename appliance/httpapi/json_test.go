package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

func TestCheckObjectKeys(t *testing.T) {
	tests := []struct {
		body  string
		field string // "" when the keys are fine
	}{
		{`{"name":"a","role":"reader"}`, ""},
		{`{"role":"reader","role":"admin"}`, "role"},
		{`{"role":"reader","Role":"admin"}`, "Role"},
		{`{"role":"reader","r\u006fle":"admin"}`, "role"},
		{`{"arms":[{"name":"a","weight":1,"WEIGHT":2}]}`, "arms.WEIGHT"},
		{`{"a":{"b":1},"c":{"b":2}}`, ""},                   // same key, other objects
		{`[{"k":1},{"k":2}]`, ""},                           // same key, array items
		{`{"s":"{\"k\":1,\"k\":2}"}`, ""},                   // keys inside a string are text
		{`{"tags":{"x":"1"},"features":{"x":2},"x":3}`, ""}, // one key per object
		{`{"a":{"b":{"c":1,"c":2}}}`, "a.b.c"},
		{`{"a":"unterminated`, ""},        // left to the decoder
		{manyKeys(20) + `,"K3":1}`, "K3"}, // past the map threshold
		{manyKeys(20) + `,"k19":1}`, "k19"},
		{manyKeys(40) + "}", ""},
	}
	for _, tt := range tests {
		err := checkObjectKeys([]byte(tt.body))
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%s: %v", tt.body, err)
		case tt.field != "" && (err == nil || err.(*appliance.Error).Field != tt.field):
			t.Errorf("%s: %v, want an error naming %q", tt.body, err, tt.field)
		}
	}
}

// manyKeys is an unterminated object of n distinct keys k0..k(n-1).
func manyKeys(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	return b.String()
}

func TestDecodeJSON_TypeErrorsNameJSONKinds(t *testing.T) {
	var v struct {
		Role appliance.Role `json:"role"`
		On   bool           `json:"on"`
	}
	for body, want := range map[string]string{
		`{"role":[1]}`: "expected a string, got JSON array",
		`{"on":1}`:     "expected true or false, got JSON number",
	} {
		err := decodeJSON([]byte(body), &v, true)
		if err == nil || appliance.ErrorMessage(err) != want {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

// checkObjectKeys reads every request body before the decoder does: it
// must never panic, and never refuse an object whose keys differ.
func FuzzCheckObjectKeys(f *testing.F) {
	for _, s := range []string{`{"a":1,"A":2}`, `[{"k":"\"k\""}]`, `{"a":{"b":[{"c":1}]}}`, `{"\u0061":1,"a":2}`, `{"x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = jsonPath(b, int64(len(b)/2), "") // error paths read any body too
		_ = jsonPath(b, int64(len(b)), "k")
		err := checkObjectKeys(b)
		var m map[string]any
		if err != nil && json.Unmarshal(b, &m) == nil {
			lower := map[string]bool{}
			for k := range m {
				lower[strings.ToLower(k)] = true
			}
			if len(lower) == len(m) && !hasNested(m) {
				// Every key of this flat object is distinct, even ignoring
				// case, but it may still repeat one: only a repeat is refused.
				var raw map[string]json.RawMessage
				_ = json.Unmarshal(b, &raw)
				if bytes.Count(b, []byte(`":`)) == len(raw) {
					t.Fatalf("refused %q: %v", b, err)
				}
			}
		}
	})
}

func hasNested(m map[string]any) bool {
	for _, v := range m {
		switch v.(type) {
		case map[string]any, []any:
			return true
		}
	}
	return false
}

func BenchmarkCheckObjectKeys_PredictBody(b *testing.B) {
	body := []byte(`{"entities":{"user_id":"u-1234"},"request":{"basket_size":3,"channel":"web"},"alias":"production","attributes":{"country":"AE"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := checkObjectKeys(body); err != nil {
			b.Fatal(err)
		}
	}
}

// An object of many keys is checked in linear time (the first version
// compared each key with all before it: 40,000 keys took 2.5 s).
func BenchmarkCheckObjectKeys_ManyKeys(b *testing.B) {
	var body bytes.Buffer
	body.WriteString("{")
	for i := range 100_000 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `"k%d":1`, i)
	}
	body.WriteString("}")
	b.ReportAllocs()
	for b.Loop() {
		if err := checkObjectKeys(body.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
}

// Errors name the whole path, array indexes included.
func TestDecodeJSON_NamesNestedFields(t *testing.T) {
	type arm struct {
		Name   string  `json:"name"`
		Weight float64 `json:"weight"`
	}
	var v struct {
		Name string `json:"name"`
		Arms []arm  `json:"arms"`
		Meta struct {
			Owner string `json:"owner"`
		} `json:"meta"`
	}
	for body, want := range map[string]string{
		`{"arms":[{"name":"a","weight":1},{"name":"b","weight":"x"}]}`: "arms[1].weight",
		`{"arms":[{"name":"a","colour":1}]}`:                           "arms[0].colour",
		`{"meta":{"owner":5}}`:                                         "meta.owner",
		`{"meta":{"team":"x"}}`:                                        "meta.team",
		`{"name":"n","extra":true}`:                                    "extra",
		`{"name":["x"]}`:                                               "name",
	} {
		err := decodeJSON([]byte(body), &v, true)
		if e, ok := err.(*appliance.Error); !ok || e.Field != want {
			t.Errorf("%s: %v, want the field %q", body, err, want)
		}
	}
}
