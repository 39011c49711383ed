package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// The model registry (schema 4):
//
//	models/<name>/meta                 Model (JSON, without derived fields)
//	models/<name>/versions/u32(v)      ModelVersion (JSON)
//	models/<name>/digests/<sha256>     u32(v): identical uploads find their version
//	models/<name>/aliases/<alias>      aliasState (JSON)
//	models/<name>/history/u64(seq)     AliasChange (JSON), every alias of the model
//
// Bundles are blobs keyed by the sha256 of the archive bytes; modules are
// stored as modules, shared with transforms.

var (
	bucketModels   = []byte("models")
	keyModelMeta   = []byte("meta")
	keyVersions    = []byte("versions")
	keyDigests     = []byte("digests")
	keyAliases     = []byte("aliases")
	keyHistory     = []byte("history")
	modelSubtrees  = [][]byte{keyVersions, keyDigests, keyAliases, keyHistory}
	errNoRollback  = appliance.Errorf(appliance.ECONFLICT, "the alias has no earlier version to roll back to")
	errNoSuchAlias = "alias %q of model %q not found"
)

// aliasState is an alias's current version and the versions it pointed to
// before, most recent last: a rollback pops the current one.
type aliasState struct {
	Version int   `json:"version"`
	Stack   []int `json:"stack"`
}

// modelState is one model in the registry snapshot.
type modelState struct {
	model    *appliance.Model
	versions []*appliance.ModelVersion // [0] is version 1
}

func u32(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

func (s *Store) loadModels(tx *bolt.Tx, reg *registryState) error {
	root := tx.Bucket(bucketModels)
	return root.ForEachBucket(func(name []byte) error {
		st, err := s.readModel(root.Bucket(name))
		if err != nil {
			return fmt.Errorf("model %s: %w", name, err)
		}
		reg.models[string(name)] = st
		return nil
	})
}

// readModel decodes a model bucket into a snapshot entry.
func (s *Store) readModel(b *bolt.Bucket) (*modelState, error) {
	var m appliance.Model
	if _, err := s.getJSON(b, keyModelMeta, &m); err != nil {
		return nil, err
	}
	st := &modelState{model: &m}
	if err := b.Bucket(keyVersions).ForEach(func(_, v []byte) error {
		var mv appliance.ModelVersion
		if err := s.decodeJSON(v, &mv); err != nil {
			return err
		}
		st.versions = append(st.versions, &mv)
		return nil
	}); err != nil {
		return nil, err
	}
	m.LatestVersion = len(st.versions)
	m.Aliases = map[string]int{}
	err := b.Bucket(keyAliases).ForEach(func(k, v []byte) error {
		var a aliasState
		if err := s.decodeJSON(v, &a); err != nil {
			return err
		}
		m.Aliases[string(k)] = a.Version
		return nil
	})
	return st, err
}

// refreshModel re-reads one model into the snapshot after a commit.
func (s *Store) refreshModel(name string) {
	var st *modelState
	_ = s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketModels).Bucket([]byte(name)); b != nil {
			var err error
			st, err = s.readModel(b)
			return err
		}
		return nil
	})
	reg := s.registry.Load().clone()
	if st == nil {
		delete(reg.models, name)
	} else {
		reg.models[strings.Clone(name)] = st // name may alias a reused request buffer
	}
	s.registry.Store(reg)
}

func modelNotFound(name string) error { return appliance.NotFound("model", name) }

