package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mlnode/mlnode/appliance"
)

// registryState is an immutable snapshot of every definition, swapped whole
// after each commit that changes one: reads of definitions, which every
// ingest and online read does, take no lock and touch no page. Objects in it
// are shared and must not be modified.
type registryState struct {
	entities map[string]*appliance.Entity
	views    map[string][]*appliance.FeatureView // versions in order: [0] is version 1
	services map[string]*appliance.FeatureService
	models   map[string]*modelState
}

func (r *registryState) clone() *registryState {
	return &registryState{entities: maps.Clone(r.entities), views: maps.Clone(r.views), services: maps.Clone(r.services), models: maps.Clone(r.models)}
}

// viewMeta is what a view's versions share and PATCH changes.
type viewMeta struct {
	TTL         appliance.Duration `json:"ttl"`
	Retention   appliance.Duration `json:"retention,omitempty"`
	Tags        map[string]string  `json:"tags"`
	Owner       string             `json:"owner,omitempty"`
	Description string             `json:"description,omitempty"`
	UpdatedAt   time.Time          `json:"updated_at"`
}

// viewVersion is one immutable schema.
type viewVersion struct {
	Version   int                  `json:"version"`
	Entities  []string             `json:"entities"`
	Features  []appliance.Feature  `json:"features"`
	JoinKeys  []appliance.JoinKey  `json:"join_keys"`
	Transform *appliance.Transform `json:"transform,omitempty"`
	CreatedAt time.Time            `json:"created_at"`
	CreatedBy string               `json:"created_by,omitempty"`
}

var keyViewMeta = []byte("meta")

func versionKey(v int) []byte {
	return append([]byte("v"), binary.BigEndian.AppendUint32(nil, uint32(v))...)
}

func (s *Store) loadCaches() error {
	reg := &registryState{entities: map[string]*appliance.Entity{}, views: map[string][]*appliance.FeatureView{},
		services: map[string]*appliance.FeatureService{}, models: map[string]*modelState{}}
	tok := &tokenState{byDigest: map[[32]byte]*appliance.Token{}}
	err := s.view(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketEntities).ForEach(func(k, v []byte) error {
			var e appliance.Entity
			if err := s.decodeJSON(v, &e); err != nil {
				return fmt.Errorf("entity %s: %w", k, err)
			}
			reg.entities[e.Name] = &e
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketViews).ForEachBucket(func(k []byte) error {
			versions, err := s.readViewVersions(tx.Bucket(bucketViews).Bucket(k), string(k))
			if err != nil {
				return err
			}
			reg.views[string(k)] = versions
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketServices).ForEach(func(k, v []byte) error {
			var fs appliance.FeatureService
			if err := s.decodeJSON(v, &fs); err != nil {
				return fmt.Errorf("feature service %s: %w", k, err)
			}
			reg.services[fs.Name] = &fs
			return nil
		}); err != nil {
			return err
		}
		if err := s.loadModels(tx, reg); err != nil {
			return err
		}
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			t, err := s.decodeToken(v)
			if err != nil {
				return fmt.Errorf("token %s: %w", k, err)
			}
			tok.byDigest[t.Digest] = t
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load definitions: %w", err)
	}
	s.registry.Store(reg)
	s.tokens.Store(tok)
	return nil
}

// readViewVersions decodes every version of one view, oldest first.
func (s *Store) readViewVersions(b *bolt.Bucket, name string) ([]*appliance.FeatureView, error) {
	var meta viewMeta
	if _, err := s.getJSON(b, keyViewMeta, &meta); err != nil {
		return nil, fmt.Errorf("view %s metadata: %w", name, err)
	}
	var out []*appliance.FeatureView
	c := b.Cursor()
	for k, v := c.Seek([]byte("v")); k != nil && k[0] == 'v'; k, v = c.Next() {
		var ver viewVersion
		if err := s.decodeJSON(v, &ver); err != nil {
			return nil, fmt.Errorf("view %s version: %w", name, err)
		}
		out = append(out, assembleView(name, &ver, &meta))
	}
	return out, nil
}

func assembleView(name string, ver *viewVersion, meta *viewMeta) *appliance.FeatureView {
	return &appliance.FeatureView{
		Name: name, Version: ver.Version, Entities: ver.Entities, Features: ver.Features, JoinKeys: ver.JoinKeys, Transform: ver.Transform,
		TTL: meta.TTL, Retention: meta.Retention, Tags: meta.Tags, Owner: meta.Owner, Description: meta.Description,
		CreatedAt: ver.CreatedAt, CreatedBy: ver.CreatedBy, UpdatedAt: meta.UpdatedAt,
	}
}

// CreateEntity implements appliance.FeatureRegistry.
func (s *Store) CreateEntity(ctx context.Context, e *appliance.Entity) (bool, error) {
	if err := e.Validate(); err != nil {
		return false, err
	}
	created := false
	var stored *appliance.Entity
	err := s.update(ctx, func(tx *bolt.Tx) error {
		created = false
		b := tx.Bucket(bucketEntities)
		var old appliance.Entity
		if ok, err := s.getJSON(b, []byte(e.Name), &old); err != nil {
			return err
		} else if ok {
			if !old.SameDefinition(e) {
				return appliance.Errorf(appliance.ECONFLICT, "entity %q exists with another definition; entities are immutable", e.Name)
			}
			stored = &old
			return nil
		}
		n := *e
		n.CreatedAt = s.now().UTC()
		n.CreatedBy = appliance.CallerFromContext(ctx).Name
		if err := s.putJSON(b, []byte(n.Name), &n); err != nil {
			return err
		}
		stored, created = &n, true
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "entity.create", Object: "entity/" + n.Name,
			Summary: map[string]any{"join_keys": n.JoinKeys, "value_type": n.ValueType}})
	}, func() {
		if created {
			reg := s.registry.Load().clone()
			reg.entities[stored.Name] = stored
			s.registry.Store(reg)
		}
	})
	if err != nil {
		return false, err
	}
	*e = *stored
	return created, nil
}

