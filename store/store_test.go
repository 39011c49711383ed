package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

var ctx = context.Background()

func mustCreateUserView(t testing.TB, s *store.Store) *appliance.FeatureView {
	t.Helper()
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}); err != nil {
		t.Fatal(err)
	}
	v, created, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "user_stats", Entities: []string{"user"},
		Features: []appliance.Feature{{Name: "clicks", Dtype: "int64"}, {Name: "score", Dtype: "float64"}}, TTL: appliance.Duration(time.Hour)})
	if err != nil || !created {
		t.Fatalf("apply view: created=%v err=%v", created, err)
	}
	return v
}

func userKey(id string) []byte { return appliance.AppendEntityKeyPart(nil, appliance.StringValue(id)) }

func row(id string, at time.Time, clicks int64, score float64) appliance.Row {
	return appliance.Row{Key: userKey(id), EventTime: at.UnixMicro(), Values: []appliance.Value{appliance.Int64Value(clicks), appliance.Float64Value(score)}}
}

func readOne(t testing.TB, s *store.Store, v *appliance.FeatureView, id string) appliance.OnlineRow {
	t.Helper()
	out := make([]appliance.OnlineRow, 1)
	if err := s.ReadOnline(ctx, v, [][]byte{userKey(id)}, out); err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func TestStore_Open_LockedByAnotherHandle(t *testing.T) {
	dir := t.TempDir()
	storetest.OpenDir(t, dir, store.Options{})
	start := time.Now()
	_, err := store.Open(ctx, dir, store.Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: got %v, want ErrLocked", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("second open took %s", time.Since(start))
	}
}

func TestStore_CreateEntity_IdenticalAndConflicting(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	e := &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}
	if created, err := s.CreateEntity(ctx, e); err != nil || !created {
		t.Fatalf("first create: %v %v", created, err)
	}
	if created, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}); err != nil || created {
		t.Fatalf("identical create: created=%v err=%v, want no-op", created, err)
	}
	_, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"uid"}, ValueType: "string"})
	if appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("conflicting create: %v, want conflict", err)
	}
}

func TestStore_ApplyFeatureView_Versions(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v1 := mustCreateUserView(t, s)
	if v1.Version != 1 || len(v1.JoinKeys) != 1 || v1.JoinKeys[0].Name != "user_id" {
		t.Fatalf("v1 = %+v", v1)
	}
	same, created, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "user_stats", Entities: []string{"user"},
		Features: []appliance.Feature{{Name: "clicks", Dtype: "int64"}, {Name: "score", Dtype: "float64"}}, Owner: "ignored"})
	if err != nil || created || same.Version != 1 {
		t.Fatalf("identical apply: version=%d created=%v err=%v", same.Version, created, err)
	}
	v2, created, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "user_stats", Entities: []string{"user"},
		Features: []appliance.Feature{{Name: "clicks", Dtype: "int64"}, {Name: "score", Dtype: "float64"}, {Name: "country", Dtype: "string"}}})
	if err != nil || !created || v2.Version != 2 {
		t.Fatalf("changed apply: version=%d created=%v err=%v", v2.Version, created, err)
	}
	got, err := s.FeatureView(ctx, "user_stats", 1)
	if err != nil || len(got.Features) != 2 {
		t.Fatalf("version 1 after v2: %+v %v", got, err)
	}
	if _, err := s.FeatureView(ctx, "user_stats", 3); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("version 3: %v", err)
	}
	_, _, err = s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "other", Entities: []string{"nobody"}, Features: []appliance.Feature{{Name: "x", Dtype: "int64"}}})
	if appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("unknown entity: %v", err)
	}

	ttl := appliance.Duration(2 * time.Hour)
	owner := "growth-team"
	patched, err := s.PatchFeatureView(ctx, "user_stats", &appliance.FeatureViewPatch{TTL: &ttl, Owner: &owner})
	if err != nil || patched.TTL != ttl || patched.Owner != owner || patched.Version != 2 {
		t.Fatalf("patch: %+v %v", patched, err)
	}
	old, _ := s.FeatureView(ctx, "user_stats", 1)
	if old.TTL != ttl {
		t.Fatalf("metadata is shared by versions: v1 ttl %v", old.TTL)
	}
}