// CreateModelVersion implements appliance.ModelRegistry.
func (s *Store) CreateModelVersion(ctx context.Context, v *appliance.ModelVersion, bundle []byte, modules map[string][]byte) (*appliance.ModelVersion, bool, error) {
	if err := appliance.ValidateModelName("name", v.Model); err != nil {
		return nil, false, err
	}
	bundleSum := sha256.Sum256(bundle)
	sealedBundle := s.codec.Seal(nil, bundle)
	var result *appliance.ModelVersion
	created := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		created = false
		root := tx.Bucket(bucketModels)
		b := root.Bucket([]byte(v.Model))
		now := s.now().UTC()
		actor := appliance.CallerFromContext(ctx).Name
		if b == nil {
			var err error
			if b, err = root.CreateBucket([]byte(v.Model)); err != nil {
				return err
			}
			for _, sub := range modelSubtrees {
				if _, err := b.CreateBucket(sub); err != nil {
					return err
				}
			}
			m := appliance.Model{Name: v.Model, Tags: map[string]string{}, CreatedAt: now, CreatedBy: actor, UpdatedAt: now}
			if err := s.putJSON(b, keyModelMeta, &m); err != nil {
				return err
			}
		}
		if existing := b.Bucket(keyDigests).Get([]byte(v.SHA256)); existing != nil {
			var old appliance.ModelVersion
			if _, err := s.getJSON(b.Bucket(keyVersions), existing, &old); err != nil {
				return err
			}
			result = &old
			return nil
		}
		versions := b.Bucket(keyVersions)
		versions.FillPercent = 1
		// The last key, not Stats().KeyN: that counts committed pages only,
		// and two uploads in one group commit would both get the same number.
		n := 1
		if k, _ := versions.Cursor().Last(); k != nil {
			n = int(binary.BigEndian.Uint32(k)) + 1
		}
		mv := *v
		mv.Version, mv.Status, mv.CreatedAt, mv.CreatedBy = n, appliance.StatusActive, now, actor
		mv.BundleSHA256, mv.BundleSize = hex.EncodeToString(bundleSum[:]), len(bundle)
		if mv.Tags == nil {
			mv.Tags = map[string]string{}
		}
		if mv.Signatures == nil {
			mv.Signatures = []appliance.Signature{}
		}
		for i := range mv.Signatures {
			mv.Signatures[i].AddedAt, mv.Signatures[i].AddedBy = now, actor
		}
		for path, wasm := range modules {
			if _, _, err := s.putModuleTx(ctx, tx, &appliance.Module{Kinds: moduleKindsOf(&mv, wasm)}, wasm); err != nil {
				return fmt.Errorf("store module %s: %w", path, err)
			}
		}
		if err := tx.Bucket(bucketBlobs).Put(bundleSum[:], sealedBundle); err != nil {
			return err
		}
		if err := s.putJSON(versions, u32(n), &mv); err != nil {
			return err
		}
		if err := b.Bucket(keyDigests).Put([]byte(mv.SHA256), u32(n)); err != nil {
			return err
		}
		result, created = &mv, true
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "model_version.create", Object: appliance.ModelRef(mv.Model, n),
			Summary: map[string]any{"sha256": mv.SHA256, "module": mv.Module, "inputs": len(mv.Inputs), "lineage": mv.Lineage}})
	}, func() {
		if created {
			s.refreshModel(v.Model)
		}
	})
	if err != nil {
		return nil, false, err
	}
	return result, created, nil
}

// moduleKindsOf labels a model bundle's modules: the model's own module is
// a model; others are transforms. The upload path inspected them already.
func moduleKindsOf(v *appliance.ModelVersion, wasm []byte) []string {
	if "sha256:"+appliance.ModuleDigest(wasm) == v.Module {
		return []string{appliance.KindModel}
	}
	return []string{appliance.KindTransform}
}

// Models implements appliance.ModelRegistry.
func (s *Store) Models(context.Context) ([]*appliance.Model, error) {
	reg := s.registry.Load()
	out := make([]*appliance.Model, 0, len(reg.models))
	for _, name := range slices.Sorted(maps.Keys(reg.models)) {
		out = append(out, reg.models[name].model)
	}
	return out, nil
}

func (s *Store) modelState(name string) (*modelState, error) {
	st, ok := s.registry.Load().models[name]
	if !ok {
		return nil, modelNotFound(name)
	}
	return st, nil
}

// Model implements appliance.ModelRegistry.
func (s *Store) Model(_ context.Context, name string) (*appliance.Model, error) {
	st, err := s.modelState(name)
	if err != nil {
		return nil, err
	}
	return st.model, nil
}

