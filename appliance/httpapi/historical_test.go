package httpapi_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/appliance/jobs"
	"github.com/mlnode/mlnode/appliance/tabular"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// newOfflineNode is a test node with historical retrieval and jobs.
func newOfflineNode(t *testing.T) *testNode {
	t.Helper()
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	m := &jobs.Materializer{Registry: n.store, Features: n.store, Offline: n.store, Now: func() time.Time { return n.now }}
	runner := jobs.New(n.store, m.Specs(), jobs.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = runner.Close(context.Background()) })
	n.srv = httpapi.New(httpapi.Config{Now: func() time.Time { return n.now }, SpoolDir: t.TempDir(), HistoricalMemoryBudget: 4096},
		httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store, Offline: n.store, Jobs: runner})
	return n
}

// setupHistory defines user_stats (ttl 24h) and ingests a small history:
// u1 has events at 10:00 and 12:00 (and a late event at 11:00 sent last),
// u2 one at 09:00 two days earlier.
func (n *testNode) setupHistory() {
	n.setupUserStats()
	n.ingest("user_stats", "application/x-ndjson", strings.Join([]string{
		`{"user_id":"u1","event_timestamp":"2026-05-01T10:00:00Z","clicks":1,"score":0.1,"country":"AE"}`,
		`{"user_id":"u1","event_timestamp":"2026-05-01T12:00:00Z","clicks":3,"score":0.3,"country":"AE"}`,
		`{"user_id":"u2","event_timestamp":"2026-04-29T09:00:00Z","clicks":7,"score":0.7,"country":"FR"}`,
	}, "\n"), 200, "online=false")
	n.ingest("user_stats", "application/x-ndjson",
		`{"user_id":"u1","event_timestamp":"2026-05-01T11:00:00Z","clicks":2,"score":0.2,"country":"AE"}`, 200, "online=false")
}

const historicalBody = `{"features":["user_stats:clicks","user_stats:country"],"entity_rows":[
 {"user_id":"u1","event_timestamp":"2026-05-01T11:30:00Z","label":1},
 {"user_id":"u1","event_timestamp":"2026-05-01T09:00:00Z","label":0},
 {"user_id":"u2","event_timestamp":"2026-05-01T10:00:00Z","label":1},
 {"user_id":"u3","event_timestamp":"2026-05-01T10:00:00Z","label":0},
 {"user_id":"u1","event_timestamp":"2026-05-01T12:00:00Z","label":1}]}`

// The expected training set: the late 11:00 event counts for 11:30; u1 had
// nothing before 10:00; u2's event is older than the 24h TTL; u3 is unknown;
// 12:00 sees the 12:00 event (<=).
const historicalWant = `[{"user_id":"u1","event_timestamp":"2026-05-01T11:30:00Z","label":1,"clicks":2,"country":"AE"},` +
	`{"user_id":"u1","event_timestamp":"2026-05-01T09:00:00Z","label":0,"clicks":null,"country":null},` +
	`{"user_id":"u2","event_timestamp":"2026-05-01T10:00:00Z","label":1,"clicks":null,"country":null},` +
	`{"user_id":"u3","event_timestamp":"2026-05-01T10:00:00Z","label":0,"clicks":null,"country":null},` +
	`{"user_id":"u1","event_timestamp":"2026-05-01T12:00:00Z","label":1,"clicks":3,"country":"AE"}]`

func TestHistorical_JSONIsPointInTimeCorrect(t *testing.T) {
	n := newOfflineNode(t)
	n.setupHistory()
	reader := n.token("reader")
	r := n.do("POST", "/api/v1/historical-features", reader, "application/json", historicalBody)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := string(bytes.TrimSpace(r.body)); got != historicalWant {
		t.Fatalf("got\n%s\nwant\n%s", got, historicalWant)
	}
	if r.header.Get("X-Row-Count") != "5" {
		t.Fatalf("X-Row-Count %q", r.header.Get("X-Row-Count"))
	}
	// full_feature_names, and NDJSON by Accept.
	body := strings.Replace(historicalBody, `"features"`, `"full_feature_names":true,"features"`, 1)
	r = n.do("POST", "/api/v1/historical-features", reader, "application/json", body, "Accept", "application/x-ndjson")
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	if r.status != 200 || len(lines) != 5 || !strings.Contains(lines[0], `"user_stats__clicks":2`) {
		t.Fatalf("ndjson: %d %s", r.status, r.body)
	}
}