// Entity implements appliance.FeatureRegistry.
func (s *Store) Entity(_ context.Context, name string) (*appliance.Entity, error) {
	if e, ok := s.registry.Load().entities[name]; ok {
		return e, nil
	}
	return nil, appliance.NotFound("entity", name)
}

// Entities implements appliance.FeatureRegistry.
func (s *Store) Entities(context.Context) ([]*appliance.Entity, error) {
	reg := s.registry.Load()
	out := make([]*appliance.Entity, 0, len(reg.entities))
	for _, name := range slices.Sorted(maps.Keys(reg.entities)) {
		out = append(out, reg.entities[name])
	}
	return out, nil
}

// ApplyFeatureView implements appliance.FeatureRegistry.
func (s *Store) ApplyFeatureView(ctx context.Context, v *appliance.FeatureView) (*appliance.FeatureView, bool, error) {
	if err := v.Validate(); err != nil {
		return nil, false, err
	}
	var result *appliance.FeatureView
	var versions []*appliance.FeatureView
	created := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		// The group commit re-runs this when a later write in its batch
		// fails: start from nothing, or a new view would count the first
		// run's version and become version 2.
		result, versions, created = nil, nil, false
		want := *v
		if err := want.ResolveJoinKeys(func(name string) (*appliance.Entity, error) {
			var e appliance.Entity
			if ok, err := s.getJSON(tx.Bucket(bucketEntities), []byte(name), &e); err != nil {
				return nil, err
			} else if !ok {
				return nil, appliance.NotFound("entity", name)
			}
			return &e, nil
		}); err != nil {
			return err
		}
		if err := s.checkTransformModule(tx, &want); err != nil {
			return err
		}
		views := tx.Bucket(bucketViews)
		vb := views.Bucket([]byte(v.Name))
		var err error
		if vb != nil {
			if versions, err = s.readViewVersions(vb, v.Name); err != nil {
				return err
			}
			latest := versions[len(versions)-1]
			if latest.SameSchema(&want) {
				result = latest
				return nil
			}
		} else if vb, err = views.CreateBucket([]byte(v.Name)); err != nil {
			return err
		}
		now := s.now().UTC()
		actor := appliance.CallerFromContext(ctx).Name
		ver := &viewVersion{Version: len(versions) + 1, Entities: want.Entities, Features: want.Features, JoinKeys: want.JoinKeys, Transform: want.Transform, CreatedAt: now, CreatedBy: actor}
		meta := &viewMeta{TTL: want.TTL, Retention: want.Retention, Tags: want.Tags, Owner: want.Owner, Description: want.Description, UpdatedAt: now}
		if meta.Tags == nil {
			meta.Tags = map[string]string{}
		}
		if err := s.putJSON(vb, versionKey(ver.Version), ver); err != nil {
			return err
		}
		if err := s.putJSON(vb, keyViewMeta, meta); err != nil {
			return err
		}
		result = assembleView(v.Name, ver, meta)
		if _, err := tx.Bucket(bucketOnline).CreateBucket([]byte(result.Key())); err != nil {
			return fmt.Errorf("create online bucket for %s: %w", result.Key(), err)
		}
		if err := s.createEvents(tx, []byte(result.Key())); err != nil {
			return err
		}
		// Metadata is shared: older versions read the new metadata too.
		for i, old := range versions {
			o := *old
			o.TTL, o.Retention, o.Tags, o.Owner, o.Description, o.UpdatedAt = meta.TTL, meta.Retention, meta.Tags, meta.Owner, meta.Description, meta.UpdatedAt
			versions[i] = &o
		}
		versions = append(slices.Clip(versions), result)
		created = true
		action := "feature_view.create"
		if ver.Version > 1 {
			action = "feature_view.new_version"
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: action, Object: "feature_view/" + result.Key(),
			Summary: map[string]any{"version": ver.Version, "entities": ver.Entities, "features": ver.Features, "ttl": meta.TTL, "retention": meta.Retention, "transform": ver.Transform}})
	}, func() {
		if created {
			reg := s.registry.Load().clone()
			reg.views[result.Name] = versions
			s.registry.Store(reg)
		}
	})
	if err != nil {
		return nil, false, err
	}
	return result, created, nil
}

