package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// webhooks → { defs → name → webhook (JSON, secret included),
// deliveries → name → { u64(id) → delivery (JSON, payload included) },
// due → i64(next attempt µs) | u64(id) → name }. The due index holds every
// pending delivery, so that the sender finds what is due with one seek
// instead of reading every history. Delivery ids come from the root
// bucket's sequence: never reused, not even across a webhook deleted and
// made again. Created by the first write: no migration.
var (
	bucketWebhooks    = []byte("webhooks")
	keyWebhookDefs    = []byte("defs")
	keyWebhookOutbox  = []byte("deliveries")
	keyWebhookDueList = []byte("due")
)

// keepDeliveries bounds each webhook's history: the newest are kept, and
// older ones only while pending. A pending delivery is never dropped, so that
// a burst cannot lose an alert; it finishes within MaxAttempts backoffs.
const keepDeliveries = 1000

// webhookRecord stores the secret, which appliance.Webhook never renders.
type webhookRecord struct {
	appliance.Webhook
	Secret string `json:"secret"`
}

type deliveryRecord struct {
	appliance.WebhookDelivery
	// Raw JSON rather than []byte: the payload is JSON already, and base64
	// would grow every pending record by a third.
	Payload json.RawMessage `json:"payload,omitempty"`
}

type webhookBuckets struct {
	root, defs, outbox, due *bolt.Bucket
}

// webhookBucketsTx returns the buckets, creating them in a write
// transaction; ok is false in a read transaction of a store that has none.
func webhookBucketsTx(tx *bolt.Tx) (webhookBuckets, bool, error) {
	root, subs, ok, err := lazyBuckets(tx, bucketWebhooks, keyWebhookDefs, keyWebhookOutbox, keyWebhookDueList)
	return webhookBuckets{root: root, defs: subs[0], outbox: subs[1], due: subs[2]}, ok, err
}

func dueKey(at time.Time, id uint64) []byte {
	return binary.BigEndian.AppendUint64(appendTime(make([]byte, 0, 16), at.UnixMicro()), id)
}

func deliveryID(id string) (uint64, bool) {
	n, err := strconv.ParseUint(id, 10, 64)
	return n, err == nil && n > 0
}

// auditURL drops the query, which may carry a receiver's token, from what
// the audit log keeps forever.
func auditURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.RawQuery, u.ForceQuery = "", false
	return u.String()
}

func (s *Store) decodeWebhook(sealed []byte) (*appliance.Webhook, error) {
	var rec webhookRecord
	if err := s.decodeJSON(sealed, &rec); err != nil {
		return nil, err
	}
	w := rec.Webhook
	w.Secret = rec.Secret
	return &w, nil
}

func (s *Store) decodeDelivery(sealed []byte) (*appliance.WebhookDelivery, error) {
	var rec deliveryRecord
	if err := s.decodeJSON(sealed, &rec); err != nil {
		return nil, err
	}
	d := rec.WebhookDelivery
	d.Payload = rec.Payload
	return &d, nil
}

func (s *Store) putDelivery(b *bolt.Bucket, key []byte, d *appliance.WebhookDelivery) error {
	return s.putJSON(b, key, &deliveryRecord{WebhookDelivery: *d, Payload: d.Payload})
}

// CreateWebhook implements appliance.WebhookStore.
func (s *Store) CreateWebhook(ctx context.Context, w *appliance.Webhook) error {
	if w.CreatedAt.IsZero() {
		w.CreatedAt = appliance.TruncateTime(s.now())
	}
	if w.CreatedBy == "" {
		w.CreatedBy = appliance.CallerFromContext(ctx).Name
	}
	if err := w.Validate(); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		wb, _, err := webhookBucketsTx(tx)
		if err != nil {
			return err
		}
		key := []byte(w.Name)
		if wb.defs.Get(key) != nil {
			return appliance.Errorf(appliance.ECONFLICT, "webhook %q exists: delete it first or pick another name", w.Name)
		}
		if err := s.putJSON(wb.defs, key, &webhookRecord{Webhook: *w, Secret: w.Secret}); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "webhook.create", Object: "webhook/" + w.Name,
			Summary: map[string]any{"url": auditURL(w.URL), "events": w.Events}})
	}, nil)
}

