package httpapi

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/pit"
)

// The historical request and its entity rows are read token by token into a
// spool, and CSV entity files row by row: neither may panic, and what they
// refuse is a 4xx-worthy appliance error, never an internal one.
func FuzzReadEntityRows(f *testing.F) {
	for _, s := range []string{
		`{"features":["v:a"],"entity_rows":[{"user_id":"u1","event_timestamp":"2026-05-01T10:00:00Z","label":1}]}`,
		`{"entity_rows":[{"event_timestamp":1700000000,"x":[1,2],"y":{"a":null}}],"full_feature_names":true}`,
		`{"start":"2026-01-01T00:00:00Z","end":"2026-02-01T00:00:00Z","feature_service":"s"}`,
		`{"entity_rows":[{}]}`, `{"entity_rows":{}}`, `[]`, `{`, `{"features":1}`,
		"user_id,event_timestamp\nu1,2026-05-01T10:00:00Z\n", "a,a\n1,2\n", "\ufeffx,event_timestamp\n\"1\n",
	} {
		f.Add([]byte(s), s[0] == '{' || s[0] == '[')
	}
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		sp, err := pit.NewSpool(t.TempDir(), "entity_rows")
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		if isJSON {
			_, err = readJSONEntityRows(context.Background(), bytes.NewReader(body), sp)
		} else {
			err = readCSVEntityRows(context.Background(), bytes.NewReader(body), sp)
		}
		var ae *appliance.Error
		if err != nil && (!errors.As(err, &ae) || ae.Code != appliance.EINVALID) {
			t.Fatalf("%q: error %v is not an invalid-input error", body, err)
		}
	})
}