// PatchFeatureView implements appliance.FeatureRegistry.
func (s *Store) PatchFeatureView(ctx context.Context, name string, p *appliance.FeatureViewPatch) (*appliance.FeatureView, error) {
	// The views rebuilt below keep name, as does the registry's map: a
	// clone, since name may alias a request buffer the HTTP server reuses.
	name = strings.Clone(name)
	var versions []*appliance.FeatureView
	err := s.update(ctx, func(tx *bolt.Tx) error {
		vb := tx.Bucket(bucketViews).Bucket([]byte(name))
		if vb == nil {
			return appliance.NotFound("feature view", name)
		}
		var meta viewMeta
		if _, err := s.getJSON(vb, keyViewMeta, &meta); err != nil {
			return err
		}
		probe := appliance.FeatureView{TTL: meta.TTL, Retention: meta.Retention, Tags: maps.Clone(meta.Tags), Owner: meta.Owner, Description: meta.Description}
		if err := p.Apply(&probe); err != nil {
			return err
		}
		before := meta
		meta = viewMeta{TTL: probe.TTL, Retention: probe.Retention, Tags: probe.Tags, Owner: probe.Owner, Description: probe.Description, UpdatedAt: s.now().UTC()}
		if meta.Tags == nil {
			meta.Tags = map[string]string{}
		}
		if err := s.putJSON(vb, keyViewMeta, &meta); err != nil {
			return err
		}
		var err error
		if versions, err = s.readViewVersions(vb, name); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "feature_view.update", Object: "feature_view/" + name,
			Summary: map[string]any{"before": metaSummary(&before), "after": metaSummary(&meta)}})
	}, func() {
		reg := s.registry.Load().clone()
		reg.views[name] = versions
		s.registry.Store(reg)
	})
	if err != nil {
		return nil, err
	}
	return versions[len(versions)-1], nil
}

func metaSummary(m *viewMeta) map[string]any {
	return map[string]any{"ttl": m.TTL, "retention": m.Retention, "tags": m.Tags, "owner": m.Owner, "description": m.Description}
}

// FeatureView implements appliance.FeatureRegistry.
func (s *Store) FeatureView(_ context.Context, name string, version int) (*appliance.FeatureView, error) {
	versions := s.registry.Load().views[name]
	if len(versions) == 0 {
		return nil, appliance.NotFound("feature view", name)
	}
	if version == 0 {
		return versions[len(versions)-1], nil
	}
	if version < 0 || version > len(versions) {
		return nil, appliance.Errorf(appliance.ENOTFOUND, "feature view %q has no version %d (latest is %d)", name, version, len(versions))
	}
	return versions[version-1], nil
}

