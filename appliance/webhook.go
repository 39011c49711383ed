package appliance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Event types a webhook can subscribe to. A subscription may also name
// "*" (everything) or a prefix such as "experiment.*".
const (
	// EventExperimentGuardrail: a guardrail metric crossed its bound and the
	// experiment was rolled back.
	EventExperimentGuardrail = "experiment.guardrail"
	EventExperimentStopped   = "experiment.stopped"
	EventDriftAlert          = "drift.alert"
	EventJobFailed           = "job.failed"
	// EventWebhookTest is sent on request to one webhook, whatever it
	// subscribes to; it cannot be subscribed to.
	EventWebhookTest = "webhook.test"
)

// EventTypes returns the event types a webhook may subscribe to.
func EventTypes() []string {
	return []string{EventExperimentGuardrail, EventExperimentStopped, EventDriftAlert, EventJobFailed}
}

// MaxEventBytes bounds an event's encoded payload. Every delivery keeps a
// copy until it is delivered, so that large payloads would multiply.
const MaxEventBytes = 64 << 10

// Event is something the outside world should hear about: a guardrail
// rollback, a drift alert, a failed job.
type Event struct {
	ID      string    // unique; Notify fills it when empty
	Type    string    // e.g. EventDriftAlert
	Subject string    // what it is about, e.g. "experiment/checkout_button"
	Data    any       // encoded to JSON once, when the event is queued
	Time    time.Time // when it happened; Notify fills it when zero
}

// Validate checks an event whose ID and Time are set.
func (e *Event) Validate() error {
	switch {
	case e.ID == "" || len(e.ID) > 128:
		return Invalid("id", "must be 1 to 128 bytes")
	case !validEventType(e.Type):
		return Invalid("type", "%q must be dot-separated lower-case words, e.g. %q", e.Type, EventDriftAlert)
	case len(e.Subject) > 512:
		return Invalid("subject", "is longer than 512 bytes")
	case e.Time.IsZero():
		return Invalid("time", "is required")
	}
	return nil
}

