package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A backup taken while rows are written is a consistent store: it passes
// verification, opens, and its counts agree with its rows.
func TestBackupToDir_WhileWriting(t *testing.T) {
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	writeBatches(t, s, v, 5, 20, 7)
	var wg sync.WaitGroup
	var stop atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			row := appliance.Row{Key: ukey("w"), EventTime: int64(i), Values: []appliance.Value{appliance.Int64Value(int64(i))}}
			if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: v, Rows: []appliance.Row{row}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	dir := filepath.Join(t.TempDir(), "backups")
	var results []*appliance.BackupResult
	for range 3 {
		res, err := s.BackupToDir(ctx, dir, "", 7)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	stop.Store(true)
	wg.Wait()

	for _, res := range results {
		fi, err := os.Stat(res.Path)
		if err != nil || fi.Size() != res.Bytes || filepath.Dir(res.Path) != dir {
			t.Fatalf("backup %+v: %v", res, err)
		}
		info, err := VerifyBackup(ctx, res.Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.SchemaVersion != SchemaVersion || info.FeatureViews != 1 || info.ViewVersions != 1 || info.AuditEntries < 3 || info.LastAudit.IsZero() {
			t.Fatalf("info %+v", info)
		}
		// The snapshot opens as a store; its counters agree with its rows.
		restored := t.TempDir()
		copyFile(t, res.Path, filepath.Join(restored, "mlnode.db"))
		b, err := Open(ctx, restored, Options{})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := b.ViewStats(ctx, v)
		if rows := scanAll(t, b, v, 0); len(rows) != st.OfflineRows || int64(len(rows)) != info.Events || len(rows) < 100 {
			t.Fatalf("backup holds %d rows, stats say %d, verify says %d", len(rows), st.OfflineRows, info.Events)
		}
		if vr, err := b.VerifyAudit(ctx); err != nil || !vr.OK {
			t.Fatalf("audit of the backup: %+v %v", vr, err)
		}
		b.Close()
	}
	entries, _, err := s.AuditEntries(ctx, appliance.AuditFilter{Action: "backup.create"})
	if err != nil || len(entries) != 3 || !strings.HasPrefix(entries[0].Object, "backup/mlnode-") {
		t.Fatalf("audit: %v %v", entries, err)
	}
	if slices.ContainsFunc(dirNames(t, dir), func(n string) bool { return strings.HasSuffix(n, ".tmp") }) {
		t.Fatalf("temporary file left: %v", dirNames(t, dir))
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Keep-N counts automatic backups only, newest by name, and never touches
// other files.
func TestBackupToDir_KeepsNewestN(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)}
	s, err := Open(ctx, t.TempDir(), Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := t.TempDir()
	others := []string{"notes.txt", "mlnode-manual.db", "mlnode-20200101T000000Z.db.bak"}
	for _, name := range others {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600)
	}
	// A directory named like a backup is not a backup.
	os.Mkdir(filepath.Join(dir, "mlnode-20000101T000000Z.db"), 0o700)

	var names []string
	for i := range 5 {
		if i != 2 { // two in the same second
			clock.Add(time.Hour)
		}
		res, err := s.BackupToDir(ctx, dir, "", 3)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(res.Path))
	}
	want := []string{"mlnode-20260301T030000Z.db", "mlnode-20260301T040000Z.db", "mlnode-20260301T040000Z-2.db", "mlnode-20260301T050000Z.db", "mlnode-20260301T060000Z.db"}
	if !slices.Equal(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
	named, err := s.BackupToDir(ctx, dir, "before-upgrade.db", 3)
	if err != nil || len(named.Removed) != 0 {
		t.Fatalf("named backup: %+v %v", named, err)
	}
	got := dirNames(t, dir)
	wantLeft := append([]string{"before-upgrade.db", "mlnode-20000101T000000Z.db", "mlnode-20260301T040000Z-2.db",
		"mlnode-20260301T050000Z.db", "mlnode-20260301T060000Z.db"}, others...)
	slices.Sort(wantLeft)
	if !slices.Equal(got, wantLeft) {
		t.Fatalf("left %v\nwant %v", got, wantLeft)
	}
	if _, err := s.BackupToDir(ctx, dir, "before-upgrade.db", 3); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("existing name: %v", err)
	}
}

func TestBackupToDir_TargetOutsideTheDirectory(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	root := t.TempDir()
	dir := filepath.Join(root, "backups")
	os.Mkdir(dir, 0o700)
	outside := filepath.Join(root, "outside")
	os.Mkdir(outside, 0o700)
	os.Symlink(filepath.Join(outside, "x.db"), filepath.Join(dir, "link.db"))
	for _, tt := range []struct {
		name, target, code string
	}{
		{"parent", "../x.db", appliance.EINVALID},
		{"dot dot", "..", appliance.EINVALID},
		{"absolute", filepath.Join(outside, "x.db"), appliance.EINVALID},
		{"subdirectory", "sub/x.db", appliance.EINVALID},
		{"backslash", `..\x.db`, appliance.EINVALID},
		{"hidden", ".x.db", appliance.EINVALID},
		{"space", "my backup.db", appliance.EINVALID},
		{"symlink out", "link.db", appliance.ECONFLICT},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.BackupToDir(ctx, dir, tt.target, 3)
			var e *appliance.Error
			if !errors.As(err, &e) || e.Code != tt.code || tt.code == appliance.EINVALID && e.Field != "target" {
				t.Fatalf("%q: %v, want %s", tt.target, err, tt.code)
			}
		})
	}
	if names := dirNames(t, outside); len(names) != 0 {
		t.Fatalf("written outside: %v", names)
	}
	if _, err := s.BackupToDir(ctx, dir, "", 0); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Fatalf("keep 0: %v", err)
	}
	// A backup directory reached through a link is resolved once.
	linked := filepath.Join(root, "via-link")
	os.Symlink(dir, linked)
	res, err := s.BackupToDir(ctx, linked, "ok.db", 3)
	if err != nil || res.Path != filepath.Join(dir, "ok.db") {
		t.Fatalf("through a link: %+v %v", res, err)
	}
}