// Webhook implements appliance.WebhookStore.
func (s *Store) Webhook(_ context.Context, name string) (*appliance.Webhook, error) {
	var w *appliance.Webhook
	err := s.view(func(tx *bolt.Tx) error {
		wb, ok, err := webhookBucketsTx(tx)
		if err != nil || !ok {
			return err
		}
		if v := wb.defs.Get([]byte(name)); v != nil {
			w, err = s.decodeWebhook(v)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", name, err)
	}
	if w == nil {
		return nil, appliance.NotFound("webhook", name)
	}
	return w, nil
}

// Webhooks implements appliance.WebhookStore.
func (s *Store) Webhooks(context.Context) ([]*appliance.Webhook, error) {
	out := []*appliance.Webhook{}
	err := s.view(func(tx *bolt.Tx) error {
		wb, ok, err := webhookBucketsTx(tx)
		if err != nil || !ok {
			return err
		}
		return wb.defs.ForEach(func(k, v []byte) error {
			w, err := s.decodeWebhook(v)
			if err != nil {
				return fmt.Errorf("webhook %s: %w", k, err)
			}
			out = append(out, w)
			return nil
		})
	})
	return out, err
}

// DeleteWebhook implements appliance.WebhookStore. Pending deliveries go
// with the webhook: there is nowhere left to send them.
func (s *Store) DeleteWebhook(ctx context.Context, name string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		wb, _, err := webhookBucketsTx(tx)
		if err != nil {
			return err
		}
		key := []byte(name)
		raw := wb.defs.Get(key)
		if raw == nil {
			return appliance.NotFound("webhook", name)
		}
		old, err := s.decodeWebhook(raw)
		if err != nil {
			return fmt.Errorf("webhook %s: %w", name, err)
		}
		if out := wb.outbox.Bucket(key); out != nil {
			if err := out.ForEach(func(k, v []byte) error {
				d, err := s.decodeDelivery(v)
				if err != nil {
					return fmt.Errorf("delivery %d of webhook %s: %w", binary.BigEndian.Uint64(k), name, err)
				}
				if d.State == appliance.DeliveryPending && d.NextRetryAt != nil {
					return wb.due.Delete(dueKey(*d.NextRetryAt, binary.BigEndian.Uint64(k)))
				}
				return nil
			}); err != nil {
				return err
			}
			if err := wb.outbox.DeleteBucket(key); err != nil {
				return err
			}
		}
		if err := wb.defs.Delete(key); err != nil {
			return err
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "webhook.delete", Object: "webhook/" + name,
			Summary: map[string]any{"url": auditURL(old.URL), "events": old.Events}})
	}, nil)
}