func TestHistorical_CSVAndParquetFilesInAndOut(t *testing.T) {
	n := newOfflineNode(t)
	n.setupHistory()
	csvIn := "user_id,event_timestamp,label\nu1,2026-05-01T11:30:00Z,1\nu1,2026-05-01T09:00:00Z,0\n" +
		"u2,2026-05-01T10:00:00Z,1\nu3,2026-05-01T10:00:00Z,0\nu1,2026-05-01T12:00:00Z,1\n"
	q := "/api/v1/historical-features?features=user_stats:clicks,user_stats:country"
	r := n.do("POST", q+"&format=csv", adminSecret, "text/csv", csvIn)
	if r.status != 200 {
		t.Fatalf("csv: %d %s", r.status, r.body)
	}
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"user_id", "event_timestamp", "label", "clicks", "country"},
		{"u1", "2026-05-01T11:30:00Z", "1", "2", "AE"}, {"u1", "2026-05-01T09:00:00Z", "0", "", ""},
		{"u2", "2026-05-01T10:00:00Z", "1", "", ""}, {"u3", "2026-05-01T10:00:00Z", "0", "", ""},
		{"u1", "2026-05-01T12:00:00Z", "1", "3", "AE"}}
	if fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Fatalf("csv out\n%v\nwant\n%v", recs, want)
	}

	// The same entity rows as Parquet in, Parquet out.
	var pq bytes.Buffer
	w, err := tabular.NewWriter(&pq, tabular.FormatParquet, []tabular.Column{{Name: "user_id", Dtype: "string"}, {Name: "event_timestamp", Dtype: "timestamp"}, {Name: "label", Dtype: "int64"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range want[1:] {
		ts, _ := time.Parse(time.RFC3339, rec[1])
		lab := int64(0)
		if rec[2] == "1" {
			lab = 1
		}
		if err := w.WriteRow([]appliance.Value{appliance.StringValue(rec[0]), appliance.TimestampValue(ts), appliance.Int64Value(lab)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r = n.do("POST", q, adminSecret, "application/vnd.apache.parquet", pq.Bytes(), "Accept", "application/vnd.apache.parquet")
	if r.status != 200 || r.header.Get("Content-Type") != "application/vnd.apache.parquet" {
		t.Fatalf("parquet: %d %s %.200s", r.status, r.header.Get("Content-Type"), r.body)
	}
	pf, err := tabular.OpenParquet(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	err = pf.Rows(context.Background(), func(row []appliance.Value) error {
		var rec []string
		for _, v := range row {
			switch v.Kind {
			case appliance.KindNull:
				rec = append(rec, "")
			case appliance.KindTimestamp:
				rec = append(rec, v.Time().Format(time.RFC3339))
			case appliance.KindInt64:
				rec = append(rec, fmt.Sprint(v.Int))
			default:
				rec = append(rec, v.Str)
			}
		}
		got = append(got, rec)
		return nil
	})
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want[1:]) {
		t.Fatalf("parquet out %v (%v)\nwant %v", got, err, want[1:])
	}
}

func TestHistorical_RangeAndExport(t *testing.T) {
	n := newOfflineNode(t)
	n.setupHistory()
	r := n.admin("POST", "/api/v1/historical-features", map[string]any{"features": []string{"user_stats:clicks"},
		"start": "2026-05-01T00:00:00Z", "end": "2026-05-01T12:00:00Z"}, 200)
	var rows []map[string]any
	if err := json.Unmarshal(r.body, &rows); err != nil || len(rows) != 2 {
		t.Fatalf("range: %v %s", err, r.body)
	}
	r = n.do("GET", "/api/v1/feature-views/user_stats/export?format=csv&end=2026-05-02T00:00:00Z", adminSecret, "", nil)
	if r.status != 200 || !strings.Contains(r.header.Get("Content-Disposition"), "user_stats_v1.csv") {
		t.Fatalf("export: %d %v %s", r.status, r.header, r.body)
	}
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(recs) != 5 || strings.Join(recs[0], ",") != "user_id,event_timestamp,clicks,score,country" {
		t.Fatalf("export csv: %v %q", err, recs)
	}
	// Parquet export reads back with every event.
	r = n.do("GET", "/api/v1/feature-views/user_stats/export?format=parquet", adminSecret, "", nil)
	pf, err := tabular.OpenParquet(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil || pf.NumRows() != 4 {
		t.Fatalf("parquet export: %v", err)
	}
}

func TestHistorical_BadInput(t *testing.T) {
	n := newOfflineNode(t)
	n.setupHistory()
	post := func(ct string, body any, query string) response {
		return n.do("POST", "/api/v1/historical-features"+query, adminSecret, ct, body)
	}
	for _, tc := range []struct {
		name, ct, query string
		body            any
		status          int
		code, field     string
	}{
		{"missing join key", "application/json", "", `{"features":["user_stats:clicks"],"entity_rows":[{"user_id":"u1","event_timestamp":"2026-05-01T10:00:00Z"},{"event_timestamp":"2026-05-01T10:00:00Z"}]}`, 400, "invalid", "entity_rows[1].user_id"},
		{"missing timestamp", "application/json", "", `{"features":["user_stats:clicks"],"entity_rows":[{"user_id":"u1"}]}`, 400, "invalid", "entity_rows[0].event_timestamp"},
		{"feature not a string", "application/json", "", `{"features":["user_stats:clicks",7],"entity_rows":[]}`, 400, "invalid", "features[1]"},
		{"too many features", "application/json", "", `{"features":["x"` + strings.Repeat(`,"x"`, 10_000) + `],"entity_rows":[]}`, 400, "invalid", "features"},
		{"bad timestamp", "text/csv", "?features=user_stats:clicks", "user_id,event_timestamp\nu1,noon\n", 400, "invalid", "entity_rows[0].event_timestamp"},
		{"unknown view", "application/json", "", `{"features":["nope:clicks"],"entity_rows":[]}`, 404, "not_found", "features[0]"},
		{"unknown version", "application/json", "", `{"features":["user_stats@v7:clicks"],"entity_rows":[]}`, 404, "not_found", "features[0]"},
		{"unknown feature", "application/json", "", `{"features":["user_stats:nope"],"entity_rows":[]}`, 404, "not_found", "features[0]"},
		{"no features", "application/json", "", `{"entity_rows":[]}`, 400, "invalid", "features"},
		{"unknown field", "application/json", "", `{"features":["user_stats:clicks"],"rows":[]}`, 400, "invalid", "rows"},
		{"truncated json", "application/json", "", `{"features":["user_stats:clicks"],"entity_rows":[{"user_id":"u1"`, 400, "invalid", "body"},
		{"not parquet", "application/vnd.apache.parquet", "?features=user_stats:clicks", "user_id,event_timestamp\n", 400, "invalid", "body"},
		{"truncated parquet", "application/vnd.apache.parquet", "?features=user_stats:clicks", "PAR1\x00\x00PAR1", 400, "invalid", "body"},
		{"bad format", "application/json", "?format=xlsx", historicalBody, 400, "invalid", "format"},
		{"bad content type", "application/xml", "", "<x/>", 415, "unsupported_media_type", "Content-Type"},
		{"range end before start", "application/json", "", `{"features":["user_stats:clicks"],"start":"2026-05-02T00:00:00Z","end":"2026-05-01T00:00:00Z"}`, 400, "invalid", "end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(tc.ct, tc.body, tc.query)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if code, field := r.errorOf(t); code != tc.code || field != tc.field {
				t.Fatalf("error %s on %q, want %s on %q: %s", code, field, tc.code, tc.field, r.body)
			}
		})
	}
}

func TestMaterialize_JobsOverHTTP(t *testing.T) {
	n := newOfflineNode(t)
	n.setupHistory()
	writer := n.token("writer")
	reader := n.token("reader")
	online := func() string {
		return string(n.do("GET", "/api/v1/feature-views/user_stats/online?user_id=u1", reader, "", nil).body)
	}
	if r := n.do("GET", "/api/v1/feature-views/user_stats/online?user_id=u1", reader, "", nil); r.status != 404 && !strings.Contains(string(r.body), "null") {
		t.Logf("before: %d %s", r.status, r.body)
	}
	if r := n.do("POST", "/api/v1/materialize-incremental", reader, "application/json", `{}`); r.status != 403 {
		t.Fatalf("reader materialized: %d", r.status)
	}
	// Two at once on one view: both succeed, one after the other.
	var wg sync.WaitGroup
	ids := make([]string, 2)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := n.do("POST", "/api/v1/materialize-incremental", writer, "application/json", `{"feature_views":["user_stats"]}`)
			if r.status != 202 {
				t.Errorf("materialize: %d %s", r.status, r.body)
				return
			}
			ids[i] = r.json(t)["id"].(string)
		}()
	}
	wg.Wait()
	for _, id := range ids {
		deadline := time.Now().Add(10 * time.Second)
		for {
			j := n.do("GET", "/api/v1/jobs/"+id, reader, "", nil).json(t)
			if j["state"] == "succeeded" {
				break
			}
			if j["state"] == "failed" || time.Now().After(deadline) {
				t.Fatalf("job %s: %v", id, j)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if got := online(); !strings.Contains(got, `"event_timestamp":"2026-05-01T12:00:00Z","found":true`) {
		t.Fatalf("online after materialize: %s", got)
	}
	list := n.do("GET", "/api/v1/jobs?kind=materialize-incremental", reader, "", nil).json(t)["jobs"].([]any)
	if len(list) != 2 {
		t.Fatalf("jobs list: %v", list)
	}
	if r := n.do("GET", "/api/v1/jobs?kind=materialise", reader, "", nil); r.status != 400 || !strings.Contains(string(r.body), `"field":"kind"`) {
		t.Fatalf("a misspelt kind: %d %s", r.status, r.body)
	}
	for _, tc := range []struct{ path, body, field string }{
		{"/api/v1/materialize", `{"feature_views":["nope"]}`, "feature_views[0]"},
		{"/api/v1/materialize", `{"end":"soon"}`, "end"},
		{"/api/v1/materialize-incremental", `{"start":"2026-01-01T00:00:00Z"}`, "start"},
	} {
		r := n.do("POST", tc.path, writer, "application/json", tc.body)
		if _, field := r.errorOf(t); r.status/100 != 4 || field != tc.field {
			t.Fatalf("%s %s: %d %s", tc.path, tc.body, r.status, r.body)
		}
	}
	if r := n.do("DELETE", "/api/v1/jobs/"+ids[0], writer, "", nil); r.status != 409 {
		t.Fatalf("cancel a finished job: %d %s", r.status, r.body)
	}
	if r := n.do("GET", "/api/v1/jobs/12345", reader, "", nil); r.status != 404 {
		t.Fatalf("unknown job: %d", r.status)
	}
}