func TestBackup_Cancelled(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Backup(ctx, io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("Backup: %v", err)
	}
	dir := t.TempDir()
	if _, err := s.BackupToDir(ctx, dir, "", 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("BackupToDir: %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
}

// makeBackup returns a backup of a store with a view and some rows.
func makeBackup(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	s := openCompacting(t, t.TempDir())
	defer s.Close()
	v := defineView(t, s)
	writeBatches(t, s, v, 10, 20, 7)
	res, err := s.BackupToDir(ctx, t.TempDir(), "", 3)
	if err != nil {
		t.Fatal(err)
	}
	return res.Path
}

// tamper copies a backup and changes the copy in a bbolt transaction.
func tamper(t *testing.T, src string, fn func(tx *bolt.Tx) error) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "tampered.db")
	copyFile(t, src, dst)
	db, err := bolt.Open(dst, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	db.Close()
	return dst
}

func TestVerifyBackup_Refuses(t *testing.T) {
	ctx := context.Background()
	good := makeBackup(t)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, data, 0o600)
		return p
	}
	// Damage every page past the two meta pages: which pages a store uses
	// varies from run to run, and one damaged free page is undetectable.
	flipped := bytes.Clone(raw)
	for page := 4096 * 2; page+64 <= len(flipped); page += 4096 {
		for i := page + 16; i < page+64; i++ {
			flipped[i] ^= 0xff
		}
	}
	for _, tt := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(t.TempDir(), "nope.db"), "no such file"},
		{"empty", write("empty.db", nil), "empty"},
		{"garbage", write("garbage.db", bytes.Repeat([]byte("mlnode"), 5000)), "not a bbolt file"},
		{"truncated to 100 bytes", write("t100.db", raw[:100]), ""},
		{"truncated to 5000 bytes", write("t5000.db", raw[:5000]), ""},
		{"truncated to half", write("half.db", raw[:len(raw)/2]), "truncated"},
		{"damaged page", write("flipped.db", flipped), ""},
		{"newer schema", tamper(t, good, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchemaVersion, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
		}), "newer than this binary"},
		{"not a store", tamper(t, good, func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketMeta) }), "not an mlnode store"},
		{"audit entry removed", tamper(t, good, func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(u64(2)) }), "audit chain broken at entry 3"},
		{"audit entry edited", tamper(t, good, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			v := bytes.Replace(b.Get(u64(1)), []byte(`"entity.create"`), []byte(`"entity.delete"`), 1)
			return b.Put(u64(1), v)
		}), "hash does not match"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyBackup(ctx, tt.path, nil)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("got %v, want an error naming the file and containing %q", err, tt.want)
			}
		})
	}
	if _, err := VerifyBackup(ctx, good, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRestore(t *testing.T) {
	ctx := context.Background()
	backup := makeBackup(t)
	clock := &fakeClock{now: time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)}
	opts := RestoreOptions{Now: clock.Now}

	// Into an empty data directory.
	empty := filepath.Join(t.TempDir(), "new")
	res, err := Restore(ctx, backup, empty, opts)
	if err != nil || res.Replaces || res.Previous != "" || res.Backup.Events != 200 {
		t.Fatalf("restore into an empty dir: %+v %v", res, err)
	}
	if names := dirNames(t, empty); !slices.Equal(names, []string{"mlnode.db"}) {
		t.Fatalf("data dir holds %v", names)
	}

	// Over an existing store: only with Force, and the old file is kept.
	dataDir := t.TempDir()
	s, err := Open(ctx, dataDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// While the node holds the store, nothing happens.
	if _, err := Restore(ctx, backup, dataDir, RestoreOptions{Force: true, LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "stop the node first") {
		t.Fatalf("restore under a running node: %v", err)
	}
	s.Close()
	before, _ := os.ReadFile(filepath.Join(dataDir, "mlnode.db"))
	if _, err := Restore(ctx, backup, dataDir, opts); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("without force: %v", err)
	}
	dry := opts
	dry.DryRun = true
	if res, err := Restore(ctx, backup, dataDir, dry); err != nil || !res.Replaces || res.Backup == nil {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if _, err := Restore(ctx, filepath.Join(dataDir, "mlnode.db"), dataDir, RestoreOptions{Force: true}); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Fatalf("restoring the store onto itself: %v", err)
	}
	if names := dirNames(t, dataDir); !slices.Equal(names, []string{"mlnode.db"}) {
		t.Fatalf("refusals changed the data dir: %v", names)
	}
	force := opts
	force.Force = true
	res, err = Restore(ctx, backup, dataDir, force)
	if err != nil || !res.Replaces || res.Previous != filepath.Join(dataDir, "mlnode.db.pre-restore-20260301T020000Z") {
		t.Fatalf("forced restore: %+v %v", res, err)
	}
	if kept, _ := os.ReadFile(res.Previous); !bytes.Equal(kept, before) {
		t.Fatal("the replaced store was not kept as it was")
	}
	if restored, _ := os.ReadFile(filepath.Join(dataDir, "mlnode.db")); !bytes.Equal(restored, mustRead(t, backup)) {
		t.Fatal("the restored store differs from the backup")
	}
	// Twice in the same second: the second old store gets its own name.
	res, err = Restore(ctx, backup, dataDir, force)
	if err != nil || res.Previous != filepath.Join(dataDir, "mlnode.db.pre-restore-20260301T020000Z-2") {
		t.Fatalf("second restore: %+v %v", res, err)
	}

	// A damaged store is moved aside too: it is why one restores.
	os.WriteFile(filepath.Join(dataDir, "mlnode.db"), []byte("not a database"), 0o600)
	clock.Add(time.Second)
	res, err = Restore(ctx, backup, dataDir, force)
	if err != nil || res.PreviousUnreadable == "" {
		t.Fatalf("over a damaged store: %+v %v", res, err)
	}
	// A truncated backup is refused and the store is untouched.
	current := mustRead(t, filepath.Join(dataDir, "mlnode.db"))
	truncated := filepath.Join(t.TempDir(), "truncated.db")
	os.WriteFile(truncated, current[:len(current)/2], 0o600)
	names := dirNames(t, dataDir)
	if _, err := Restore(ctx, truncated, dataDir, force); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated backup: %v", err)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(dataDir, "mlnode.db")), current) || !slices.Equal(dirNames(t, dataDir), names) {
		t.Fatal("a refused restore changed the data dir")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