// EnqueueEvent implements appliance.WebhookStore. The payload is encoded
// once, before the transaction, which the group commit may run twice.
func (s *Store) EnqueueEvent(ctx context.Context, e *appliance.Event, only string) ([]*appliance.WebhookDelivery, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	payload, err := e.Payload()
	if err != nil {
		return nil, err
	}
	if only == "" {
		// Most events find no subscriber: a read costs microseconds, an
		// empty write an fsync.
		wanted := false
		err := s.view(func(tx *bolt.Tx) error {
			wb, ok, err := webhookBucketsTx(tx)
			if err != nil || !ok {
				return err
			}
			wanted, err = s.anyWebhookWants(wb.defs, e.Type)
			return err
		})
		if err != nil || !wanted {
			return nil, err
		}
	}
	var out []*appliance.WebhookDelivery
	err = s.update(ctx, func(tx *bolt.Tx) error {
		out = out[:0]
		wb, _, err := webhookBucketsTx(tx)
		if err != nil {
			return err
		}
		var names []string
		if only != "" {
			if wb.defs.Get([]byte(only)) == nil {
				return appliance.NotFound("webhook", only)
			}
			names = []string{only}
		} else if err := wb.defs.ForEach(func(k, v []byte) error {
			w, err := s.decodeWebhook(v)
			if err != nil {
				return fmt.Errorf("webhook %s: %w", k, err)
			}
			if w.Wants(e.Type) {
				names = append(names, w.Name)
			}
			return nil
		}); err != nil {
			return err
		}
		now := appliance.TruncateTime(s.now())
		for _, name := range names {
			id, err := wb.root.NextSequence()
			if err != nil {
				return err
			}
			due := now
			d := &appliance.WebhookDelivery{ID: strconv.FormatUint(id, 10), Webhook: name, EventID: e.ID, EventType: e.Type,
				Subject: e.Subject, State: appliance.DeliveryPending, CreatedAt: now, NextRetryAt: &due, Payload: payload}
			hist, err := wb.outbox.CreateBucketIfNotExists([]byte(name))
			if err != nil {
				return err
			}
			hist.FillPercent = 1 // ids increase
			if err := s.putDelivery(hist, u64(id), d); err != nil {
				return err
			}
			if err := wb.due.Put(dueKey(due, id), []byte(name)); err != nil {
				return err
			}
			if err := s.trimDeliveries(hist, keepDeliveries); err != nil {
				return err
			}
			out = append(out, d)
		}
		if only != "" {
			// A test someone asked for: a call that changes the outbox, so
			// it is audited like the webhook's creation.
			return s.audit(ctx, tx, appliance.AuditRecord{Action: "webhook.test", Object: "webhook/" + only,
				Summary: map[string]any{"event_id": e.ID, "delivery": out[0].ID}})
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) anyWebhookWants(defs *bolt.Bucket, eventType string) (bool, error) {
	c := defs.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		w, err := s.decodeWebhook(v)
		if err != nil {
			return false, fmt.Errorf("webhook %s: %w", k, err)
		}
		if w.Wants(eventType) {
			return true, nil
		}
	}
	return false, nil
}

// trimDeliveries drops finished deliveries older than the newest keep. It
// walks keys rather than asking Stats, which does not see the changes of
// the transaction in progress (the group commit puts many in one).
func (s *Store) trimDeliveries(b *bolt.Bucket, keep int) error {
	c := b.Cursor()
	k, _ := c.Last()
	for i := 1; i < keep && k != nil; i++ {
		k, _ = c.Prev()
	}
	if k == nil {
		return nil
	}
	// Keys are collected first: a bbolt cursor may skip the key after one
	// it deleted.
	var drop [][]byte
	for k, v := c.Prev(); k != nil; k, v = c.Prev() {
		d, err := s.decodeDelivery(v)
		if err != nil {
			return fmt.Errorf("delivery %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if d.State != appliance.DeliveryPending {
			drop = append(drop, bytes.Clone(k))
		}
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// DueDeliveries implements appliance.WebhookStore.
func (s *Store) DueDeliveries(_ context.Context, now time.Time, limit int, skip func(webhook, id string) bool) ([]*appliance.WebhookDelivery, time.Time, error) {
	var out []*appliance.WebhookDelivery
	var next time.Time
	nowMicros := now.UnixMicro()
	err := s.view(func(tx *bolt.Tx) error {
		wb, ok, err := webhookBucketsTx(tx)
		if err != nil || !ok {
			return err
		}
		c := wb.due.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			at := readTime(k)
			if at > nowMicros || len(out) >= limit {
				next = time.UnixMicro(at).UTC()
				return nil
			}
			id := binary.BigEndian.Uint64(k[8:])
			name := string(v)
			if skip != nil && skip(name, strconv.FormatUint(id, 10)) {
				continue
			}
			hist := wb.outbox.Bucket(v)
			if hist == nil {
				return fmt.Errorf("BUG: due delivery %d of webhook %s has no history", id, name)
			}
			raw := hist.Get(u64(id))
			if raw == nil {
				return fmt.Errorf("BUG: due delivery %d of webhook %s is missing", id, name)
			}
			d, err := s.decodeDelivery(raw)
			if err != nil {
				return fmt.Errorf("delivery %d of webhook %s: %w", id, name, err)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	return out, next, nil
}

// RecordAttempt implements appliance.WebhookStore.
func (s *Store) RecordAttempt(ctx context.Context, d *appliance.WebhookDelivery) error {
	id, ok := deliveryID(d.ID)
	if !ok {
		return appliance.NotFound("webhook delivery", d.ID)
	}
	if d.State == appliance.DeliveryPending && d.NextRetryAt == nil {
		return fmt.Errorf("BUG: pending delivery %s without a retry time", d.ID)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		wb, _, err := webhookBucketsTx(tx)
		if err != nil {
			return err
		}
		notFound := appliance.Errorf(appliance.ENOTFOUND, "delivery %s of webhook %q not found", d.ID, d.Webhook)
		hist := wb.outbox.Bucket([]byte(d.Webhook))
		if hist == nil {
			return notFound
		}
		raw := hist.Get(u64(id))
		if raw == nil {
			return notFound
		}
		old, err := s.decodeDelivery(raw)
		if err != nil {
			return fmt.Errorf("delivery %s of webhook %s: %w", d.ID, d.Webhook, err)
		}
		if old.State == appliance.DeliveryPending && old.NextRetryAt != nil {
			if err := wb.due.Delete(dueKey(*old.NextRetryAt, id)); err != nil {
				return err
			}
		}
		rec := *old
		rec.State, rec.Attempts, rec.HTTPStatus, rec.LastError = d.State, d.Attempts, d.HTTPStatus, d.LastError
		rec.LastAttemptAt, rec.NextRetryAt, rec.DeliveredAt = utcPtr(d.LastAttemptAt), utcPtr(d.NextRetryAt), utcPtr(d.DeliveredAt)
		switch rec.State {
		case appliance.DeliveryPending:
			if err := wb.due.Put(dueKey(*rec.NextRetryAt, id), []byte(d.Webhook)); err != nil {
				return err
			}
		case appliance.DeliveryDelivered:
			// The receiver has it; a failed one keeps its payload for
			// whoever inspects or resends it.
			rec.Payload, rec.NextRetryAt = nil, nil
		default:
			rec.NextRetryAt = nil
		}
		if err := s.putDelivery(hist, u64(id), &rec); err != nil {
			return err
		}
		if rec.State != appliance.DeliveryPending {
			return s.trimDeliveries(hist, keepDeliveries)
		}
		return nil
	}, nil)
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := appliance.TruncateTime(*t)
	return &u
}

// WebhookDeliveries implements appliance.WebhookStore.
func (s *Store) WebhookDeliveries(_ context.Context, name string, limit int) ([]*appliance.WebhookDelivery, error) {
	if limit <= 0 {
		limit = 50
	}
	out := []*appliance.WebhookDelivery{}
	err := s.view(func(tx *bolt.Tx) error {
		wb, ok, err := webhookBucketsTx(tx)
		if err != nil {
			return err
		}
		key := []byte(name)
		if !ok || wb.defs.Get(key) == nil {
			return appliance.NotFound("webhook", name)
		}
		hist := wb.outbox.Bucket(key)
		if hist == nil {
			return nil
		}
		c := hist.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			d, err := s.decodeDelivery(v)
			if err != nil {
				return fmt.Errorf("delivery %d of webhook %s: %w", binary.BigEndian.Uint64(k), name, err)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
