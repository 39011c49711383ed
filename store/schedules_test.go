package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

func adminCtx(t *testing.T) context.Context {
	return appliance.NewContextWithCaller(t.Context(), appliance.Caller{Name: "alice", Role: appliance.RoleAdmin})
}

func testSchedule(name string) *appliance.Schedule {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	return &appliance.Schedule{Name: name, Cron: "*/5 * * * *", Timezone: "Asia/Dubai", Job: "materialize-incremental",
		Args: []byte(`{"view":"user_stats"}`), CreatedAt: at, CreatedBy: "alice", UpdatedAt: at}
}

func mustPutSchedule(t *testing.T, s *store.Store, sc *appliance.Schedule) {
	t.Helper()
	if _, err := s.PutSchedule(adminCtx(t), sc); err != nil {
		t.Fatal(err)
	}
}

func TestStore_Schedules_CreateReplaceDelete(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	ctx := adminCtx(t)

	if list, err := s.Schedules(ctx); err != nil || len(list) != 0 {
		t.Fatalf("fresh store: %v, %v", list, err)
	}
	if _, err := s.Schedule(ctx, "nightly"); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("unknown schedule: %v", err)
	}
	if _, _, err := s.Runs(ctx, "nightly", appliance.RunFilter{}); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("runs of unknown schedule: %v", err)
	}
	if st, err := s.ScheduleState(ctx, "nightly"); err != nil || !st.CheckedAt.IsZero() {
		t.Fatalf("state of unknown schedule: %+v, %v", st, err)
	}

	sc := testSchedule("nightly")
	created, err := s.PutSchedule(ctx, sc)
	if err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	repl := testSchedule("nightly")
	repl.Cron, repl.CreatedAt, repl.CreatedBy, repl.UpdatedAt = "@hourly", sc.CreatedAt.Add(time.Hour), "bob", sc.CreatedAt.Add(time.Hour)
	created, err = s.PutSchedule(ctx, repl)
	if err != nil || created {
		t.Fatalf("replace: created=%v err=%v", created, err)
	}
	got, err := s.Schedule(ctx, "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if got.Cron != "@hourly" || !got.CreatedAt.Equal(sc.CreatedAt) || got.CreatedBy != "alice" || !got.UpdatedAt.Equal(repl.UpdatedAt) {
		t.Fatalf("replaced schedule: %+v", got)
	}
	if string(got.Args) != `{"view":"user_stats"}` {
		t.Fatalf("args: %s", got.Args)
	}

	if _, err := s.PutSchedule(ctx, &appliance.Schedule{Name: "Bad Name", Cron: "@daily", Job: "x"}); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Fatalf("bad name: %v", err)
	}

	run := &appliance.ScheduleRun{Schedule: "nightly", Trigger: appliance.TriggerManual, Status: appliance.RunRunning}
	if err := s.AppendRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := s.PutScheduleStates(ctx, map[string]appliance.ScheduleState{"nightly": {CheckedAt: sc.CreatedAt}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSchedule(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSchedule(ctx, "nightly"); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("second delete: %v", err)
	}
	// A run that ends after its schedule was deleted and made again must
	// not land in the new schedule's history.
	mustPutSchedule(t, s, testSchedule("nightly"))
	if st, err := s.ScheduleState(ctx, "nightly"); err != nil || !st.CheckedAt.IsZero() {
		t.Fatalf("state survived the delete: %+v, %v", st, err)
	}
	run.Status = appliance.RunSucceeded
	if err := s.UpdateRun(ctx, run); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("update of a deleted schedule's run: %v", err)
	}
	again := &appliance.ScheduleRun{Schedule: "nightly", Trigger: appliance.TriggerManual, Status: appliance.RunRunning}
	if err := s.AppendRun(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.ID <= run.ID {
		t.Fatalf("run id %d reused or went back (was %d)", again.ID, run.ID)
	}
	runs, _, err := s.Runs(ctx, "nightly", appliance.RunFilter{})
	if err != nil || len(runs) != 1 || runs[0].ID != again.ID {
		t.Fatalf("history after re-creation: %+v, %v", runs, err)
	}

	entries, _, err := s.AuditEntries(ctx, appliance.AuditFilter{Action: "schedule."})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action+" "+e.Object+" "+e.Actor)
	}
	want := []string{"schedule.create schedule/nightly alice", "schedule.replace schedule/nightly alice",
		"schedule.delete schedule/nightly alice", "schedule.create schedule/nightly alice"}
	if fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Fatalf("audit:\n got %q\nwant %q", actions, want)
	}
}

