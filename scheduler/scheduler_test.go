package scheduler

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// fakeJobs is an appliance.JobRunner whose Run calls runFn.
type fakeJobs struct {
	mu    sync.Mutex
	runFn func(ctx context.Context, kind string, args json.RawMessage, origin string) (*appliance.Job, error)
	calls []string // origin of each Run
}

func (f *fakeJobs) Run(ctx context.Context, kind string, args json.RawMessage, origin string) (*appliance.Job, error) {
	f.mu.Lock()
	f.calls = append(f.calls, origin)
	n := len(f.calls)
	fn := f.runFn
	f.mu.Unlock()
	if fn != nil {
		return fn(ctx, kind, args, origin)
	}
	return &appliance.Job{ID: string(rune('0' + n%10)), Kind: kind, State: appliance.JobSucceeded, RowsDone: 10, Schedule: origin}, nil
}

func (f *fakeJobs) ValidateJob(_ context.Context, kind string, args json.RawMessage) error {
	switch kind {
	case "materialize-incremental", "retention", "backup", "statistics":
	default:
		return appliance.Invalid("kind", "unknown job kind %q", kind)
	}
	var m map[string]any
	if err := json.Unmarshal(args, &m); err != nil {
		return appliance.Invalid("args", "%v", err)
	}
	if _, bad := m["bad"]; bad {
		return appliance.Invalid("args.bad", "not allowed")
	}
	return nil
}

func (f *fakeJobs) Submit(context.Context, string, json.RawMessage, string) (*appliance.Job, error) {
	panic("not used")
}
func (f *fakeJobs) Job(context.Context, string) (*appliance.Job, error) { panic("not used") }
func (f *fakeJobs) Jobs(context.Context, appliance.JobFilter) ([]*appliance.Job, error) {
	panic("not used")
}
func (f *fakeJobs) Cancel(context.Context, string) (*appliance.Job, error) { panic("not used") }

func (f *fakeJobs) setRun(fn func(ctx context.Context, kind string, args json.RawMessage, origin string) (*appliance.Job, error)) {
	f.mu.Lock()
	f.runFn = fn
	f.mu.Unlock()
}

// clock is the injected Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func adminCtx(t *testing.T) context.Context {
	return appliance.NewContextWithCaller(t.Context(), appliance.Caller{Name: "alice", Role: appliance.RoleAdmin})
}

// startScheduler starts a scheduler that fires only when a test calls fire,
// and closes it when the test ends.
func startScheduler(t *testing.T, st appliance.ScheduleStore, jobs appliance.JobRunner, c *clock) *Scheduler {
	t.Helper()
	s := New(st, jobs, Options{Now: c.Now})
	if err := s.start(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close scheduler: %v", err)
		}
	})
	return s
}

func mustCreate(t *testing.T, s *Scheduler, sc *appliance.Schedule) *appliance.ScheduleStatus {
	t.Helper()
	st, created, err := s.CreateSchedule(adminCtx(t), sc)
	if err != nil || !created {
		t.Fatalf("create %s: created=%v err=%v", sc.Name, created, err)
	}
	return st
}

func (s *Scheduler) slotOf(t *testing.T, name string) *slot {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.slots[name]
	if sl == nil {
		t.Fatalf("no slot %q", name)
	}
	return sl
}

