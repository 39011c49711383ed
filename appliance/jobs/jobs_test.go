package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

var quiet = slog.New(slog.DiscardHandler)

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

type fixture struct {
	t     *testing.T
	store *store.Store
	view  *appliance.FeatureView
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	s := storetest.Open(t, store.Options{Compaction: store.CompactionOptions{FlushRows: 64, MergeFanIn: 3, Interval: time.Hour}})
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "int64"}); err != nil {
		t.Fatal(err)
	}
	v, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "clicks", Entities: []string{"user"},
		Features: []appliance.Feature{{Name: "n", Dtype: "int64"}}})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, store: s, view: v}
}

func ukey(id int64) []byte { return appliance.AppendEntityKeyPart(nil, appliance.Int64Value(id)) }

// event is what the test wrote, to compute the expected online value.
type event struct {
	user int64
	time time.Time
	val  int64
	seq  uint64
}

// write stores rows offline only, as a history backfill would.
func (f *fixture) write(evs []event) []event {
	f.t.Helper()
	rows := make([]appliance.Row, len(evs))
	for i, e := range evs {
		rows[i] = appliance.Row{Key: ukey(e.user), EventTime: e.time.UnixMicro(), Values: []appliance.Value{appliance.Int64Value(e.val)}}
	}
	res, err := f.store.WriteRows(context.Background(), &appliance.WriteRequest{View: f.view, Rows: rows, OfflineOnly: true})
	if err != nil {
		f.t.Fatal(err)
	}
	for i := range evs {
		evs[i].seq = res.FirstSeq + uint64(i)
	}
	return evs
}

// online returns the online value of each user (-1: none).
func (f *fixture) online(users int) []int64 {
	f.t.Helper()
	keys := make([][]byte, users)
	for i := range keys {
		keys[i] = ukey(int64(i))
	}
	out := make([]appliance.OnlineRow, users)
	if err := f.store.ReadOnline(context.Background(), f.view, keys, out); err != nil {
		f.t.Fatal(err)
	}
	vals := make([]int64, users)
	for i, r := range out {
		vals[i] = -1
		if r.Found {
			vals[i] = r.Values[0].Int
		}
	}
	return vals
}

// expected is the naive answer: per user, the newest event with time <=
// end among evs, ties to the later sequence.
func expected(evs []event, users int, end time.Time) []int64 {
	out := make([]int64, users)
	best := make([]*event, users)
	for i := range evs {
		e := &evs[i]
		if e.time.After(end) {
			continue
		}
		b := best[e.user]
		if b == nil || e.time.After(b.time) || e.time.Equal(b.time) && e.seq > b.seq {
			best[e.user] = e
		}
	}
	for i, b := range best {
		out[i] = -1
		if b != nil {
			out[i] = b.val
		}
	}
	return out
}

func randomEvents(r *rand.Rand, n, users int, from time.Time, span time.Duration, firstVal int64) []event {
	evs := make([]event, n)
	for i := range evs {
		// Coarse times make ties on event time common.
		evs[i] = event{user: int64(r.IntN(users)), time: from.Add(time.Duration(r.IntN(int(span/time.Minute))) * time.Minute), val: firstVal + int64(i)}
	}
	return evs
}

