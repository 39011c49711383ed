package appliance

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"time"
)

// AuditEntry records one change. Entries form a hash chain: each carries the
// hash of the one before it, so that a removed, reordered or edited entry
// breaks verification from that point on.
type AuditEntry struct {
	Seq       uint64          `json:"seq"`
	Time      time.Time       `json:"time"`
	Actor     string          `json:"actor"`
	Action    string          `json:"action"`
	Object    string          `json:"object"`
	Summary   json.RawMessage `json:"summary,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	PrevHash  string          `json:"prev_hash"`
	Hash      string          `json:"hash"`
}

// Canonical returns the entry's canonical plaintext encoding, the input of
// its hash: every field but Hash, each length-prefixed, with the time in UTC
// RFC 3339 with nanoseconds. The chain hashes this rather than the stored
// bytes, so that re-encoding or encrypting the store never breaks it.
func (e *AuditEntry) Canonical() []byte {
	var b []byte
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	for _, s := range []string{e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.Object, string(e.Summary), e.RequestID, e.PrevHash} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// ComputeHash returns the hex SHA-256 of the canonical encoding.
func (e *AuditEntry) ComputeHash() string {
	h := sha256.Sum256(e.Canonical())
	return hex.EncodeToString(h[:])
}

// AuditRecord is what a service asks the audit log to record; the log fills
// in sequence, time, actor, request id and the chain.
type AuditRecord struct {
	Action  string // e.g. "feature_view.create"
	Object  string // e.g. "feature_view/user_stats@2"
	Summary any    // marshalled to JSON; never the user's feature values
}

// NewAuditEntry builds the entry for rec made by the caller in ctx.
func NewAuditEntry(ctx context.Context, rec AuditRecord, now time.Time) (*AuditEntry, error) {
	c := CallerFromContext(ctx)
	e := &AuditEntry{Time: now.UTC(), Actor: c.Name, Action: rec.Action, Object: rec.Object, RequestID: c.RequestID}
	if rec.Summary != nil {
		b, err := json.Marshal(rec.Summary)
		if err != nil {
			return nil, err
		}
		e.Summary = b
	}
	return e, nil
}

// AuditFilter selects audit entries. Entries come in sequence order starting
// after AfterSeq, at most Limit of them.
type AuditFilter struct {
	Since    time.Time
	Action   string // exact action, or a prefix ending in "." ("feature_view.")
	Object   string // exact object, or a prefix ending in "/"
	AfterSeq uint64
	Limit    int
}

// AuditVerification is the result of walking the chain.
type AuditVerification struct {
	OK      bool        `json:"ok"`
	Entries int         `json:"entries"`
	Broken  *AuditBreak `json:"broken,omitempty"`
}

// AuditBreak describes the first entry where the chain does not hold.
type AuditBreak struct {
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// AuditLog reads the audit log. Entries are appended by the services that
// make the changes, in the same transaction.
type AuditLog interface {
	// AuditEntries returns matching entries and whether more may follow.
	AuditEntries(ctx context.Context, f AuditFilter) ([]*AuditEntry, bool, error)
	// VerifyAudit walks the whole chain.
	VerifyAudit(ctx context.Context) (*AuditVerification, error)
}
