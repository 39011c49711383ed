package appliance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"user", true}, {"user_id2", true}, {"a", true},
		{"", false}, {"User", false}, {"2user", false}, {"_user", false}, {"user-id", false},
		{"user__id", false}, {"request", false}, {"event_timestamp", false}, {"a:b", false}, {"a@b", false},
		{string(bytes.Repeat([]byte("a"), 129)), false},
	}
	for _, tt := range tests {
		err := appliance.ValidateName("name", tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && appliance.ErrorCode(err) != appliance.EINVALID {
			t.Errorf("ValidateName(%q): code %s", tt.name, appliance.ErrorCode(err))
		}
	}
}

func TestParseFeatureRef(t *testing.T) {
	tests := []struct {
		in      string
		want    appliance.FeatureRef
		wantErr bool
	}{
		{"user_stats:clicks", appliance.FeatureRef{View: "user_stats", Feature: "clicks"}, false},
		{"user_stats@v2:clicks", appliance.FeatureRef{View: "user_stats", Version: 2, Feature: "clicks"}, false},
		{"user_stats", appliance.FeatureRef{}, true},
		{"user_stats:", appliance.FeatureRef{}, true},
		{":clicks", appliance.FeatureRef{}, true},
		{"user_stats@2:clicks", appliance.FeatureRef{}, true},
		{"user_stats@v0:clicks", appliance.FeatureRef{}, true},
		{"user_stats@vx:clicks", appliance.FeatureRef{}, true},
		{"User:clicks", appliance.FeatureRef{}, true},
		{"user_stats:clicks:extra", appliance.FeatureRef{}, true},
	}
	for _, tt := range tests {
		got, err := appliance.ParseFeatureRef("f", tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseFeatureRef(%q) = %+v, %v; want %+v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false}, {"0", 0, false}, {"24h", 24 * time.Hour, false}, {"90m", 90 * time.Minute, false},
		{"7d", 7 * 24 * time.Hour, false}, {"-1h", 0, true}, {"soon", 0, true}, {"1.5d", 0, true},
		// Past 100 years: refused, never wrapped to a negative duration.
		{"36500d", 36500 * 24 * time.Hour, false}, {"36501d", 0, true}, {"106752d", 0, true}, {"876001h", 0, true},
	}
	for _, tt := range tests {
		got, err := appliance.ParseDuration(tt.in)
		if (err != nil) != tt.wantErr || time.Duration(got) != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v", tt.in, got, err)
		}
	}
	for _, raw := range []string{`1e300`, `3153600001`, `-1`} {
		var d appliance.Duration
		if err := d.UnmarshalJSON([]byte(raw)); err == nil {
			t.Errorf("%s seconds: %v, want an error", raw, time.Duration(d))
		}
	}
	for _, d := range []time.Duration{24 * time.Hour, 90 * time.Minute, time.Hour + time.Second, 0} {
		back, err := appliance.ParseDuration(appliance.Duration(d).String())
		if err != nil || time.Duration(back) != d {
			t.Errorf("%v does not round-trip through %q", d, appliance.Duration(d).String())
		}
	}
}

// Entity keys sort like their values and decode back, so prefix scans by
// entity work and int64 keys order numerically, negatives first.
func TestEntityKey_OrderAndRoundTrip(t *testing.T) {
	ints := []int64{-1 << 63, -5, -1, 0, 1, 42, 1 << 62}
	var prev []byte
	for i, n := range ints {
		k := appliance.AppendEntityKeyPart(nil, appliance.Int64Value(n))
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			t.Fatalf("key of %d does not sort after key of %d", n, ints[i-1])
		}
		prev = k
		v, rest, err := appliance.DecodeEntityKeyPart(k, appliance.EntityInt64)
		if err != nil || len(rest) != 0 || v.Int != n {
			t.Fatalf("decode %d: %v %v %v", n, v, rest, err)
		}
	}
	// A string part is self-delimiting: "ab" then "c" differs from "a" then "bc".
	k1 := appliance.AppendEntityKeyPart(appliance.AppendEntityKeyPart(nil, appliance.StringValue("ab")), appliance.StringValue("c"))
	k2 := appliance.AppendEntityKeyPart(appliance.AppendEntityKeyPart(nil, appliance.StringValue("a")), appliance.StringValue("bc"))
	if bytes.Equal(k1, k2) {
		t.Fatal("compound string keys collide")
	}
	if _, _, err := appliance.DecodeEntityKeyPart([]byte{5, 'a'}, appliance.EntityString); err == nil {
		t.Fatal("short string part decoded")
	}
}

