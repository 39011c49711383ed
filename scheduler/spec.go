package scheduler

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/mlnode/mlnode/appliance"
)

// parser accepts the standard 5 fields (minute resolution) and the
// descriptors (@hourly, @daily, @every 15m, ...). A Parser is an immutable
// value: sharing it is safe.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// minEvery is the shortest @every interval: the jobs are batch work, and
// robfig silently turns anything under a second (even negative) into 1s.
const minEvery = time.Minute

// maxSteps bounds how many firings are walked to count missed ones, so that
// a long downtime of a minutely schedule costs a bounded time at start.
const maxSteps = 100_000

// spec is a parsed schedule in its zone.
type spec struct {
	sched cron.Schedule
	loc   *time.Location
	// wallClock is true for field-based expressions, whose firings are
	// local wall-clock times (subject to the daylight-saving guard), and
	// false for @every intervals.
	wallClock bool
}

// parseSpec parses a cron expression in a time zone, and checks that it
// fires at all (robfig accepts "0 0 30 2 *" and never fires it).
func parseSpec(expr, zone string, now time.Time) (sp *spec, err error) {
	if zone == "" {
		zone = appliance.DefaultTimezone
	}
	if zone == "Local" {
		return nil, appliance.Invalid("timezone", "\"Local\" depends on the machine: use an IANA name such as \"Europe/Berlin\" or \"UTC\"")
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, appliance.Invalid("timezone", "%q is not a known IANA time zone (e.g. \"Asia/Dubai\", \"UTC\")", zone)
	}
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		// Besides being a second place for the zone, robfig's TZ= parsing
		// panics on "TZ=UTC" without a following space.
		return nil, appliance.Invalid("cron", "give the time zone in the timezone field, not as a TZ= prefix")
	}
	defer func() {
		if r := recover(); r != nil {
			sp, err = nil, appliance.Invalid("cron", "%q does not parse: %v", expr, r)
		}
	}()
	sched, err := parser.Parse(expr)
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, ": strconv."); i >= 0 {
			msg = msg[:i] + " (not a number in range)" // not Go's parser text
		}
		return nil, appliance.Invalid("cron", "%q does not parse: %s", expr, msg)
	}
	sp = &spec{sched: sched, loc: loc}
	switch s := sched.(type) {
	case *cron.SpecSchedule:
		s.Location = loc
		sp.wallClock = true
	case cron.ConstantDelaySchedule:
		if d, ok := everyDuration(expr); !ok || d < minEvery {
			return nil, appliance.Invalid("cron", "%q: @every needs an interval of at least %s", expr, minEvery)
		}
	default:
		return nil, fmt.Errorf("BUG: cron parser returned a %T", sched)
	}
	if sp.next(now).IsZero() {
		return nil, appliance.Invalid("cron", "%q never fires (no matching date within five years)", expr)
	}
	return sp, nil
}

// everyDuration reads the interval of "@every <d>" as written, before
// robfig rounds it.
func everyDuration(expr string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(expr, "@every ")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(rest))
	return d, err == nil
}

// next returns the first firing after t, in the schedule's zone, or the
// zero time if there is none.
func (sp *spec) next(t time.Time) time.Time {
	n := sp.sched.Next(t)
	if n.IsZero() {
		return n
	}
	return n.In(sp.loc)
}

// wall returns t's local wall-clock reading in the schedule's zone as a
// zone-less time, so that two readings compare as a clock on the wall does.
func (sp *spec) wall(t time.Time) time.Time {
	l := t.In(sp.loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

// repeats reports whether a firing at t repeats a wall-clock time the
// schedule has already fired at (last): after a fall-back the clock shows
// 02:30 twice, and robfig fires "30 2 * * *" at both. A zero last never
// repeats.
func (sp *spec) repeats(t, last time.Time) bool {
	return sp.wallClock && !last.IsZero() && !sp.wall(t).After(sp.wall(last))
}

// nextRun returns the first firing after t that the repeat guard lets run.
func (sp *spec) nextRun(t, lastFired time.Time) time.Time {
	n := sp.next(t)
	for i := 0; i < 100 && !n.IsZero() && sp.repeats(n, lastFired); i++ {
		n = sp.next(n)
	}
	return n
}

// firings describes the firings in an interval.
type firings struct {
	count       int
	first, last time.Time
	beforeLast  time.Time // the firing before last; zero if count < 2
	capped      bool      // more than maxSteps: count is a lower bound, last is unknown
}

// between walks the firings in (after, until].
func (sp *spec) between(after, until time.Time) firings {
	var f firings
	for t := sp.next(after); !t.IsZero() && !t.After(until); t = sp.next(t) {
		if f.count == maxSteps {
			f.capped = true
			f.beforeLast, f.last = time.Time{}, time.Time{}
			return f
		}
		if f.count == 0 {
			f.first = t
		}
		f.beforeLast, f.last = f.last, t
		f.count++
	}
	return f
}
