package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // schedules must not depend on the host having zoneinfo

	"github.com/robfig/cron/v3"

	"github.com/mlnode/mlnode/appliance"
)

// Options configures a Scheduler. Zero values take the defaults.
type Options struct {
	Logger *slog.Logger
	// Now is the clock for run records, missed-run detection and next-run
	// times. Firing itself follows the real clock (robfig has no other).
	Now func() time.Time
}

// Scheduler is the robfig/cron implementation of appliance.ScheduleService.
type Scheduler struct {
	store appliance.ScheduleStore
	jobs  appliance.JobRunner
	log   *slog.Logger
	now   func() time.Time
	cron  *cron.Cron

	// mu guards slots and the life-cycle flags, and serializes definition
	// changes so that the check and the write of a create are one step.
	// Lock order: mu, then a slot's mu.
	mu      sync.Mutex
	slots   map[string]*slot
	started bool
	closed  bool

	// ctx is the parent of every run's context, cancelled by Close when
	// its deadline passes before the runs end.
	ctx    context.Context
	cancel context.CancelFunc
	manual sync.WaitGroup // manual runs; cron waits for its own
}

// slot is one schedule's live state. A replaced schedule keeps its slot,
// so that the no-overlap rule holds across the replacement.
type slot struct {
	name string

	mu      sync.Mutex
	def     *appliance.Schedule // never mutated: replaced whole
	spec    *spec               // nil when the stored definition does not parse any more
	err     error               // why spec is nil
	entry   cron.EntryID
	running uint64 // id of the run in progress; runStarting while it is being recorded
	busy    bool
	deleted bool
	// lastDue is the scheduled instant of the last firing handled (run,
	// skipped or reported): the next firing is found after it.
	lastDue time.Time
	// lastFired is the scheduled instant of the last firing that was not
	// a daylight-saving repeat.
	lastFired time.Time
}

// New returns a scheduler over store that starts jobs with jobs. It does
// nothing until Start.
func New(store appliance.ScheduleStore, jobs appliance.JobRunner, opts Options) *Scheduler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Scheduler{store: store, jobs: jobs, log: opts.Logger, now: opts.Now, slots: map[string]*slot{}}
	// Every firing is computed in the schedule's own zone (spec.loc); the
	// cron's location only matters for specs without one, and there are none.
	s.cron = cron.New(cron.WithLocation(time.UTC), cron.WithParser(parser),
		cron.WithLogger(cronLogger{s.log}), cron.WithChain(recoverPanics(s.log)))
	return s
}

// Start loads the stored schedules, reports the firings missed while the
// node was down, marks runs a crash interrupted, and starts firing.
func (s *Scheduler) Start(ctx context.Context) error { return s.start(ctx, true) }

// start is Start; tests pass tick=false to fire by hand, as robfig has no
// fake clock.
func (s *Scheduler) start(ctx context.Context, tick bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("scheduler: Start called twice or after Close")
	}
	defs, err := s.store.Schedules(ctx)
	if err != nil {
		return fmt.Errorf("load schedules: %w", err)
	}
	now := s.now()
	slots := make(map[string]*slot, len(defs))
	states := make(map[string]appliance.ScheduleState, len(defs))
	// A failed start leaves no entries behind, so that Start can be retried.
	unload := func() {
		for _, sl := range slots {
			if sl.spec != nil {
				s.cron.Remove(sl.entry)
			}
		}
	}
	for _, def := range defs {
		sl, err := s.load(ctx, def, now)
		if err != nil {
			unload()
			return err
		}
		slots[def.Name] = sl
		if sl.spec != nil {
			states[def.Name] = appliance.ScheduleState{CheckedAt: now, LastFiredAt: sl.lastFired}
		}
	}
	if err := s.store.PutScheduleStates(ctx, states); err != nil {
		unload()
		return fmt.Errorf("save schedule states: %w", err)
	}
	s.slots = slots
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if tick {
		s.cron.Start()
	}
	s.started = true
	s.log.Info("scheduler started", "schedules", len(defs))
	return nil
}

