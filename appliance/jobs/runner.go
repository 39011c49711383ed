// Package jobs runs background work — materializations, backups, retention,
// statistics — as durable jobs: each has a record with its state and
// progress, holds named locks so that two jobs on one view never interleave,
// and resumes from its checkpoint after a crash.
package jobs

import (
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

	"github.com/mlnode/mlnode/appliance"
)

// progressEvery bounds how often a running job's progress is written.
const progressEvery = time.Second

// errShutdown cancels jobs when the node stops: they keep their state, so
// that they resume at the next start, unlike jobs a user cancelled.
var errShutdown = errors.New("node shutting down")

// Runner implements appliance.JobRunner.
type Runner struct {
	store    appliance.JobStore
	specs    map[string]appliance.JobSpec
	log      *slog.Logger
	notifier appliance.Notifier
	now      func() time.Time

	ctx    context.Context // parent of every job; cancelled by Close
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]*run   // by job id
	held    map[string]string // lock → job id
	freed   chan struct{}     // closed and replaced whenever a lock is released
	closed  bool
}

// run is a job this process is working on.
type run struct {
	mu       sync.Mutex
	job      appliance.Job
	cancel   context.CancelCauseFunc
	done     chan struct{}
	lastSave time.Time
	// cancelledBy is who asked to cancel: the job's goroutine records the
	// end, and the audit entry (job.cancel) written with it names this
	// caller and request, not the node.
	cancelledBy *appliance.Caller
}

// Options configure a Runner.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Notifier, when set, is told of every job that fails (job.failed).
	Notifier appliance.Notifier
}

// New returns a runner for the given kinds of job. Start resumes the jobs a
// previous process left unfinished.
func New(store appliance.JobStore, specs []appliance.JobSpec, opts Options) *Runner {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &Runner{store: store, specs: map[string]appliance.JobSpec{}, log: opts.Logger, now: opts.Now, notifier: opts.Notifier,
		ctx: ctx, cancel: cancel, running: map[string]*run{}, held: map[string]string{}, freed: make(chan struct{})}
	for _, s := range specs {
		r.specs[s.Kind] = s
	}
	return r
}

// Kinds lists the job kinds this runner knows, sorted.
func (r *Runner) Kinds() []string {
	out := make([]string, 0, len(r.specs))
	for k := range r.specs {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Start resumes every job that was queued or running when the node last
// stopped, oldest first, so that their locks are taken in the same order.
func (r *Runner) Start(ctx context.Context) error {
	unfinished, err := r.store.UnfinishedJobs(ctx)
	if err != nil {
		return fmt.Errorf("resume jobs: %w", err)
	}
	for _, j := range unfinished {
		spec, ok := r.specs[j.Kind]
		if !ok {
			j.State, j.Error = appliance.JobFailed, fmt.Sprintf("unknown job kind %q after restart", j.Kind)
			r.finish(j)
			if err := r.store.PutJob(ctx, j); err != nil {
				return err
			}
			continue
		}
		j.Resumed++
		r.log.Info("resuming job", "job", j.ID, "kind", j.Kind, "state", j.State, "rows_done", j.RowsDone)
		if _, err := r.launch(spec, j); err != nil {
			return err
		}
	}
	return nil
}

// Close stops every job and waits for them (up to ctx). Stopped jobs keep
// their state and resume at the next start.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel(errShutdown)
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jobs still running at shutdown: %w", ctx.Err())
	}
}

func (r *Runner) spec(kind string) (appliance.JobSpec, error) {
	spec, ok := r.specs[kind]
	if !ok {
		return spec, appliance.Invalid("job", "%q is not a job kind (%s)", kind, strings.Join(r.Kinds(), ", "))
	}
	return spec, nil
}

func (r *Runner) validate(ctx context.Context, kind string, args json.RawMessage) (appliance.JobSpec, json.RawMessage, error) {
	spec, err := r.spec(kind)
	if err != nil {
		return spec, nil, err
	}
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	if spec.Validate != nil {
		norm, err := spec.Validate(ctx, args)
		if err != nil {
			return spec, nil, err
		}
		if norm != nil {
			args = norm
		}
	}
	return spec, args, nil
}

// ValidateJob implements appliance.JobRunner.
func (r *Runner) ValidateJob(ctx context.Context, kind string, args json.RawMessage) error {
	_, _, err := r.validate(ctx, kind, args)
	return err
}

