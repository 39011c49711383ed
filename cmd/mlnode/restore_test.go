package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
)

func restoreKey(id string) []byte {
	return appliance.AppendEntityKeyPart(nil, appliance.StringValue(id))
}

func writeClicks(t *testing.T, s *store.Store, v *appliance.FeatureView, clicks map[string]int64) {
	t.Helper()
	var rows []appliance.Row
	for id, n := range clicks {
		rows = append(rows, appliance.Row{Key: restoreKey(id), EventTime: time.Now().UnixMicro(), Values: []appliance.Value{appliance.Int64Value(n)}})
	}
	if _, err := s.WriteRows(context.Background(), &appliance.WriteRequest{View: v, Rows: rows}); err != nil {
		t.Fatal(err)
	}
}

func listDir(t *testing.T, dir string) []string {
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

// A backup restored over a store that moved on reads back as it was when
// backed up; a truncated backup is refused and changes nothing.
func TestRestore_BackupReadsBack(t *testing.T) {
	t.Setenv("MLNODE_DATA_DIR", "")
	ctx := context.Background()
	dataDir := t.TempDir()
	s, err := store.Open(ctx, dataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "string"}); err != nil {
		t.Fatal(err)
	}
	v, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "user_stats", Entities: []string{"user"},
		Features: []appliance.Feature{{Name: "clicks", Dtype: "int64"}}})
	if err != nil {
		t.Fatal(err)
	}
	writeClicks(t, s, v, map[string]int64{"u1": 1, "u2": 2})
	backup, err := s.BackupToDir(ctx, filepath.Join(dataDir, "backups"), "", 7)
	if err != nil {
		t.Fatal(err)
	}
	writeClicks(t, s, v, map[string]int64{"u1": 10, "u3": 3})

	// While a node holds the store, restore refuses and says why.
	code, _, stderr := cli(t, run, "restore", backup.Path, "--data-dir", dataDir, "--force")
	if code != 1 || !strings.Contains(stderr, "stop the node first") {
		t.Fatalf("restore under a running node: exit %d: %s", code, stderr)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	code, _, stderr = cli(t, run, "restore", backup.Path, "--data-dir", dataDir)
	if code != 1 || !strings.Contains(stderr, "--force") {
		t.Fatalf("restore over a store without --force: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := cli(t, run, "restore", backup.Path, "--data-dir", dataDir, "--dry-run")
	if code != 0 || !strings.Contains(stdout, "verified") || !strings.Contains(stdout, "needs --force") {
		t.Fatalf("dry run: exit %d: %s%s", code, stdout, stderr)
	}

	// A truncated backup is refused; the store and the directory stay as
	// they are.
	raw, err := os.ReadFile(backup.Path)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.db")
	os.WriteFile(truncated, raw[:len(raw)/2], 0o600)
	before, _ := os.ReadFile(filepath.Join(dataDir, "mlnode.db"))
	names := listDir(t, dataDir)
	code, _, stderr = cli(t, run, "restore", truncated, "--data-dir", dataDir, "--force")
	if code != 1 || !strings.Contains(stderr, "truncated") {
		t.Fatalf("truncated backup: exit %d: %s", code, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(dataDir, "mlnode.db")); !bytes.Equal(after, before) || !slices.Equal(listDir(t, dataDir), names) {
		t.Fatal("a refused restore changed the data directory")
	}

	code, stdout, stderr = cli(t, run, "restore", backup.Path, "--data-dir", dataDir, "--force")
	if code != 0 || !strings.Contains(stdout, "restored "+filepath.Join(dataDir, "mlnode.db")) || !strings.Contains(stdout, "kept the previous store as") {
		t.Fatalf("restore: exit %d: %s%s", code, stdout, stderr)
	}
	t.Log(stdout)
	var aside string
	for _, n := range listDir(t, dataDir) {
		if strings.HasPrefix(n, "mlnode.db.pre-restore-") {
			aside = n
		}
	}
	if aside == "" {
		t.Fatalf("the previous store was not kept: %v", listDir(t, dataDir))
	}

	s, err = store.Open(ctx, dataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err = s.FeatureView(ctx, "user_stats", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]appliance.OnlineRow, 3)
	if err := s.ReadOnline(ctx, v, [][]byte{restoreKey("u1"), restoreKey("u2"), restoreKey("u3")}, out); err != nil {
		t.Fatal(err)
	}
	if !out[0].Found || out[0].Values[0].Int != 1 || !out[1].Found || out[1].Values[0].Int != 2 || out[2].Found {
		t.Fatalf("after restore: %+v", out)
	}
	rows := 0
	if err := s.ScanIngested(ctx, v, 0, func(uint64, appliance.Row) bool { rows++; return true }); err != nil || rows != 2 {
		t.Fatalf("offline rows after restore: %d %v", rows, err)
	}
	if vr, err := s.VerifyAudit(ctx); err != nil || !vr.OK {
		t.Fatalf("audit after restore: %+v %v", vr, err)
	}
}

func TestRestore_CommandLine(t *testing.T) {
	t.Setenv("MLNODE_DATA_DIR", "")
	for _, tt := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"restore", "--help"}, 0, "Usage: mlnode restore FILE --data-dir DIR"},
		{[]string{"restore"}, 2, "missing FILE"},
		{[]string{"restore", "backup.db"}, 2, "--data-dir is required"},
		{[]string{"restore", "a.db", "b.db", "--data-dir", "x"}, 2, `unexpected argument "b.db"`},
		{[]string{"restore", filepath.Join(t.TempDir(), "nope.db"), "--data-dir", t.TempDir()}, 1, "no such file"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := cli(t, run, tt.args...)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.contains) {
				t.Fatalf("exit %d, want %d; output must contain %q:\n%s%s", code, tt.code, tt.contains, stdout, stderr)
			}
		})
	}
}