func runs(t *testing.T, s *Scheduler, name string) []*appliance.ScheduleRun {
	t.Helper()
	list, _, err := s.ScheduleRuns(t.Context(), name, appliance.RunFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// waitRun polls until run id has ended.
func waitRun(t *testing.T, s *Scheduler, name string, id uint64) *appliance.ScheduleRun {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range runs(t, s, name) {
			if r.ID == id && r.Status != appliance.RunRunning {
				return r
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("run %d of %s did not end", id, name)
	return nil
}

func TestScheduler_CreateReplaceValidate(t *testing.T) {
	c := &clock{t: time.Date(2026, 6, 1, 12, 3, 0, 0, time.UTC)}
	s := startScheduler(t, storetest.Open(t, store.Options{}), &fakeJobs{}, c)
	ctx := adminCtx(t)

	st := mustCreate(t, s, &appliance.Schedule{Name: "mat", Cron: " */5 * * * * ", Timezone: "Asia/Dubai", Job: "materialize-incremental",
		Args: json.RawMessage(`{ "view": "user_stats" }`)})
	if st.Cron != "*/5 * * * *" || string(st.Args) != `{"view":"user_stats"}` || st.CreatedBy != "alice" {
		t.Fatalf("normalized: %+v", st.Schedule)
	}
	if want := time.Date(2026, 6, 1, 16, 5, 0, 0, mustZone(t, "Asia/Dubai")); !st.NextRun.Equal(want) || st.NextRun.Location().String() != "Asia/Dubai" {
		t.Fatalf("next run %s, want %s in Dubai", st.NextRun, want)
	}

	// The same definition again (a retried request): nothing changes.
	st2, created, err := s.CreateSchedule(ctx, &appliance.Schedule{Name: "mat", Cron: "*/5 * * * *", Timezone: "Asia/Dubai",
		Job: "materialize-incremental", Args: json.RawMessage(`{"view":"user_stats"}`)})
	if err != nil || created || !st2.UpdatedAt.Equal(st.UpdatedAt) {
		t.Fatalf("identical create: created=%v err=%v", created, err)
	}
	_, _, err = s.CreateSchedule(ctx, &appliance.Schedule{Name: "mat", Cron: "@hourly", Job: "materialize-incremental"})
	if appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("different definition under a taken name: %v", err)
	}
	c.Set(c.Now().Add(time.Minute))
	st3, created, err := s.ReplaceSchedule(ctx, &appliance.Schedule{Name: "mat", Cron: "@hourly", Job: "materialize-incremental"})
	if err != nil || created || st3.Timezone != "UTC" || string(st3.Args) != "{}" || !st3.CreatedAt.Equal(st.CreatedAt) || !st3.UpdatedAt.After(st.UpdatedAt) {
		t.Fatalf("replace: %+v created=%v err=%v", st3, created, err)
	}
	if want := time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC); !st3.NextRun.Equal(want) {
		t.Fatalf("next run after replace %s, want %s", st3.NextRun, want)
	}

	bad := []struct {
		name  string
		in    appliance.Schedule
		field string
	}{
		{"bad name", appliance.Schedule{Name: "Mat!", Cron: "@daily", Job: "retention"}, "name"},
		{"no cron", appliance.Schedule{Name: "x", Job: "retention"}, "cron"},
		{"bad cron", appliance.Schedule{Name: "x", Cron: "*/5 * * *", Job: "retention"}, "cron"},
		{"unknown zone", appliance.Schedule{Name: "x", Cron: "@daily", Timezone: "Europe/Atlantis", Job: "retention"}, "timezone"},
		{"no job", appliance.Schedule{Name: "x", Cron: "@daily"}, "job"},
		{"unknown job kind", appliance.Schedule{Name: "x", Cron: "@daily", Job: "mine-bitcoin"}, "job"},
		{"args not an object", appliance.Schedule{Name: "x", Cron: "@daily", Job: "retention", Args: json.RawMessage(`[1]`)}, "args"},
		{"args not JSON", appliance.Schedule{Name: "x", Cron: "@daily", Job: "retention", Args: json.RawMessage(`{`)}, "args"},
		{"args refused by the runner", appliance.Schedule{Name: "x", Cron: "@daily", Job: "retention", Args: json.RawMessage(`{"bad":1}`)}, "args.bad"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.CreateSchedule(ctx, &tt.in)
			ae, ok := err.(*appliance.Error)
			if !ok || ae.Code != appliance.EINVALID || ae.Field != tt.field {
				t.Fatalf("error %v, want invalid %s", err, tt.field)
			}
		})
	}
	if list, _ := s.Schedules(ctx); len(list) != 1 {
		t.Fatalf("refused schedules were stored: %d schedules", len(list))
	}
}

func TestScheduler_Fire_RecordsRun(t *testing.T) {
	c := &clock{t: time.Date(2026, 6, 1, 12, 3, 0, 0, time.UTC)}
	jobs := &fakeJobs{}
	s := startScheduler(t, storetest.Open(t, store.Options{}), jobs, c)
	mustCreate(t, s, &appliance.Schedule{Name: "mat", Cron: "*/5 * * * *", Job: "materialize-incremental"})

	c.Set(time.Date(2026, 6, 1, 12, 5, 0, 2e6, time.UTC))
	s.fire(s.slotOf(t, "mat"))
	list := runs(t, s, "mat")
	if len(list) != 1 {
		t.Fatalf("runs: %+v", list)
	}
	r := list[0]
	if r.Trigger != appliance.TriggerCron || r.Status != appliance.RunSucceeded || r.Rows != 10 || r.JobID == "" ||
		!r.ScheduledAt.Equal(time.Date(2026, 6, 1, 12, 5, 0, 0, time.UTC)) || r.EndedAt == nil || r.Actor != "scheduler" {
		t.Fatalf("run: %+v", r)
	}
	if jobs.calls[0] != "mat" {
		t.Fatalf("job origin %q, want the schedule's name", jobs.calls[0])
	}
	st, _ := s.store.ScheduleState(t.Context(), "mat")
	if !st.CheckedAt.Equal(r.ScheduledAt) || !st.LastFiredAt.Equal(r.ScheduledAt) {
		t.Fatalf("state after a firing: %+v", st)
	}
	got, err := s.Schedule(t.Context(), "mat")
	if err != nil || got.LastRun == nil || got.LastRun.ID != r.ID || got.Running {
		t.Fatalf("status after a run: %+v, %v", got, err)
	}

	// Failures are recorded with the job's error and id.
	jobs.setRun(func(_ context.Context, kind string, _ json.RawMessage, _ string) (*appliance.Job, error) {
		return &appliance.Job{ID: "77", Kind: kind, State: appliance.JobFailed, RowsDone: 3, Error: "view user_stats@1 not found"}, nil
	})
	c.Set(time.Date(2026, 6, 1, 12, 10, 0, 0, time.UTC))
	s.fire(s.slotOf(t, "mat"))
	if r := runs(t, s, "mat")[0]; r.Status != appliance.RunFailed || r.JobID != "77" || r.Rows != 3 || r.Error != "view user_stats@1 not found" {
		t.Fatalf("failed run: %+v", r)
	}
}

func TestScheduler_Overlap_Skipped(t *testing.T) {
	c := &clock{t: time.Date(2026, 6, 1, 12, 3, 0, 0, time.UTC)}
	jobs := &fakeJobs{}
	s := startScheduler(t, storetest.Open(t, store.Options{}), jobs, c)
	mustCreate(t, s, &appliance.Schedule{Name: "slow", Cron: "*/5 * * * *", Job: "statistics"})

	release, started := make(chan struct{}), make(chan struct{}, 1)
	jobs.setRun(func(ctx context.Context, kind string, _ json.RawMessage, _ string) (*appliance.Job, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &appliance.Job{ID: "1", Kind: kind, State: appliance.JobSucceeded, RowsDone: 5}, nil
	})
	manual, err := s.RunSchedule(adminCtx(t), "slow")
	if err != nil {
		t.Fatal(err)
	}
	if manual.Status != appliance.RunRunning || manual.Trigger != appliance.TriggerManual || manual.Actor != "alice" || manual.ID == 0 {
		t.Fatalf("manual run: %+v", manual)
	}
	<-started

	if _, err := s.RunSchedule(adminCtx(t), "slow"); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("second manual run while running: %v", err)
	}
	c.Set(time.Date(2026, 6, 1, 12, 5, 0, 0, time.UTC))
	s.fire(s.slotOf(t, "slow")) // returns at once: skipped
	list := runs(t, s, "slow")
	if len(list) != 2 || list[0].Status != appliance.RunSkipped || list[0].Trigger != appliance.TriggerCron ||
		!strings.Contains(list[0].Error, "still going") {
		t.Fatalf("overlapping firing: %+v", list[0])
	}
	if st, _ := s.Schedule(t.Context(), "slow"); !st.Running {
		t.Fatal("status does not show the run in progress")
	}

	close(release)
	r := waitRun(t, s, "slow", manual.ID)
	if r.Status != appliance.RunSucceeded || r.Rows != 5 {
		t.Fatalf("manual run ended: %+v", r)
	}
	// Free again: the next firing runs.
	jobs.setRun(nil)
	c.Set(time.Date(2026, 6, 1, 12, 10, 0, 0, time.UTC))
	s.fire(s.slotOf(t, "slow"))
	if r := runs(t, s, "slow")[0]; r.Status != appliance.RunSucceeded {
		t.Fatalf("firing after the overlap: %+v", r)
	}
}