// Submit implements appliance.JobRunner.
func (r *Runner) Submit(ctx context.Context, kind string, args json.RawMessage, origin string) (*appliance.Job, error) {
	spec, args, err := r.validate(ctx, kind, args)
	if err != nil {
		return nil, err
	}
	actor := appliance.CallerFromContext(ctx).Name
	if origin != "" {
		actor = "scheduler"
	}
	j := &appliance.Job{Kind: kind, Args: args, State: appliance.JobQueued, CreatedAt: r.now().UTC(), Actor: actor, Schedule: origin}
	// Refused before it is stored: a job stored but never launched would
	// run at the next start, unasked and unlinked to whoever submitted it.
	// (launch checks again, for a Close racing this.)
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, appliance.Errorf(appliance.EUNAVAILABLE, "the node is shutting down")
	}
	if err := r.store.PutJob(ctx, j); err != nil {
		return nil, err
	}
	rn, err := r.launch(spec, j)
	if err != nil {
		return nil, err
	}
	return rn.snapshot(), nil
}

// Run implements appliance.JobRunner.
func (r *Runner) Run(ctx context.Context, kind string, args json.RawMessage, origin string) (*appliance.Job, error) {
	j, err := r.Submit(ctx, kind, args, origin)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	rn := r.running[j.ID]
	r.mu.Unlock()
	if rn != nil {
		select {
		case <-rn.done:
		case <-ctx.Done():
			return rn.snapshot(), ctx.Err()
		}
	}
	return r.Job(ctx, j.ID)
}

// launch starts a goroutine for a stored job.
func (r *Runner) launch(spec appliance.JobSpec, j *appliance.Job) (*run, error) {
	ctx, cancel := context.WithCancelCause(r.ctx)
	rn := &run{job: *j, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel(errShutdown)
		return nil, appliance.Errorf(appliance.EUNAVAILABLE, "the node is shutting down")
	}
	r.running[j.ID] = rn
	r.wg.Add(1)
	r.mu.Unlock()
	go r.work(ctx, spec, rn)
	return rn, nil
}

func (rn *run) snapshot() *appliance.Job {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	j := rn.job
	return &j
}

// work is the life of one job: wait for its locks, run, record the end.
func (r *Runner) work(ctx context.Context, spec appliance.JobSpec, rn *run) {
	defer r.wg.Done()
	defer close(rn.done)
	defer func() {
		r.mu.Lock()
		delete(r.running, rn.job.ID)
		r.mu.Unlock()
	}()
	var locks []string
	if spec.Locks != nil {
		locks = spec.Locks(rn.job.Args)
	}
	if err := r.acquire(ctx, rn.job.ID, locks); err != nil {
		r.end(ctx, rn, nil, err)
		return
	}
	defer r.release(rn.job.ID, locks)

	rn.mu.Lock()
	now := r.now().UTC()
	rn.job.State = appliance.JobRunning
	if rn.job.StartedAt == nil {
		rn.job.StartedAt = &now
	}
	rn.lastSave = now
	j := rn.job
	rn.mu.Unlock()
	stored := j
	stored.Checkpoint = nil // keep the stored one
	// Stored with a background context: a cancelled job must still be
	// recorded as such.
	if err := r.store.PutJob(context.WithoutCancel(ctx), &stored); err != nil {
		r.log.Error("record job start", "job", j.ID, "err", err)
	}
	result, err := r.call(ctx, spec, &control{r: r, rn: rn, job: j})
	r.end(ctx, rn, result, err)
}

// call runs the job's work, turning a panic into its error.
func (r *Runner) call(ctx context.Context, spec appliance.JobSpec, jc *control) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("job panicked", "job", jc.job.ID, "kind", jc.job.Kind, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("job panicked: %v", p)
		}
	}()
	return spec.Run(ctx, jc)
}

// end records how a job finished. A job stopped by shutdown is left as it
// is, to resume at the next start.
func (r *Runner) end(ctx context.Context, rn *run, result any, err error) {
	if err != nil && errors.Is(context.Cause(ctx), errShutdown) {
		r.log.Info("job interrupted by shutdown; it resumes at the next start", "job", rn.job.ID)
		rn.mu.Lock()
		j := rn.job
		rn.mu.Unlock()
		j.Checkpoint = nil // keep the stored one
		if perr := r.store.PutJob(context.Background(), &j); perr != nil {
			r.log.Error("record job progress", "job", j.ID, "err", perr)
		}
		return
	}
	rn.mu.Lock()
	switch {
	case err == nil:
		rn.job.State = appliance.JobSucceeded
		if result != nil {
			if b, merr := json.Marshal(result); merr == nil {
				rn.job.Result = b
			} else {
				rn.job.Error = "result: " + merr.Error()
			}
		}
	case ctx.Err() != nil:
		rn.job.State = appliance.JobCancelled
		rn.job.Error = "cancelled"
	default:
		rn.job.State = appliance.JobFailed
		rn.job.Error = err.Error()
		if appliance.ErrorCode(err) != appliance.EINTERNAL {
			rn.job.Error = appliance.ErrorMessage(err)
		}
	}
	r.finish(&rn.job)
	j := rn.job
	saveCtx := context.Background()
	if j.State == appliance.JobCancelled && rn.cancelledBy != nil {
		saveCtx = appliance.NewContextWithCaller(saveCtx, *rn.cancelledBy)
	}
	rn.mu.Unlock()
	if perr := r.store.PutJob(saveCtx, &j); perr != nil {
		r.log.Error("record job end", "job", j.ID, "err", perr)
	}
	level := slog.LevelInfo
	if j.State == appliance.JobFailed {
		level = slog.LevelWarn
		if r.notifier != nil {
			ev := appliance.Event{Type: appliance.EventJobFailed, Subject: "job/" + j.ID, Time: r.now().UTC(),
				Data: map[string]any{"job": j.ID, "kind": j.Kind, "error": j.Error, "schedule": j.Schedule, "actor": j.Actor}}
			if err := r.notifier.Notify(context.Background(), ev); err != nil {
				r.log.Error("notify webhooks of a failed job", "job", j.ID, "err", err)
			}
		}
	}
	r.log.Log(context.Background(), level, "job finished", "job", j.ID, "kind", j.Kind, "state", j.State, "rows", j.RowsDone, "err", j.Error)
}

