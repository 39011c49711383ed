package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
)

const restoreAbout = `Puts a backup (a file written by the backup job) in place as the store of a data
directory. The node must be stopped: while it holds the store, nothing changes.

Steps: the backup is copied into DIR and fsynced; the copy is verified (bbolt's
consistency check, a schema version this binary supports, an unbroken audit chain);
the current mlnode.db, if any, is kept as mlnode.db.pre-restore-<UTC time> (never
deleted); the copy is renamed over mlnode.db. A refusal, or a failure before that
rename, leaves mlnode.db as it was.
Run it as the user the node runs as, so that the new file belongs to it.

Example:
  systemctl stop mlnode
  sudo -u mlnode mlnode restore /var/lib/mlnode/backups/mlnode-20260301T020000Z.db \
      --data-dir /var/lib/mlnode --force
  systemctl start mlnode`

// restoreCommand runs "mlnode restore" and returns the exit code: 0 done,
// 1 failed or refused, 2 bad usage.
func restoreCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("restore", "FILE --data-dir DIR [--force] [--dry-run]", restoreAbout, stdout, stderr)
	dataDir := c.fs.String("data-dir", os.Getenv("MLNODE_DATA_DIR"), "`directory` whose store is restored (env MLNODE_DATA_DIR)")
	force := c.fs.Bool("force", false, "replace the store already in the data directory (it is kept as mlnode.db.pre-restore-<time>)")
	dryRun := c.fs.Bool("dry-run", false, "verify the backup and check the data directory; change nothing")
	pos, code, ok := c.parse(args, "FILE")
	if !ok {
		return code
	}
	if *dataDir == "" {
		return c.usageError("--data-dir is required")
	}
	res, err := store.Restore(ctx, pos[0], *dataDir, store.RestoreOptions{Force: *force, DryRun: *dryRun})
	if err != nil {
		if appliance.ErrorCode(err) != appliance.EINTERNAL {
			err = errors.New(appliance.ErrorMessage(err))
		}
		return c.fail(err)
	}
	b := res.Backup
	fmt.Fprintf(stdout, "verified %s: schema %d, %d feature views (%d versions), %d events, %d models, %d audit entries (chain intact), %s\n",
		b.Path, b.SchemaVersion, b.FeatureViews, b.ViewVersions, b.Events, b.Models, b.AuditEntries, byteCount(b.Bytes))
	if !b.LastAudit.IsZero() {
		fmt.Fprintf(stdout, "last change recorded: %s\n", b.LastAudit.UTC().Format(time.RFC3339))
	}
	switch {
	case *dryRun && res.Replaces && !*force:
		fmt.Fprintf(stdout, "dry run: %s holds a store; restoring needs --force (it would be kept as mlnode.db.pre-restore-<time>)\n", res.Path)
		return 0
	case *dryRun && res.Replaces:
		fmt.Fprintf(stdout, "dry run: would replace %s, keeping it as mlnode.db.pre-restore-<time>\n", res.Path)
		return 0
	case *dryRun:
		fmt.Fprintf(stdout, "dry run: would create %s\n", res.Path)
		return 0
	}
	if res.Previous != "" {
		if res.PreviousUnreadable != "" {
			fmt.Fprintf(stdout, "the previous store could not be opened (%s)\n", res.PreviousUnreadable)
		}
		fmt.Fprintf(stdout, "kept the previous store as %s\n", res.Previous)
	}
	fmt.Fprintf(stdout, "restored %s\nstart the node on %s to use it\n", res.Path, *dataDir)
	return 0
}

// byteCount formats a size for people: 1.5 MiB.
func byteCount(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