func validEventType(t string) bool {
	if len(t) > 128 || !strings.Contains(t, ".") {
		return false
	}
	for part := range strings.SplitSeq(t, ".") {
		if part == "" || part[0] < 'a' || part[0] > 'z' {
			return false
		}
		for i := 1; i < len(part); i++ {
			if c := part[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Payload returns the JSON body that every delivery of e carries:
// {"id","type","subject","time","data"}. It is fixed when the event is
// queued, so that every attempt sends and signs the same bytes.
func (e *Event) Payload() ([]byte, error) {
	b, err := json.Marshal(struct {
		ID      string    `json:"id"`
		Type    string    `json:"type"`
		Subject string    `json:"subject"`
		Time    time.Time `json:"time"`
		Data    any       `json:"data"`
	}{e.ID, e.Type, e.Subject, e.Time.UTC(), e.Data})
	if err != nil {
		return nil, Invalid("data", "cannot be encoded as JSON: %v", err)
	}
	if len(b) > MaxEventBytes {
		return nil, Invalid("data", "the event is %d bytes encoded, over the limit of %d", len(b), MaxEventBytes)
	}
	return b, nil
}

// NewEventID returns a random event id.
func NewEventID() string { return "evt_" + randomHex(16) }

// NewWebhookSecret returns a random 256-bit signing secret.
func NewWebhookSecret() string { return "whsec_" + randomHex(32) }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// Webhook is a subscription: events of the listed types are POSTed to URL,
// signed with Secret.
type Webhook struct {
	Name        string    `json:"name"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
	// Secret keys the HMAC of every delivery. Unlike a token's secret it is
	// kept as it is, because signing needs it; it is never rendered.
	Secret string `json:"-"`
}

// Validate checks a webhook, its secret included.
func (w *Webhook) Validate() error {
	if err := ValidateName("name", w.Name); err != nil {
		return err
	}
	if err := validateWebhookURL(w.URL); err != nil {
		return err
	}
	if len(w.Secret) < 16 || len(w.Secret) > 256 {
		return Invalid("secret", "must be 16 to 256 bytes; leave it out to have one generated")
	}
	for i := 0; i < len(w.Secret); i++ {
		if c := w.Secret[i]; c <= ' ' || c > '~' {
			return Invalid("secret", "must be printable ASCII without spaces")
		}
	}
	if len(w.Events) == 0 {
		return Invalid("events", "must list at least one event type, or \"*\" (%s)", strings.Join(EventTypes(), ", "))
	}
	if len(w.Events) > 32 {
		return Invalid("events", "lists more than 32 entries")
	}
	for i, ev := range w.Events {
		if !validSubscription(ev) {
			return Invalid("events", "%q is not an event type (%s), \"*\" or a prefix such as \"experiment.*\"",
				ev, strings.Join(EventTypes(), ", "))
		}
		if slices.Contains(w.Events[:i], ev) {
			return Invalid("events", "lists %q twice", ev)
		}
	}
	if len(w.Description) > 1024 {
		return Invalid("description", "is longer than 1024 bytes")
	}
	return nil
}

// validateWebhookURL accepts absolute http(s) URLs with a host. Credentials
// in the URL are refused: the URL is listed to admins and shows in logs,
// while the receiver can authenticate the node by the signature.
func validateWebhookURL(raw string) error {
	if raw == "" {
		return Invalid("url", "is required")
	}
	if len(raw) > 2048 {
		return Invalid("url", "is longer than 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Invalid("url", "is not a URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return Invalid("url", "%q must use http or https", raw)
	case u.Hostname() == "":
		return Invalid("url", "%q has no host", raw)
	case u.User != nil:
		return Invalid("url", "must not carry credentials: the receiver verifies the signature instead")
	case u.Fragment != "":
		return Invalid("url", "must not have a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Invalid("url", "port %q is not 1 to 65535", p)
		}
	}
	return nil
}

// validSubscription reports whether s names a known event type, "*", or a
// prefix of one ending in ".*". Unknown names are refused so that a typo
// does not silently subscribe to nothing.
func validSubscription(s string) bool {
	if s == "*" {
		return true
	}
	prefix, wild := strings.CutSuffix(s, "*")
	for _, t := range EventTypes() {
		if t == s || wild && strings.HasSuffix(prefix, ".") && strings.HasPrefix(t, prefix) {
			return true
		}
	}
	return false
}

// Wants reports whether the webhook subscribes to events of type t.
func (w *Webhook) Wants(t string) bool {
	for _, ev := range w.Events {
		if ev == "*" || ev == t {
			return true
		}
		if prefix, ok := strings.CutSuffix(ev, "*"); ok && strings.HasPrefix(t, prefix) {
			return true
		}
	}
	return false
}

// DeliveryState is where a delivery is in its life.
type DeliveryState string

const (
	DeliveryPending   DeliveryState = "pending" // waiting for its first attempt or a retry
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryFailed    DeliveryState = "failed" // out of attempts; kept for inspection
)

// WebhookDelivery is one event on its way to one webhook.
type WebhookDelivery struct {
	ID            string        `json:"id"` // sent as X-Mlnode-Delivery
	Webhook       string        `json:"webhook"`
	EventID       string        `json:"event_id"`
	EventType     string        `json:"event_type"`
	Subject       string        `json:"subject,omitempty"`
	State         DeliveryState `json:"status"`
	Attempts      int           `json:"attempts"`
	HTTPStatus    int           `json:"http_status,omitempty"` // of the last attempt; 0 when no answer came
	LastError     string        `json:"last_error,omitempty"`
	CreatedAt     time.Time     `json:"created_at"`
	LastAttemptAt *time.Time    `json:"last_attempt_at,omitempty"`
	NextRetryAt   *time.Time    `json:"next_retry_at,omitempty"` // set while pending: when it is due
	DeliveredAt   *time.Time    `json:"delivered_at,omitempty"`
	// Payload is the body every attempt sends (Event.Payload). It is
	// dropped once delivered.
	Payload json.RawMessage `json:"-"`
}

// Notifier tells the outside world about events. Other parts of the node
// call it; it must not make them wait on a receiver.
type Notifier interface {
	// Notify durably queues one delivery of e for every webhook subscribed
	// to its type and returns once they are committed: an event Notify
	// accepted survives a crash. Delivery happens in the background. It
	// fills e.ID and e.Time when empty. EINVALID for a bad event; nil, with
	// nothing queued, when no webhook wants it.
	Notify(ctx context.Context, e Event) error
}

// WebhookService manages subscriptions for the API.
type WebhookService interface {
	// CreateWebhook stores a subscription and audits it. Its secret is
	// generated when empty. It returns the webhook and its secret, which is
	// never shown again. EINVALID with field name, url, secret, events or
	// description; ECONFLICT if the name is taken.
	CreateWebhook(ctx context.Context, w *Webhook) (*Webhook, string, error)
	// Webhooks returns every webhook by name, without secrets.
	Webhooks(ctx context.Context) ([]*Webhook, error)
	// Webhook returns one webhook without its secret; ENOTFOUND.
	Webhook(ctx context.Context, name string) (*Webhook, error)
	// DeleteWebhook removes a webhook with its deliveries, pending ones
	// included, and audits it. ENOTFOUND.
	DeleteWebhook(ctx context.Context, name string) error
	// TestWebhook queues a EventWebhookTest event for that webhook alone and
	// returns its delivery, still pending. ENOTFOUND.
	TestWebhook(ctx context.Context, name string) (*WebhookDelivery, error)
	// WebhookDeliveries returns a webhook's deliveries, newest first, at
	// most limit (0: 50). ENOTFOUND.
	WebhookDeliveries(ctx context.Context, name string, limit int) ([]*WebhookDelivery, error)
}

// WebhookStore keeps subscriptions and the outbox of deliveries.
type WebhookStore interface {
	// CreateWebhook stores w, secret included, and audits it; it fills
	// CreatedAt and CreatedBy. EINVALID; ECONFLICT if the name is taken.
	CreateWebhook(ctx context.Context, w *Webhook) error
	// Webhook returns one webhook with its secret; ENOTFOUND.
	Webhook(ctx context.Context, name string) (*Webhook, error)
	// Webhooks returns every webhook by name, with secrets.
	Webhooks(ctx context.Context) ([]*Webhook, error)
	// DeleteWebhook removes a webhook and its deliveries and audits it.
	// ENOTFOUND.
	DeleteWebhook(ctx context.Context, name string) error
	// EnqueueEvent durably queues a pending delivery of e, due now, for
	// each webhook that wants its type, or for the webhook named only when
	// only is not empty (ENOTFOUND if there is none). It returns them.
	// EINVALID for an event that fails Validate or Payload.
	EnqueueEvent(ctx context.Context, e *Event, only string) ([]*WebhookDelivery, error)
	// DueDeliveries returns up to limit pending deliveries due at or before
	// now, earliest first, passing over those for which skip (called only
	// for candidates, in order) returns true. next is when the first
	// delivery it did not return is due, zero when none is pending.
	DueDeliveries(ctx context.Context, now time.Time, limit int, skip func(webhook, id string) bool) (ds []*WebhookDelivery, next time.Time, err error)
	// RecordAttempt stores the outcome of an attempt: State, Attempts,
	// HTTPStatus, LastError, LastAttemptAt, NextRetryAt and DeliveredAt of
	// d. ENOTFOUND if the delivery is gone with its webhook.
	RecordAttempt(ctx context.Context, d *WebhookDelivery) error
	// WebhookDeliveries returns a webhook's deliveries, newest first, at
	// most limit (0: 50). ENOTFOUND.
	WebhookDeliveries(ctx context.Context, name string, limit int) ([]*WebhookDelivery, error)
}
