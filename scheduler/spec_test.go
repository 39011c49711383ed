package scheduler

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestSpec_Next(t *testing.T) {
	dubai, berlin := mustZone(t, "Asia/Dubai"), mustZone(t, "Europe/Berlin")
	tests := []struct {
		name, cron, zone string
		from             time.Time
		want             []time.Time
	}{
		{"every 5 minutes in Dubai", "*/5 * * * *", "Asia/Dubai", time.Date(2026, 6, 1, 12, 3, 10, 0, time.UTC),
			[]time.Time{time.Date(2026, 6, 1, 16, 5, 0, 0, dubai), time.Date(2026, 6, 1, 16, 10, 0, 0, dubai)}},
		{"weekdays at 09:00 Dubai time, from a Friday", "0 9 * * 1-5", "Asia/Dubai", time.Date(2026, 6, 5, 6, 0, 0, 0, time.UTC),
			[]time.Time{time.Date(2026, 6, 8, 5, 0, 0, 0, time.UTC), time.Date(2026, 6, 9, 5, 0, 0, 0, time.UTC)}},
		{"daily descriptor at Dubai midnight", "@daily", "Asia/Dubai", time.Date(2026, 6, 1, 19, 59, 0, 0, time.UTC),
			[]time.Time{time.Date(2026, 6, 1, 20, 0, 0, 0, time.UTC), time.Date(2026, 6, 2, 20, 0, 0, 0, time.UTC)}},
		{"Berlin summer time", "0 6 * * *", "Europe/Berlin", time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC),
			[]time.Time{time.Date(2026, 7, 1, 4, 0, 0, 0, time.UTC), time.Date(2026, 7, 2, 4, 0, 0, 0, time.UTC)}},
		{"Berlin winter time", "0 6 * * *", "Europe/Berlin", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
			[]time.Time{time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC), time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)}},
		// robfig: the missing 02:30 of the spring-forward day is not run at all.
		{"Berlin spring forward skips 02:30", "30 2 * * *", "Europe/Berlin", time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC),
			[]time.Time{time.Date(2026, 3, 30, 2, 30, 0, 0, berlin)}},
		// robfig: 02:30 comes twice on the fall-back day, an hour apart.
		{"Berlin fall back fires 02:30 twice", "30 2 * * *", "Europe/Berlin", time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC),
			[]time.Time{time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), time.Date(2026, 10, 26, 1, 30, 0, 0, time.UTC)}},
		{"UTC by default", "0 0 1 * *", "", time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC),
			[]time.Time{time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)}},
		{"every 90 minutes", "@every 90m", "UTC", time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC),
			[]time.Time{time.Date(2026, 6, 1, 13, 30, 0, 0, time.UTC), time.Date(2026, 6, 1, 15, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp, err := parseSpec(tt.cron, tt.zone, tt.from)
			if err != nil {
				t.Fatal(err)
			}
			at := tt.from
			for i, want := range tt.want {
				at = sp.next(at)
				if !at.Equal(want) {
					t.Fatalf("firing %d: %s, want %s", i, at, want.In(sp.loc))
				}
				if tt.zone != "" && at.Location().String() != tt.zone {
					t.Fatalf("firing %d in %s, want the schedule's zone %s", i, at.Location(), tt.zone)
				}
			}
		})
	}
}

