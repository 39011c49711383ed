package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/featstats"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

func newStatsNode(t *testing.T, withStats bool) *testNode {
	t.Helper()
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	svc := httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store}
	if withStats {
		svc.Stats = n.store
	}
	n.srv = httpapi.New(httpapi.Config{Now: func() time.Time { return n.now }}, svc)
	return n
}

// offlineLog gives the statistics job the store's ingest log; the rest of
// appliance.OfflineStore is not this test's business.
type offlineLog struct {
	appliance.OfflineStore
	s *store.Store
}

func (o offlineLog) ScanIngested(ctx context.Context, v *appliance.FeatureView, after uint64, fn func(uint64, appliance.Row) bool) error {
	return o.s.ScanIngested(ctx, v, after, fn)
}

func (o offlineLog) LastSeq(ctx context.Context) (uint64, error) { return o.s.LastSeq(ctx) }

type jobControl struct {
	appliance.JobControl
	job appliance.Job
}

func (c *jobControl) Job() *appliance.Job                       { return &c.job }
func (c *jobControl) Progress(int64, int64)                     {}
func (c *jobControl) SaveCheckpoint(context.Context, any) error { return nil }

// runStatsJob runs the statistics job the way the job runner would.
func (n *testNode) runStatsJob(args string) *featstats.JobResult {
	n.t.Helper()
	spec := featstats.JobSpec(n.store, offlineLog{s: n.store}, n.store)
	norm, err := spec.Validate(context.Background(), json.RawMessage(args))
	if err != nil {
		n.t.Fatal(err)
	}
	res, err := spec.Run(context.Background(), &jobControl{job: appliance.Job{ID: "1", Kind: spec.Kind, Args: norm}})
	if err != nil {
		n.t.Fatal(err)
	}
	return res.(*featstats.JobResult)
}

func TestFeatureStats_AfterTheJob(t *testing.T) {
	n := newStatsNode(t, true)
	n.setupUserStats()
	r := n.admin("GET", "/api/v1/feature-views/user_stats/stats", nil, 404)
	if code, _ := r.errorOf(t); code != "not_found" || !strings.Contains(string(r.body), "no statistics yet; run the statistics job") {
		t.Fatalf("before the job: %s", r.body)
	}
	var rows []string
	for i, c := range []string{"FR", "FR", "DE", "FR", ""} {
		country := fmt.Sprintf("%q", c)
		if c == "" {
			country = "null"
		}
		rows = append(rows, fmt.Sprintf(`{"user_id":"u%d","event_timestamp":"2026-05-01T00:00:00Z","clicks":%d,"score":%g,"country":%s}`, i, i*10, float64(i)-1.5, country))
	}
	n.ingest("user_stats", "application/x-ndjson", strings.Join(rows, "\n"), 200)
	if res := n.runStatsJob(`{"feature_views":["user_stats"]}`); res.Views[0].RowsAdded != 5 {
		t.Fatalf("job: %+v", res.Views)
	}

	reader := n.token("reader")
	r = n.do("GET", "/api/v1/feature-views/user_stats/stats", reader, "", nil)
	if r.status != 200 {
		t.Fatalf("stats: %d %s", r.status, r.body)
	}
	var got featstats.Summary
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.View != "user_stats" || got.Version != 1 || got.Rows != 5 || got.ThroughSeq != 5 || len(got.Features) != 3 {
		t.Fatalf("summary header: %s", r.body)
	}
	clicks, score, country := got.Features[0], got.Features[1], got.Features[2]
	if clicks.Name != "clicks" || clicks.Numeric.Min != "0" || clicks.Numeric.Max != "40" || clicks.Numeric.Mean != 20 || clicks.Numeric.Quantiles["p50"] != 20 {
		t.Errorf("clicks: %+v", clicks.Numeric)
	}
	if score.Numeric.Mean != 0.5 || score.Numeric.Min != "-1.5" {
		t.Errorf("score: %+v", score.Numeric)
	}
	if country.Nulls != 1 || country.NullRate != 0.2 || country.Categorical.Top[0] != (featstats.CategorySummary{Value: "FR", Count: 3, Rate: 0.75}) ||
		!country.Categorical.DistinctExact || country.Categorical.Distinct != 2 {
		t.Errorf("country: %+v", country)
	}

	// Incremental: the next run adds only the new events.
	n.ingest("user_stats", "application/x-ndjson", `{"user_id":"u9","event_timestamp":"2026-05-02T00:00:00Z","clicks":1000,"score":0,"country":"JP"}`, 200)
	if res := n.runStatsJob(`{}`); res.Views[0].RowsAdded != 1 || res.Views[0].Rows != 6 {
		t.Fatalf("second job: %+v", res.Views)
	}
	if m := n.admin("GET", "/api/v1/feature-views/user_stats/stats?version=1", nil, 200).json(t); m["rows"].(float64) != 6 {
		t.Fatalf("after the second job: %v", m["rows"])
	}
}

func TestFeatureStats_Errors(t *testing.T) {
	n := newStatsNode(t, true)
	n.setupUserStats()
	v, err := n.store.FeatureView(context.Background(), "user_stats", 1)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := featstats.New(v).Record()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.store.PutStats(context.Background(), v, rec); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, token string
		status            int
		code, field       string
	}{
		{"stored, empty", "/api/v1/feature-views/user_stats/stats", adminSecret, 200, "", ""},
		{"pinned version", "/api/v1/feature-views/user_stats/stats?version=1", adminSecret, 200, "", ""},
		{"unknown version", "/api/v1/feature-views/user_stats/stats?version=2", adminSecret, 404, "not_found", ""},
		{"bad version", "/api/v1/feature-views/user_stats/stats?version=one", adminSecret, 400, "invalid", "version"},
		{"unknown view", "/api/v1/feature-views/nope/stats", adminSecret, 404, "not_found", ""},
		{"no token", "/api/v1/feature-views/user_stats/stats", "", 401, "unauthorized", "Authorization"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := n.do("GET", tt.path, tt.token, "", nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code == "" {
				if m := r.json(t); m["rows"].(float64) != 0 || len(m["features"].([]any)) != 3 {
					t.Fatalf("empty statistics: %s", r.body)
				}
				return
			}
			if code, field := r.errorOf(t); code != tt.code || field != tt.field {
				t.Fatalf("error %s on %q, want %s on %q: %s", code, field, tt.code, tt.field, r.body)
			}
		})
	}

	without := newStatsNode(t, false)
	without.setupUserStats()
	if r := without.do("GET", "/api/v1/feature-views/user_stats/stats", adminSecret, "", nil); r.status != 503 {
		t.Fatalf("a node without statistics: %d %s", r.status, r.body)
	}
}