// ModelVersions implements appliance.ModelRegistry.
func (s *Store) ModelVersions(_ context.Context, name string) ([]*appliance.ModelVersion, error) {
	st, err := s.modelState(name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(st.versions), nil
}

// ModelVersion implements appliance.ModelRegistry.
func (s *Store) ModelVersion(_ context.Context, name string, version int) (*appliance.ModelVersion, error) {
	st, err := s.modelState(name)
	if err != nil {
		return nil, err
	}
	if version < 1 || version > len(st.versions) {
		return nil, appliance.Errorf(appliance.ENOTFOUND, "model %q has no version %d", name, version)
	}
	return st.versions[version-1], nil
}

// ResolveModel implements appliance.ModelRegistry.
func (s *Store) ResolveModel(ctx context.Context, name, alias string) (*appliance.ModelVersion, error) {
	st, err := s.modelState(name)
	if err != nil {
		return nil, err
	}
	if alias == "latest" {
		return st.versions[len(st.versions)-1], nil
	}
	if n, ok := appliance.VersionRef(alias); ok {
		return s.ModelVersion(ctx, name, n)
	}
	v, ok := st.model.Aliases[alias]
	if !ok {
		return nil, appliance.Errorf(appliance.ENOTFOUND, errNoSuchAlias, alias, name)
	}
	return st.versions[v-1], nil
}

// ModelBundle implements appliance.ModelRegistry: the exact bytes uploaded.
func (s *Store) ModelBundle(ctx context.Context, name string, version int) ([]byte, error) {
	mv, err := s.ModelVersion(ctx, name, version)
	if err != nil {
		return nil, err
	}
	key, _ := hex.DecodeString(mv.BundleSHA256)
	var out []byte
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlobs).Get(key)
		if v == nil {
			return fmt.Errorf("bundle of %s: blob %s missing", appliance.ModelRef(name, version), mv.BundleSHA256)
		}
		plain, err := s.codec.Open(nil, v)
		out = bytes.Clone(plain)
		return err
	})
	return out, err
}

// modelUpdate runs fn on a model's bucket in a write transaction and
// refreshes the snapshot after the commit.
func (s *Store) modelUpdate(ctx context.Context, name string, fn func(tx *bolt.Tx, b *bolt.Bucket) error) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketModels).Bucket([]byte(name))
		if b == nil {
			return modelNotFound(name)
		}
		return fn(tx, b)
	}, func() { s.refreshModel(name) })
}

func (s *Store) readVersion(b *bolt.Bucket, name string, version int) (*appliance.ModelVersion, error) {
	var mv appliance.ModelVersion
	ok, err := s.getJSON(b.Bucket(keyVersions), u32(version), &mv)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, appliance.Errorf(appliance.ENOTFOUND, "model %q has no version %d", name, version)
	}
	return &mv, nil
}

// PatchModel implements appliance.ModelRegistry.
func (s *Store) PatchModel(ctx context.Context, name string, tags map[string]string, description *string) (*appliance.Model, error) {
	if err := validateTags(tags); err != nil {
		return nil, err
	}
	err := s.modelUpdate(ctx, name, func(tx *bolt.Tx, b *bolt.Bucket) error {
		var m appliance.Model
		if _, err := s.getJSON(b, keyModelMeta, &m); err != nil {
			return err
		}
		if tags != nil {
			m.Tags = tags
		}
		if description != nil {
			m.Description = *description
		}
		m.UpdatedAt = s.now().UTC()
		if err := s.putJSON(b, keyModelMeta, &m); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "model.update", Object: "model/" + name,
			Summary: map[string]any{"tags": m.Tags, "description": m.Description}})
	})
	if err != nil {
		return nil, err
	}
	return s.Model(ctx, name)
}

func validateTags(tags map[string]string) error {
	if len(tags) > 64 {
		return appliance.Invalid("tags", "more than 64 tags")
	}
	for k, v := range tags {
		if k == "" || len(k) > 128 || len(v) > 1024 {
			return appliance.Invalid("tags", "tag %q: keys are 1 to 128 bytes, values at most 1024", k)
		}
	}
	return nil
}