// load makes the slot of a stored schedule and settles what happened while
// the node was down.
func (s *Scheduler) load(ctx context.Context, def *appliance.Schedule, now time.Time) (*slot, error) {
	sl := &slot{name: def.Name, def: def, lastDue: now}
	if err := s.closeInterrupted(ctx, def.Name, now); err != nil {
		return nil, err
	}
	sp, err := parseSpec(def.Cron, def.Timezone, now)
	if err != nil {
		// Keep it listed with the reason rather than refuse to start the
		// node: e.g. a zone dropped from a newer time zone database.
		s.log.Error("stored schedule cannot be scheduled", "schedule", def.Name, "err", err)
		sl.err = err
		return sl, nil
	}
	sl.spec = sp
	st, err := s.store.ScheduleState(ctx, def.Name)
	if err != nil {
		return nil, fmt.Errorf("load schedule %s: %w", def.Name, err)
	}
	sl.lastFired = st.LastFiredAt
	// Firings before the definition's last change are not its own.
	checked := st.CheckedAt
	if checked.Before(def.UpdatedAt) {
		checked = def.UpdatedAt
	}
	if f := sp.between(checked, now); f.count > 0 {
		run := missedRun(def.Name, sp, f, now, "while the node was down")
		if err := s.store.AppendRun(ctx, run); err != nil {
			return nil, fmt.Errorf("report missed runs of %s: %w", def.Name, err)
		}
		s.log.Warn("schedule missed firings while the node was down", "schedule", def.Name,
			"missed", f.count, "first", f.first, "last", f.last)
	}
	sl.entry = s.cron.Schedule(sp.sched, firing{s, sl})
	return sl, nil
}

// closeInterrupted marks the runs that a crash left "running" as failed:
// their process is gone. The job runner resumes their jobs if it can.
func (s *Scheduler) closeInterrupted(ctx context.Context, name string, now time.Time) error {
	runs, _, err := s.store.Runs(ctx, name, appliance.RunFilter{Limit: 10})
	if err != nil {
		return fmt.Errorf("load runs of %s: %w", name, err)
	}
	for _, r := range runs {
		if r.Status != appliance.RunRunning {
			continue
		}
		r.Status = appliance.RunFailed
		r.Error = "interrupted: the node stopped during the run (its job resumes under the job runner if it had started)"
		end := appliance.TruncateTime(now)
		r.EndedAt = &end
		if err := s.store.UpdateRun(ctx, r); err != nil {
			return fmt.Errorf("close interrupted run %d of %s: %w", r.ID, name, err)
		}
	}
	return nil
}

// missedRun is the one record that reports f's firings.
func missedRun(name string, sp *spec, f firings, now time.Time, why string) *appliance.ScheduleRun {
	at := appliance.TruncateTime(now)
	r := &appliance.ScheduleRun{Schedule: name, Trigger: appliance.TriggerMissed, Status: appliance.RunMissed,
		ScheduledAt: appliance.TruncateTime(f.first), StartedAt: at, EndedAt: &at, Missed: f.count}
	zf := f.first.In(sp.loc).Format(time.RFC3339)
	if f.capped {
		r.Error = fmt.Sprintf("more than %d firings were missed %s, the first at %s; they were not run: the next firing catches up", f.count, why, zf)
		return r
	}
	l := appliance.TruncateTime(f.last)
	r.LastMissedAt = &l
	r.Error = fmt.Sprintf("%d firing(s) were missed %s, from %s to %s; they were not run: the next firing catches up",
		f.count, why, zf, f.last.In(sp.loc).Format(time.RFC3339))
	return r
}

// Close stops firing and waits for the runs in progress until ctx ends;
// then it cancels them and waits for them to return. It saves the instant
// firing stopped, from which the next Start counts missed firings.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	stoppedAt := s.now()
	cronDone := s.cron.Stop()
	done := make(chan struct{})
	go func() {
		<-cronDone.Done()
		s.manual.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("close scheduler: runs still going: %w", ctx.Err())
		s.cancel()
		// Jobs stop promptly once cancelled (appliance.JobSpec.Run).
		<-done
	}
	s.cancel()

	states := map[string]appliance.ScheduleState{}
	s.mu.Lock()
	for name, sl := range s.slots {
		sl.mu.Lock()
		if sl.spec != nil && !sl.deleted {
			states[name] = appliance.ScheduleState{CheckedAt: stoppedAt, LastFiredAt: sl.lastFired}
		}
		sl.mu.Unlock()
	}
	s.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if perr := s.store.PutScheduleStates(sctx, states); perr != nil {
		err = errors.Join(err, fmt.Errorf("save schedule states: %w", perr))
	}
	return err
}

