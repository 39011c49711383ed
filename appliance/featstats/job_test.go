package featstats

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// fakeRegistry holds view versions by name; only what the job calls is
// implemented (the embedded interface panics on anything else).
type fakeRegistry struct {
	appliance.FeatureRegistry
	views map[string][]*appliance.FeatureView
}

func (r *fakeRegistry) FeatureView(_ context.Context, name string, version int) (*appliance.FeatureView, error) {
	vs := r.views[name]
	if len(vs) == 0 {
		return nil, appliance.NotFound("feature view", name)
	}
	if version == 0 {
		return vs[len(vs)-1], nil
	}
	if version > len(vs) {
		return nil, appliance.Errorf(appliance.ENOTFOUND, "feature view %q has no version %d", name, version)
	}
	return vs[version-1], nil
}

func (r *fakeRegistry) FeatureViews(context.Context) ([]*appliance.FeatureView, error) {
	var out []*appliance.FeatureView
	for _, name := range slices.Sorted(maps.Keys(r.views)) {
		out = append(out, r.views[name][len(r.views[name])-1])
	}
	return out, nil
}

type event struct {
	view string
	seq  uint64
	row  appliance.Row
}

// fakeOffline is an ingest log: sequences are global, as in the store.
// duringScan, if set, runs once inside the next scan: ingest racing a job.
type fakeOffline struct {
	appliance.OfflineStore
	mu         sync.Mutex
	events     []event
	duringScan func()
	scans      []uint64 // the afterSeq of each scan
}

func (o *fakeOffline) ingest(view *appliance.FeatureView, rows ...[]appliance.Value) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, values := range rows {
		seq := uint64(len(o.events) + 1)
		o.events = append(o.events, event{view.Key(), seq, appliance.Row{Key: []byte("k"), EventTime: int64(seq), Values: values}})
	}
}

func (o *fakeOffline) LastSeq(context.Context) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return uint64(len(o.events)), nil
}

func (o *fakeOffline) ScanIngested(ctx context.Context, view *appliance.FeatureView, afterSeq uint64, fn func(uint64, appliance.Row) bool) error {
	o.mu.Lock()
	o.scans = append(o.scans, afterSeq)
	hook := o.duringScan
	o.duringScan = nil
	o.mu.Unlock()
	if hook != nil {
		hook()
	}
	o.mu.Lock()
	events := slices.Clone(o.events)
	o.mu.Unlock()
	// No particular order, as the interface says: newest first.
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		if e.view == view.Key() && e.seq > afterSeq && !fn(e.seq, e.row) {
			return nil
		}
	}
	return nil
}

type fakeStats struct {
	mu   sync.Mutex
	recs map[string]*appliance.FeatureStatsRecord
	puts int
}

func (s *fakeStats) PutStats(_ context.Context, view *appliance.FeatureView, r *appliance.FeatureStatsRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs == nil {
		s.recs = map[string]*appliance.FeatureStatsRecord{}
	}
	s.recs[view.Key()] = r
	s.puts++
	return nil
}

func (s *fakeStats) Stats(_ context.Context, view *appliance.FeatureView) (*appliance.FeatureStatsRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recs[view.Key()]; ok {
		return r, nil
	}
	return nil, appliance.NotFound("statistics of feature view", view.Key())
}

