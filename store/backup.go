package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mlnode/mlnode/appliance"
)

// Backups are whole bbolt files written by tx.WriteTo from one read
// transaction: a consistent snapshot that a node opens like its own store,
// taken while writes continue (docs/backup.md).

const (
	backupPrefix = "mlnode-"
	backupSuffix = ".db"
	// backupTimeLayout names a backup after the UTC second it was taken in;
	// a second backup in the same second gets "-2", "-3", ...
	backupTimeLayout = "20060102T150405Z"
	// backupTempPattern is how a backup is named until it is complete; a
	// crash leaves one behind, removed by a later backup.
	backupTempPattern = ".mlnode-backup-*.tmp"
	staleTempAge      = 24 * time.Hour
	// verifyLockTimeout bounds the wait for a file another process holds.
	verifyLockTimeout = time.Second
)

var _ appliance.BackupService = (*Store)(nil)

var backupNameRE = regexp.MustCompile(`^mlnode-(\d{8}T\d{6}Z)(?:-(\d+))?\.db$`)

// ctxWriter stops a copy when ctx ends: tx.WriteTo has no context, but it
// writes in small pieces.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Backup implements appliance.OfflineStore: it writes a consistent snapshot
// of the whole store to w in one read transaction, while writes continue.
// The snapshot is a bbolt file that Open accepts as it is.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx: ctx, w: w})
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			// WriteTo formats some errors with %s, losing the cause.
			err = ctx.Err()
		}
		return n, fmt.Errorf("back up %s: %w", s.path, err)
	}
	return n, nil
}

// BackupToDir writes a snapshot into dir (created if missing) under name,
// or mlnode-<UTC time>.db when name is empty, then deletes all but the
// newest keep backups named that way; files named otherwise are never
// deleted. The file appears whole or not at all: it is written under a
// temporary name, fsynced and renamed, and the directory is fsynced. The
// backup is recorded in the audit log.
//
// A name that is not a plain file name, or that would land outside dir, is
// EINVALID (field "target"); an existing file of that name is ECONFLICT.
func (s *Store) BackupToDir(ctx context.Context, dir, name string, keep int) (*appliance.BackupResult, error) {
	if keep < 1 {
		return nil, appliance.Invalid("keep", "must be at least 1, got %d", keep)
	}
	if name != "" {
		if err := appliance.ValidateBackupName("target", name); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create backup dir %s: %w", dir, err)
	}
	// Resolve the directory once and work inside the resolved path, so that
	// a symbolic link swapped in later cannot redirect the file.
	real, err := filepath.EvalSymlinks(filepath.Clean(dir))
	if err != nil {
		return nil, fmt.Errorf("resolve backup dir %s: %w", dir, err)
	}
	if name == "" {
		if name, err = s.nextBackupName(real); err != nil {
			return nil, err
		}
	}
	target := filepath.Join(real, name)
	if filepath.Dir(target) != real {
		return nil, appliance.Invalid("target", "%q is outside the backup directory", name)
	}
	if _, err := os.Lstat(target); err == nil {
		return nil, appliance.Errorf(appliance.ECONFLICT, "backup %s exists: choose another name or leave it out", name)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup %s: %w", target, err)
	}
	removeStaleTemps(real, s.now())

	size, err := s.writeBackupFile(ctx, real, target)
	if err != nil {
		return nil, err
	}
	removed, pruneErr := pruneBackups(real, keep)
	res := &appliance.BackupResult{Path: target, Bytes: size, Removed: removed}
	// The file exists whatever happens to ctx now: record it.
	actx := context.WithoutCancel(ctx)
	if err := s.update(actx, func(tx *bolt.Tx) error {
		return s.audit(actx, tx, appliance.AuditRecord{Action: "backup.create", Object: "backup/" + name,
			Summary: map[string]any{"path": target, "bytes": size, "removed": removed}})
	}, nil); err != nil {
		return res, fmt.Errorf("audit backup %s: %w", target, err)
	}
	if pruneErr != nil {
		return res, pruneErr
	}
	s.log.Info("backup written", "path", target, "bytes", size, "removed", len(removed))
	return res, nil
}