func TestStore_ReinOpen_KeepsDefinitionsAndData(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := mustCreateUserView(t, s)
	now := time.Now().UTC()
	if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("u1", now, 7, 0.5)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.OpenDir(t, dir, store.Options{})
	v, err = s.FeatureView(ctx, "user_stats", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := readOne(t, s, v, "u1")
	if !got.Found || got.Values[0].Int != 7 || got.Values[1].Float != 0.5 {
		t.Fatalf("after reopen: %+v", got)
	}
}

func TestStore_WriteRows_NewerOrEqualWins(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		rows   []appliance.Row
		clicks int64
	}{
		{"first value", []appliance.Row{row("a", t0, 1, 0)}, 1},
		{"newer wins", []appliance.Row{row("a", t0.Add(time.Minute), 2, 0)}, 2},
		{"late older event does not overwrite", []appliance.Row{row("a", t0, 3, 0)}, 2},
		{"tie goes to the later-ingested row", []appliance.Row{row("a", t0.Add(time.Minute), 4, 0)}, 4},
		{"within a batch the newest wins whatever the order", []appliance.Row{row("a", t0.Add(3*time.Minute), 6, 0), row("a", t0.Add(2*time.Minute), 5, 0)}, 6},
		{"within a batch a tie goes to the later row", []appliance.Row{row("a", t0.Add(3*time.Minute), 7, 0), row("a", t0.Add(3*time.Minute), 8, 0)}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: tt.rows}); err != nil {
				t.Fatal(err)
			}
			if got := readOne(t, s, v, "a"); !got.Found || got.Values[0].Int != tt.clicks {
				t.Fatalf("online clicks = %+v, want %d", got, tt.clicks)
			}
		})
	}
	st, err := s.ViewStats(ctx, v)
	if err != nil || st.OfflineRows != 8 || st.OnlineRows != 1 || st.LastSeq != 8 {
		t.Fatalf("stats = %+v, %v; want 8 offline rows, 1 online, last seq 8", st, err)
	}
}

func TestStore_WriteRows_OfflineOnly(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, OfflineOnly: true, Rows: []appliance.Row{row("a", time.Now(), 1, 0)}}); err != nil {
		t.Fatal(err)
	}
	if got := readOne(t, s, v, "a"); got.Found {
		t.Fatalf("offline-only write reached the online table: %+v", got)
	}
}

func TestStore_WriteRows_Idempotency(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	idem := &appliance.Idempotency{Key: "admin|user_stats|k1", BodyHash: [32]byte{1}, Response: []byte(`{"accepted":1}`)}
	req := &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("a", time.Now(), 1, 0)}, Idempotency: idem}
	if res, err := s.WriteRows(ctx, req); err != nil || res.Duplicate {
		t.Fatalf("first: %+v %v", res, err)
	}
	res, err := s.WriteRows(ctx, req)
	if err != nil || !res.Duplicate || string(res.Replayed) != `{"accepted":1}` {
		t.Fatalf("retry: %+v %v", res, err)
	}
	if st, _ := s.ViewStats(ctx, v); st.OfflineRows != 1 {
		t.Fatalf("retry wrote rows: %+v", st)
	}
	other := *idem
	other.BodyHash = [32]byte{2}
	_, err = s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: req.Rows, Idempotency: &other})
	if appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("same key, other body: %v, want conflict", err)
	}
	resp, hash, ok, err := s.IdempotentResponse(ctx, idem.Key)
	if err != nil || !ok || hash != idem.BodyHash || string(resp) != `{"accepted":1}` {
		t.Fatalf("lookup: %q %v %v", resp, ok, err)
	}
}

// Fifty writers at once: every acknowledged row is stored, sequences are
// unique, and the writes share commits.
func TestStore_WriteRows_ConcurrentWriters(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	const writers, batches = 50, 20
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*batches)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				res, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row(fmt.Sprintf("u%d", w), time.Unix(int64(b), 0), int64(b), 0)}})
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- res.FirstSeq
			}
		}()
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for q := range seqs {
		if seen[q] {
			t.Fatalf("sequence %d handed out twice", q)
		}
		seen[q] = true
	}
	st, _ := s.ViewStats(ctx, v)
	if st.OfflineRows != writers*batches || st.OnlineRows != writers {
		t.Fatalf("stats %+v", st)
	}
	for w := range writers {
		if got := readOne(t, s, v, fmt.Sprintf("u%d", w)); got.Values[0].Int != batches-1 {
			t.Fatalf("u%d online = %+v", w, got)
		}
	}
}