func (s *fakeStats) get(t *testing.T, key string) *ViewStats {
	t.Helper()
	s.mu.Lock()
	r := s.recs[key]
	s.mu.Unlock()
	if r == nil {
		t.Fatalf("no statistics stored for %s", key)
	}
	st, err := FromRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type fakeControl struct {
	appliance.JobControl
	job        appliance.Job
	progress   []int64
	checkpoint json.RawMessage
}

func (c *fakeControl) Job() *appliance.Job { return &c.job }

func (c *fakeControl) Progress(done, _ int64) { c.progress = append(c.progress, done) }

func (c *fakeControl) SaveCheckpoint(_ context.Context, state any) error {
	b, err := json.Marshal(state)
	c.checkpoint = b
	return err
}

type jobFixture struct {
	reg     *fakeRegistry
	offline *fakeOffline
	stats   *fakeStats
	spec    appliance.JobSpec
	now     time.Time
}

func newJobFixture() *jobFixture {
	f := &jobFixture{reg: &fakeRegistry{views: map[string][]*appliance.FeatureView{}}, offline: &fakeOffline{}, stats: &fakeStats{},
		now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	f.spec = (&job{reg: f.reg, offline: f.offline, stats: f.stats, now: func() time.Time { return f.now }}).spec()
	return f
}

func (f *jobFixture) addView(name string, features ...appliance.Feature) *appliance.FeatureView {
	v := &appliance.FeatureView{Name: name, Version: len(f.reg.views[name]) + 1, Features: features}
	f.reg.views[name] = append(f.reg.views[name], v)
	return v
}

// run validates args like the job runner and runs the job to its end.
func (f *jobFixture) run(t *testing.T, args string, checkpoint ...string) (*JobResult, *fakeControl) {
	t.Helper()
	norm, err := f.spec.Validate(context.Background(), json.RawMessage(args))
	if err != nil {
		t.Fatalf("validate %s: %v", args, err)
	}
	jc := &fakeControl{job: appliance.Job{ID: "1", Kind: JobKind, Args: norm}}
	if len(checkpoint) > 0 {
		jc.job.Checkpoint = json.RawMessage(checkpoint[0])
	}
	res, err := f.spec.Run(context.Background(), jc)
	if err != nil {
		t.Fatalf("run %s: %v", args, err)
	}
	return res.(*JobResult), jc
}

func scoreFeatures() []appliance.Feature {
	return []appliance.Feature{{Name: "clicks", Dtype: appliance.DTypeInt64}, {Name: "country", Dtype: appliance.DTypeString}}
}

func scoreRow(r *rand.Rand) []appliance.Value {
	return []appliance.Value{appliance.Int64Value(r.Int64N(100)), appliance.StringValue([]string{"fr", "de", "us"}[r.IntN(3)])}
}

func TestJob_IncrementalEqualsFull(t *testing.T) {
	f := newJobFixture()
	v := f.addView("scores", scoreFeatures()...)
	other := f.addView("other", appliance.Feature{Name: "x", Dtype: appliance.DTypeFloat64})
	r := rand.New(rand.NewPCG(31, 32))
	for range 3000 {
		f.offline.ingest(v, scoreRow(r))
		f.offline.ingest(other, []appliance.Value{appliance.Float64Value(r.Float64())})
	}
	res, jc := f.run(t, `{"feature_views":["scores"]}`)
	if len(res.Views) != 1 || res.Views[0] != (ViewResult{View: "scores@1", RowsAdded: 3000, Rows: 3000, ThroughSeq: 5999}) {
		t.Fatalf("first run: %+v", res.Views)
	}
	if len(jc.progress) == 0 || jc.progress[len(jc.progress)-1] != 3000 {
		t.Fatalf("progress %v", jc.progress)
	}
	for range 500 {
		f.offline.ingest(v, scoreRow(r))
	}
	f.now = f.now.Add(time.Hour)
	res, _ = f.run(t, `{"feature_views":["scores@1"]}`)
	if res.Views[0].RowsAdded != 500 || res.Views[0].Rows != 3500 {
		t.Fatalf("incremental run: %+v", res.Views)
	}
	if got := f.offline.scans[len(f.offline.scans)-1]; got != 5999 {
		t.Fatalf("incremental scan after seq %d, want 5999", got)
	}
	incremental := f.stats.get(t, "scores@1")
	if !incremental.ComputedAt.Equal(f.now) {
		t.Fatalf("computed at %v", incremental.ComputedAt)
	}
	res, _ = f.run(t, `{"feature_views":["scores"],"full":true}`)
	if res.Views[0].RowsAdded != 3500 || f.offline.scans[len(f.offline.scans)-1] != 0 {
		t.Fatalf("full run: %+v after seq %d", res.Views, f.offline.scans[len(f.offline.scans)-1])
	}
	full := f.stats.get(t, "scores@1")
	sameStats(t, incremental, full)

	// Nothing new: no scan result, no write.
	puts := f.stats.puts
	res, _ = f.run(t, `{"feature_views":["scores"]}`)
	if res.Views[0].RowsAdded != 0 || f.stats.puts != puts {
		t.Fatalf("idle run added %d rows, wrote %d times", res.Views[0].RowsAdded, f.stats.puts-puts)
	}
}

// Events ingested while a scan runs carry sequences above the bound read
// before it: they are left out and counted by the next run, never skipped.
func TestJob_EventsDuringScanAreNotSkipped(t *testing.T) {
	f := newJobFixture()
	v := f.addView("scores", scoreFeatures()...)
	r := rand.New(rand.NewPCG(33, 34))
	for range 100 {
		f.offline.ingest(v, scoreRow(r))
	}
	f.offline.duringScan = func() {
		for range 40 {
			f.offline.ingest(v, scoreRow(r))
		}
	}
	res, _ := f.run(t, `{}`)
	if res.Views[0].RowsAdded != 100 || res.Views[0].ThroughSeq != 100 {
		t.Fatalf("run during ingest: %+v", res.Views)
	}
	res, _ = f.run(t, `{}`)
	if res.Views[0].RowsAdded != 40 || res.Views[0].Rows != 140 || res.Views[0].ThroughSeq != 140 {
		t.Fatalf("next run: %+v", res.Views)
	}
}

func TestJob_Validate(t *testing.T) {
	f := newJobFixture()
	f.addView("scores", scoreFeatures()...)
	f.addView("scores", scoreFeatures()[:1]...)
	f.addView("alpha", scoreFeatures()...)
	tests := []struct {
		name, args, want string
		code, field      string
	}{
		{"empty means every latest version", `{}`, `{"feature_views":["alpha@1","scores@2"],"full":false}`, "", ""},
		{"null", `null`, `{"feature_views":["alpha@1","scores@2"],"full":false}`, "", ""},
		{"latest", `{"feature_views":["scores"],"full":true}`, `{"feature_views":["scores@2"],"full":true}`, "", ""},
		{"pinned, deduplicated", `{"feature_views":["scores@1","scores@v1","alpha","alpha@1"]}`, `{"feature_views":["scores@1","alpha@1"],"full":false}`, "", ""},
		{"unknown view", `{"feature_views":["nope"]}`, "", appliance.ENOTFOUND, "feature_views"},
		{"unknown version", `{"feature_views":["scores@3"]}`, "", appliance.ENOTFOUND, "feature_views"},
		{"bad version", `{"feature_views":["scores@x"]}`, "", appliance.EINVALID, "feature_views"},
		{"bad name", `{"feature_views":["Scores"]}`, "", appliance.EINVALID, "feature_views"},
		{"unknown argument", `{"views":["scores"]}`, "", appliance.EINVALID, "args.views"},
		{"wrong type", `{"feature_views":"scores"}`, "", appliance.EINVALID, "args.feature_views"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			norm, err := f.spec.Validate(context.Background(), json.RawMessage(tt.args))
			if tt.code != "" {
				var e *appliance.Error
				if !errors.As(err, &e) || e.Code != tt.code || e.Field != tt.field {
					t.Fatalf("error %v, want %s on %s", err, tt.code, tt.field)
				}
				return
			}
			if err != nil || string(norm) != tt.want {
				t.Fatalf("normalized %s, %v; want %s", norm, err, tt.want)
			}
		})
	}
}

func TestJob_Locks(t *testing.T) {
	f := newJobFixture()
	f.addView("scores", scoreFeatures()...)
	f.addView("scores", scoreFeatures()...)
	f.addView("alpha", scoreFeatures()...)
	tests := []struct {
		args string
		want []string
	}{
		{`{"feature_views":["scores@1","alpha@1"]}`, []string{"stats:scores@1", "stats:alpha@1"}},
		{`{"feature_views":["scores"]}`, []string{"stats:scores@2"}},
		{`{}`, []string{"stats:alpha@1", "stats:scores@2"}},
		// A validated version that was deleted since still gets its lock.
		{`{"feature_views":["gone@4"]}`, []string{"stats:gone@4"}},
	}
	for _, tt := range tests {
		if got := f.spec.Locks(json.RawMessage(tt.args)); !slices.Equal(got, tt.want) {
			t.Errorf("locks of %s: %v, want %v", tt.args, got, tt.want)
		}
	}
}

func TestJob_ResumesFromCheckpoint(t *testing.T) {
	f := newJobFixture()
	a := f.addView("alpha", scoreFeatures()...)
	b := f.addView("beta", scoreFeatures()...)
	r := rand.New(rand.NewPCG(35, 36))
	for range 10 {
		f.offline.ingest(a, scoreRow(r))
		f.offline.ingest(b, scoreRow(r))
	}
	res, jc := f.run(t, `{"full":true}`, `{"done":[{"view":"alpha@1","rows_added":10,"rows":10,"through_seq":19}]}`)
	if len(res.Views) != 2 || res.Views[0].View != "alpha@1" || res.Views[1].View != "beta@1" || res.Views[1].RowsAdded != 10 {
		t.Fatalf("resumed: %+v", res.Views)
	}
	if f.stats.recs["alpha@1"] != nil {
		t.Fatal("a view done before the restart was recomputed")
	}
	var cp checkpoint
	if err := json.Unmarshal(jc.checkpoint, &cp); err != nil || len(cp.Done) != 2 {
		t.Fatalf("checkpoint %s: %v", jc.checkpoint, err)
	}
}

func TestJob_RecomputesWhatCannotBeUsed(t *testing.T) {
	f := newJobFixture()
	v := f.addView("scores", scoreFeatures()...)
	r := rand.New(rand.NewPCG(37, 38))
	for range 20 {
		f.offline.ingest(v, scoreRow(r))
	}
	tests := []struct {
		name   string
		stored func() *appliance.FeatureStatsRecord
		reason string
	}{
		{"damaged", func() *appliance.FeatureStatsRecord {
			return &appliance.FeatureStatsRecord{View: "scores", Version: 1, ThroughSeq: 5, Rows: 5, State: []byte{viewFormat, 9}}
		}, "unreadable"},
		{"other schema", func() *appliance.FeatureStatsRecord {
			st := New(&appliance.FeatureView{Name: "scores", Version: 1, Features: scoreFeatures()[:1]})
			rec, _ := st.Record()
			return rec
		}, "another schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.stats.recs = map[string]*appliance.FeatureStatsRecord{"scores@1": tt.stored()}
			res, _ := f.run(t, `{}`)
			if !strings.Contains(res.Views[0].Recomputed, tt.reason) || res.Views[0].RowsAdded != 20 || f.stats.get(t, "scores@1").Rows != 20 {
				t.Fatalf("result %+v", res.Views[0])
			}
		})
	}
}