func (f *fixture) runner(specs ...appliance.JobSpec) *Runner {
	m := &Materializer{Registry: f.store, Features: f.store, Offline: f.store, Now: func() time.Time { return t0.Add(48 * time.Hour) }}
	r := New(f.store, append(m.Specs(), specs...), Options{Logger: quiet})
	f.t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func mustRun(t *testing.T, r *Runner, kind string, args string) *appliance.Job {
	t.Helper()
	j, err := r.Run(context.Background(), kind, json.RawMessage(args), "")
	if err != nil {
		t.Fatal(err)
	}
	if j.State != appliance.JobSucceeded {
		t.Fatalf("job %s %s: %s %s", j.ID, kind, j.State, j.Error)
	}
	return j
}

func TestMaterializeIncremental_LateAndFutureEvents(t *testing.T) {
	old := chunkRows
	chunkRows = 7
	t.Cleanup(func() { chunkRows = old })
	f := newFixture(t)
	r := f.runner()
	rng := rand.New(rand.NewPCG(1, 2))
	const users = 40
	end1 := t0.Add(10 * time.Hour)
	all := f.write(randomEvents(rng, 500, users, t0, 12*time.Hour, 0)) // some beyond end1
	if err := f.store.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	all = append(all, f.write(randomEvents(rng, 50, users, t0, 12*time.Hour, 1000))...) // in the tail

	j := mustRun(t, r, KindMaterializeIncremental, fmt.Sprintf(`{"end":%q}`, end1.Format(time.RFC3339)))
	if got, want := f.online(users), expected(all, users, end1); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the first run\ngot  %v\nwant %v", got, want)
	}
	if j.RowsDone != 550 {
		t.Fatalf("rows done %d, want 550", j.RowsDone)
	}
	// Late events: old event times, new sequences. An event-time watermark
	// would miss them.
	all = append(all, f.write(randomEvents(rng, 60, users, t0.Add(-time.Hour), 3*time.Hour, 2000))...)
	mustRun(t, r, KindMaterializeIncremental, fmt.Sprintf(`{"end":%q}`, end1.Format(time.RFC3339)))
	if got, want := f.online(users), expected(all, users, end1); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after late events\ngot  %v\nwant %v", got, want)
	}
	// The events after end1 were held back, not dropped: a later end takes them.
	end2 := t0.Add(24 * time.Hour)
	mustRun(t, r, KindMaterializeIncremental, fmt.Sprintf(`{"end":%q}`, end2.Format(time.RFC3339)))
	if got, want := f.online(users), expected(all, users, end2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the later end\ngot  %v\nwant %v", got, want)
	}
	w, err := f.store.Watermark(context.Background(), f.view)
	if err != nil || w != all[len(all)-1].seq {
		t.Fatalf("watermark %d (%v), want %d", w, err, all[len(all)-1].seq)
	}
}