func TestScheduler_Panic_RecordedAndSchedulerGoesOn(t *testing.T) {
	c := &clock{t: time.Date(2026, 6, 1, 12, 3, 0, 0, time.UTC)}
	jobs := &fakeJobs{}
	s := startScheduler(t, storetest.Open(t, store.Options{}), jobs, c)
	mustCreate(t, s, &appliance.Schedule{Name: "fragile", Cron: "*/5 * * * *", Job: "backup"})

	jobs.setRun(func(context.Context, string, json.RawMessage, string) (*appliance.Job, error) {
		panic("index out of range [3] with length 3")
	})
	c.Set(time.Date(2026, 6, 1, 12, 5, 0, 0, time.UTC))
	// Through the cron chain, as robfig would call it.
	s.cron.Entry(s.slotOf(t, "fragile").entry).WrappedJob.Run()
	r := runs(t, s, "fragile")[0]
	if r.Status != appliance.RunFailed || r.Error != "job panicked: index out of range [3] with length 3" || r.EndedAt == nil {
		t.Fatalf("panicked run: %+v", r)
	}

	// A manual run panicking in its own goroutine is recovered too.
	run, err := s.RunSchedule(adminCtx(t), "fragile")
	if err != nil {
		t.Fatal(err)
	}
	if r := waitRun(t, s, "fragile", run.ID); r.Status != appliance.RunFailed || !strings.Contains(r.Error, "panicked") {
		t.Fatalf("panicked manual run: %+v", r)
	}

	jobs.setRun(nil)
	c.Set(time.Date(2026, 6, 1, 12, 10, 0, 0, time.UTC))
	s.fire(s.slotOf(t, "fragile"))
	if r := runs(t, s, "fragile")[0]; r.Status != appliance.RunSucceeded {
		t.Fatalf("run after the panics: %+v", r)
	}
}

