package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"time"
)

// DefaultTimezone is the zone of a schedule that names none. Operational
// jobs are best kept in UTC, which has no daylight saving.
const DefaultTimezone = "UTC"

// Schedule starts a job whenever its cron expression fires in its time zone.
// Cron and Timezone are checked by the scheduler, which owns the parser;
// Job and Args by the job runner.
type Schedule struct {
	Name      string          `json:"name"`
	Cron      string          `json:"cron"`     // 5 fields or a descriptor such as "@hourly"
	Timezone  string          `json:"timezone"` // IANA name
	Job       string          `json:"job"`      // a job kind, e.g. "materialize-incremental"
	Args      json.RawMessage `json:"args,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	CreatedBy string          `json:"created_by,omitempty"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Validate checks what can be checked without a cron parser or a job
// runner: the name, the presence of the other fields, and that the
// arguments are a JSON object.
func (s *Schedule) Validate() error {
	if err := ValidateName("name", s.Name); err != nil {
		return err
	}
	switch {
	case s.Cron == "":
		return Invalid("cron", "is required, e.g. \"*/5 * * * *\" or \"@hourly\"")
	case len(s.Cron) > 256:
		return Invalid("cron", "is longer than 256 bytes")
	case len(s.Timezone) > 128:
		return Invalid("timezone", "is longer than 128 bytes")
	case s.Job == "":
		return Invalid("job", "is required: the kind of job to start")
	case len(s.Job) > 128:
		return Invalid("job", "is longer than 128 bytes")
	}
	if len(s.Args) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(s.Args, &obj); err != nil || obj == nil {
			return Invalid("args", "must be a JSON object")
		}
	}
	return nil
}