func TestMaterialize_TimeRangeNeverOverwritesNewer(t *testing.T) {
	f := newFixture(t)
	r := f.runner()
	rng := rand.New(rand.NewPCG(3, 4))
	const users = 30
	all := f.write(randomEvents(rng, 300, users, t0, 10*time.Hour, 0))
	mustRun(t, r, KindMaterialize, fmt.Sprintf(`{"feature_views":["clicks"],"end":%q}`, t0.Add(10*time.Hour).Format(time.RFC3339)))
	want := expected(all, users, t0.Add(10*time.Hour))
	// An older window afterwards changes nothing: newer or equal wins.
	mustRun(t, r, KindMaterialize, fmt.Sprintf(`{"feature_views":["clicks@v1"],"start":%q,"end":%q}`,
		t0.Format(time.RFC3339), t0.Add(2*time.Hour).Format(time.RFC3339)))
	if got := f.online(users); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

func TestMaterialize_BadArguments(t *testing.T) {
	f := newFixture(t)
	r := f.runner()
	for _, tc := range []struct{ kind, args, field string }{
		{KindMaterialize, `{"feature_views":["nope"]}`, "feature_views[0]"},
		{KindMaterialize, `{"feature_views":["clicks@v9"]}`, "feature_views[0]"},
		{KindMaterialize, `{"feature_views":["clicks@x"]}`, "feature_views[0]"},
		{KindMaterialize, `{"feature_views":["clicks","clicks@v1"]}`, "feature_views[1]"},
		{KindMaterialize, `{"end":"yesterday"}`, "end"},
		{KindMaterialize, `{"start":"2026-05-02T00:00:00Z","end":"2026-05-01T00:00:00Z"}`, "end"},
		{KindMaterializeIncremental, `{"start":"2026-05-01T00:00:00Z"}`, "start"},
		{KindMaterialize, `{"views":["clicks"]}`, "args.views"},
		{"defragment", `{}`, "job"},
	} {
		_, err := r.Submit(context.Background(), tc.kind, json.RawMessage(tc.args), "")
		var e *appliance.Error
		if !errors.As(err, &e) || e.Field != tc.field {
			t.Errorf("%s %s: got %v, want an error on %q", tc.kind, tc.args, err, tc.field)
		}
	}
}

// gate is a job spec whose runs block until released, recording overlap.
type gate struct {
	mu      sync.Mutex
	active  map[string]int
	maxSeen int
	release chan struct{}
	started chan string
}

func (g *gate) spec(kind string) appliance.JobSpec {
	return appliance.JobSpec{Kind: kind,
		Locks: func(raw json.RawMessage) []string {
			var a struct{ View string }
			_ = json.Unmarshal(raw, &a)
			return []string{"view:" + a.View}
		},
		Run: func(ctx context.Context, jc appliance.JobControl) (any, error) {
			var a struct{ View string }
			_ = json.Unmarshal(jc.Job().Args, &a)
			g.mu.Lock()
			g.active[a.View]++
			g.maxSeen = max(g.maxSeen, g.active[a.View])
			g.mu.Unlock()
			g.started <- jc.Job().ID
			defer func() { g.mu.Lock(); g.active[a.View]--; g.mu.Unlock() }()
			select {
			case <-g.release:
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}}
}

func TestRunner_SameViewWaitsOtherViewRuns(t *testing.T) {
	f := newFixture(t)
	g := &gate{active: map[string]int{}, release: make(chan struct{}), started: make(chan string, 10)}
	r := f.runner(g.spec("hold"))
	ctx := context.Background()
	a, err := r.Submit(ctx, "hold", json.RawMessage(`{"view":"a"}`), "")
	if err != nil {
		t.Fatal(err)
	}
	<-g.started
	b, _ := r.Submit(ctx, "hold", json.RawMessage(`{"view":"a"}`), "")
	c, _ := r.Submit(ctx, "hold", json.RawMessage(`{"view":"b"}`), "")
	if id := <-g.started; id != c.ID {
		t.Fatalf("job %s started while %s held view a; want %s (view b) first", id, a.ID, c.ID)
	}
	if j, _ := r.Job(ctx, b.ID); j.State != appliance.JobQueued {
		t.Fatalf("second job on view a is %s, want queued", j.State)
	}
	close(g.release)
	if id := <-g.started; id != b.ID {
		t.Fatalf("started %s, want %s", id, b.ID)
	}
	for _, id := range []string{a.ID, b.ID, c.ID} {
		waitState(t, r, id, appliance.JobSucceeded)
	}
	if g.maxSeen != 1 {
		t.Fatalf("%d jobs ran on one view at once", g.maxSeen)
	}
}

func waitState(t *testing.T, r *Runner, id string, want appliance.JobState) *appliance.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := r.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s (%s), want %s", id, j.State, j.Error, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunner_CancelPanicAndConflict(t *testing.T) {
	f := newFixture(t)
	g := &gate{active: map[string]int{}, release: make(chan struct{}), started: make(chan string, 10)}
	boom := appliance.JobSpec{Kind: "boom", Run: func(context.Context, appliance.JobControl) (any, error) { panic("kaboom") }}
	r := f.runner(g.spec("hold"), boom)
	ctx := context.Background()
	j, _ := r.Submit(ctx, "hold", json.RawMessage(`{"view":"a"}`), "")
	<-g.started
	asAlice := appliance.NewContextWithCaller(ctx, appliance.Caller{Name: "alice", Role: appliance.RoleWriter, RequestID: "req-7"})
	got, err := r.Cancel(asAlice, j.ID)
	if err != nil || got.State != appliance.JobCancelled {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	// The job's goroutine records the end; the audit entry names who cancelled.
	entries, _, err := f.store.AuditEntries(ctx, appliance.AuditFilter{Action: "job.cancel"})
	if err != nil || len(entries) != 1 || entries[0].Actor != "alice" || entries[0].RequestID != "req-7" || entries[0].Object != "job/"+j.ID {
		t.Fatalf("job.cancel audit entries: %+v %v", entries, err)
	}
	if _, err := r.Cancel(ctx, j.ID); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("second cancel: %v, want conflict", err)
	}
	p, err := r.Run(ctx, "boom", nil, "")
	if err != nil || p.State != appliance.JobFailed || !strings.Contains(p.Error, "kaboom") {
		t.Fatalf("panicking job: %+v %v", p, err)
	}
	if _, err := r.Job(ctx, "999"); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("unknown job: %v", err)
	}
	list, err := r.Jobs(ctx, appliance.JobFilter{})
	if err != nil || len(list) != 2 || list[0].ID != p.ID {
		t.Fatalf("jobs list: %v %v", list, err)
	}
}

// stallingStore stops a materialization after some chunks, as a crash
// would: the writes after the stall never happen.
type stallingStore struct {
	*store.Store
	writes  atomic.Int32
	stallAt int32
	stalled chan struct{}
}

