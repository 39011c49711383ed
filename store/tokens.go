package store

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// tokenState maps secret digests to tokens, swapped whole on change.
type tokenState struct {
	byDigest map[[32]byte]*appliance.Token
}

type tokenRecord struct {
	Name      string         `json:"name"`
	Role      appliance.Role `json:"role"`
	Digest    string         `json:"sha256"`
	CreatedAt time.Time      `json:"created_at"`
	CreatedBy string         `json:"created_by,omitempty"`
}

func (s *Store) decodeToken(sealed []byte) (*appliance.Token, error) {
	var rec tokenRecord
	if err := s.decodeJSON(sealed, &rec); err != nil {
		return nil, err
	}
	t := &appliance.Token{Name: rec.Name, Role: rec.Role, CreatedAt: rec.CreatedAt, CreatedBy: rec.CreatedBy}
	if _, err := hex.Decode(t.Digest[:], []byte(rec.Digest)); err != nil {
		return nil, err
	}
	return t, nil
}

func (s *Store) putToken(ctx context.Context, tx *bolt.Tx, t *appliance.Token) error {
	b := tx.Bucket(bucketTokens)
	if b.Get([]byte(t.Name)) != nil {
		return appliance.Errorf(appliance.ECONFLICT, "token %q exists: revoke it first or pick another name", t.Name)
	}
	rec := tokenRecord{Name: t.Name, Role: t.Role, Digest: hex.EncodeToString(t.Digest[:]), CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy}
	if err := s.putJSON(b, []byte(t.Name), &rec); err != nil {
		return err
	}
	return s.audit(ctx, tx, appliance.AuditRecord{Action: "token.create", Object: "token/" + t.Name, Summary: map[string]any{"role": t.Role}})
}

func (s *Store) addTokenToCache(t *appliance.Token) {
	st := &tokenState{byDigest: maps.Clone(s.tokens.Load().byDigest)}
	st.byDigest[t.Digest] = t
	s.tokens.Store(st)
}

// CreateToken implements appliance.TokenService.
func (s *Store) CreateToken(ctx context.Context, name string, role appliance.Role) (*appliance.Token, string, error) {
	secret := appliance.NewTokenSecret()
	t := &appliance.Token{Name: name, Role: role, Digest: appliance.TokenDigest(secret), CreatedAt: s.now().UTC(),
		CreatedBy: appliance.CallerFromContext(ctx).Name}
	if err := t.Validate(); err != nil {
		return nil, "", err
	}
	err := s.update(ctx, func(tx *bolt.Tx) error { return s.putToken(ctx, tx, t) }, func() { s.addTokenToCache(t) })
	if err != nil {
		return nil, "", err
	}
	return t, secret, nil
}

// BootstrapAdmin implements appliance.TokenService.
func (s *Store) BootstrapAdmin(ctx context.Context, secret string) (bool, error) {
	if len(secret) < 16 {
		return false, appliance.Invalid("MLNODE_ADMIN_TOKEN", "must be at least 16 characters")
	}
	t := &appliance.Token{Name: "admin", Role: appliance.RoleAdmin, Digest: appliance.TokenDigest(secret), CreatedAt: s.now().UTC(), CreatedBy: "system"}
	created := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		created = false
		if k, _ := tx.Bucket(bucketTokens).Cursor().First(); k != nil {
			return nil
		}
		created = true
		return s.putToken(ctx, tx, t)
	}, func() {
		if created {
			s.addTokenToCache(t)
		}
	})
	return created, err
}

// Tokens implements appliance.TokenService.
func (s *Store) Tokens(context.Context) ([]*appliance.Token, error) {
	out := slices.Collect(maps.Values(s.tokens.Load().byDigest))
	slices.SortFunc(out, func(a, b *appliance.Token) int { return cmpString(a.Name, b.Name) })
	return out, nil
}

// RevokeToken implements appliance.TokenService.
func (s *Store) RevokeToken(ctx context.Context, name string) error {
	var revoked *appliance.Token
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		raw := b.Get([]byte(name))
		if raw == nil {
			return appliance.NotFound("token", name)
		}
		t, err := s.decodeToken(raw)
		if err != nil {
			return err
		}
		if t.Role == appliance.RoleAdmin {
			admins := 0
			if err := b.ForEach(func(_, v []byte) error {
				if o, err := s.decodeToken(v); err == nil && o.Role == appliance.RoleAdmin {
					admins++
				}
				return nil
			}); err != nil {
				return err
			}
			if admins <= 1 {
				return appliance.Errorf(appliance.ECONFLICT, "token %q is the last admin token: create another admin token first", name)
			}
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		revoked = t
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "token.revoke", Object: "token/" + name, Summary: map[string]any{"role": t.Role}})
	}, func() {
		st := &tokenState{byDigest: maps.Clone(s.tokens.Load().byDigest)}
		delete(st.byDigest, revoked.Digest)
		s.tokens.Store(st)
	})
}

// Authenticate implements appliance.TokenService. The lookup is by digest;
// the digest comparison after it is constant-time so that timing says
// nothing about how much of a guess matched.
func (s *Store) Authenticate(_ context.Context, secret string) (*appliance.Token, error) {
	d := appliance.TokenDigest(secret)
	t, ok := s.tokens.Load().byDigest[d]
	if !ok || subtle.ConstantTimeCompare(t.Digest[:], d[:]) != 1 {
		return nil, appliance.Errorf(appliance.EUNAUTHORIZED, "unknown or revoked token")
	}
	return t, nil
}