// writeBackupFile writes a snapshot to a temporary file in dir and renames
// it to target.
func (s *Store) writeBackupFile(ctx context.Context, dir, target string) (size int64, err error) {
	f, err := os.CreateTemp(dir, backupTempPattern)
	if err != nil {
		return 0, fmt.Errorf("create backup file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if size, err = s.Backup(ctx, f); err != nil {
		return 0, err
	}
	if err = f.Sync(); err != nil {
		return 0, fmt.Errorf("sync backup %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return 0, fmt.Errorf("close backup %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, target); err != nil {
		return 0, fmt.Errorf("rename backup into place: %w", err)
	}
	if err = syncDir(dir); err != nil {
		return 0, err
	}
	return size, nil
}

// nextBackupName names a backup after the current second, unused in dir.
func (s *Store) nextBackupName(dir string) (string, error) {
	stamp := s.now().UTC().Format(backupTimeLayout)
	for n := 1; n < 1000; n++ {
		name := backupPrefix + stamp + backupSuffix
		if n > 1 {
			name = backupPrefix + stamp + "-" + strconv.Itoa(n) + backupSuffix
		}
		if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, os.ErrNotExist) {
			return name, nil
		} else if err != nil {
			return "", fmt.Errorf("backup %s: %w", name, err)
		}
	}
	return "", fmt.Errorf("no free backup name in %s for %s", dir, stamp)
}

// backupFile is a file named like an automatic backup.
type backupFile struct {
	name  string
	stamp string
	n     int
}

// listBackups returns the regular files in dir named like automatic
// backups, newest first. The order comes from the names, not modification
// times, which a copy or a restore changes.
func listBackups(dir string) ([]backupFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list backups in %s: %w", dir, err)
	}
	var out []backupFile
	for _, e := range entries {
		m := backupNameRE.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		n := 1
		if m[2] != "" {
			if n, err = strconv.Atoi(m[2]); err != nil {
				continue
			}
		}
		out = append(out, backupFile{name: e.Name(), stamp: m[1], n: n})
	}
	slices.SortFunc(out, func(a, b backupFile) int {
		return cmp.Or(strings.Compare(b.stamp, a.stamp), cmp.Compare(b.n, a.n))
	})
	return out, nil
}