// SameDefinition reports whether s and o start the same job at the same
// times: name, cron, zone, job and arguments (compared as JSON values, so
// that key order and spacing do not matter). Bookkeeping fields are ignored.
func (s *Schedule) SameDefinition(o *Schedule) bool {
	if s.Name != o.Name || s.Cron != o.Cron || s.Timezone != o.Timezone || s.Job != o.Job {
		return false
	}
	if bytes.Equal(s.Args, o.Args) {
		return true
	}
	var a, b any
	if json.Unmarshal(s.Args, &a) != nil || json.Unmarshal(o.Args, &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

// RunTrigger says what started a schedule run.
type RunTrigger string

const (
	TriggerCron   RunTrigger = "cron"   // the cron expression fired
	TriggerManual RunTrigger = "manual" // a user asked for a run now
	TriggerMissed RunTrigger = "missed" // a report of firings the node was down for
)

// RunStatus is where a schedule run is, or how it ended.
type RunStatus string

const (
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunCancelled RunStatus = "cancelled"
	RunSkipped   RunStatus = "skipped" // the previous run was still going, or a daylight-saving repeat
	RunMissed    RunStatus = "missed"  // firings that were due while the node was down; not run
)

// ScheduleRun records one firing of a schedule: a job run, a skipped firing,
// or a report of missed ones.
type ScheduleRun struct {
	Schedule    string     `json:"schedule"`
	ID          uint64     `json:"id"` // increasing across the node; never reused
	Trigger     RunTrigger `json:"trigger"`
	ScheduledAt time.Time  `json:"scheduled_at"` // the firing's instant; for a missed report, the first missed one
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	Status      RunStatus  `json:"status"`
	Rows        int64      `json:"rows"`
	Error       string     `json:"error,omitempty"`
	JobID       string     `json:"job_id,omitempty"`
	Actor       string     `json:"actor,omitempty"` // who asked, for a manual run
	// Missed counts the firings a missed report stands for; LastMissedAt
	// is the last of them, absent when there were too many to count.
	Missed       int        `json:"missed,omitempty"`
	LastMissedAt *time.Time `json:"last_missed_at,omitempty"`
}

// ScheduleState is what the scheduler remembers of a schedule across
// restarts.
type ScheduleState struct {
	// CheckedAt is the instant up to which every firing was run, skipped
	// or reported: firings after it and before the next start were missed.
	CheckedAt time.Time `json:"checked_at"`
	// LastFiredAt is the scheduled instant of the last firing that was not
	// a daylight-saving repeat, so that the repeat guard survives a restart.
	LastFiredAt time.Time `json:"last_fired_at,omitzero"`
}

// RunFilter pages through a schedule's runs, newest first.
type RunFilter struct {
	Before uint64 // only runs with a smaller id; 0: from the newest
	Limit  int    // 0: 50
}

// ScheduleStore keeps schedules, their run history and their state.
type ScheduleStore interface {
	// PutSchedule creates or replaces a schedule and audits the change in
	// the same transaction; created reports which. A replacement keeps the
	// stored CreatedAt and CreatedBy (and writes them back into s).
	PutSchedule(ctx context.Context, s *Schedule) (created bool, err error)
	// Schedule returns one schedule; ENOTFOUND if there is none.
	Schedule(ctx context.Context, name string) (*Schedule, error)
	// Schedules returns every schedule, by name.
	Schedules(ctx context.Context) ([]*Schedule, error)
	// DeleteSchedule removes a schedule with its state and run history, and
	// audits it. ENOTFOUND if there is none.
	DeleteSchedule(ctx context.Context, name string) error
	// AppendRun stores a new run of r.Schedule and sets r.ID. Only the
	// newest runs of each schedule are kept. ENOTFOUND if the schedule is
	// gone.
	AppendRun(ctx context.Context, r *ScheduleRun) error
	// UpdateRun replaces a stored run; ENOTFOUND if it is gone (its schedule
	// was deleted, or it aged out of the history).
	UpdateRun(ctx context.Context, r *ScheduleRun) error
	// Runs returns a schedule's runs newest first, and whether older ones
	// follow. ENOTFOUND if the schedule does not exist.
	Runs(ctx context.Context, name string, f RunFilter) ([]*ScheduleRun, bool, error)
	// ScheduleState returns a schedule's state; the zero state if none was
	// stored.
	ScheduleState(ctx context.Context, name string) (*ScheduleState, error)
	// PutScheduleStates stores states in one transaction, skipping names
	// whose schedule no longer exists.
	PutScheduleStates(ctx context.Context, states map[string]ScheduleState) error
}

// ScheduleStatus is a schedule as the scheduler sees it.
type ScheduleStatus struct {
	Schedule
	NextRun time.Time    // in the schedule's zone; zero when it cannot run
	Running bool         // a run is in progress
	LastRun *ScheduleRun // nil before the first
	// Error says why a stored schedule is not scheduled (e.g. its zone
	// vanished from the time zone database); "" when it is.
	Error string
}

// ScheduleService manages schedules and runs them. Every method returns
// EUNAVAILABLE while the scheduler is not running (before start, while
// closing).
type ScheduleService interface {
	// CreateSchedule stores a new schedule and starts it; created is false
	// when an identical schedule exists, which is left as it is. EINVALID
	// with field name, cron, timezone, job or args; ECONFLICT when the name
	// holds a different schedule.
	CreateSchedule(ctx context.Context, s *Schedule) (st *ScheduleStatus, created bool, err error)
	// ReplaceSchedule creates a schedule or replaces the one of that name;
	// a run in progress finishes. EINVALID as CreateSchedule.
	ReplaceSchedule(ctx context.Context, s *Schedule) (st *ScheduleStatus, created bool, err error)
	// Schedule returns one schedule; ENOTFOUND if there is none.
	Schedule(ctx context.Context, name string) (*ScheduleStatus, error)
	// Schedules returns every schedule, by name.
	Schedules(ctx context.Context) ([]*ScheduleStatus, error)
	// DeleteSchedule stops and removes a schedule and its run history; a
	// run in progress finishes (its job is the job runner's). ENOTFOUND.
	DeleteSchedule(ctx context.Context, name string) error
	// RunSchedule starts a run now, in the background, and returns its
	// record. ENOTFOUND; ECONFLICT while a run of the schedule is going.
	RunSchedule(ctx context.Context, name string) (*ScheduleRun, error)
	// ScheduleRuns returns a schedule's runs newest first and whether older
	// ones follow. ENOTFOUND; EINVALID for a limit outside 1..1000.
	ScheduleRuns(ctx context.Context, name string, f RunFilter) ([]*ScheduleRun, bool, error)
}