// FeatureViews implements appliance.FeatureRegistry.
func (s *Store) FeatureViews(context.Context) ([]*appliance.FeatureView, error) {
	reg := s.registry.Load()
	out := make([]*appliance.FeatureView, 0, len(reg.views))
	for _, name := range slices.Sorted(maps.Keys(reg.views)) {
		versions := reg.views[name]
		out = append(out, versions[len(versions)-1])
	}
	return out, nil
}

// FeatureViewVersions implements appliance.FeatureRegistry.
func (s *Store) FeatureViewVersions(_ context.Context, name string) ([]*appliance.FeatureView, error) {
	versions := s.registry.Load().views[name]
	if len(versions) == 0 {
		return nil, appliance.NotFound("feature view", name)
	}
	return slices.Clone(versions), nil
}

// DeleteFeatureView implements appliance.FeatureRegistry.
func (s *Store) DeleteFeatureView(ctx context.Context, name string, force bool) error {
	// See onlineCache: the view's rows are gone once this is answered.
	end := s.online.writeAll()
	defer end()
	return s.update(ctx, func(tx *bolt.Tx) error {
		views := tx.Bucket(bucketViews)
		vb := views.Bucket([]byte(name))
		if vb == nil {
			return appliance.NotFound("feature view", name)
		}
		versions, err := s.readViewVersions(vb, name)
		if err != nil {
			return err
		}
		if users := s.servicesUsing(tx, name); len(users) > 0 {
			return appliance.Errorf(appliance.ECONFLICT, "feature view %q is used by feature services %v: delete or change them first", name, users)
		}
		rows := 0
		for _, v := range versions {
			rows += int(readCounts(tx.Bucket(bucketViewStats), []byte(v.Key())).offline)
		}
		if rows > 0 && !force {
			return appliance.Errorf(appliance.ECONFLICT, "feature view %q holds data: add ?force=true to delete it with its data", name)
		}
		for _, v := range versions {
			for _, root := range [][]byte{bucketEvents, bucketOnline} {
				if err := tx.Bucket(root).DeleteBucket([]byte(v.Key())); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
					return err
				}
			}
			// Derived state keyed by the version: a view re-created under
			// the same name starts again at version 1 and must not inherit
			// a watermark or statistics.
			if b := tx.Bucket(bucketErasures); b != nil {
				if err := b.DeleteBucket([]byte(v.Key())); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
					return err
				}
			}
			for _, derived := range [][]byte{bucketWatermarks, bucketFeatureStats} {
				if b := tx.Bucket(derived); b != nil {
					if err := b.Delete([]byte(v.Key())); err != nil {
						return err
					}
				}
			}
			if err := tx.Bucket(bucketViewStats).Delete([]byte(v.Key())); err != nil {
				return err
			}
		}
		if err := views.DeleteBucket([]byte(name)); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "feature_view.delete", Object: "feature_view/" + name,
			Summary: map[string]any{"versions": len(versions), "force": force, "had_data": rows > 0}})
	}, func() {
		reg := s.registry.Load().clone()
		delete(reg.views, name)
		s.registry.Store(reg)
		// Only once the view is gone: dropping the cache of a view whose
		// delete failed (409) would strand the marks of a write in flight
		// on the dropped entry, and a reader could cache a row that write
		// then replaces, past its acknowledgement.
		s.online.dropView(name)
	})
}

// servicesUsing names the feature services that reference a view.
func (s *Store) servicesUsing(tx *bolt.Tx, view string) []string {
	var users []string
	_ = tx.Bucket(bucketServices).ForEach(func(k, v []byte) error {
		var fs appliance.FeatureService
		if s.decodeJSON(v, &fs) != nil {
			return nil
		}
		for _, f := range fs.Features {
			if ref, err := appliance.ParseFeatureRef("", f); err == nil && ref.View == view {
				users = append(users, fs.Name)
				break
			}
		}
		return nil
	})
	return users
}

