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
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > 365*1000 {
			return 0, Invalid("", "%q is not a duration like \"24h\" or \"7d\"", s)
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
		if json.Unmarshal(b, &secs) != nil || secs < 0 {
			return Invalid("", "must be a duration string like \"24h\" or a number of seconds")
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
