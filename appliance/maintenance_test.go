package appliance_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// fakeBackups records BackupToDir calls.
type fakeBackups struct {
	calls []string
	err   error
}

func (f *fakeBackups) BackupToDir(_ context.Context, dir, name string, keep int) (*appliance.BackupResult, error) {
	f.calls = append(f.calls, fmt.Sprintf("%s|%s|%d", dir, name, keep))
	if f.err != nil {
		return nil, f.err
	}
	return &appliance.BackupResult{Path: dir + "/" + name, Bytes: 42, Removed: []string{}}, nil
}

// fakeViews is a registry of view versions by name; only the reads the
// retention job makes are implemented.
type fakeViews struct {
	appliance.FeatureRegistry
	views map[string][]*appliance.FeatureView
}

func (f *fakeViews) FeatureViews(context.Context) ([]*appliance.FeatureView, error) {
	var out []*appliance.FeatureView
	for _, name := range []string{"clicks", "orders", "profile"} {
		if vs := f.views[name]; len(vs) > 0 {
			out = append(out, vs[len(vs)-1])
		}
	}
	return out, nil
}

func (f *fakeViews) FeatureViewVersions(_ context.Context, name string) ([]*appliance.FeatureView, error) {
	if vs := f.views[name]; len(vs) > 0 {
		return vs, nil
	}
	return nil, appliance.NotFound("feature view", name)
}

func (f *fakeViews) FeatureView(_ context.Context, name string, version int) (*appliance.FeatureView, error) {
	vs := f.views[name]
	if version < 1 || version > len(vs) {
		return nil, appliance.NotFound("feature view", name)
	}
	return vs[version-1], nil
}

// fakeOffline records DeleteEventsBefore calls and deletes 10 per call.
type fakeOffline struct {
	appliance.OfflineStore
	calls []string
	fail  string // view key whose call fails
}

func (f *fakeOffline) DeleteEventsBefore(_ context.Context, v *appliance.FeatureView, cutoff int64) (int, error) {
	f.calls = append(f.calls, fmt.Sprintf("%s<%s", v.Key(), time.UnixMicro(cutoff).UTC().Format(time.RFC3339)))
	if v.Key() == f.fail {
		return 3, errors.New("disk on fire")
	}
	return 10, nil
}

// fakeJob is a JobControl over a job record.
type fakeJob struct {
	job         appliance.Job
	done        int64
	checkpoints []string
}

func (f *fakeJob) Job() *appliance.Job    { return &f.job }
func (f *fakeJob) Progress(done, _ int64) { f.done = done }
func (f *fakeJob) SaveCheckpoint(_ context.Context, state any) error {
	raw, err := json.Marshal(state)
	f.checkpoints = append(f.checkpoints, string(raw))
	f.job.Checkpoint = raw
	return err
}

func versions(name string, n int, retention time.Duration) []*appliance.FeatureView {
	var out []*appliance.FeatureView
	for i := 1; i <= n; i++ {
		out = append(out, &appliance.FeatureView{Name: name, Version: i, Retention: appliance.Duration(retention)})
	}
	return out
}

func TestValidateBackupName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"nightly.db", true}, {"before-upgrade_2.db", true}, {"MLNODE.DB", true},
		{"", false}, {"../x.db", false}, {"..", false}, {"a..b", false}, {"/etc/passwd", false}, {"sub/x.db", false},
		{`sub\x.db`, false}, {".hidden", false}, {"a b", false}, {"x\x00.db", false}, {strings.Repeat("a", 201), false},
	} {
		err := appliance.ValidateBackupName("target", tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateBackupName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		var e *appliance.Error
		if err != nil && (!errors.As(err, &e) || e.Code != appliance.EINVALID || e.Field != "target") {
			t.Errorf("ValidateBackupName(%q): %#v", tt.name, err)
		}
	}
}

func TestMaintenance_Backup(t *testing.T) {
	ctx := context.Background()
	backups := &fakeBackups{}
	m := &appliance.Maintenance{Backups: backups, BackupDir: "/var/lib/mlnode/backups", BackupKeep: 5}
	spec := m.BackupSpec()
	if spec.Kind != "backup" || !slices.Equal(spec.Locks(nil), []string{"backup"}) {
		t.Fatalf("spec %s, locks %v", spec.Kind, spec.Locks(nil))
	}
	for _, tt := range []struct {
		args, field string
	}{
		{`{"target":"../escape.db"}`, "target"},
		{`{"target":"/tmp/x.db"}`, "target"},
		{`{"keep":0}`, "keep"},
		{`{"keep":"3"}`, "args.keep"},
		{`{"tagret":"x.db"}`, "args.tagret"},
	} {
		_, err := spec.Validate(ctx, json.RawMessage(tt.args))
		var e *appliance.Error
		if !errors.As(err, &e) || e.Code != appliance.EINVALID || e.Field != tt.field {
			t.Errorf("%s: %v, want invalid %s", tt.args, err, tt.field)
		}
	}
	for _, tt := range []struct {
		args, call string
	}{
		{`{}`, "/var/lib/mlnode/backups||5"},
		{`{"target":"before-upgrade.db","keep":2}`, "/var/lib/mlnode/backups|before-upgrade.db|2"},
	} {
		args, err := spec.Validate(ctx, json.RawMessage(tt.args))
		if err != nil {
			t.Fatal(err)
		}
		backups.calls = nil
		res, err := spec.Run(ctx, &fakeJob{job: appliance.Job{Args: args}})
		if err != nil || res.(*appliance.BackupResult).Bytes != 42 || !slices.Equal(backups.calls, []string{tt.call}) {
			t.Fatalf("%s: %v %v, calls %v", tt.args, res, err, backups.calls)
		}
	}
	if _, err := (&appliance.Maintenance{}).BackupSpec().Validate(ctx, json.RawMessage(`{}`)); appliance.ErrorCode(err) != appliance.EUNAVAILABLE {
		t.Fatalf("without a backup directory: %v", err)
	}
}