func TestStore_EraseEntityKey(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "item", JoinKeys: []string{"item_id"}, ValueType: "int64"}); err != nil {
		t.Fatal(err)
	}
	// A view where the user is the second entity: erasure must find it by decoding keys.
	pair, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "item_user", Entities: []string{"item", "user"}, Features: []appliance.Feature{{Name: "views", Dtype: "int64"}}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("alice", now, 1, 0), row("alice", now.Add(-time.Hour), 2, 0), row("bob", now, 3, 0)}})
	pairKey := func(item int64, user string) []byte {
		return appliance.AppendEntityKeyPart(appliance.AppendEntityKeyPart(nil, appliance.Int64Value(item)), appliance.StringValue(user))
	}
	s.WriteRows(ctx, &appliance.WriteRequest{View: pair, Rows: []appliance.Row{
		{Key: pairKey(1, "alice"), EventTime: now.UnixMicro(), Values: []appliance.Value{appliance.Int64Value(1)}},
		{Key: pairKey(1, "bob"), EventTime: now.UnixMicro(), Values: []appliance.Value{appliance.Int64Value(1)}},
	}})
	user, _ := s.Entity(ctx, "user")
	res, err := s.EraseEntityKey(ctx, user, []appliance.Value{appliance.StringValue("alice")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Offline != 3 || res.Online != 2 || len(res.Views) != 2 {
		t.Fatalf("erase result %+v, want 3 offline and 2 online rows in 2 views", res)
	}
	if got := readOne(t, s, v, "alice"); got.Found {
		t.Fatal("alice still online")
	}
	if got := readOne(t, s, v, "bob"); !got.Found {
		t.Fatal("bob erased too")
	}
	entries, _, _ := s.AuditEntries(ctx, appliance.AuditFilter{Action: "entity.erase"})
	if len(entries) != 1 || string(entries[0].Summary) == "" {
		t.Fatalf("erase audit: %+v", entries)
	}
	for _, e := range entries {
		if contains(string(e.Summary), "alice") || contains(e.Object, "alice") {
			t.Fatalf("audit entry names the erased key: %+v", e)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}
func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestStore_DeleteFeatureView_NeedsForceWithData(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("a", time.Now(), 1, 0)}})
	if err := s.DeleteFeatureView(ctx, "user_stats", false); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("delete without force: %v", err)
	}
	if _, err := s.ApplyFeatureService(ctx, &appliance.FeatureService{Name: "svc", Features: []string{"user_stats:clicks"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFeatureView(ctx, "user_stats", true); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("delete of a view a service uses: %v", err)
	}
	if err := s.DeleteFeatureService(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFeatureView(ctx, "user_stats", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FeatureView(ctx, "user_stats", 0); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("after delete: %v", err)
	}
}

func TestStore_FeatureService_References(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	mustCreateUserView(t, s)
	tests := []struct {
		refs []string
		code string
	}{
		{[]string{"user_stats:clicks", "user_stats@v1:score"}, ""},
		{[]string{"nope:clicks"}, appliance.ENOTFOUND},
		{[]string{"user_stats:nope"}, appliance.ENOTFOUND},
		{[]string{"user_stats@v9:clicks"}, appliance.ENOTFOUND},
		{[]string{"user_stats"}, appliance.EINVALID},
	}
	for _, tt := range tests {
		_, err := s.ApplyFeatureService(ctx, &appliance.FeatureService{Name: "svc", Features: tt.refs})
		if appliance.ErrorCode(err) != tt.code {
			t.Errorf("%v: got %v, want code %q", tt.refs, err, tt.code)
		}
	}
}

func TestStore_Tokens(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	created, err := s.BootstrapAdmin(ctx, "admin-secret-0123456789")
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	if created, _ := s.BootstrapAdmin(ctx, "another-secret-0123456789"); created {
		t.Fatal("bootstrap ran twice")
	}
	if tok, err := s.Authenticate(ctx, "admin-secret-0123456789"); err != nil || tok.Role != appliance.RoleAdmin {
		t.Fatalf("authenticate admin: %v %v", tok, err)
	}
	tok, secret, err := s.CreateToken(ctx, "ci", appliance.RoleWriter)
	if err != nil || tok.Role != appliance.RoleWriter {
		t.Fatal(err)
	}
	if _, _, err := s.CreateToken(ctx, "ci", appliance.RoleReader); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, _, err := s.CreateToken(ctx, "x", "root"); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Fatalf("bad role: %v", err)
	}
	if got, err := s.Authenticate(ctx, secret); err != nil || got.Name != "ci" {
		t.Fatalf("authenticate: %v %v", got, err)
	}
	if err := s.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, secret); appliance.ErrorCode(err) != appliance.EUNAUTHORIZED {
		t.Fatalf("revoked token: %v", err)
	}
	if err := s.RevokeToken(ctx, "admin"); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("revoking the last admin: %v", err)
	}
}