// PatchModelVersion implements appliance.ModelRegistry. A version an alias
// points to cannot be archived.
func (s *Store) PatchModelVersion(ctx context.Context, name string, version int, p *appliance.ModelVersionPatch) (*appliance.ModelVersion, error) {
	if p.Tags != nil {
		if err := validateTags(*p.Tags); err != nil {
			return nil, err
		}
	}
	if p.Status != nil && *p.Status != appliance.StatusActive && *p.Status != appliance.StatusArchived {
		return nil, appliance.Invalid("status", "%q is not active or archived", *p.Status)
	}
	err := s.modelUpdate(ctx, name, func(tx *bolt.Tx, b *bolt.Bucket) error {
		mv, err := s.readVersion(b, name, version)
		if err != nil {
			return err
		}
		before := mv.Status
		if p.Status != nil && *p.Status == appliance.StatusArchived && mv.Status != appliance.StatusArchived {
			var holders []string
			_ = b.Bucket(keyAliases).ForEach(func(k, v []byte) error {
				var a aliasState
				if s.decodeJSON(v, &a) == nil && a.Version == version {
					holders = append(holders, string(k))
				}
				return nil
			})
			if len(holders) > 0 {
				return appliance.Errorf(appliance.ECONFLICT, "version %d of %q is under the aliases %v: move them first", version, name, holders)
			}
		}
		if p.Status != nil {
			mv.Status = *p.Status
		}
		if p.Tags != nil {
			mv.Tags = *p.Tags
		}
		if err := s.putJSON(b.Bucket(keyVersions), u32(version), mv); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "model_version.update", Object: appliance.ModelRef(name, version),
			Summary: map[string]any{"status_before": before, "status": mv.Status, "tags": mv.Tags}})
	})
	if err != nil {
		return nil, err
	}
	return s.ModelVersion(ctx, name, version)
}

// AddSignature implements appliance.ModelRegistry.
func (s *Store) AddSignature(ctx context.Context, name string, version int, sig appliance.Signature) (*appliance.ModelVersion, error) {
	err := s.modelUpdate(ctx, name, func(tx *bolt.Tx, b *bolt.Bucket) error {
		mv, err := s.readVersion(b, name, version)
		if err != nil {
			return err
		}
		for _, have := range mv.Signatures {
			if bytes.Equal(have.Signature, sig.Signature) {
				return nil // the same signature again: nothing to record
			}
		}
		sig.AddedAt, sig.AddedBy = s.now().UTC(), appliance.CallerFromContext(ctx).Name
		mv.Signatures = append(mv.Signatures, sig)
		if err := s.putJSON(b.Bucket(keyVersions), u32(version), mv); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "model_version.sign", Object: appliance.ModelRef(name, version),
			Summary: map[string]any{"key_id": sig.KeyID, "valid": sig.Valid, "trusted": sig.Trusted}})
	})
	if err != nil {
		return nil, err
	}
	return s.ModelVersion(ctx, name, version)
}

// checkAliasTarget refuses versions an alias may not point to.
func checkAliasTarget(mv *appliance.ModelVersion, alias string, policy appliance.AliasPolicy) error {
	if mv.Status == appliance.StatusArchived {
		return appliance.Errorf(appliance.ECONFLICT, "version %d of %q is archived: it cannot take the alias %q", mv.Version, mv.Model, alias)
	}
	if policy.RequireSignature && !mv.HasTrustedSignature() {
		return appliance.Errorf(appliance.ECONFLICT, "the alias %q requires a valid signature by a trusted key; version %d of %q has none", alias, mv.Version, mv.Model)
	}
	return nil
}

func (s *Store) appendAliasChange(ctx context.Context, tx *bolt.Tx, b *bolt.Bucket, name string, ch *appliance.AliasChange) error {
	h := b.Bucket(keyHistory)
	h.FillPercent = 1
	seq, err := h.NextSequence()
	if err != nil {
		return err
	}
	c := appliance.CallerFromContext(ctx)
	ch.Seq, ch.Actor, ch.RequestID, ch.Time = seq, c.Name, c.RequestID, s.now().UTC()
	if err := s.putJSON(h, u64(seq), ch); err != nil {
		return err
	}
	return s.audit(ctx, tx, appliance.AuditRecord{Action: "alias." + ch.Action, Object: "model/" + name + "/alias/" + ch.Alias,
		Summary: map[string]any{"version": ch.Version, "previous": ch.Previous}})
}

