package appliance

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Role is what a token may do. Each role includes the ones below it.
type Role string

const (
	RoleReader Role = "reader" // every GET, online and historical reads, predict, flag evaluation
	RoleWriter Role = "writer" // also ingest rows and events, upload models
	RoleAdmin  Role = "admin"  // everything: tokens, audit, aliases, deletes, schedules
)

func (r Role) rank() int {
	switch r {
	case RoleReader:
		return 1
	case RoleWriter:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a token of role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() && need.rank() > 0 }

// Token is an API credential. Only the SHA-256 digest of its secret is kept:
// secrets are 256-bit random values, so a fast hash is as safe as a slow one
// and costs nothing per request.
type Token struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	Digest    [32]byte  `json:"-"`
}

// Validate checks the token's name and role.
func (t *Token) Validate() error {
	if err := ValidateName("name", t.Name); err != nil {
		return err
	}
	if !t.Role.Valid() {
		return Invalid("role", "%q is not reader, writer or admin", t.Role)
	}
	return nil
}

// TokenPrefix marks mlnode secrets so that secret scanners can find leaked ones.
const TokenPrefix = "mln_"

// NewTokenSecret returns a new random secret: the prefix and 256 bits in hex.
func NewTokenSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return TokenPrefix + hex.EncodeToString(b[:])
}

// TokenDigest returns the digest under which a secret is stored.
func TokenDigest(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// Caller is who makes a request: the token's name and role, and the
// request's id. Services read it from the context to fill audit entries.
type Caller struct {
	Name      string
	Role      Role
	RequestID string
}

type callerKey struct{}

// NewContextWithCaller returns ctx carrying the caller.
func NewContextWithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFromContext returns the caller in ctx; a call made by the node itself
// (start-up, scheduled jobs) reads as the "system" actor.
func CallerFromContext(ctx context.Context) Caller {
	if c, ok := ctx.Value(callerKey{}).(Caller); ok {
		return c
	}
	return Caller{Name: "system", Role: RoleAdmin}
}

// TokenService manages API tokens.
type TokenService interface {
	// CreateToken stores a new token and returns it with its secret, which is
	// never available again. ECONFLICT if the name is taken, EINVALID for a
	// bad name or role.
	CreateToken(ctx context.Context, name string, role Role) (*Token, string, error)
	// Tokens lists every token, without secrets.
	Tokens(ctx context.Context) ([]*Token, error)
	// RevokeToken deletes a token. ENOTFOUND if there is none; ECONFLICT when
	// it is the last admin token, which would lock everyone out.
	RevokeToken(ctx context.Context, name string) error
	// Authenticate returns the token whose secret this is; EUNAUTHORIZED if none.
	Authenticate(ctx context.Context, secret string) (*Token, error)
	// BootstrapAdmin creates the admin token "admin" with the given secret if
	// the node has no tokens yet, and reports whether it did.
	BootstrapAdmin(ctx context.Context, secret string) (bool, error)
}
