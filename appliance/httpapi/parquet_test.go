package httpapi_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/appliance/tabular"
)

const parquetType = "application/vnd.apache.parquet"

// parquetRows writes user_stats rows (user_id, event_timestamp, clicks,
// score, country) as a Parquet file; cols may retype them.
func parquetRows(t *testing.T, cols []tabular.Column, rows ...[]appliance.Value) []byte {
	t.Helper()
	if cols == nil {
		cols = []tabular.Column{{Name: "user_id", Dtype: appliance.DTypeString}, {Name: "event_timestamp", Dtype: appliance.DTypeTimestamp},
			{Name: "clicks", Dtype: appliance.DTypeInt64}, {Name: "score", Dtype: appliance.DTypeFloat64}, {Name: "country", Dtype: appliance.DTypeString}}
	}
	var buf bytes.Buffer
	w, err := tabular.NewWriter(&buf, tabular.FormatParquet, cols)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.WriteRow(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func statRow(user string, at time.Time, clicks int64, score float64, country string) []appliance.Value {
	return []appliance.Value{appliance.StringValue(user), appliance.TimestampValue(at), appliance.Int64Value(clicks),
		appliance.Float64Value(score), appliance.StringValue(country)}
}

func (n *testNode) offlineRows(t *testing.T) float64 {
	t.Helper()
	return n.admin("GET", "/api/v1/feature-views/user_stats", nil, 200).json(t)["stats"].(map[string]any)["offline_rows"].(float64)
}

func TestIngest_ParquetReadBackOnline(t *testing.T) {
	n := newTestNode(t, httpapi.Config{})
	n.setupUserStats()
	body := parquetRows(t, nil,
		statRow("a", n.now.Add(-time.Hour), 1, 0.5, "AE"),
		statRow("b", n.now.Add(-time.Minute), 9007199254740993, -2, "FR"),
		[]appliance.Value{appliance.StringValue("c"), appliance.TimestampValue(n.now.Add(-time.Minute)), {}, {}, {}})
	r := n.do("POST", "/api/v1/feature-views/user_stats/rows", adminSecret, parquetType, body)
	if r.status != 200 || r.json(t)["accepted"].(float64) != 3 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	got := n.admin("POST", "/get-online-features", map[string]any{"features": []string{"user_stats:clicks", "user_stats:score", "user_stats:country"},
		"entities": map[string]any{"user_id": []string{"a", "b", "c"}}}, 200)
	for _, want := range []string{`{"values":[1,9007199254740993,null],"statuses":["PRESENT","PRESENT","NULL_VALUE"]`,
		`{"values":[0.5,-2,null]`, `{"values":["AE","FR",null]`} {
		if !bytes.Contains(got.body, []byte(want)) {
			t.Fatalf("online read lacks %s:\n%s", want, got.body)
		}
	}

	// The legacy media type works too, and a retry with the same key is
	// answered as the first time.
	body = parquetRows(t, nil, statRow("a", n.now, 2, 1, "AE"))
	first := n.do("POST", "/api/v1/feature-views/user_stats/rows", adminSecret, "application/x-parquet", body, "Idempotency-Key", "pq-1")
	again := n.do("POST", "/api/v1/feature-views/user_stats/rows", adminSecret, "application/x-parquet", body, "Idempotency-Key", "pq-1")
	if first.status != 200 || again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" || string(first.body) != string(again.body) {
		t.Fatalf("retry: %d %s / %d %s", first.status, first.body, again.status, again.body)
	}
	if rows := n.offlineRows(t); rows != 4 {
		t.Fatalf("%v offline rows, want 4", rows)
	}
}

func TestIngest_ParquetOfflineOnly(t *testing.T) {
	n := newTestNode(t, httpapi.Config{})
	n.setupUserStats()
	body := parquetRows(t, nil, statRow("a", n.now, 1, 0.5, "AE"))
	n.ingest("user_stats", parquetType, string(body), 200, "online=false")
	if rows := n.offlineRows(t); rows != 1 {
		t.Fatalf("%v offline rows", rows)
	}
	one := n.admin("GET", "/api/v1/feature-views/user_stats/online?user_id=a", nil, 200).json(t)
	if one["found"] != false {
		t.Fatalf("an offline-only row reads online: %v", one)
	}
}

func TestIngest_ParquetBadBodies(t *testing.T) {
	spool := t.TempDir()
	t.Setenv("TMPDIR", spool) // where bodies are spooled
	n := newTestNode(t, httpapi.Config{IngestBodyLimit: 64 << 10})
	n.setupUserStats()
	good := parquetRows(t, nil, statRow("a", n.now, 1, 0.5, "AE"))
	wrongType := parquetRows(t, []tabular.Column{{Name: "user_id", Dtype: appliance.DTypeString}, {Name: "event_timestamp", Dtype: appliance.DTypeTimestamp},
		{Name: "score", Dtype: appliance.DTypeString}}, []appliance.Value{appliance.StringValue("a"), appliance.TimestampValue(n.now), appliance.StringValue("high")})
	bad := parquetRows(t, nil, statRow("a", n.now, 1, 0.5, "AE"),
		[]appliance.Value{appliance.StringValue("b"), {}, appliance.Int64Value(1), {}, {}})
	// Compressed, these rows fit the limit; as text they do not.
	big := make([][]appliance.Value, 5000)
	for i := range big {
		big[i] = statRow("a", n.now, 1, 0.5, string(bytes.Repeat([]byte("AE"), 10)))
	}
	if size := len(parquetRows(t, nil, big...)); size > 32<<10 {
		t.Fatalf("the compressible file is %d bytes", size)
	}
	tests := []struct {
		name, query string
		body        []byte
		status      int
		code, field string
	}{
		{"truncated", "", good[:len(good)-10], 400, "invalid", "body"},
		{"not parquet", "", []byte(`{"user_id":"a","event_timestamp":0}`), 400, "invalid", "body"},
		{"empty", "", nil, 400, "invalid", "body"},
		{"wrong column type", "", wrongType, 400, "invalid", "score"},
		{"invalid row", "", bad, 400, "invalid", "rows"},
		{"over the body limit", "", append(bytes.Repeat([]byte("x"), 70<<10), good...), 413, "too_large", "body"},
		{"rows over the body limit as text", "", parquetRows(t, nil, big...), 413, "too_large", "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := n.do("POST", "/api/v1/feature-views/user_stats/rows"+tt.query, adminSecret, parquetType, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if code, field := r.errorOf(t); code != tt.code || field != tt.field {
				t.Fatalf("code %q field %q, want %q %q: %s", code, field, tt.code, tt.field, r.body)
			}
		})
	}
	if rows := n.offlineRows(t); rows != 0 {
		t.Fatalf("bad bodies wrote %v rows", rows)
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Fatalf("spooled bodies left behind: %v", left)
	}
	// skip-invalid writes the good row of the bad file.
	res := n.ingest("user_stats", parquetType, string(bad), 200, "mode=skip-invalid").json(t)
	if res["accepted"].(float64) != 1 || res["rejected_count"].(float64) != 1 {
		t.Fatalf("skip-invalid: %v", res)
	}
}