// pruneBackups deletes all but the newest keep automatic backups in dir and
// returns the names it deleted.
func pruneBackups(dir string, keep int) ([]string, error) {
	files, err := listBackups(dir)
	if err != nil {
		return nil, err
	}
	removed := []string{}
	for _, f := range files[min(keep, len(files)):] {
		if err := os.Remove(filepath.Join(dir, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("remove old backup: %w", err)
		}
		removed = append(removed, f.name)
	}
	if len(removed) > 0 {
		if err := syncDir(dir); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// removeStaleTemps deletes temporary files that a crashed backup left in
// dir. Only old ones: a backup by another process may be writing a new one.
func removeStaleTemps(dir string, now time.Time) {
	matches, _ := filepath.Glob(filepath.Join(dir, backupTempPattern))
	for _, m := range matches {
		if fi, err := os.Lstat(m); err == nil && fi.Mode().IsRegular() && now.Sub(fi.ModTime()) > staleTempAge {
			os.Remove(m)
		}
	}
}

// syncDir makes renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// BackupInfo describes a verified backup (or store) file.
type BackupInfo struct {
	Path          string    `json:"path"`
	Bytes         int64     `json:"bytes"`
	SchemaVersion int       `json:"schema_version"`
	FeatureViews  int       `json:"feature_views"`
	ViewVersions  int       `json:"view_versions"`
	Events        int64     `json:"events"` // offline events, counted in the file
	Models        int       `json:"models"`
	AuditEntries  int       `json:"audit_entries"`
	LastAudit     time.Time `json:"last_audit,omitzero"` // the newest change the file records
}

// VerifyBackup checks that the file at path is a store this binary can
// open: bbolt's consistency check (every page reachable or free, none
// twice, keys in order), a schema version no newer than SchemaVersion, and
// an unbroken audit hash chain. It opens the file read-only and never
// changes it. codec opens sealed values; nil means PlainCodec.
//
// A file corrupted in a way bbolt cannot detect may still crash the
// verifying process; a truncated one is reported as such.
func VerifyBackup(ctx context.Context, path string, codec Codec) (*BackupInfo, error) {
	info, err := verifyBackup(ctx, path, codec)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	return info, nil
}

func verifyBackup(ctx context.Context, path string, codec Codec) (*BackupInfo, error) {
	if codec == nil {
		codec = PlainCodec{}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() == 0 {
		return nil, errors.New("the file is empty")
	}
	db, err := openReadOnly(path, verifyLockTimeout)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	info := &BackupInfo{Path: path, Bytes: fi.Size()}
	if err := verifyFile(ctx, db, fi.Size(), codec, info); err != nil {
		return nil, err
	}
	return info, nil
}

// openReadOnly opens a bbolt file without writing to it. A file cut short
// makes bbolt touch mapped pages past its end, which faults: that becomes
// an error here rather than a crash.
func openReadOnly(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("not a readable bbolt file (truncated or corrupt): %v", r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w (waited %s for its lock)", ErrLocked, timeout)
	} else if err != nil {
		return nil, fmt.Errorf("not a bbolt file: %w", err)
	}
	return db, nil
}

func verifyFile(ctx context.Context, db *bolt.DB, fileSize int64, codec Codec, info *BackupInfo) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("corrupt: %v", r)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		// Check runs on its own goroutine, where a fault cannot be caught:
		// make sure every page it may read lies inside the file.
		if tx.Size() > fileSize {
			return fmt.Errorf("truncated: the file has %d bytes, its pages need %d", fileSize, tx.Size())
		}
		// Check, and the freelist rebuild it starts (this store does not
		// write one), walk the pages on goroutines that do not recover
		// bbolt's assertion panics. Walk every page here first, where a
		// damaged one becomes an error.
		if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			b.Stats()
			return nil
		}); err != nil {
			return err
		}
		var problems []string
		for e := range tx.Check() {
			if len(problems) < 5 {
				problems = append(problems, e.Error())
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("consistency check failed: %s", strings.Join(problems, "; "))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return countContents(tx, codec, info)
	})
	if err != nil {
		return err
	}
	// The audit chain is walked by the store's own code.
	v, err := (&Store{db: db, codec: codec}).VerifyAudit(ctx)
	if err != nil {
		return fmt.Errorf("audit chain: %w", err)
	}
	if !v.OK {
		return fmt.Errorf("audit chain broken at entry %d: %s", v.Broken.Seq, v.Broken.Reason)
	}
	info.AuditEntries = v.Entries
	return nil
}

// countContents reads the schema version and counts what the file holds.
func countContents(tx *bolt.Tx, codec Codec, info *BackupInfo) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return errors.New("not an mlnode store: no meta bucket")
	}
	v := meta.Get(keySchemaVersion)
	if len(v) != 4 {
		return errors.New("not an mlnode store: no schema version")
	}
	info.SchemaVersion = int(binary.BigEndian.Uint32(v))
	if info.SchemaVersion > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this binary's %d: restore it with a newer mlnode", info.SchemaVersion, SchemaVersion)
	}
	if info.SchemaVersion < 1 || tx.Bucket(bucketAudit) == nil || tx.Bucket(bucketViews) == nil {
		return fmt.Errorf("not an mlnode store: schema version %d without its buckets", info.SchemaVersion)
	}
	_ = tx.Bucket(bucketViews).ForEachBucket(func([]byte) error { info.FeatureViews++; return nil })
	if models := tx.Bucket(bucketModels); models != nil {
		_ = models.ForEachBucket(func([]byte) error { info.Models++; return nil })
	}
	if audit := tx.Bucket(bucketAudit); audit != nil {
		if _, last := audit.Cursor().Last(); last != nil {
			var e appliance.AuditEntry
			if err := (&Store{codec: codec}).decodeJSON(last, &e); err == nil {
				info.LastAudit = e.Time
			}
		}
	}
	events := tx.Bucket(bucketEvents)
	if events == nil {
		return nil // schema < 3: the old layout, migrated at the next open
	}
	dec := &Store{codec: codec}
	return events.ForEachBucket(func(name []byte) error {
		info.ViewVersions++
		b := events.Bucket(name)
		if tail := b.Bucket(keyTail); tail != nil {
			info.Events += int64(tail.Stats().KeyN)
		}
		runs, _, err := dec.runs(b, false)
		if err != nil {
			return fmt.Errorf("events of %s: %w", name, err)
		}
		for _, r := range runs {
			info.Events += int64(r.run.Stats().KeyN)
		}
		return nil
	})
}

// RestoreOptions tune Restore. Zero values take the defaults.
type RestoreOptions struct {
	// Force replaces a store that is already in the data directory; the
	// replaced file is kept beside it, never deleted.
	Force bool
	// DryRun verifies the backup in place and checks the data directory's
	// lock, and changes nothing. An existing store needs no Force.
	DryRun bool
	// LockTimeout bounds the wait for the data directory's lock: a node
	// that holds it is running. Default 1s.
	LockTimeout time.Duration
	Codec       Codec // default PlainCodec
	Now         func() time.Time
}

// RestoreResult reports what Restore did.
type RestoreResult struct {
	Backup *BackupInfo
	Path   string // the store file, <data-dir>/mlnode.db
	// Replaces says whether a store was there (a dry run: is there).
	Replaces bool
	// Previous is where the store that was there now is, "" if there was
	// none (or on a dry run).
	Previous string
	// PreviousUnreadable is why the replaced store could not be opened, if
	// it could not.
	PreviousUnreadable string
}