func (s *stallingStore) WriteOnline(ctx context.Context, w *appliance.OnlineWrite) (int, error) {
	if s.writes.Add(1) == s.stallAt {
		close(s.stalled)
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return s.Store.WriteOnline(ctx, w)
}

func TestMaterialize_ResumesFromCheckpointAfterRestart(t *testing.T) {
	old := chunkRows
	chunkRows = 5
	t.Cleanup(func() { chunkRows = old })
	f := newFixture(t)
	rng := rand.New(rand.NewPCG(5, 6))
	const users = 50
	all := f.write(randomEvents(rng, 400, users, t0, 5*time.Hour, 0))
	now := func() time.Time { return t0.Add(48 * time.Hour) }

	ss := &stallingStore{Store: f.store, stallAt: 4, stalled: make(chan struct{})}
	m1 := &Materializer{Registry: f.store, Features: f.store, Offline: ss, Now: now}
	r1 := New(f.store, m1.Specs(), Options{Logger: quiet})
	j, err := r1.Submit(context.Background(), KindMaterializeIncremental, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	<-ss.stalled
	if err := r1.Close(context.Background()); err != nil { // the node stops mid-job
		t.Fatal(err)
	}
	stored, _ := f.store.Job(context.Background(), j.ID)
	if stored.State != appliance.JobRunning || len(stored.Checkpoint) == 0 {
		t.Fatalf("after shutdown the job is %s with checkpoint %s; want running with one", stored.State, stored.Checkpoint)
	}
	var cp materializeState
	_ = json.Unmarshal(stored.Checkpoint, &cp)

	counting := &countingStore{Store: f.store}
	m2 := &Materializer{Registry: f.store, Features: f.store, Offline: counting, Now: now}
	r2 := New(f.store, m2.Specs(), Options{Logger: quiet})
	t.Cleanup(func() { _ = r2.Close(context.Background()) })
	if err := r2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := waitState(t, r2, j.ID, appliance.JobSucceeded)
	if done.Resumed != 1 {
		t.Fatalf("resumed %d times, want 1", done.Resumed)
	}
	if got, want := f.online(users), expected(all, users, now()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after resume\ngot  %v\nwant %v", got, want)
	}
	// The resumed run rewrote none of the 3 committed chunks.
	if counting.rows.Load() != int64(users)-cp.Results[0].Matched {
		t.Fatalf("resumed run wrote %d rows, want %d (the committed %d skipped)", counting.rows.Load(), int64(users)-cp.Results[0].Matched, cp.Results[0].Matched)
	}
}

type countingStore struct {
	*store.Store
	rows atomic.Int64
}

func (s *countingStore) WriteOnline(ctx context.Context, w *appliance.OnlineWrite) (int, error) {
	s.rows.Add(int64(len(w.Rows)))
	return s.Store.WriteOnline(ctx, w)
}

// A materialization writes while it reads: with a small initial map the
// file grows under it, and a write that remaps waits for read transactions.
// The job must release its cursor before writing, or it never finishes.
func TestMaterialize_GrowingFileDoesNotDeadlock(t *testing.T) {
	old := chunkRows
	chunkRows = 500
	t.Cleanup(func() { chunkRows = old })
	ctx := context.Background()
	s := storetest.Open(t, store.Options{InitialMmapBytes: 1 << 20})
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "int64"}); err != nil {
		t.Fatal(err)
	}
	v, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "clicks", Entities: []string{"user"},
		Features: []appliance.Feature{{Name: "n", Dtype: "int64"}, {Name: "pad", Dtype: "string"}}})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 200)
	rows := make([]appliance.Row, 20000)
	for i := range rows {
		rows[i] = appliance.Row{Key: ukey(int64(i)), EventTime: t0.UnixMicro(), Values: []appliance.Value{appliance.Int64Value(int64(i)), appliance.StringValue(pad)}}
	}
	if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: rows, OfflineOnly: true}); err != nil {
		t.Fatal(err)
	}
	m := &Materializer{Registry: s, Features: s, Offline: s, Now: func() time.Time { return t0.Add(time.Hour) }}
	r := New(s, m.Specs(), Options{Logger: quiet})
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	done := make(chan *appliance.Job, 1)
	go func() {
		j, _ := r.Run(ctx, KindMaterializeIncremental, nil, "")
		done <- j
	}()
	select {
	case j := <-done:
		if j == nil || j.State != appliance.JobSucceeded {
			t.Fatalf("job: %+v", j)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("materialization did not finish: deadlocked on the file's growth")
	}
}