// The real binary against a real running node: restore refuses and exits
// non-zero.
func TestBinary_RestoreRefusesWhileServing(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	defineUserStats(n)
	backups := t.TempDir()
	s, err := store.Open(context.Background(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.BackupToDir(context.Background(), backups, "", 1)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "restore", res.Path, "--data-dir", dir, "--force")
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "stop the node first") {
		t.Fatalf("exit %d: %s", code, out)
	}
	n.mustCall("GET", "/api/v1/feature-views/user_stats", nil, 200)
}

func TestConfig_Backup(t *testing.T) {
	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags([]string{"--data-dir", "/srv/mlnode"}); err != nil {
		t.Fatal(err)
	}
	if got := m.Config.BackupDirectory(); got != "/srv/mlnode/backups" || m.Config.BackupKeep != 7 {
		t.Fatalf("defaults: %s, keep %d", got, m.Config.BackupKeep)
	}
	t.Setenv("MLNODE_BACKUP_DIR", "/mnt/backups")
	t.Setenv("MLNODE_BACKUP_KEEP", "30")
	m = NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags(nil); err != nil || m.Config.BackupDirectory() != "/mnt/backups" || m.Config.BackupKeep != 30 {
		t.Fatalf("from env: %s, keep %d, %v", m.Config.BackupDirectory(), m.Config.BackupKeep, err)
	}
	if err := NewMain().ParseFlags([]string{"--backup-keep", "0"}); err == nil || !strings.Contains(err.Error(), "backup_keep") {
		t.Fatalf("keep 0: %v", err)
	}
}

func TestConfig_OnlineCache(t *testing.T) {
	cases := []struct {
		args    []string
		want    int64 // the store's option
		wantErr string
	}{
		{nil, 64 << 20, ""},
		{[]string{"--online-cache", "256MiB"}, 256 << 20, ""},
		{[]string{"--online-cache", "0"}, -1, ""},
		{[]string{"--online-cache", "off"}, -1, ""},
		{[]string{"--online-cache", "-1"}, 0, "online-cache"},
	}
	for _, tc := range cases {
		m := NewMain()
		m.Stderr = io.Discard
		err := m.ParseFlags(tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want one naming %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || onlineCacheBytes(m.Config.OnlineCache) != tc.want {
			t.Errorf("%v: %d, %v; want %d", tc.args, onlineCacheBytes(m.Config.OnlineCache), err, tc.want)
		}
	}
}