func TestStore_ScheduleRuns_PagingAndUpdate(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	ctx := adminCtx(t)
	mustPutSchedule(t, s, testSchedule("a"))
	mustPutSchedule(t, s, testSchedule("b"))
	if err := s.AppendRun(ctx, &appliance.ScheduleRun{Schedule: "nope"}); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("run of unknown schedule: %v", err)
	}
	var ids []uint64
	for i := range 5 {
		for _, name := range []string{"a", "b"} {
			r := &appliance.ScheduleRun{Schedule: name, Trigger: appliance.TriggerCron, Status: appliance.RunRunning, Rows: int64(i)}
			if err := s.AppendRun(ctx, r); err != nil {
				t.Fatal(err)
			}
			if name == "a" {
				ids = append(ids, r.ID)
			}
		}
	}
	page, more, err := s.Runs(ctx, "a", appliance.RunFilter{Limit: 2})
	if err != nil || !more || len(page) != 2 || page[0].ID != ids[4] || page[1].ID != ids[3] {
		t.Fatalf("first page: %+v more=%v err=%v", page, more, err)
	}
	page, more, err = s.Runs(ctx, "a", appliance.RunFilter{Limit: 2, Before: page[1].ID})
	if err != nil || !more || len(page) != 2 || page[0].ID != ids[2] || page[1].ID != ids[1] {
		t.Fatalf("second page: %+v more=%v err=%v", page, more, err)
	}
	page, more, err = s.Runs(ctx, "a", appliance.RunFilter{Limit: 2, Before: page[1].ID})
	if err != nil || more || len(page) != 1 || page[0].ID != ids[0] {
		t.Fatalf("last page: %+v more=%v err=%v", page, more, err)
	}
	// An id past the end, as a client might pass, lists from the newest.
	if page, _, err = s.Runs(ctx, "a", appliance.RunFilter{Before: 1 << 40}); err != nil || len(page) != 5 {
		t.Fatalf("before past the end: %d runs, %v", len(page), err)
	}

	r := page[0]
	end := time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC)
	r.Status, r.EndedAt, r.Rows, r.JobID = appliance.RunSucceeded, &end, 42, "7"
	if err := s.UpdateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	page, _, _ = s.Runs(ctx, "a", appliance.RunFilter{Limit: 1})
	if got := page[0]; got.Status != appliance.RunSucceeded || got.Rows != 42 || got.JobID != "7" || !got.EndedAt.Equal(end) {
		t.Fatalf("updated run: %+v", got)
	}
	if err := s.UpdateRun(ctx, &appliance.ScheduleRun{Schedule: "a", ID: 999}); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("update of unknown run: %v", err)
	}
}

// Appending from many goroutines shares group commits; the history keeps
// exactly the newest 1000 runs.
func TestStore_ScheduleRuns_HistoryBounded(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	ctx := adminCtx(t)
	mustPutSchedule(t, s, testSchedule("busy"))
	const n = 1100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- s.AppendRun(ctx, &appliance.ScheduleRun{Schedule: "busy", Trigger: appliance.TriggerCron, Status: appliance.RunSkipped})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	runs, more, err := s.Runs(ctx, "busy", appliance.RunFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1000 || more {
		t.Fatalf("%d runs kept (more=%v), want 1000", len(runs), more)
	}
	if runs[0].ID != n || runs[999].ID != n-999 {
		t.Fatalf("kept runs %d..%d, want %d..%d", runs[999].ID, runs[0].ID, n-999, n)
	}
}

func TestStore_ScheduleStates_SurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(t.Context(), dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := adminCtx(t)
	mustPutSchedule(t, s, testSchedule("kept"))
	checked := time.Date(2026, 6, 1, 12, 5, 0, 0, time.FixedZone("GST", 4*3600))
	err = s.PutScheduleStates(ctx, map[string]appliance.ScheduleState{
		"kept": {CheckedAt: checked, LastFiredAt: checked},
		"gone": {CheckedAt: checked}, // no such schedule: skipped
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = storetest.OpenDir(t, dir, store.Options{})
	list, err := s.Schedules(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "kept" || list[0].Timezone != "Asia/Dubai" {
		t.Fatalf("after reopen: %+v, %v", list, err)
	}
	st, err := s.ScheduleState(ctx, "kept")
	if err != nil || !st.CheckedAt.Equal(checked) || st.CheckedAt.Location() != time.UTC || !st.LastFiredAt.Equal(checked) {
		t.Fatalf("state after reopen: %+v, %v", st, err)
	}
	if st, _ := s.ScheduleState(ctx, "gone"); !st.CheckedAt.IsZero() {
		t.Fatalf("state stored for a schedule that does not exist: %+v", st)
	}
}