func TestStore_Audit_ChainAndFilters(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	actx := appliance.NewContextWithCaller(ctx, appliance.Caller{Name: "alice", Role: appliance.RoleAdmin, RequestID: "req-1"})
	if _, err := s.CreateEntity(actx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}); err != nil {
		t.Fatal(err)
	}
	mustCreateUserView(t, s)
	all, more, err := s.AuditEntries(ctx, appliance.AuditFilter{})
	if err != nil || more || len(all) != 2 {
		t.Fatalf("entries: %d more=%v err=%v", len(all), more, err)
	}
	if e := all[0]; e.Actor != "alice" || e.RequestID != "req-1" || e.Action != "entity.create" || e.PrevHash != "" {
		t.Fatalf("first entry %+v", e)
	}
	if all[1].PrevHash != all[0].Hash {
		t.Fatal("second entry does not chain to the first")
	}
	page, more, _ := s.AuditEntries(ctx, appliance.AuditFilter{Limit: 1})
	if len(page) != 1 || !more {
		t.Fatalf("paging: %d %v", len(page), more)
	}
	views, _, _ := s.AuditEntries(ctx, appliance.AuditFilter{Action: "feature_view."})
	if len(views) != 1 {
		t.Fatalf("action prefix filter: %d", len(views))
	}
	v, err := s.VerifyAudit(ctx)
	if err != nil || !v.OK || v.Entries != 2 {
		t.Fatalf("verify: %+v %v", v, err)
	}
}

