package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Job kinds of maintenance.
const (
	JobBackup    = "backup"
	JobRetention = "retention"
)

// DefaultBackupKeep is how many automatic backups are kept when neither
// the configuration nor the job says.
const DefaultBackupKeep = 7

// BackupResult is one snapshot written into the backup directory.
type BackupResult struct {
	Path    string   `json:"path"`
	Bytes   int64    `json:"bytes"`
	Removed []string `json:"removed"` // older automatic backups deleted to keep N
}

// BackupService writes snapshots of the store into a directory.
type BackupService interface {
	// BackupToDir writes a consistent snapshot into dir as name, or as
	// mlnode-<UTC time>.db when name is empty, then deletes all but the
	// newest keep backups named that way (never other files). EINVALID
	// with field "target" for a name that is not a plain file name inside
	// dir; ECONFLICT when that file exists. The backup is audited.
	BackupToDir(ctx context.Context, dir, name string, keep int) (*BackupResult, error)
}

// ValidateBackupName checks that name is a plain file name, so that a
// backup can only land inside the backup directory: no path separators, no
// "..", not hidden (temporary files start with a dot), only letters,
// digits, '.', '_' and '-'.
func ValidateBackupName(field, name string) error {
	switch {
	case name == "":
		return Invalid(field, "is empty")
	case len(name) > 200:
		return Invalid(field, "is longer than 200 bytes")
	case strings.ContainsAny(name, `/\`):
		return Invalid(field, "%q is a path: give a file name; backups are written inside the backup directory only", name)
	case strings.Contains(name, ".."):
		return Invalid(field, "%q contains \"..\": backups are written inside the backup directory only", name)
	case name[0] == '.':
		return Invalid(field, "%q starts with a dot: hidden names are reserved for files being written", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return Invalid(field, "%q: a backup name has only letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}

// BackupArgs are the arguments of a backup job.
type BackupArgs struct {
	// Target is the file name in the backup directory; empty: an automatic
	// name, mlnode-<UTC time>.db, subject to keep-N.
	Target string `json:"target,omitempty"`
	// Keep overrides the configured number of automatic backups kept.
	Keep *int `json:"keep,omitempty"`
}

// RetentionArgs are the arguments of a retention job. Views are "name"
// (every version) or "name@vN"; none means every view with a retention.
// Validation pins them to exact versions and AsOf to the submission time,
// so that a job resumed after a restart does the same work.
type RetentionArgs struct {
	FeatureViews []string `json:"feature_views"`
	AsOf         string   `json:"as_of,omitempty"` // RFC 3339; cutoff = as_of - retention
}

// RetentionResult reports one view version of a retention job.
type RetentionResult struct {
	View    string    `json:"view"`
	Deleted int       `json:"deleted"`
	Cutoff  time.Time `json:"cutoff,omitzero"`
	Skipped string    `json:"skipped,omitempty"` // why nothing was done
}

// Maintenance builds the job specs of backup and retention.
type Maintenance struct {
	Backups    BackupService
	BackupDir  string
	BackupKeep int // automatic backups kept; 0: DefaultBackupKeep

	Registry FeatureRegistry
	Offline  OfflineStore // DeleteEventsBefore
	Now      func() time.Time
}

// Specs returns the backup and retention job specs.
func (m *Maintenance) Specs() []JobSpec {
	return []JobSpec{m.BackupSpec(), m.RetentionSpec()}
}

func (m *Maintenance) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// decodeArgs decodes job arguments strictly: a misspelt argument is an
// error, not a silent default.
func decodeArgs(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return JSONError("args", err)
	}
	return nil
}

// BackupSpec is the "backup" job: a hot snapshot of the store into the
// backup directory, keeping the newest N automatic ones. Backups run one
// at a time (lock "backup").
func (m *Maintenance) BackupSpec() JobSpec {
	return JobSpec{
		Kind: JobBackup,
		Validate: func(_ context.Context, raw json.RawMessage) (json.RawMessage, error) {
			var a BackupArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			if m.BackupDir == "" || m.Backups == nil {
				return nil, Errorf(EUNAVAILABLE, "backups are not configured on this node")
			}
			if a.Target != "" {
				if err := ValidateBackupName("target", a.Target); err != nil {
					return nil, err
				}
			}
			if a.Keep != nil && *a.Keep < 1 {
				return nil, Invalid("keep", "must be at least 1: the backup just made is one of them")
			}
			return json.Marshal(a)
		},
		Locks: func(json.RawMessage) []string { return []string{"backup"} },
		Run: func(ctx context.Context, jc JobControl) (any, error) {
			var a BackupArgs
			if err := json.Unmarshal(jc.Job().Args, &a); err != nil {
				return nil, fmt.Errorf("job args: %w", err)
			}
			keep := m.BackupKeep
			if keep <= 0 {
				keep = DefaultBackupKeep
			}
			if a.Keep != nil {
				keep = *a.Keep
			}
			res, err := m.Backups.BackupToDir(ctx, m.BackupDir, a.Target, keep)
			if err != nil {
				return res, err
			}
			return res, nil
		},
	}
}

// RetentionSpec is the "retention" job: for each view version, drop the
// offline events older than the view's retention (as of the job's
// submission). Online values are left alone: the online table holds each
// entity's latest value, whose freshness the view's TTL governs. A job
// holds "view:name@vN" for each version it touches, the lock a
// materialization of that version holds.
func (m *Maintenance) RetentionSpec() JobSpec {
	return JobSpec{
		Kind:     JobRetention,
		Validate: m.validateRetention,
		Locks: func(raw json.RawMessage) []string {
			var a RetentionArgs
			if json.Unmarshal(raw, &a) != nil {
				return nil
			}
			locks := make([]string, len(a.FeatureViews))
			for i, ref := range a.FeatureViews {
				locks[i] = "view:" + ref
			}
			return locks
		},
		Run: m.runRetention,
	}
}

// viewRef is the pinned form of a view version in job arguments and locks,
// as materialization jobs write it.
func viewRef(v *FeatureView) string { return v.Name + "@v" + strconv.Itoa(v.Version) }

// parseViewRef splits "name", "name@vN" or "name@N"; version 0 means every
// version.
func parseViewRef(field, ref string) (string, int, error) {
	name, ver, ok := strings.Cut(ref, "@")
	if err := ValidateName(field, name); err != nil {
		return "", 0, err
	}
	if !ok {
		return name, 0, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(ver, "v"))
	if err != nil || n < 1 {
		return "", 0, Invalid(field, "%q: the version after @ must be vN or N with N >= 1", ref)
	}
	return name, n, nil
}

func (m *Maintenance) validateRetention(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var a RetentionArgs
	if err := decodeArgs(raw, &a); err != nil {
		return nil, err
	}
	if m.Registry == nil || m.Offline == nil {
		return nil, Errorf(EUNAVAILABLE, "retention is not configured on this node")
	}
	now := m.now().UTC()
	asOf := now
	if a.AsOf != "" {
		t, err := time.Parse(time.RFC3339Nano, a.AsOf)
		if err != nil {
			return nil, Invalid("as_of", "%q is not an RFC 3339 time", a.AsOf)
		}
		if t.After(now) {
			return nil, Invalid("as_of", "%s is in the future: retention would drop events it should keep", a.AsOf)
		}
		asOf = t.UTC()
	}
	a.AsOf = asOf.Format(time.RFC3339Nano)
	refs := []string{}
	if len(a.FeatureViews) == 0 {
		views, err := m.Registry.FeatureViews(ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range views {
			if v.Retention == 0 {
				continue
			}
			versions, err := m.Registry.FeatureViewVersions(ctx, v.Name)
			if err != nil {
				return nil, err
			}
			for _, ver := range versions {
				refs = append(refs, viewRef(ver))
			}
		}
		a.FeatureViews = refs
		return json.Marshal(a)
	}
	seen := map[string]bool{}
	for i, ref := range a.FeatureViews {
		field := fmt.Sprintf("feature_views[%d]", i)
		name, version, err := parseViewRef(field, ref)
		if err != nil {
			return nil, err
		}
		versions, err := m.Registry.FeatureViewVersions(ctx, name)
		if err != nil {
			if ErrorCode(err) == ENOTFOUND {
				return nil, &Error{Code: ENOTFOUND, Field: field, Message: ErrorMessage(err)}
			}
			return nil, err
		}
		if versions[len(versions)-1].Retention == 0 {
			return nil, Invalid(field, "feature view %q has no retention: set one first (PATCH it with {\"retention\": \"90d\"})", name)
		}
		if version > 0 {
			if version > len(versions) {
				return nil, &Error{Code: ENOTFOUND, Field: field, Message: fmt.Sprintf("feature view %q has no version %d", name, version)}
			}
			versions = versions[version-1 : version]
		}
		for _, v := range versions {
			key := viewRef(v)
			if seen[key] {
				return nil, Invalid(field, "%s is listed twice", key)
			}
			seen[key] = true
			refs = append(refs, key)
		}
	}
	a.FeatureViews = refs
	return json.Marshal(a)
}

// retentionState is the retention job's checkpoint: deletions are
// idempotent, but the counts of versions already done would be lost.
type retentionState struct {
	Next    int               `json:"next"`
	Deleted int64             `json:"deleted"`
	Results []RetentionResult `json:"results"`
}

func (m *Maintenance) runRetention(ctx context.Context, jc JobControl) (any, error) {
	job := jc.Job()
	var a RetentionArgs
	if err := json.Unmarshal(job.Args, &a); err != nil {
		return nil, fmt.Errorf("job args: %w", err)
	}
	asOf, err := time.Parse(time.RFC3339Nano, a.AsOf)
	if err != nil {
		return nil, fmt.Errorf("job args: as_of: %w", err)
	}
	st := retentionState{Results: []RetentionResult{}}
	if len(job.Checkpoint) > 0 {
		if err := json.Unmarshal(job.Checkpoint, &st); err != nil {
			return nil, fmt.Errorf("job checkpoint: %w", err)
		}
	}
	result := func() any { return map[string]any{"views": st.Results, "deleted": st.Deleted} }
	for ; st.Next < len(a.FeatureViews); st.Next++ {
		ref := a.FeatureViews[st.Next]
		name, version, err := parseViewRef("feature_views", ref)
		if err != nil {
			return result(), fmt.Errorf("job args: %w", err)
		}
		r := RetentionResult{View: name + "@" + strconv.Itoa(version)}
		v, err := m.Registry.FeatureView(ctx, name, version)
		switch {
		case ErrorCode(err) == ENOTFOUND:
			r.Skipped = "the view version was deleted"
		case err != nil:
			return result(), fmt.Errorf("retention of %s: %w", ref, err)
		case v.Retention == 0:
			r.Skipped = "the view has no retention any more"
		default:
			r.Cutoff = asOf.Add(-time.Duration(v.Retention)).UTC()
			n, err := m.Offline.DeleteEventsBefore(ctx, v, r.Cutoff.UnixMicro())
			r.Deleted = n
			st.Deleted += int64(n)
			if ErrorCode(err) == ENOTFOUND {
				r.Skipped = "the view version was deleted"
			} else if err != nil {
				st.Results = append(st.Results, r)
				return result(), fmt.Errorf("retention of %s: %w", ref, err)
			}
		}
		st.Results = append(st.Results, r)
		jc.Progress(st.Deleted, 0)
		next := st
		next.Next++
		if err := jc.SaveCheckpoint(ctx, next); err != nil {
			return result(), fmt.Errorf("retention checkpoint: %w", err)
		}
	}
	return result(), nil
}