// SetAlias implements appliance.ModelRegistry.
func (s *Store) SetAlias(ctx context.Context, name, alias string, version int, policy appliance.AliasPolicy) (*appliance.AliasChange, error) {
	if err := appliance.ValidateAliasName(alias); err != nil {
		return nil, err
	}
	var ch *appliance.AliasChange
	err := s.modelUpdate(ctx, name, func(tx *bolt.Tx, b *bolt.Bucket) error {
		mv, err := s.readVersion(b, name, version)
		if err != nil {
			return err
		}
		if err := checkAliasTarget(mv, alias, policy); err != nil {
			return err
		}
		var st aliasState
		if _, err := s.getJSON(b.Bucket(keyAliases), []byte(alias), &st); err != nil {
			return err
		}
		ch = &appliance.AliasChange{Alias: alias, Action: "set", Version: version, Previous: st.Version}
		if st.Version == version {
			return nil // already there: no change, no history entry
		}
		if st.Version != 0 {
			st.Stack = append(st.Stack, st.Version)
		}
		st.Version = version
		if err := s.putJSON(b.Bucket(keyAliases), []byte(alias), &st); err != nil {
			return err
		}
		return s.appendAliasChange(ctx, tx, b, name, ch)
	})
	return ch, err
}

// DeleteAlias implements appliance.ModelRegistry.
func (s *Store) DeleteAlias(ctx context.Context, name, alias string) (*appliance.AliasChange, error) {
	var ch *appliance.AliasChange
	err := s.modelUpdate(ctx, name, func(tx *bolt.Tx, b *bolt.Bucket) error {
		var st aliasState
		ok, err := s.getJSON(b.Bucket(keyAliases), []byte(alias), &st)
		if err != nil {
			return err
		}
		if !ok {
			return appliance.Errorf(appliance.ENOTFOUND, errNoSuchAlias, alias, name)
		}
		if err := b.Bucket(keyAliases).Delete([]byte(alias)); err != nil {
			return err
		}
		ch = &appliance.AliasChange{Alias: alias, Action: "delete", Previous: st.Version}
		return s.appendAliasChange(ctx, tx, b, name, ch)
	})
	return ch, err
}

// RollbackAlias implements appliance.ModelRegistry.
func (s *Store) RollbackAlias(ctx context.Context, name, alias string, policy appliance.AliasPolicy) (*appliance.AliasChange, error) {
	var ch *appliance.AliasChange
	err := s.modelUpdate(ctx, name, func(tx *bolt.Tx, b *bolt.Bucket) error {
		var st aliasState
		ok, err := s.getJSON(b.Bucket(keyAliases), []byte(alias), &st)
		if err != nil {
			return err
		}
		if !ok {
			return appliance.Errorf(appliance.ENOTFOUND, errNoSuchAlias, alias, name)
		}
		if len(st.Stack) == 0 {
			return errNoRollback
		}
		target := st.Stack[len(st.Stack)-1]
		mv, err := s.readVersion(b, name, target)
		if err != nil {
			return err
		}
		if err := checkAliasTarget(mv, alias, policy); err != nil {
			return err
		}
		ch = &appliance.AliasChange{Alias: alias, Action: "rollback", Version: target, Previous: st.Version}
		st.Version, st.Stack = target, st.Stack[:len(st.Stack)-1]
		if err := s.putJSON(b.Bucket(keyAliases), []byte(alias), &st); err != nil {
			return err
		}
		return s.appendAliasChange(ctx, tx, b, name, ch)
	})
	return ch, err
}

// AliasHistory implements appliance.ModelRegistry: every change of one
// alias, oldest first.
func (s *Store) AliasHistory(_ context.Context, name, alias string) ([]*appliance.AliasChange, error) {
	out := []*appliance.AliasChange{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketModels).Bucket([]byte(name))
		if b == nil {
			return modelNotFound(name)
		}
		return b.Bucket(keyHistory).ForEach(func(_, v []byte) error {
			var ch appliance.AliasChange
			if err := s.decodeJSON(v, &ch); err != nil {
				return err
			}
			if ch.Alias == alias {
				out = append(out, &ch)
			}
			return nil
		})
	})
	if err == nil && len(out) == 0 {
		return nil, appliance.Errorf(appliance.ENOTFOUND, "alias %q of model %q has no history", alias, name)
	}
	return out, err
}
