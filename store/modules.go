package store

import (
	"context"
	"encoding/hex"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// PutModule implements appliance.ModuleStore. The digest is computed here,
// not trusted from the caller.
func (s *Store) PutModule(ctx context.Context, m *appliance.Module, wasm []byte) (bool, error) {
	digest := appliance.ModuleDigest(wasm)
	if m.SHA256 != "" && m.SHA256 != digest {
		return false, appliance.Invalid("sha256", "module bytes hash to %s, not %s", digest, m.SHA256)
	}
	created := false
	var stored appliance.Module
	err := s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		stored, created, err = s.putModuleTx(ctx, tx, m, wasm)
		return err
	}, nil)
	if err != nil {
		return false, err
	}
	*m = stored
	return created, nil
}

// Module implements appliance.ModuleStore.
func (s *Store) Module(_ context.Context, sha256 string) (*appliance.Module, error) {
	var m appliance.Module
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		ok, err = s.getJSON(tx.Bucket(bucketModules), []byte(sha256), &m)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, appliance.NotFound("module", sha256)
	}
	return &m, nil
}

// ModuleBytes implements appliance.ModuleStore.
func (s *Store) ModuleBytes(_ context.Context, sha256 string) ([]byte, error) {
	raw, err := hex.DecodeString(sha256)
	if err != nil || len(raw) != 32 {
		return nil, appliance.NotFound("module", sha256)
	}
	var out []byte
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlobs).Get(raw)
		if v == nil {
			return appliance.NotFound("module", sha256)
		}
		plain, err := s.codec.Open(nil, v)
		out = slices.Clone(plain) // the bytes outlive the transaction
		return err
	})
	return out, err
}

// Modules implements appliance.ModuleStore.
func (s *Store) Modules(context.Context) ([]*appliance.Module, error) {
	var out []*appliance.Module
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketModules).ForEach(func(_, v []byte) error {
			var m appliance.Module
			if err := s.decodeJSON(v, &m); err != nil {
				return err
			}
			out = append(out, &m)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b *appliance.Module) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

// putModuleTx stores a module in tx unless it is there already, auditing
// the upload. m.SHA256 must be the digest of wasm.
func (s *Store) putModuleTx(ctx context.Context, tx *bolt.Tx, m *appliance.Module, wasm []byte) (appliance.Module, bool, error) {
	digest := appliance.ModuleDigest(wasm)
	meta := tx.Bucket(bucketModules)
	var stored appliance.Module
	if ok, err := s.getJSON(meta, []byte(digest), &stored); err != nil || ok {
		return stored, false, err
	}
	stored = *m
	stored.SHA256, stored.Size = digest, len(wasm)
	stored.CreatedAt = s.now().UTC()
	stored.CreatedBy = appliance.CallerFromContext(ctx).Name
	raw, _ := hex.DecodeString(digest)
	if err := tx.Bucket(bucketBlobs).Put(raw, s.codec.Seal(nil, wasm)); err != nil {
		return stored, false, err
	}
	if err := s.putJSON(meta, []byte(digest), &stored); err != nil {
		return stored, false, err
	}
	return stored, true, s.audit(ctx, tx, appliance.AuditRecord{Action: "module.create", Object: "module/" + digest,
		Summary: map[string]any{"size": len(wasm), "kinds": stored.Kinds}})
}
