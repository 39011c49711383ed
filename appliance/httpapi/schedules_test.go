package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/scheduler"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// fakeRunner is an appliance.JobRunner that knows four job kinds and
// finishes every job at once with 42 rows.
type fakeRunner struct{}

func (fakeRunner) ValidateJob(_ context.Context, kind string, _ json.RawMessage) error {
	switch kind {
	case "materialize-incremental", "retention", "backup", "statistics":
		return nil
	}
	return appliance.Invalid("kind", "unknown job kind %q", kind)
}

func (fakeRunner) Run(_ context.Context, kind string, args json.RawMessage, origin string) (*appliance.Job, error) {
	return &appliance.Job{ID: "1", Kind: kind, Args: args, State: appliance.JobSucceeded, RowsDone: 42, Schedule: origin}, nil
}

func (r fakeRunner) Submit(ctx context.Context, kind string, args json.RawMessage, origin string) (*appliance.Job, error) {
	return r.Run(ctx, kind, args, origin)
}

func (fakeRunner) Job(_ context.Context, id string) (*appliance.Job, error) {
	return nil, appliance.NotFound("job", id)
}

func (fakeRunner) Jobs(context.Context, appliance.JobFilter) ([]*appliance.Job, error) {
	return nil, nil
}

func (fakeRunner) Cancel(_ context.Context, id string) (*appliance.Job, error) {
	return nil, appliance.NotFound("job", id)
}

// newScheduleNode is newTestNode with a running scheduler over the node's
// store. Its clock is fixed; firing follows the real clock, so the tests'
// schedules are ones that do not fire while they run.
func newScheduleNode(t *testing.T) *testNode {
	t.Helper()
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return n.now }
	jobs := fakeRunner{}
	sched := scheduler.New(n.store, jobs, scheduler.Options{Now: now})
	if err := sched.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sched.Close(context.Background()); err != nil {
			t.Errorf("close scheduler: %v", err)
		}
	})
	n.srv = httpapi.New(httpapi.Config{Now: now}, httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store,
		Audit: n.store, Schedules: sched, Jobs: jobs})
	return n
}

// yearly fires at 03:00 Dubai time on January 1st: never during a test.
func yearly(name string) map[string]any {
	return map[string]any{"name": name, "cron": "0 3 1 1 *", "timezone": "Asia/Dubai", "job": "materialize-incremental",
		"args": map[string]any{"view": "user_stats"}}
}