func TestMaintenance_RetentionValidate(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	m := &appliance.Maintenance{Now: func() time.Time { return now }, Offline: &fakeOffline{}, Registry: &fakeViews{views: map[string][]*appliance.FeatureView{
		"clicks":  versions("clicks", 2, 90*24*time.Hour),
		"orders":  versions("orders", 1, 0),
		"profile": versions("profile", 3, 30*24*time.Hour),
	}}}
	spec := m.RetentionSpec()
	for _, tt := range []struct {
		name, args string
		want       string // normalized args, or the error's field
		locks      []string
	}{
		{"default: every view with a retention", `{}`, `{"feature_views":["clicks@v1","clicks@v2","profile@v1","profile@v2","profile@v3"],"as_of":"2026-03-01T02:00:00Z"}`,
			[]string{"view:clicks@v1", "view:clicks@v2", "view:profile@v1", "view:profile@v2", "view:profile@v3"}},
		{"named, every version", `{"feature_views":["clicks"]}`, `{"feature_views":["clicks@v1","clicks@v2"],"as_of":"2026-03-01T02:00:00Z"}`,
			[]string{"view:clicks@v1", "view:clicks@v2"}},
		{"one version", `{"feature_views":["profile@v2"],"as_of":"2026-02-01T00:00:00Z"}`, `{"feature_views":["profile@v2"],"as_of":"2026-02-01T00:00:00Z"}`,
			[]string{"view:profile@v2"}},
		{"no retention", `{"feature_views":["orders"]}`, "feature_views[0]", nil},
		{"unknown view", `{"feature_views":["clicks","nope"]}`, "feature_views[1]", nil},
		{"unknown version", `{"feature_views":["clicks@v3"]}`, "feature_views[0]", nil},
		{"bad ref", `{"feature_views":["clicks@x"]}`, "feature_views[0]", nil},
		{"twice", `{"feature_views":["clicks","clicks@v1"]}`, "feature_views[1]", nil},
		{"future", `{"as_of":"2027-01-01T00:00:00Z"}`, "as_of", nil},
		{"unknown argument", `{"views":["clicks"]}`, "args.views", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := spec.Validate(ctx, json.RawMessage(tt.args))
			if tt.locks == nil {
				var e *appliance.Error
				if !errors.As(err, &e) || e.Field != tt.want {
					t.Fatalf("got %s, %v; want an error on %s", got, err, tt.want)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v\nwant %s", got, err, tt.want)
			}
			if locks := spec.Locks(got); !slices.Equal(locks, tt.locks) {
				t.Fatalf("locks %v, want %v", locks, tt.locks)
			}
		})
	}
}

func TestMaintenance_RetentionRun(t *testing.T) {
	ctx := context.Background()
	views := &fakeViews{views: map[string][]*appliance.FeatureView{
		"clicks":  versions("clicks", 2, 90*24*time.Hour),
		"profile": versions("profile", 1, 0), // retention removed after submission
	}}
	offline := &fakeOffline{}
	m := &appliance.Maintenance{Registry: views, Offline: offline}
	spec := m.RetentionSpec()
	args := json.RawMessage(`{"feature_views":["clicks@v1","clicks@v2","profile@v1","gone@v1"],"as_of":"2026-03-01T00:00:00Z"}`)
	jc := &fakeJob{job: appliance.Job{Args: args}}
	res, err := spec.Run(ctx, jc)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(res)
	want := `{"deleted":20,"views":[{"view":"clicks@1","deleted":10,"cutoff":"2025-12-01T00:00:00Z"},{"view":"clicks@2","deleted":10,"cutoff":"2025-12-01T00:00:00Z"},` +
		`{"view":"profile@1","deleted":0,"skipped":"the view has no retention any more"},{"view":"gone@1","deleted":0,"skipped":"the view version was deleted"}]}`
	if string(raw) != want {
		t.Fatalf("result %s\nwant   %s", raw, want)
	}
	if !slices.Equal(offline.calls, []string{"clicks@1<2025-12-01T00:00:00Z", "clicks@2<2025-12-01T00:00:00Z"}) || jc.done != 20 || len(jc.checkpoints) != 4 {
		t.Fatalf("calls %v, progress %d, checkpoints %d", offline.calls, jc.done, len(jc.checkpoints))
	}

	// A failure stops the job; resumed from its checkpoint, it skips what
	// was done and keeps the counts.
	offline.calls, offline.fail = nil, "clicks@2"
	jc = &fakeJob{job: appliance.Job{Args: args}}
	if _, err := spec.Run(ctx, jc); err == nil || !strings.Contains(err.Error(), "clicks@v2") {
		t.Fatalf("failing view: %v", err)
	}
	offline.calls, offline.fail = nil, ""
	res, err = spec.Run(ctx, jc)
	if err != nil || !slices.Equal(offline.calls, []string{"clicks@2<2025-12-01T00:00:00Z"}) {
		t.Fatalf("resumed: %v, calls %v", err, offline.calls)
	}
	if raw, _ := json.Marshal(res); !strings.HasPrefix(string(raw), `{"deleted":20,`) {
		t.Fatalf("resumed result %s", raw)
	}
}