// Restore puts the backup at backupPath in place as dataDir's store. The
// node must be stopped: if another process holds the store's lock, Restore
// fails with ErrLocked. The backup is copied into dataDir, fsynced, and
// the copy verified (VerifyBackup) before anything else changes; the
// current store, if any, stays as mlnode.db.pre-restore-<UTC time>, and the
// copy is renamed over mlnode.db. Without opts.Force an existing store is
// ECONFLICT.
func Restore(ctx context.Context, backupPath, dataDir string, opts RestoreOptions) (*RestoreResult, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	abs, err := filepath.Abs(backupPath)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", backupPath, err)
	}
	current := filepath.Join(dataDir, "mlnode.db")
	if same, _ := sameFile(abs, current); same {
		return nil, appliance.Invalid("file", "%s is the data directory's own store", backupPath)
	}
	res := &RestoreResult{Path: current}

	// Hold the current store's lock for the whole swap, so that a node
	// starting meanwhile waits instead of opening a file being replaced.
	exists := false
	if _, err := os.Lstat(current); err == nil {
		exists = true
		db, err := openReadOnly(current, opts.LockTimeout)
		switch {
		case errors.Is(err, ErrLocked):
			return nil, fmt.Errorf("%s is in use by a running node: stop the node first: %w", current, ErrLocked)
		case err != nil:
			// A damaged store is a reason to restore: move it aside all the
			// same. Its lock was free, or bbolt would have timed out.
			res.PreviousUnreadable = err.Error()
		default:
			defer db.Close()
		}
		res.Replaces = true
		if !opts.Force && !opts.DryRun {
			return nil, appliance.Errorf(appliance.ECONFLICT, "%s holds a store: pass --force to replace it (it is kept as mlnode.db.pre-restore-<time>)", current)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("restore into %s: %w", dataDir, err)
	}

	if opts.DryRun {
		info, err := verifyBackup(ctx, backupPath, opts.Codec)
		if err != nil {
			return nil, fmt.Errorf("backup %s refused: %w", backupPath, err)
		}
		res.Backup = info
		return res, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	removeStaleTemps(dataDir, opts.Now())
	tmp, err := copyIntoDir(ctx, backupPath, dataDir)
	if err != nil {
		return nil, err
	}
	installed := false
	defer func() {
		if !installed {
			os.Remove(tmp)
		}
	}()
	// Verify the copy, not the source: it is what the node will open.
	info, err := verifyBackup(ctx, tmp, opts.Codec)
	if err != nil {
		return nil, fmt.Errorf("backup %s refused: %w", backupPath, err)
	}
	info.Path = backupPath
	res.Backup = info
	if exists {
		if res.Previous, err = keepAside(current, opts.Now()); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, current); err != nil {
		return nil, fmt.Errorf("put the backup in place: %w", err)
	}
	installed = true
	if err := syncDir(dataDir); err != nil {
		return res, err
	}
	return res, nil
}

// copyIntoDir copies src to a new temporary file in dir, fsynced.
func copyIntoDir(ctx context.Context, src, dir string) (path string, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("open backup: %w", err)
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, backupTempPattern)
	if err != nil {
		return "", fmt.Errorf("create copy in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	if _, err = io.Copy(ctxWriter{ctx: ctx, w: out}, in); err != nil {
		return "", fmt.Errorf("copy backup into %s: %w", dir, err)
	}
	if err = out.Sync(); err != nil {
		return "", fmt.Errorf("sync copy: %w", err)
	}
	if err = out.Close(); err != nil {
		return "", fmt.Errorf("close copy: %w", err)
	}
	return out.Name(), nil
}

// keepAside gives the current store a second name, mlnode.db.pre-restore-
// <time>, before the backup replaces it. A hard link keeps mlnode.db in
// place until the rename over it, so that a crash in between never leaves
// the data directory without a store (which a node would recreate empty).
func keepAside(current string, now time.Time) (string, error) {
	base := current + ".pre-restore-" + now.UTC().Format(backupTimeLayout)
	aside := base
	for n := 2; ; n++ {
		if _, err := os.Lstat(aside); errors.Is(err, os.ErrNotExist) {
			break
		}
		aside = base + "-" + strconv.Itoa(n)
	}
	if err := os.Link(current, aside); err != nil {
		// No hard links on this file system: a plain rename, with the
		// short window that the link avoids.
		if err := os.Rename(current, aside); err != nil {
			return "", fmt.Errorf("move the current store aside: %w", err)
		}
	}
	return aside, nil
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}
