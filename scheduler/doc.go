// Package scheduler is the robfig/cron implementation of
// appliance.ScheduleService: schedules persisted through an
// appliance.ScheduleStore start jobs through an appliance.JobRunner.
//
// Each schedule is parsed in its own IANA time zone with the standard
// 5-field parser (descriptors such as @hourly and @every accepted) and added
// to one cron.Cron. A firing records a run, calls JobRunner.Run on cron's
// goroutine and records how it ended: status, rows, error, job id.
//
// # Rules
//
//   - No overlap: a firing that finds the schedule's previous run still
//     going is recorded as "skipped"; a manual run then gets ECONFLICT. The
//     rule is the scheduler's, not robfig's SkipIfStillRunning, because
//     manual runs share it and a skip must be recorded.
//   - A panicking job is recovered and its run recorded as "failed" with
//     the panic's text; the schedule keeps firing. The cron chain carries a
//     last-resort recover that only logs: robfig's default chain recovers
//     nothing (cron#484).
//   - Missed firings: the store keeps, per schedule, the instant up to
//     which firings were handled (saved as each firing starts and when the
//     scheduler closes). Start counts the firings between it and now and
//     records ONE "missed" run with their number, first and last. They are
//     not run: the next regular firing catches up, as the jobs are
//     watermark-based (materialize-incremental) or idempotent (retention,
//     backup, statistics).
//   - Daylight saving: robfig computes firings in local time. At a
//     spring-forward gap, a firing in the missing hour does not happen that
//     day ("30 2 * * *" in Europe/Berlin skips 2026-03-29). At a fall-back,
//     robfig fires a wall-clock time twice (02:30 CEST and 02:30 CET); the
//     scheduler records the second, and any firing whose local time is not
//     after the last fired one, as "skipped". Each local time fires at
//     most once, so a schedule's repeated hour is skipped as a whole.
//     @every intervals are not wall-clock times and are not guarded.
//
// # Caveats
//
//   - robfig has no fake clock (cron#496). Options.Now drives the records,
//     the next-run times and missed-run detection; firing follows the real
//     clock. Tests fire slots by hand.
//   - robfig does not tell a job which instant it fired for; the scheduler
//     takes the latest firing not after now, and reports firings robfig
//     passed over (a suspended process) as "missed".
//   - Close waits for runs until its context ends, then cancels them and
//     waits for them to return; a JobRunner that ignores cancellation
//     holds Close.
//   - time/tzdata is linked in, so that zones resolve on hosts without
//     zoneinfo; the host's database wins where it exists.
package scheduler