func TestScheduler_DaylightSaving_FallBackRunsOnce(t *testing.T) {
	c := &clock{t: time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC)}
	s := startScheduler(t, storetest.Open(t, store.Options{}), &fakeJobs{}, c)
	mustCreate(t, s, &appliance.Schedule{Name: "nightly", Cron: "30 2 * * *", Timezone: "Europe/Berlin", Job: "retention"})
	sl := s.slotOf(t, "nightly")

	for _, at := range []time.Time{
		time.Date(2026, 10, 25, 0, 30, 0, 1e6, time.UTC), // 02:30 CEST
		time.Date(2026, 10, 25, 1, 30, 0, 1e6, time.UTC), // 02:30 CET: robfig fires again
		time.Date(2026, 10, 26, 1, 30, 0, 1e6, time.UTC), // next day
	} {
		c.Set(at)
		s.fire(sl)
	}
	list := runs(t, s, "nightly")
	var got []string
	for i := len(list) - 1; i >= 0; i-- {
		got = append(got, list[i].ScheduledAt.Format("01-02T15:04Z")+" "+string(list[i].Status))
	}
	want := []string{"10-25T00:30Z succeeded", "10-25T01:30Z skipped", "10-26T01:30Z succeeded"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("runs:\n got %v\nwant %v", got, want)
	}
	if !strings.Contains(list[1].Error, "daylight saving") {
		t.Fatalf("skip reason: %q", list[1].Error)
	}
}

func TestScheduler_PassedOverFirings_Reported(t *testing.T) {
	c := &clock{t: time.Date(2026, 6, 1, 12, 3, 0, 0, time.UTC)}
	s := startScheduler(t, storetest.Open(t, store.Options{}), &fakeJobs{}, c)
	mustCreate(t, s, &appliance.Schedule{Name: "mat", Cron: "*/5 * * * *", Job: "materialize-incremental"})
	// The process slept through 12:05..12:20; robfig wakes late once.
	c.Set(time.Date(2026, 6, 1, 12, 21, 0, 0, time.UTC))
	s.fire(s.slotOf(t, "mat"))
	list := runs(t, s, "mat")
	if len(list) != 2 {
		t.Fatalf("runs: %+v", list)
	}
	ran, missed := list[0], list[1]
	if !ran.ScheduledAt.Equal(time.Date(2026, 6, 1, 12, 20, 0, 0, time.UTC)) || ran.Status != appliance.RunSucceeded {
		t.Fatalf("late firing: %+v", ran)
	}
	if missed.Status != appliance.RunMissed || missed.Missed != 3 || !missed.ScheduledAt.Equal(time.Date(2026, 6, 1, 12, 5, 0, 0, time.UTC)) ||
		!missed.LastMissedAt.Equal(time.Date(2026, 6, 1, 12, 15, 0, 0, time.UTC)) {
		t.Fatalf("passed-over report: %+v", missed)
	}
}