func TestParseSpec_Invalid(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, cron, zone, field, msg string
	}{
		{"four fields", "* * * *", "UTC", "cron", "expected exactly 5 fields"},
		{"six fields", "0 */5 * * * *", "UTC", "cron", "expected exactly 5 fields"},
		{"minute out of range", "61 * * * *", "UTC", "cron", "above maximum"},
		{"sunday as 7", "0 0 * * 7", "UTC", "cron", "above maximum"},
		{"zero step", "*/0 * * * *", "UTC", "cron", "step"},
		{"words", "every day", "UTC", "cron", "does not parse"},
		{"unknown descriptor", "@reboot", "UTC", "cron", "unrecognized descriptor"},
		{"TZ prefix (robfig panics on this one)", "TZ=UTC", "UTC", "cron", "timezone field"},
		{"CRON_TZ prefix", "CRON_TZ=Asia/Dubai */5 * * * *", "UTC", "cron", "timezone field"},
		{"never fires", "0 0 30 2 *", "UTC", "cron", "never fires"},
		{"huge number", "*/99999999999999999999 * * * *", "UTC", "cron", "not a number in range"},
		{"every second", "@every 1s", "UTC", "cron", "at least 1m0s"},
		{"every negative", "@every -5m", "UTC", "cron", "at least"},
		{"unknown zone", "*/5 * * * *", "Mars/Olympus_Mons", "timezone", "not a known IANA time zone"},
		{"abbreviation", "*/5 * * * *", "CEST", "timezone", "not a known IANA time zone"},
		{"machine's zone", "*/5 * * * *", "Local", "timezone", "depends on the machine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseSpec(tt.cron, tt.zone, now)
			var ae *appliance.Error
			if !errors.As(err, &ae) || ae.Code != appliance.EINVALID || ae.Field != tt.field {
				t.Fatalf("error %v, want invalid %s", err, tt.field)
			}
			if !strings.Contains(ae.Message, tt.msg) {
				t.Fatalf("message %q does not say %q", ae.Message, tt.msg)
			}
		})
	}
}

func TestSpec_Between_CountsMissedFirings(t *testing.T) {
	dubai := mustZone(t, "Asia/Dubai")
	sp, err := parseSpec("0 * * * *", "Asia/Dubai", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	after := time.Date(2026, 6, 1, 10, 0, 0, 0, dubai) // a firing itself: excluded
	until := time.Date(2026, 6, 1, 15, 0, 0, 0, dubai) // a firing too: included
	f := sp.between(after, until)
	if f.count != 5 || f.capped || !f.first.Equal(after.Add(time.Hour)) || !f.last.Equal(until) || !f.beforeLast.Equal(until.Add(-time.Hour)) {
		t.Fatalf("between: %+v", f)
	}
	if f := sp.between(until, until.Add(59*time.Minute)); f.count != 0 {
		t.Fatalf("no firing expected: %+v", f)
	}

	every, err := parseSpec("* * * * *", "UTC", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f = every.between(after, after.Add(100*24*time.Hour))
	if !f.capped || f.count != maxSteps || !f.last.IsZero() {
		t.Fatalf("100 days of minutes: %+v", f)
	}
}

func TestSpec_Repeats_FallBack(t *testing.T) {
	sp, err := parseSpec("30 2 * * *", "Europe/Berlin", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	first := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)  // 02:30 CEST
	second := time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC) // 02:30 CET
	next := time.Date(2026, 10, 26, 1, 30, 0, 0, time.UTC)
	if sp.repeats(first, time.Time{}) || !sp.repeats(second, first) || sp.repeats(next, first) {
		t.Fatal("the second 02:30 of the fall-back day must repeat, nothing else")
	}
	if got := sp.nextRun(first, first); !got.Equal(next) {
		t.Fatalf("next run after the first 02:30: %s, want %s", got, next)
	}
	utc, _ := parseSpec("30 * * * *", "UTC", time.Now())
	if utc.repeats(second, first) {
		t.Fatal("UTC never repeats")
	}
	every, _ := parseSpec("@every 1h", "Europe/Berlin", time.Now())
	if every.repeats(second, first) {
		t.Fatal("@every is not a wall-clock time")
	}
}

// FuzzParseSpec: expressions come from HTTP bodies; robfig has panicked on
// some (TZ= without a space). Nothing may panic, and whatever parses must
// fire after now.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "@hourly", "@every 5m", "TZ=UTC", "CRON_TZ=UTC * * * * *", "1-5/2 0 L * *", "0 0 30 2 *", "@every 1h30m", "? ? ? ? ?"} {
		f.Add(s, "UTC")
	}
	f.Add("0 9 * * mon-fri", "Asia/Dubai")
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr, zone string) {
		sp, err := parseSpec(expr, zone, now)
		if err != nil {
			if appliance.ErrorCode(err) != appliance.EINVALID {
				t.Fatalf("%q in %q: %v", expr, zone, err)
			}
			return
		}
		if n := sp.next(now); !n.After(now) {
			t.Fatalf("%q in %q: next %s not after now", expr, zone, n)
		}
	})
}
