package appliance_test

import (
	"encoding/json"
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

func TestSchedule_Validate(t *testing.T) {
	ok := appliance.Schedule{Name: "nightly_mat", Cron: "*/5 * * * *", Timezone: "Asia/Dubai", Job: "materialize-incremental",
		Args: json.RawMessage(`{"view":"driver_stats"}`)}
	tests := []struct {
		name  string
		edit  func(s *appliance.Schedule)
		field string
	}{
		{"valid", func(*appliance.Schedule) {}, ""},
		{"no args", func(s *appliance.Schedule) { s.Args = nil }, ""},
		{"no name", func(s *appliance.Schedule) { s.Name = "" }, "name"},
		{"bad name", func(s *appliance.Schedule) { s.Name = "Nightly-Mat" }, "name"},
		{"no cron", func(s *appliance.Schedule) { s.Cron = "" }, "cron"},
		{"no job", func(s *appliance.Schedule) { s.Job = "" }, "job"},
		{"args an array", func(s *appliance.Schedule) { s.Args = json.RawMessage(`[]`) }, "args"},
		{"args null", func(s *appliance.Schedule) { s.Args = json.RawMessage(`null`) }, "args"},
		{"args not JSON", func(s *appliance.Schedule) { s.Args = json.RawMessage(`{`) }, "args"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.edit(&s)
			err := s.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if e, isErr := err.(*appliance.Error); !isErr || e.Code != appliance.EINVALID || e.Field != tt.field {
				t.Fatalf("error %v, want invalid %s", err, tt.field)
			}
		})
	}
}

func TestSchedule_SameDefinition(t *testing.T) {
	a := &appliance.Schedule{Name: "m", Cron: "@hourly", Timezone: "UTC", Job: "retention", Args: json.RawMessage(`{"days":30,"views":["a","b"]}`)}
	b := *a
	b.Args = json.RawMessage(`{ "views": ["a", "b"], "days": 30 }`)
	b.CreatedBy = "someone else"
	if !a.SameDefinition(&b) {
		t.Fatal("key order, spacing and bookkeeping must not matter")
	}
	for _, edit := range []func(s *appliance.Schedule){
		func(s *appliance.Schedule) { s.Cron = "@daily" },
		func(s *appliance.Schedule) { s.Timezone = "Asia/Dubai" },
		func(s *appliance.Schedule) { s.Job = "backup" },
		func(s *appliance.Schedule) { s.Args = json.RawMessage(`{"days":31,"views":["a","b"]}`) },
		func(s *appliance.Schedule) { s.Args = json.RawMessage(`{"days":30,"views":["b","a"]}`) },
	} {
		c := *a
		edit(&c)
		if a.SameDefinition(&c) {
			t.Fatalf("%+v counted as the same as %+v", c, a)
		}
	}
}