// ready returns EUNAVAILABLE unless the scheduler runs. Call with mu held.
func (s *Scheduler) ready() error {
	if !s.started || s.closed {
		return appliance.Errorf(appliance.EUNAVAILABLE, "the scheduler is not running")
	}
	return nil
}

// CreateSchedule implements appliance.ScheduleService.
func (s *Scheduler) CreateSchedule(ctx context.Context, in *appliance.Schedule) (*appliance.ScheduleStatus, bool, error) {
	return s.put(ctx, in, false)
}

// ReplaceSchedule implements appliance.ScheduleService.
func (s *Scheduler) ReplaceSchedule(ctx context.Context, in *appliance.Schedule) (*appliance.ScheduleStatus, bool, error) {
	return s.put(ctx, in, true)
}

func (s *Scheduler) put(ctx context.Context, in *appliance.Schedule, replace bool) (*appliance.ScheduleStatus, bool, error) {
	def, err := normalize(in)
	if err != nil {
		return nil, false, err
	}
	if err := def.Validate(); err != nil {
		return nil, false, err
	}
	now := s.now()
	sp, err := parseSpec(def.Cron, def.Timezone, now)
	if err != nil {
		return nil, false, err
	}
	if err := s.validateJob(ctx, def); err != nil {
		return nil, false, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(); err != nil {
		return nil, false, err
	}
	sl := s.slots[def.Name]
	if sl != nil {
		sl.mu.Lock()
		old := sl.def
		sl.mu.Unlock()
		if old.SameDefinition(def) {
			return s.status(ctx, sl), false, nil
		}
		if !replace {
			return nil, false, appliance.Errorf(appliance.ECONFLICT,
				"schedule %q exists with another definition: replace it with PUT /api/v1/schedules/%s, or delete it first", def.Name, def.Name)
		}
	}
	at := appliance.TruncateTime(now)
	def.CreatedAt, def.UpdatedAt, def.CreatedBy = at, at, appliance.CallerFromContext(ctx).Name
	created, err := s.store.PutSchedule(ctx, def)
	if err != nil {
		return nil, false, err
	}
	if sl == nil {
		sl = &slot{name: def.Name, lastDue: now}
		s.slots[def.Name] = sl
	}
	sl.mu.Lock()
	if sl.spec != nil {
		s.cron.Remove(sl.entry)
	}
	sl.def, sl.spec, sl.err = def, sp, nil
	// The new expression's firings count from now: those between the old
	// one's last firing and now were never due.
	sl.lastDue = now
	sl.entry = s.cron.Schedule(sp.sched, firing{s, sl})
	sl.mu.Unlock()
	action := "schedule created"
	if !created {
		action = "schedule replaced"
	}
	s.log.Info(action, "schedule", def.Name, "cron", def.Cron, "timezone", def.Timezone, "job", def.Job)
	return s.status(ctx, sl), created, nil
}

// validateJob asks the job runner about the job and its arguments. A
// runner's "kind" is the schedule's "job": the error names the field the
// client sent.
func (s *Scheduler) validateJob(ctx context.Context, def *appliance.Schedule) error {
	err := s.jobs.ValidateJob(ctx, def.Job, def.Args)
	var ae *appliance.Error
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ae):
		return fmt.Errorf("validate job of schedule %s: %w", def.Name, err)
	case ae.Field == "kind":
		cp := *ae
		cp.Field = "job"
		return &cp
	}
	return err
}

// normalize returns a copy of in with the zone defaulted, the expression
// trimmed, and the arguments compacted ({} when absent).
func normalize(in *appliance.Schedule) (*appliance.Schedule, error) {
	def := &appliance.Schedule{Name: in.Name, Cron: strings.TrimSpace(in.Cron), Timezone: in.Timezone, Job: in.Job}
	if def.Timezone == "" {
		def.Timezone = appliance.DefaultTimezone
	}
	args := bytes.TrimSpace(in.Args)
	if len(args) == 0 || string(args) == "null" {
		def.Args = json.RawMessage("{}")
		return def, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, args); err != nil {
		return nil, appliance.Invalid("args", "is not valid JSON: %v", err)
	}
	def.Args = buf.Bytes()
	return def, nil
}