// A job submitted while the runner closes is refused before it is stored:
// stored, it would run at the next start, unasked.
func TestRunner_SubmitAfterCloseStoresNothing(t *testing.T) {
	f := newFixture(t)
	r := f.runner()
	ctx := context.Background()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Submit(ctx, KindMaterializeIncremental, nil, ""); appliance.ErrorCode(err) != appliance.EUNAVAILABLE {
		t.Fatalf("submit after close: %v, want unavailable", err)
	}
	if list, err := f.store.Jobs(ctx, appliance.JobFilter{}); err != nil || len(list) != 0 {
		t.Fatalf("jobs stored: %v %v", list, err)
	}
}

// A view deleted while a materialization waits is skipped and reported;
// the other views are still materialized (a soak saw whole jobs fail).
func TestMaterialize_SkipsAViewDeletedMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.write(randomEvents(rand.New(rand.NewPCG(1, 2)), 20, 5, t0, time.Hour, 0))
	if _, _, err := f.store.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "gone", Entities: []string{"user"},
		Features: []appliance.Feature{{Name: "n", Dtype: "int64"}}}); err != nil {
		t.Fatal(err)
	}
	m := &Materializer{Registry: f.store, Features: f.store, Offline: f.store, Now: func() time.Time { return t0.Add(48 * time.Hour) }}
	args, err := m.validate(false)(ctx, json.RawMessage(`{"feature_views":["clicks","gone"]}`))
	if err != nil {
		t.Fatal(err)
	}
	// A job holding the same locks keeps the materialization queued.
	started, release := make(chan struct{}), make(chan struct{})
	hold := appliance.JobSpec{Kind: "hold", Locks: func(json.RawMessage) []string { return viewLocks(args) },
		Run: func(context.Context, appliance.JobControl) (any, error) { close(started); <-release; return nil, nil }}
	r := New(f.store, append(m.Specs(), hold), Options{Logger: quiet})
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	if _, err := r.Submit(ctx, "hold", nil, ""); err != nil {
		t.Fatal(err)
	}
	<-started
	j, err := r.Submit(ctx, KindMaterialize, json.RawMessage(`{"feature_views":["clicks","gone"]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.DeleteFeatureView(ctx, "gone", true); err != nil {
		t.Fatal(err)
	}
	close(release)
	done := waitState(t, r, j.ID, appliance.JobSucceeded)
	var res struct{ Views []MaterializeResult }
	if err := json.Unmarshal(done.Result, &res); err != nil || len(res.Views) != 2 ||
		res.Views[0].Written == 0 || res.Views[1].Skipped == "" {
		t.Fatalf("result: %s (%v)", done.Result, err)
	}
}

type notifierFunc func(context.Context, appliance.Event) error

func (f notifierFunc) Notify(ctx context.Context, e appliance.Event) error { return f(ctx, e) }

// A job that fails is announced to the webhooks (job.failed); one that
// succeeds is not.
func TestRunner_FailedJobNotifies(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var events []appliance.Event
	boom := appliance.JobSpec{Kind: "boom", Run: func(context.Context, appliance.JobControl) (any, error) { return nil, errors.New("disk on fire") }}
	fine := appliance.JobSpec{Kind: "fine", Run: func(context.Context, appliance.JobControl) (any, error) { return nil, nil }}
	r := New(f.store, []appliance.JobSpec{boom, fine}, Options{Logger: quiet, Notifier: notifierFunc(func(_ context.Context, e appliance.Event) error {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
		return nil
	})})
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	ctx := context.Background()
	if _, err := r.Run(ctx, "fine", nil, ""); err != nil {
		t.Fatal(err)
	}
	j, err := r.Run(ctx, "boom", nil, "")
	if err != nil || j.State != appliance.JobFailed {
		t.Fatalf("failing job: %+v %v", j, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Type != appliance.EventJobFailed || events[0].Subject != "job/"+j.ID {
		t.Fatalf("events: %+v", events)
	}
}
