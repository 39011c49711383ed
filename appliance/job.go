package appliance

import (
	"context"
	"encoding/json"
	"time"
)

// JobState is where a job is in its life.
type JobState string

const (
	JobQueued    JobState = "queued"  // waiting for a resource another job holds
	JobRunning   JobState = "running" // doing its work; resumed after a crash
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// Finished reports whether a job in state s will not run again.
func (s JobState) Finished() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCancelled
}

// Job is one run of background work: a materialization, a backup, a
// statistics pass. Its record is durable, so that its progress survives the
// process and a job interrupted by a crash resumes from its checkpoint.
type Job struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	Args       json.RawMessage `json:"args"`
	State      JobState        `json:"state"`
	RowsDone   int64           `json:"rows_done"`
	RowsTotal  int64           `json:"rows_total"` // 0 while unknown
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Error      string          `json:"error,omitempty"`
	Actor      string          `json:"actor"`              // the token that asked, or "scheduler"
	Schedule   string          `json:"schedule,omitempty"` // the schedule that started it
	Result     json.RawMessage `json:"result,omitempty"`   // what the job reports when done
	// Checkpoint is the job's resume state, committed with its work.
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
	Resumed    int             `json:"resumed,omitempty"` // how many times it was resumed after a restart
}

// JobControl is what a running job may do besides its work.
type JobControl interface {
	// Job is the job's record as it was when the job (re)started.
	Job() *Job
	// Progress records rows done out of total (0 when unknown). It is cheap:
	// the record is written at most a few times a second.
	Progress(done, total int64)
	// SaveCheckpoint commits state as the job's resume state on its own,
	// for jobs whose work is not a store write that can carry it (see
	// OnlineWrite.Checkpoint).
	SaveCheckpoint(ctx context.Context, state any) error
}

// JobSpec describes one kind of job.
type JobSpec struct {
	Kind string
	// Validate checks arguments before a job is created, so that a bad
	// request or schedule is refused up front. It may return normalized
	// arguments (e.g. defaults filled in) to store with the job.
	Validate func(ctx context.Context, args json.RawMessage) (json.RawMessage, error)
	// Locks names what the job needs to itself (e.g. "view:driver@1"): a job
	// waits, queued, while another holds any of them.
	Locks func(args json.RawMessage) []string
	// Run does the work. It returns a result to keep on the job record. It
	// stops promptly when ctx is done (cancellation or shutdown).
	Run func(ctx context.Context, jc JobControl) (result any, err error)
}

// JobFilter selects jobs to list.
type JobFilter struct {
	Kind  string
	State JobState
	Limit int // 0: 100
}

// JobRunner starts jobs and reports on them.
type JobRunner interface {
	// Submit validates args and starts a job in the background. origin names
	// the schedule that asked, or "" for a user (the actor comes from ctx).
	Submit(ctx context.Context, kind string, args json.RawMessage, origin string) (*Job, error)
	// Run starts a job and waits until it has finished.
	Run(ctx context.Context, kind string, args json.RawMessage, origin string) (*Job, error)
	// ValidateJob checks a kind and its arguments without starting anything.
	ValidateJob(ctx context.Context, kind string, args json.RawMessage) error
	Job(ctx context.Context, id string) (*Job, error)
	Jobs(ctx context.Context, f JobFilter) ([]*Job, error)
	// Cancel stops a queued or running job; ECONFLICT if it has finished.
	Cancel(ctx context.Context, id string) (*Job, error)
}

// JobStore keeps job records.
type JobStore interface {
	PutJob(ctx context.Context, j *Job) error
	Job(ctx context.Context, id string) (*Job, error)
	Jobs(ctx context.Context, f JobFilter) ([]*Job, error)
	// SaveJobCheckpoint stores a job's resume state.
	SaveJobCheckpoint(ctx context.Context, id string, state []byte) error
	// UnfinishedJobs returns the jobs that were queued or running when the
	// node stopped, oldest first.
	UnfinishedJobs(ctx context.Context) ([]*Job, error)
}