// ApplyFeatureService implements appliance.FeatureRegistry.
func (s *Store) ApplyFeatureService(ctx context.Context, fs *appliance.FeatureService) (bool, error) {
	if err := fs.Validate(); err != nil {
		return false, err
	}
	reg := s.registry.Load()
	for i, f := range fs.Features {
		ref, _ := appliance.ParseFeatureRef("", f)
		if _, err := resolveRef(reg, ref); err != nil {
			e := err.(*appliance.Error)
			e.Field = fmt.Sprintf("features[%d]", i)
			return false, e
		}
	}
	created := false
	var stored *appliance.FeatureService
	err := s.update(ctx, func(tx *bolt.Tx) error {
		created = false
		b := tx.Bucket(bucketServices)
		var old appliance.FeatureService
		exists, err := s.getJSON(b, []byte(fs.Name), &old)
		if err != nil {
			return err
		}
		n := *fs
		now := s.now().UTC()
		n.CreatedAt, n.UpdatedAt = now, now
		if exists {
			if slices.Equal(old.Features, fs.Features) && old.Description == fs.Description {
				stored = &old
				return nil
			}
			n.CreatedAt = old.CreatedAt
		}
		if err := s.putJSON(b, []byte(n.Name), &n); err != nil {
			return err
		}
		stored, created = &n, !exists
		action := "feature_service.update"
		if !exists {
			action = "feature_service.create"
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: action, Object: "feature_service/" + n.Name, Summary: map[string]any{"features": n.Features}})
	}, func() {
		reg := s.registry.Load().clone()
		reg.services[stored.Name] = stored
		s.registry.Store(reg)
	})
	if err != nil {
		return false, err
	}
	*fs = *stored
	return created, nil
}

// resolveRef finds the view version a reference names and checks the feature.
func resolveRef(reg *registryState, ref appliance.FeatureRef) (*appliance.FeatureView, error) {
	versions := reg.views[ref.View]
	if len(versions) == 0 {
		return nil, appliance.Errorf(appliance.ENOTFOUND, "feature view %q not found (in %q)", ref.View, ref.String())
	}
	v := versions[len(versions)-1]
	if ref.Version > 0 {
		if ref.Version > len(versions) {
			return nil, appliance.Errorf(appliance.ENOTFOUND, "feature view %q has no version %d (in %q)", ref.View, ref.Version, ref.String())
		}
		v = versions[ref.Version-1]
	}
	if v.FeatureIndex(ref.Feature) < 0 {
		return nil, appliance.Errorf(appliance.ENOTFOUND, "feature view %s has no feature %q (in %q)", v.Key(), ref.Feature, ref.String())
	}
	return v, nil
}

// FeatureService implements appliance.FeatureRegistry.
func (s *Store) FeatureService(_ context.Context, name string) (*appliance.FeatureService, error) {
	if fs, ok := s.registry.Load().services[name]; ok {
		return fs, nil
	}
	return nil, appliance.NotFound("feature service", name)
}

// FeatureServices implements appliance.FeatureRegistry.
func (s *Store) FeatureServices(context.Context) ([]*appliance.FeatureService, error) {
	reg := s.registry.Load()
	out := make([]*appliance.FeatureService, 0, len(reg.services))
	for _, name := range slices.Sorted(maps.Keys(reg.services)) {
		out = append(out, reg.services[name])
	}
	return out, nil
}

// DeleteFeatureService implements appliance.FeatureRegistry.
func (s *Store) DeleteFeatureService(ctx context.Context, name string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketServices)
		if b.Get([]byte(name)) == nil {
			return appliance.NotFound("feature service", name)
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "feature_service.delete", Object: "feature_service/" + name})
	}, func() {
		reg := s.registry.Load().clone()
		delete(reg.services, name)
		s.registry.Store(reg)
	})
}

// checkTransformModule checks that a view's transform module is stored and
// exports the entry point its inputs need.
func (s *Store) checkTransformModule(tx *bolt.Tx, v *appliance.FeatureView) error {
	t := v.Transform
	if t == nil {
		return nil
	}
	var m appliance.Module
	ok, err := s.getJSON(tx.Bucket(bucketModules), []byte(strings.TrimPrefix(t.Module, "sha256:")), &m)
	if err != nil {
		return err
	}
	if !ok {
		return &appliance.Error{Code: appliance.ENOTFOUND, Field: "transform.module", Message: fmt.Sprintf("module %s not found: upload it to /api/v1/modules first", t.Module)}
	}
	if v.NeedsRowTransform() && !m.HasKind(appliance.KindRowTransform) {
		return appliance.Invalid("transform.module", "module %s does not export mlnode_transform_row, which string and request inputs need", t.Module)
	}
	if !m.HasKind(appliance.KindTransform) && !m.HasKind(appliance.KindRowTransform) {
		return appliance.Invalid("transform.module", "module %s exports neither mlnode_transform nor mlnode_transform_row", t.Module)
	}
	return nil
}