func TestJob_DeletedViewIsSkipped(t *testing.T) {
	f := newJobFixture()
	f.addView("scores", scoreFeatures()...)
	norm, err := f.spec.Validate(context.Background(), json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	delete(f.reg.views, "scores")
	res, err := f.spec.Run(context.Background(), &fakeControl{job: appliance.Job{Args: norm}})
	if err != nil {
		t.Fatal(err)
	}
	if views := res.(*JobResult).Views; len(views) != 1 || views[0].Skipped == "" {
		t.Fatalf("result %+v", views)
	}
}

func TestJob_StopsWhenCancelled(t *testing.T) {
	f := newJobFixture()
	v := f.addView("scores", scoreFeatures()...)
	r := rand.New(rand.NewPCG(39, 40))
	for range 5 * progressEvery {
		f.offline.ingest(v, scoreRow(r))
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.offline.duringScan = cancel
	norm, _ := f.spec.Validate(context.Background(), json.RawMessage(`{}`))
	_, err := f.spec.Run(ctx, &fakeControl{job: appliance.Job{Args: norm}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	if len(f.stats.recs) != 0 {
		t.Fatal("a cancelled scan stored partial statistics")
	}
}

func TestJob_RefusesRowsThatDoNotFit(t *testing.T) {
	f := newJobFixture()
	v := f.addView("scores", scoreFeatures()...)
	f.offline.ingest(v, []appliance.Value{appliance.StringValue("x"), appliance.StringValue("y")})
	norm, _ := f.spec.Validate(context.Background(), json.RawMessage(`{}`))
	if _, err := f.spec.Run(context.Background(), &fakeControl{job: appliance.Job{Args: norm}}); err == nil || !strings.Contains(err.Error(), "clicks") {
		t.Fatalf("run over a bad row: %v", err)
	}
}