// A node closed cleanly, down for an hour, then started on the reopened
// store: schedules come back, and the downtime's firings are reported once.
func TestScheduler_RestoredAfterReopen_MissedReported(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(t.Context(), dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	down := time.Date(2026, 6, 1, 12, 2, 0, 0, time.UTC)
	c := &clock{t: time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC)}
	s := New(st, &fakeJobs{}, Options{Now: c.Now})
	if err := s.start(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, &appliance.Schedule{Name: "mat", Cron: "*/5 * * * *", Timezone: "Asia/Dubai", Job: "materialize-incremental"})
	mustCreate(t, s, &appliance.Schedule{Name: "nightly", Cron: "0 3 * * *", Timezone: "Europe/Berlin", Job: "backup"})
	c.Set(down)
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = storetest.OpenDir(t, dir, store.Options{})
	c.Set(down.Add(time.Hour))
	s = startScheduler(t, st, &fakeJobs{}, c)
	list, err := s.Schedules(t.Context())
	if err != nil || len(list) != 2 || list[0].Name != "mat" || list[1].Name != "nightly" {
		t.Fatalf("restored: %+v, %v", list, err)
	}
	mat := list[0]
	if want := time.Date(2026, 6, 1, 13, 5, 0, 0, time.UTC); !mat.NextRun.Equal(want) {
		t.Fatalf("next run %s, want %s", mat.NextRun, want)
	}
	r := mat.LastRun
	if r == nil || r.Status != appliance.RunMissed || r.Trigger != appliance.TriggerMissed || r.Missed != 12 ||
		!r.ScheduledAt.Equal(time.Date(2026, 6, 1, 12, 5, 0, 0, time.UTC)) || !r.LastMissedAt.Equal(time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC)) {
		t.Fatalf("missed report: %+v", r)
	}
	if !strings.Contains(r.Error, "12 firing(s) were missed while the node was down, from 2026-06-01T16:05:00+04:00 to 2026-06-01T17:00:00+04:00") {
		t.Fatalf("missed message: %q", r.Error)
	}
	if got := runs(t, s, "mat"); len(got) != 1 {
		t.Fatalf("missed firings must be reported once, not run: %+v", got)
	}
	if list[1].LastRun != nil {
		t.Fatalf("nightly missed nothing: %+v", list[1].LastRun)
	}

	// A second restart with no downtime reports nothing new.
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s = startScheduler(t, st, &fakeJobs{}, c)
	if got := runs(t, s, "mat"); len(got) != 1 {
		t.Fatalf("restart without downtime reported again: %+v", got)
	}
}

