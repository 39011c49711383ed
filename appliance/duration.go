package appliance

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes JSON and YAML as Go
// duration text ("24h", "90m"), also accepting a day suffix ("7d") since
// feature TTLs are usually days. Zero means "no limit".
type Duration time.Duration

// ParseDuration parses "", "0", Go durations and whole days ("7d").
// MaxDuration bounds TTLs, retentions and windows: 100 years, well inside
// time.Duration's 292, so that no value wraps around to a negative one.
const MaxDuration = Duration(100 * 365 * 24 * time.Hour)

func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 {
			return 0, Invalid("", "%q is not a duration like \"24h\" or \"7d\"", s)
		}
		if n > int64(MaxDuration/Duration(24*time.Hour)) {
			return 0, Invalid("", "%q is more than 100 years", s)
		}
		return Duration(time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, Invalid("", "%q is not a duration like \"24h\" or \"7d\"", s)
	}
	if d < 0 {
		return 0, Invalid("", "%q is negative", s)
	}
	if Duration(d) > MaxDuration {
		return 0, Invalid("", "%q is more than 100 years", s)
	}
	return Duration(d), nil
}

func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	// "24h0m0s" reads better as "24h", and parses back the same.
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		// A bare number is taken as seconds, as Feast's ttl is.
		var secs float64
		if json.Unmarshal(b, &secs) != nil || !(secs >= 0) {
			return Invalid("", "must be a duration string like \"24h\" or a number of seconds")
		}
		if secs > time.Duration(MaxDuration).Seconds() {
			return Invalid("", "%s seconds is more than 100 years", b)
		}
		*d = Duration(time.Duration(secs * float64(time.Second)))
		return nil
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