func (r *Runner) finish(j *appliance.Job) {
	now := r.now().UTC()
	j.FinishedAt = &now
	j.Checkpoint = nil
}

// acquire waits until none of locks is held, then takes them all at once
// (all or nothing, so two jobs wanting overlapping sets cannot deadlock).
func (r *Runner) acquire(ctx context.Context, id string, locks []string) error {
	for {
		r.mu.Lock()
		free := true
		for _, l := range locks {
			if owner, ok := r.held[l]; ok && owner != id {
				free = false
				break
			}
		}
		if free {
			for _, l := range locks {
				r.held[l] = id
			}
			r.mu.Unlock()
			return nil
		}
		wait := r.freed
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Runner) release(id string, locks []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range locks {
		if r.held[l] == id {
			delete(r.held, l)
		}
	}
	close(r.freed)
	r.freed = make(chan struct{})
}

// Job implements appliance.JobRunner; a running job shows its live progress.
func (r *Runner) Job(ctx context.Context, id string) (*appliance.Job, error) {
	r.mu.Lock()
	rn := r.running[id]
	r.mu.Unlock()
	if rn != nil {
		return rn.snapshot(), nil
	}
	return r.store.Job(ctx, id)
}

// Jobs implements appliance.JobRunner.
func (r *Runner) Jobs(ctx context.Context, f appliance.JobFilter) ([]*appliance.Job, error) {
	list, err := r.store.Jobs(ctx, f)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, j := range list {
		if rn := r.running[j.ID]; rn != nil {
			list[i] = rn.snapshot()
		}
	}
	return list, nil
}

// Cancel implements appliance.JobRunner.
func (r *Runner) Cancel(ctx context.Context, id string) (*appliance.Job, error) {
	r.mu.Lock()
	rn := r.running[id]
	r.mu.Unlock()
	if rn != nil {
		caller := appliance.CallerFromContext(ctx)
		rn.mu.Lock()
		if rn.cancelledBy == nil {
			rn.cancelledBy = &caller
		}
		rn.mu.Unlock()
		rn.cancel(context.Canceled)
		select {
		case <-rn.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	j, err := r.store.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.State != appliance.JobCancelled || rn == nil {
		// It finished on its own, before or while being cancelled.
		return nil, &appliance.Error{Code: appliance.ECONFLICT, Field: "id",
			Message: fmt.Sprintf("job %s has already finished (%s)", id, j.State)}
	}
	return j, nil
}

// control implements appliance.JobControl for one run.
type control struct {
	r   *Runner
	rn  *run
	job appliance.Job
}

func (c *control) Job() *appliance.Job {
	j := c.job
	return &j
}

func (c *control) Progress(done, total int64) {
	c.rn.mu.Lock()
	c.rn.job.RowsDone, c.rn.job.RowsTotal = done, total
	now := c.r.now()
	save := now.Sub(c.rn.lastSave) >= progressEvery
	if save {
		c.rn.lastSave = now
	}
	j := c.rn.job
	c.rn.mu.Unlock()
	j.Checkpoint = nil // the store keeps the newest one, which the job's writes commit
	if save {
		// Progress is informative; the checkpoint is what resumes a job, so
		// a failed write here is only logged.
		if err := c.r.store.PutJob(context.Background(), &j); err != nil {
			c.r.log.Warn("record job progress", "job", j.ID, "err", err)
		}
	}
}

func (c *control) SaveCheckpoint(ctx context.Context, state any) error {
	b, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("job %s checkpoint: %w", c.job.ID, err)
	}
	if err := c.r.store.SaveJobCheckpoint(ctx, c.job.ID, b); err != nil {
		return err
	}
	c.rn.mu.Lock()
	c.rn.job.Checkpoint = b
	c.rn.mu.Unlock()
	return nil
}