// A run the process died in is closed as failed at the next start.
func TestScheduler_Start_ClosesInterruptedRuns(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	c := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	at := c.Now()
	if _, err := st.PutSchedule(adminCtx(t), &appliance.Schedule{Name: "mat", Cron: "0 0 1 1 *", Timezone: "UTC", Job: "retention", CreatedAt: at, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	r := &appliance.ScheduleRun{Schedule: "mat", Trigger: appliance.TriggerCron, ScheduledAt: at, StartedAt: at, Status: appliance.RunRunning}
	if err := st.AppendRun(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	s := startScheduler(t, st, &fakeJobs{}, c)
	got := runs(t, s, "mat")
	if len(got) != 1 || got[0].Status != appliance.RunFailed || !strings.Contains(got[0].Error, "interrupted") || got[0].EndedAt == nil {
		t.Fatalf("interrupted run: %+v", got)
	}
}

func TestScheduler_Close_CancelsRunsAfterDeadline(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	c := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	jobs := &fakeJobs{}
	s := New(st, jobs, Options{Now: c.Now})
	if err := s.Start(t.Context()); err != nil { // with robfig's loop, to stop it for real
		t.Fatal(err)
	}
	mustCreate(t, s, &appliance.Schedule{Name: "mat", Cron: "0 0 1 1 *", Job: "materialize-incremental"})
	started := make(chan struct{})
	jobs.setRun(func(ctx context.Context, _ string, _ json.RawMessage, _ string) (*appliance.Job, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	run, err := s.RunSchedule(adminCtx(t), "mat")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err == nil {
		t.Fatal("close returned no error though it had to cancel a run")
	}
	list, _, err := st.Runs(t.Context(), "mat", appliance.RunFilter{})
	if err != nil || len(list) != 1 || list[0].ID != run.ID || list[0].Status != appliance.RunCancelled {
		t.Fatalf("run after close: %+v, %v", list, err)
	}
	if _, err := s.RunSchedule(adminCtx(t), "mat"); appliance.ErrorCode(err) != appliance.EUNAVAILABLE {
		t.Fatalf("run after close: %v", err)
	}
	if s, err := st.ScheduleState(t.Context(), "mat"); err != nil || !s.CheckedAt.Equal(c.Now()) {
		t.Fatalf("state saved at close: %+v, %v", s, err)
	}
}

func TestScheduler_Delete(t *testing.T) {
	c := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	s := startScheduler(t, storetest.Open(t, store.Options{}), &fakeJobs{}, c)
	mustCreate(t, s, &appliance.Schedule{Name: "mat", Cron: "*/5 * * * *", Job: "materialize-incremental"})
	sl := s.slotOf(t, "mat")
	if err := s.DeleteSchedule(adminCtx(t), "mat"); err != nil {
		t.Fatal(err)
	}
	c.Set(time.Date(2026, 6, 1, 12, 5, 0, 0, time.UTC))
	s.fire(sl) // a firing already under way when the schedule went
	for _, err := range []error{
		s.DeleteSchedule(adminCtx(t), "mat"),
		func() error { _, err := s.RunSchedule(adminCtx(t), "mat"); return err }(),
		func() error { _, err := s.Schedule(t.Context(), "mat"); return err }(),
		func() error { _, _, err := s.ScheduleRuns(t.Context(), "mat", appliance.RunFilter{}); return err }(),
	} {
		if appliance.ErrorCode(err) != appliance.ENOTFOUND {
			t.Fatalf("after delete: %v", err)
		}
	}
	if len(s.cron.Entries()) != 0 {
		t.Fatal("cron entry left behind")
	}
}

func TestScheduler_NotStarted_Unavailable(t *testing.T) {
	s := New(storetest.Open(t, store.Options{}), &fakeJobs{}, Options{})
	if _, err := s.Schedules(t.Context()); appliance.ErrorCode(err) != appliance.EUNAVAILABLE {
		t.Fatalf("before start: %v", err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err == nil {
		t.Fatal("start after close succeeded")
	}
}

// After a replacement, firings count from the replacement: the new
// expression's firings before it were never due.
func TestScheduler_Replace_NoPhantomMissedFirings(t *testing.T) {
	c := &clock{t: time.Date(2026, 6, 1, 12, 3, 0, 0, time.UTC)}
	s := startScheduler(t, storetest.Open(t, store.Options{}), &fakeJobs{}, c)
	mustCreate(t, s, &appliance.Schedule{Name: "mat", Cron: "*/5 * * * *", Job: "materialize-incremental"})
	c.Set(time.Date(2026, 6, 1, 12, 5, 0, 0, time.UTC))
	s.fire(s.slotOf(t, "mat"))
	c.Set(time.Date(2026, 6, 1, 12, 7, 30, 0, time.UTC))
	if _, _, err := s.ReplaceSchedule(adminCtx(t), &appliance.Schedule{Name: "mat", Cron: "* * * * *", Job: "materialize-incremental"}); err != nil {
		t.Fatal(err)
	}
	c.Set(time.Date(2026, 6, 1, 12, 8, 0, 0, time.UTC))
	s.fire(s.slotOf(t, "mat"))
	list := runs(t, s, "mat")
	if len(list) != 2 || list[0].Status != appliance.RunSucceeded || !list[0].ScheduledAt.Equal(c.Now()) {
		t.Fatalf("runs after replace: %+v", list)
	}
}