// Schedule implements appliance.ScheduleService.
func (s *Scheduler) Schedule(ctx context.Context, name string) (*appliance.ScheduleStatus, error) {
	s.mu.Lock()
	if err := s.ready(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	sl := s.slots[name]
	s.mu.Unlock()
	if sl == nil {
		return nil, appliance.NotFound("schedule", name)
	}
	return s.status(ctx, sl), nil
}

// Schedules implements appliance.ScheduleService.
func (s *Scheduler) Schedules(ctx context.Context) ([]*appliance.ScheduleStatus, error) {
	s.mu.Lock()
	if err := s.ready(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	slots := make([]*slot, 0, len(s.slots))
	for _, sl := range s.slots {
		slots = append(slots, sl)
	}
	s.mu.Unlock()
	slices.SortFunc(slots, func(a, b *slot) int { return strings.Compare(a.name, b.name) })
	out := make([]*appliance.ScheduleStatus, 0, len(slots))
	for _, sl := range slots {
		out = append(out, s.status(ctx, sl))
	}
	return out, nil
}

// status describes a slot. The last run is best effort: a listing is not
// refused because one history could not be read.
func (s *Scheduler) status(ctx context.Context, sl *slot) *appliance.ScheduleStatus {
	sl.mu.Lock()
	st := &appliance.ScheduleStatus{Schedule: *sl.def, Running: sl.busy}
	if sl.spec != nil {
		st.NextRun = sl.spec.nextRun(s.now(), sl.lastFired)
	} else if sl.err != nil {
		st.Error = appliance.ErrorMessage(sl.err)
	}
	sl.mu.Unlock()
	runs, _, err := s.store.Runs(ctx, sl.name, appliance.RunFilter{Limit: 1})
	if err != nil {
		if appliance.ErrorCode(err) != appliance.ENOTFOUND {
			s.log.Warn("read last run", "schedule", sl.name, "err", err)
		}
	} else if len(runs) > 0 {
		st.LastRun = runs[0]
	}
	return st
}

// DeleteSchedule implements appliance.ScheduleService.
func (s *Scheduler) DeleteSchedule(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(); err != nil {
		return err
	}
	sl := s.slots[name]
	if sl == nil {
		return appliance.NotFound("schedule", name)
	}
	if err := s.store.DeleteSchedule(ctx, name); err != nil {
		return err
	}
	delete(s.slots, name)
	sl.mu.Lock()
	if sl.spec != nil {
		s.cron.Remove(sl.entry)
	}
	sl.deleted = true
	sl.mu.Unlock()
	s.log.Info("schedule deleted", "schedule", name)
	return nil
}

// ScheduleRuns implements appliance.ScheduleService.
func (s *Scheduler) ScheduleRuns(ctx context.Context, name string, f appliance.RunFilter) ([]*appliance.ScheduleRun, bool, error) {
	if f.Limit == 0 {
		f.Limit = 50
	}
	if f.Limit < 1 || f.Limit > 1000 {
		return nil, false, appliance.Invalid("limit", "%d is not a number from 1 to 1000", f.Limit)
	}
	s.mu.Lock()
	err := s.ready()
	s.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	return s.store.Runs(ctx, name, f)
}

// RunSchedule implements appliance.ScheduleService. The run belongs to the
// scheduler, not to the request: it outlives it, with the caller's identity.
func (s *Scheduler) RunSchedule(ctx context.Context, name string) (*appliance.ScheduleRun, error) {
	s.mu.Lock()
	if err := s.ready(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	sl := s.slots[name]
	if sl == nil {
		s.mu.Unlock()
		return nil, appliance.NotFound("schedule", name)
	}
	// Counted under mu, so that Close, which sets closed under mu before
	// it waits, never misses a run.
	s.manual.Add(1)
	s.mu.Unlock()

	started := false
	defer func() {
		if !started {
			s.manual.Done()
		}
	}()
	sl.mu.Lock()
	if err := sl.claim(); err != nil {
		sl.mu.Unlock()
		return nil, err
	}
	def := sl.def
	sl.mu.Unlock()

	caller := appliance.CallerFromContext(ctx)
	now := appliance.TruncateTime(s.now())
	run := &appliance.ScheduleRun{Schedule: name, Trigger: appliance.TriggerManual, ScheduledAt: now, StartedAt: now,
		Status: appliance.RunRunning, Actor: caller.Name}
	if err := s.store.AppendRun(ctx, run); err != nil {
		sl.release()
		return nil, err
	}
	sl.mu.Lock()
	sl.running = run.ID
	sl.mu.Unlock()
	out := *run
	started = true
	go func() {
		defer s.manual.Done()
		s.execute(appliance.NewContextWithCaller(s.ctx, caller), sl, def, run)
	}()
	return &out, nil
}

// claim marks the slot busy, or says why it cannot run. Call with mu held.
func (sl *slot) claim() error {
	switch {
	case sl.deleted:
		return appliance.NotFound("schedule", sl.name)
	case sl.busy && sl.running != 0:
		return appliance.Errorf(appliance.ECONFLICT, "schedule %q is running (run %d): wait for it to end", sl.name, sl.running)
	case sl.busy:
		return appliance.Errorf(appliance.ECONFLICT, "schedule %q is starting a run: wait for it to end", sl.name)
	}
	sl.busy, sl.running = true, 0
	return nil
}

func (sl *slot) release() {
	sl.mu.Lock()
	sl.busy, sl.running = false, 0
	sl.mu.Unlock()
}

// firing is the cron job of one slot.
type firing struct {
	s  *Scheduler
	sl *slot
}

func (f firing) Run() { f.s.fire(f.sl) }

// fire handles one cron firing: it finds the firing's scheduled instant,
// applies the daylight-saving guard and the no-overlap rule, records the
// instant as checked, and runs the job on cron's goroutine (which Close
// waits for through cron.Stop).
func (s *Scheduler) fire(sl *slot) {
	now := s.now()
	sl.mu.Lock()
	if sl.deleted || sl.spec == nil {
		sl.mu.Unlock()
		return
	}
	sp, def := sl.spec, sl.def
	// The latest firing not after now is this one; robfig does not say
	// which instant it fired for. Firings before it that robfig passed
	// over (the process was suspended or starved) are reported.
	f := sp.between(sl.lastDue, now)
	due, skippedOver := f.last, f
	skippedOver.count--
	skippedOver.last = f.beforeLast
	if f.count == 0 || f.capped {
		due, skippedOver.count = sp.next(sl.lastDue), 0
		if f.capped {
			due = now
		}
	}
	sl.lastDue = due
	at := appliance.TruncateTime(now)
	run := &appliance.ScheduleRun{Schedule: sl.name, Trigger: appliance.TriggerCron, ScheduledAt: appliance.TruncateTime(due),
		StartedAt: at, Status: appliance.RunRunning, Actor: "scheduler"}
	switch {
	case sp.repeats(due, sl.lastFired):
		run.Status, run.EndedAt = appliance.RunSkipped, &at
		run.Error = fmt.Sprintf("daylight saving: %s local time already fired at %s",
			due.In(sp.loc).Format("15:04"), sl.lastFired.UTC().Format(time.RFC3339))
	case sl.busy:
		sl.lastFired = due
		run.Status, run.EndedAt = appliance.RunSkipped, &at
		run.Error = "the previous run is still going"
		if sl.running != 0 {
			run.Error = fmt.Sprintf("the previous run (%d) is still going", sl.running)
		}
	default:
		sl.lastFired = due
		sl.busy, sl.running = true, 0
	}
	state := appliance.ScheduleState{CheckedAt: due, LastFiredAt: sl.lastFired}
	sl.mu.Unlock()

	ctx := appliance.NewContextWithCaller(s.ctx, appliance.Caller{Name: "scheduler", Role: appliance.RoleAdmin})
	if err := s.store.PutScheduleStates(ctx, map[string]appliance.ScheduleState{sl.name: state}); err != nil {
		s.log.Warn("save schedule state", "schedule", sl.name, "err", err)
	}
	if skippedOver.count > 0 {
		if err := s.store.AppendRun(ctx, missedRun(sl.name, sp, skippedOver, now, "while the process was not scheduled")); err != nil {
			s.log.Warn("report passed-over firings", "schedule", sl.name, "err", err)
		}
	}
	if err := s.store.AppendRun(ctx, run); err != nil {
		if run.Status == appliance.RunRunning {
			sl.release()
		}
		s.log.Error("record schedule run", "schedule", sl.name, "err", err)
		return
	}
	if run.Status != appliance.RunRunning {
		s.log.Info("schedule firing skipped", "schedule", sl.name, "scheduled_at", due, "reason", run.Error)
		return
	}
	sl.mu.Lock()
	sl.running = run.ID
	sl.mu.Unlock()
	s.execute(ctx, sl, def, run)
}

// execute runs the job of a recorded run and records how it ended.
func (s *Scheduler) execute(ctx context.Context, sl *slot, def *appliance.Schedule, run *appliance.ScheduleRun) {
	job, err := s.callJob(ctx, def)
	// The job is over: the slot is free before the run's end is recorded,
	// so that whoever reads the run as ended can start the next one (freed
	// after the record, a run read as succeeded could still refuse a new
	// one with 409).
	sl.release()
	end := appliance.TruncateTime(s.now())
	run.EndedAt = &end
	if job != nil {
		run.JobID, run.Rows, run.Error = job.ID, job.RowsDone, job.Error
	}
	switch {
	case err != nil && ctx.Err() != nil:
		run.Status, run.Error = appliance.RunCancelled, fmt.Sprintf("cancelled: the node is shutting down (%v)", err)
	case err != nil:
		run.Status, run.Error = appliance.RunFailed, err.Error()
	case job == nil:
		run.Status, run.Error = appliance.RunFailed, "the job runner returned no job"
	case job.State == appliance.JobSucceeded:
		run.Status = appliance.RunSucceeded
	case job.State == appliance.JobCancelled:
		run.Status = appliance.RunCancelled
	case job.State == appliance.JobFailed:
		run.Status = appliance.RunFailed
	case job.State == appliance.JobRunning || job.State == appliance.JobQueued:
		// The node stopped its jobs first: this one keeps its checkpoint.
		run.Status, run.Error = appliance.RunFailed, fmt.Sprintf("interrupted: the node stopped while job %s was %s; the job resumes at the next start (GET /api/v1/jobs/%s)", job.ID, job.State, job.ID)
	default:
		run.Status, run.Error = appliance.RunFailed, fmt.Sprintf("the job runner returned job %s in state %s", job.ID, job.State)
	}
	// The record is written even when shutdown cancelled ctx.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.store.UpdateRun(wctx, run); err != nil {
		if appliance.ErrorCode(err) == appliance.ENOTFOUND {
			s.log.Debug("run of a deleted schedule ended", "schedule", def.Name, "run", run.ID)
			return
		}
		s.log.Error("record end of schedule run", "schedule", def.Name, "run", run.ID, "status", run.Status, "err", err)
		return
	}
	if run.Status != appliance.RunSucceeded {
		s.log.Warn("schedule run did not succeed", "schedule", def.Name, "run", run.ID, "status", run.Status, "err", run.Error)
	}
}

// callJob runs the schedule's job, turning a panic into the run's error:
// one broken job must neither kill the node nor stop the schedule.
func (s *Scheduler) callJob(ctx context.Context, def *appliance.Schedule) (job *appliance.Job, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("scheduled job panicked", "schedule", def.Name, "job", def.Job, "panic", r, "stack", string(debug.Stack()))
			job, err = nil, fmt.Errorf("job panicked: %v", r)
		}
	}()
	return s.jobs.Run(ctx, def.Job, def.Args, def.Name)
}

// recoverPanics is the chain's last line: callJob records a job's panic in
// its run, so a panic reaching here is the scheduler's own bug. It is
// logged, not fatal, unlike robfig's default chain, which has no recovery.
func recoverPanics(log *slog.Logger) cron.JobWrapper {
	return func(j cron.Job) cron.Job {
		return cron.FuncJob(func() {
			defer func() {
				if r := recover(); r != nil {
					log.Error("BUG: panic in a cron firing", "panic", r, "stack", string(debug.Stack()))
				}
			}()
			j.Run()
		})
	}
}

// cronLogger sends robfig's chatter to slog: its info is debug here.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron "+msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron "+msg, append(kv, "err", err)...)
}