func TestStore_Telemetry_FlushesAndCountsDrops(t *testing.T) {
	s := storetest.Open(t, store.Options{TelemetryBuffer: 4, TelemetryFlush: 20 * time.Millisecond})
	tel := s.Telemetry()
	kept := 0
	for i := range 10 {
		if tel.Append("prediction", []byte(fmt.Sprint(i))) {
			kept++
		}
	}
	if kept != 4 || tel.Dropped("prediction") != 6 {
		t.Fatalf("kept %d dropped %d, want 4 and 6", kept, tel.Dropped("prediction"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := 0
		if err := tel.Read("prediction", 0, func(uint64, []byte) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flushed %d of 4 records", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The last eighth of the buffer is for exposures: a flood of predictions
// cannot crowd them out.
func TestStore_Telemetry_ReservesRoomForExposures(t *testing.T) {
	s := storetest.Open(t, store.Options{TelemetryBuffer: 16, TelemetryFlush: time.Hour})
	tel := s.Telemetry()
	kept := 0
	for i := range 20 {
		if tel.Append("prediction", []byte(fmt.Sprint(i))) {
			kept++
		}
	}
	if kept != 14 || tel.Dropped("prediction") != 6 {
		t.Fatalf("predictions: kept %d dropped %d, want 14 and 6", kept, tel.Dropped("prediction"))
	}
	for i := range 3 {
		if ok := tel.Append("exposure", []byte(fmt.Sprint(i))); ok != (i < 2) {
			t.Fatalf("exposure %d: kept %v", i, ok)
		}
	}
	if tel.Dropped("exposure") != 1 {
		t.Fatalf("exposures dropped %d, want 1", tel.Dropped("exposure"))
	}
}

// FlushedBefore finds where the records taken since a time begin.
func TestStore_Telemetry_FlushedBefore(t *testing.T) {
	var clock atomic.Int64
	t1 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock.Store(t1.UnixNano())
	s := storetest.Open(t, store.Options{TelemetryFlush: 10 * time.Millisecond, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	tel := s.Telemetry()
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := 0
			if err := tel.Read("prediction", 0, func(uint64, []byte) bool { got++; return true }); err != nil {
				t.Fatal(err)
			}
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("flushed %d of %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i := range 3 {
		tel.Append("prediction", []byte(fmt.Sprint(i)))
	}
	waitFor(3)
	t2 := t1.Add(time.Hour)
	clock.Store(t2.UnixNano())
	for i := range 2 {
		tel.Append("prediction", []byte(fmt.Sprint(i)))
	}
	waitFor(5)
	for _, tc := range []struct {
		at   time.Time
		want uint64
	}{{t1.Add(-time.Second), 0}, {t1, 0}, {t1.Add(time.Minute), 3}, {t2, 3}, {t2.Add(time.Second), 5}} {
		if got, err := tel.FlushedBefore("prediction", tc.at); err != nil || got != tc.want {
			t.Errorf("FlushedBefore(%s) = %d, %v; want %d", tc.at.Format(time.TimeOnly), got, err, tc.want)
		}
	}
	if got, _ := tel.FlushedBefore("exposure", t2); got != 0 {
		t.Errorf("a kind never flushed: %d", got)
	}
}

func TestStore_WritesAfterClose(t *testing.T) {
	s, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}); appliance.ErrorCode(err) != appliance.EUNAVAILABLE {
		t.Fatalf("write after close: %v", err)
	}
}

func TestStore_ScanIngested_LateEventsInIngestOrder(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("b", t0.Add(time.Hour), 1, 0), row("a", t0.Add(2*time.Hour), 2, 0)}})
	// A late event, older than everything: found by sequence, not by time.
	s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row("c", t0.Add(-24*time.Hour), 3, 0)}})
	var got []int64
	var seqs []uint64
	err := s.ScanIngested(ctx, v, 0, func(seq uint64, r appliance.Row) bool {
		got = append(got, r.Values[0].Int)
		seqs = append(seqs, seq)
		return true
	})
	if err != nil || fmt.Sprint(got) != "[1 2 3]" || fmt.Sprint(seqs) != "[1 2 3]" {
		t.Fatalf("scan from 0: %v %v %v", got, seqs, err)
	}
	got = nil
	s.ScanIngested(ctx, v, 2, func(seq uint64, r appliance.Row) bool {
		got = append(got, r.Values[0].Int)
		if string(r.Key) != string(userKey("c")) || r.EventTime != t0.Add(-24*time.Hour).UnixMicro() {
			t.Errorf("row %+v", r)
		}
		return true
	})
	if fmt.Sprint(got) != "[3]" {
		t.Fatalf("scan after 2: %v", got)
	}
}

func TestStore_Modules_ContentAddressed(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	m := &appliance.Module{Kinds: []string{"model"}}
	created, err := s.PutModule(ctx, m, wasm)
	if err != nil || !created || m.SHA256 != appliance.ModuleDigest(wasm) || m.Size != 8 {
		t.Fatalf("put: %v %v %+v", created, err, m)
	}
	again := &appliance.Module{Kinds: []string{"model"}}
	if created, err := s.PutModule(ctx, again, wasm); err != nil || created || !again.CreatedAt.Equal(m.CreatedAt) {
		t.Fatalf("identical put: %v %v %+v", created, err, again)
	}
	if _, err := s.PutModule(ctx, &appliance.Module{SHA256: strings.Repeat("0", 64)}, wasm); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Fatalf("wrong claimed digest: %v", err)
	}
	got, err := s.ModuleBytes(ctx, m.SHA256)
	if err != nil || string(got) != string(wasm) {
		t.Fatalf("bytes: %q %v", got, err)
	}
	if _, err := s.Module(ctx, strings.Repeat("a", 64)); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("unknown module: %v", err)
	}
	list, _ := s.Modules(ctx)
	if len(list) != 1 {
		t.Fatalf("list: %v", list)
	}
}