func TestSchedules_CreateListRunHistory(t *testing.T) {
	n := newScheduleNode(t)
	r := n.admin("POST", "/api/v1/schedules", yearly("nightly_mat"), 201).json(t)
	if r["timezone"] != "Asia/Dubai" || r["next_run"] != "2027-01-01T03:00:00+04:00" || r["next_run_utc"] != "2026-12-31T23:00:00Z" ||
		r["created_by"] != "admin" || r["running"] != false {
		t.Fatalf("created: %v", r)
	}
	n.admin("POST", "/api/v1/schedules", yearly("nightly_mat"), 200) // a retry
	changed := yearly("nightly_mat")
	changed["cron"] = "@daily"
	if code, _ := n.admin("POST", "/api/v1/schedules", changed, 409).errorOf(t); code != appliance.ECONFLICT {
		t.Fatalf("conflict code %q", code)
	}
	delete(changed, "name")
	r = n.admin("PUT", "/api/v1/schedules/nightly_mat", changed, 200).json(t)
	if r["cron"] != "@daily" || r["next_run"] != "2026-06-02T00:00:00+04:00" {
		t.Fatalf("replaced: %v", r)
	}
	changed["name"] = "other"
	if _, field := n.admin("PUT", "/api/v1/schedules/nightly_mat", changed, 400).errorOf(t); field != "name" {
		t.Fatalf("name mismatch names field %q", field)
	}
	n.admin("PUT", "/api/v1/schedules/nightly_mat", yearly("nightly_mat"), 200)
	n.admin("PUT", "/api/v1/schedules/stats", map[string]any{"cron": "0 4 1 1 *", "job": "statistics"}, 201)

	list := n.admin("GET", "/api/v1/schedules", nil, 200).json(t)["schedules"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["name"] != "nightly_mat" || list[1].(map[string]any)["timezone"] != "UTC" {
		t.Fatalf("list: %v", list)
	}

	run := n.admin("POST", "/api/v1/schedules/nightly_mat/run", nil, 202).json(t)
	if run["trigger"] != "manual" || run["status"] != "running" || run["actor"] != "admin" {
		t.Fatalf("run now: %v", run)
	}
	id := run["id"].(float64)
	var last map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		runs := n.admin("GET", "/api/v1/schedules/nightly_mat/runs", nil, 200).json(t)["runs"].([]any)
		if len(runs) == 1 {
			if last = runs[0].(map[string]any); last["status"] != "running" {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if last == nil || last["id"] != id || last["status"] != "succeeded" || last["rows"] != float64(42) || last["job_id"] != "1" ||
		last["started_at"] == nil || last["ended_at"] == nil {
		t.Fatalf("run in history: %v", last)
	}
	got := n.admin("GET", "/api/v1/schedules/nightly_mat", nil, 200).json(t)
	if lr, _ := got["last_run"].(map[string]any); lr["id"] != id {
		t.Fatalf("last run in the schedule: %v", got)
	}

	n.admin("POST", "/api/v1/schedules/nightly_mat/run", nil, 202)
	page := n.admin("GET", "/api/v1/schedules/nightly_mat/runs?limit=1", nil, 200).json(t)
	if len(page["runs"].([]any)) != 1 || page["next_before"] == nil {
		t.Fatalf("first page: %v", page)
	}
	before := fmt.Sprint(page["next_before"])
	page = n.admin("GET", "/api/v1/schedules/nightly_mat/runs?limit=1&before="+before, nil, 200).json(t)
	if runs := page["runs"].([]any); len(runs) != 1 || runs[0].(map[string]any)["id"] != id || page["next_before"] != nil {
		t.Fatalf("second page: %v", page)
	}

	n.admin("DELETE", "/api/v1/schedules/nightly_mat", nil, 204)
	n.admin("GET", "/api/v1/schedules/nightly_mat", nil, 404)
	n.admin("GET", "/api/v1/schedules/nightly_mat/runs", nil, 404)
	n.admin("POST", "/api/v1/schedules/nightly_mat/run", nil, 404)
	n.admin("DELETE", "/api/v1/schedules/nightly_mat", nil, 404)

	// The identical retry and the refused requests wrote nothing.
	var actions []string
	for _, e := range n.admin("GET", "/api/v1/audit?action=schedule.", nil, 200).json(t)["entries"].([]any) {
		e := e.(map[string]any)
		actions = append(actions, fmt.Sprint(e["action"], " ", e["object"]))
	}
	want := []string{"schedule.create schedule/nightly_mat", "schedule.replace schedule/nightly_mat", "schedule.replace schedule/nightly_mat",
		"schedule.create schedule/stats", "schedule.delete schedule/nightly_mat"}
	if fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Fatalf("audit:\n got %q\nwant %q", actions, want)
	}
}

func TestSchedules_BadInput(t *testing.T) {
	n := newScheduleNode(t)
	with := func(k string, v any) map[string]any {
		m := yearly("bad")
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name  string
		body  any
		field string
	}{
		{"cron that does not parse", with("cron", "*/5 * * *"), "cron"},
		{"cron out of range", with("cron", "0 25 * * *"), "cron"},
		{"cron that never fires", with("cron", "0 0 31 2 *"), "cron"},
		{"cron with seconds", with("cron", "0 */5 * * * *"), "cron"},
		{"unknown time zone", with("timezone", "Asia/Atlantis"), "timezone"},
		{"zone abbreviation", with("timezone", "GST"), "timezone"},
		{"unknown job kind", with("job", "mine_coins"), "job"},
		{"no job", with("job", nil), "job"},
		{"bad name", with("name", "Nightly Mat"), "name"},
		{"args not an object", with("args", []int{1}), "args"},
		{"unknown field", with("every", "5m"), "every"},
		{"cron of the wrong type", with("cron", 5), "cron"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, field := n.admin("POST", "/api/v1/schedules", tt.body, 400).errorOf(t)
			if code != appliance.EINVALID || field != tt.field {
				t.Fatalf("code %q field %q, want invalid %q", code, field, tt.field)
			}
		})
	}
	n.admin("POST", "/api/v1/schedules", yearly("ok"), 201)
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "before=0", "before=-1"} {
		if _, field := n.admin("GET", "/api/v1/schedules/ok/runs?"+q, nil, 400).errorOf(t); field == "" {
			t.Fatalf("%s: no field named", q)
		}
	}
	if list := n.admin("GET", "/api/v1/schedules", nil, 200).json(t)["schedules"].([]any); len(list) != 1 {
		t.Fatalf("refused schedules were stored: %v", list)
	}
}

func TestSchedules_Roles(t *testing.T) {
	n := newScheduleNode(t)
	n.admin("POST", "/api/v1/schedules", yearly("mat"), 201)
	reader, writer := n.token("reader"), n.token("writer")
	tests := []struct {
		name, method, path, token string
		body                      any
		want                      int
	}{
		{"reader cannot create", "POST", "/api/v1/schedules", reader, yearly("x"), 403},
		{"writer cannot create", "POST", "/api/v1/schedules", writer, yearly("x"), 403},
		{"reader cannot replace", "PUT", "/api/v1/schedules/mat", reader, yearly("mat"), 403},
		{"reader cannot run", "POST", "/api/v1/schedules/mat/run", reader, nil, 403},
		{"reader cannot delete", "DELETE", "/api/v1/schedules/mat", reader, nil, 403},
		{"reader lists", "GET", "/api/v1/schedules", reader, nil, 200},
		{"reader reads one", "GET", "/api/v1/schedules/mat", reader, nil, 200},
		{"reader reads runs", "GET", "/api/v1/schedules/mat/runs", reader, nil, 200},
		{"no token", "GET", "/api/v1/schedules", "", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := n.do(tt.method, tt.path, tt.token, "application/json", tt.body); r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
		})
	}
}

func TestSchedules_NodeWithoutScheduler(t *testing.T) {
	n := newTestNode(t, httpapi.Config{})
	if code, _ := n.admin("GET", "/api/v1/schedules", nil, 503).errorOf(t); code != appliance.EUNAVAILABLE {
		t.Fatalf("code %q", code)
	}
}