func TestAuditEntry_HashCoversEveryField(t *testing.T) {
	ctx := appliance.NewContextWithCaller(context.Background(), appliance.Caller{Name: "alice", RequestID: "r1"})
	e, err := appliance.NewAuditEntry(ctx, appliance.AuditRecord{Action: "a.b", Object: "x/y", Summary: map[string]int{"n": 1}}, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	e.Seq, e.PrevHash = 7, "abc"
	base := e.ComputeHash()
	mutations := []func(*appliance.AuditEntry){
		func(e *appliance.AuditEntry) { e.Seq++ },
		func(e *appliance.AuditEntry) { e.Time = e.Time.Add(time.Nanosecond) },
		func(e *appliance.AuditEntry) { e.Actor = "bob" },
		func(e *appliance.AuditEntry) { e.Action = "a.c" },
		func(e *appliance.AuditEntry) { e.Object = "x/z" },
		func(e *appliance.AuditEntry) { e.Summary = []byte(`{"n":2}`) },
		func(e *appliance.AuditEntry) { e.RequestID = "r2" },
		func(e *appliance.AuditEntry) { e.PrevHash = "abd" },
	}
	for i, m := range mutations {
		c := *e
		m(&c)
		if c.ComputeHash() == base {
			t.Errorf("mutation %d does not change the hash", i)
		}
	}
}

func TestRole_Allows(t *testing.T) {
	tests := []struct {
		have, need appliance.Role
		ok         bool
	}{
		{appliance.RoleReader, appliance.RoleReader, true},
		{appliance.RoleReader, appliance.RoleWriter, false},
		{appliance.RoleWriter, appliance.RoleReader, true},
		{appliance.RoleWriter, appliance.RoleAdmin, false},
		{appliance.RoleAdmin, appliance.RoleWriter, true},
		{"root", appliance.RoleReader, false},
		{appliance.RoleAdmin, "root", false},
	}
	for _, tt := range tests {
		if got := tt.have.Allows(tt.need); got != tt.ok {
			t.Errorf("%s.Allows(%s) = %v", tt.have, tt.need, got)
		}
	}
}

func FuzzParseFeatureRef(f *testing.F) {
	for _, s := range []string{"a:b", "a@v2:b", "a@v:b", ":", "@v1:", "a@v99999999999999999999:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := appliance.ParseFeatureRef("f", s)
		if err != nil {
			return
		}
		again, err := appliance.ParseFeatureRef("f", ref.String())
		if err != nil || again != ref {
			t.Fatalf("%q parsed to %+v which does not round-trip: %+v %v", s, ref, again, err)
		}
	})
}

func TestPredictionLog_IsValidJSON(t *testing.T) {
	var got []byte
	p := &appliance.Predictor{Telemetry: sinkFunc(func(kind string, data []byte) bool { got = data; return true })}
	_ = p
	for _, s := range []string{"plain", "quote\"and\\\\", "ctl\x00\x1f", "ünï", "bad\xff"} {
		b := appliance.AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, b, err)
		}
	}
	_ = got
}

type sinkFunc func(kind string, data []byte) bool

func (f sinkFunc) Append(kind string, data []byte) bool { return f(kind, data) }
