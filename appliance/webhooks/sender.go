package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// Headers of every delivery.
const (
	HeaderEvent     = "X-Mlnode-Event"
	HeaderDelivery  = "X-Mlnode-Delivery"
	HeaderTimestamp = "X-Mlnode-Timestamp"
	HeaderSignature = "X-Mlnode-Signature"
)

// perWebhook bounds the requests in flight to one webhook, so that a
// receiver that hangs until the timeout leaves slots for the others.
const perWebhook = 2

// Options configure a Sender. Zero values take the defaults.
type Options struct {
	// Client sends the requests; default a client on http.DefaultTransport.
	// Its CheckRedirect is replaced: redirects are never followed.
	Client *http.Client
	Logger *slog.Logger
	Now    func() time.Time
	// After waits like time.After (the default); tests pass a fake clock's.
	After func(d time.Duration) <-chan time.Time
	// Jitter returns a duration in [0, max]; default uniformly random.
	Jitter       func(max time.Duration) time.Duration
	MaxAttempts  int           // default 8
	BaseBackoff  time.Duration // the first retry's bound, default 1s
	MaxBackoff   time.Duration // default 10m
	Concurrency  int           // requests in flight, default 4
	Timeout      time.Duration // per request, default 10s
	PollInterval time.Duration // longest sleep between looks at the outbox, default 30s
}

// Sender implements appliance.Notifier and appliance.WebhookService.
type Sender struct {
	store  appliance.WebhookStore
	opts   Options
	client *http.Client
	log    *slog.Logger
	wake   chan struct{}

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the dispatcher and its workers
}

// New returns a Sender on store. Nothing is sent before Start; events
// notified meanwhile wait in the outbox.
func New(store appliance.WebhookStore, opts Options) *Sender {
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Jitter == nil {
		opts.Jitter = func(max time.Duration) time.Duration { return rand.N(max + 1) }
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Minute
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 30 * time.Second
	}
	client := *opts.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Sender{store: store, opts: opts, client: &client, log: opts.Logger, wake: make(chan struct{}, 1)}
}

// Start begins delivering, pending deliveries left by a previous process
// first (they are the earliest due). ctx bounds the start only.
func (s *Sender) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("webhook sender started twice, or after Close")
	}
	s.started = true
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.dispatch(runCtx)
	return nil
}

// Close stops delivering and waits, up to ctx, for requests in flight,
// which are cancelled. It is safe to call without Start, and twice.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("webhook deliveries still in flight at shutdown: %w", ctx.Err())
	}
}

// nudge tells the dispatcher that the outbox changed.
func (s *Sender) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Notify implements appliance.Notifier.
func (s *Sender) Notify(ctx context.Context, e appliance.Event) error {
	if e.ID == "" {
		e.ID = appliance.NewEventID()
	}
	if e.Time.IsZero() {
		e.Time = s.opts.Now()
	}
	ds, err := s.store.EnqueueEvent(ctx, &e, "")
	if err != nil {
		return fmt.Errorf("queue %s event: %w", e.Type, err)
	}
	if len(ds) > 0 {
		s.nudge()
	}
	return nil
}

// CreateWebhook implements appliance.WebhookService.
func (s *Sender) CreateWebhook(ctx context.Context, w *appliance.Webhook) (*appliance.Webhook, string, error) {
	cp := *w
	if cp.Secret == "" {
		cp.Secret = appliance.NewWebhookSecret()
	}
	if err := s.store.CreateWebhook(ctx, &cp); err != nil {
		return nil, "", err
	}
	secret := cp.Secret
	cp.Secret = ""
	return &cp, secret, nil
}

// Webhooks implements appliance.WebhookService.
func (s *Sender) Webhooks(ctx context.Context) ([]*appliance.Webhook, error) {
	list, err := s.store.Webhooks(ctx)
	for _, w := range list {
		w.Secret = ""
	}
	return list, err
}

// Webhook implements appliance.WebhookService.
func (s *Sender) Webhook(ctx context.Context, name string) (*appliance.Webhook, error) {
	w, err := s.store.Webhook(ctx, name)
	if err != nil {
		return nil, err
	}
	w.Secret = ""
	return w, nil
}

// DeleteWebhook implements appliance.WebhookService. A delivery in flight
// to it finishes; its record is gone.
func (s *Sender) DeleteWebhook(ctx context.Context, name string) error {
	return s.store.DeleteWebhook(ctx, name)
}

// TestWebhook implements appliance.WebhookService.
func (s *Sender) TestWebhook(ctx context.Context, name string) (*appliance.WebhookDelivery, error) {
	e := appliance.Event{ID: appliance.NewEventID(), Type: appliance.EventWebhookTest, Subject: "webhook/" + name,
		Time: s.opts.Now(), Data: map[string]string{"webhook": name, "requested_by": appliance.CallerFromContext(ctx).Name}}
	ds, err := s.store.EnqueueEvent(ctx, &e, name)
	if err != nil {
		return nil, err
	}
	if len(ds) != 1 {
		return nil, fmt.Errorf("BUG: test event for webhook %s queued %d deliveries", name, len(ds))
	}
	s.nudge()
	return ds[0], nil
}

// WebhookDeliveries implements appliance.WebhookService.
func (s *Sender) WebhookDeliveries(ctx context.Context, name string, limit int) ([]*appliance.WebhookDelivery, error) {
	return s.store.WebhookDeliveries(ctx, name, limit)
}

// outcome is what a worker tells the dispatcher when it is done.
type outcome struct {
	id, webhook string
	storeErr    bool // the outbox could not be read or written
	recorded    bool // the attempt's outcome is stored
}

// dispatch owns the in-flight bookkeeping: workers report through done, so
// that no lock is needed and the outbox is re-read whenever a slot frees.
func (s *Sender) dispatch(ctx context.Context) {
	defer s.wg.Done()
	inFlight := map[string]bool{}
	perHook := map[string]int{}
	// Buffered for every possible worker, so that none blocks on a
	// dispatcher that has returned.
	done := make(chan outcome, s.opts.Concurrency)
	// failures counts store errors in a row. Each one pauses the
	// dispatcher for longer: reading again at once would spin on a failing
	// disk, and a delivery whose record failed is still due, so that it
	// would be resent in a tight loop.
	failures := 0
	pause := func() bool {
		failures++
		select {
		case <-ctx.Done():
			return false
		case <-s.opts.After(s.bound(failures)):
			return true
		}
	}
	for {
		wait := s.opts.PollInterval
		if free := s.opts.Concurrency - len(inFlight); free > 0 {
			now := s.opts.Now()
			taken := map[string]int{}
			due, next, err := s.store.DueDeliveries(ctx, now, free, func(hook, id string) bool {
				if inFlight[id] || perHook[hook]+taken[hook] >= perWebhook {
					return true
				}
				taken[hook]++
				return false
			})
			if err != nil {
				s.log.Error("read webhook outbox", "err", err, "failures", failures+1)
				if !pause() {
					return
				}
				continue
			}
			if len(due) == 0 {
				failures = 0
			}
			for _, d := range due {
				inFlight[d.ID] = true
				perHook[d.Webhook]++
				s.wg.Add(1)
				go s.deliver(ctx, d, done)
			}
			if next.After(now) {
				wait = min(wait, next.Sub(now))
			}
		}
		timer := s.opts.After(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer:
		case o := <-done:
			delete(inFlight, o.id)
			if perHook[o.webhook]--; perHook[o.webhook] <= 0 {
				delete(perHook, o.webhook)
			}
			if o.storeErr && !pause() {
				return
			} else if o.recorded {
				failures = 0
			}
		}
	}
}

// deliver makes one attempt and records its outcome.
func (s *Sender) deliver(ctx context.Context, d *appliance.WebhookDelivery, done chan<- outcome) {
	defer s.wg.Done()
	o := outcome{id: d.ID, webhook: d.Webhook}
	defer func() { done <- o }()
	w, err := s.store.Webhook(ctx, d.Webhook)
	if appliance.ErrorCode(err) == appliance.ENOTFOUND {
		return // deleted, deliveries and all
	} else if err != nil {
		s.log.Error("read webhook", "webhook", d.Webhook, "err", err)
		o.storeErr = true
		return
	}
	status, err := s.post(ctx, w, d)
	if err != nil && ctx.Err() != nil {
		return // cut short by Close: not an attempt
	}
	now := s.opts.Now()
	d.Attempts++
	d.LastAttemptAt, d.HTTPStatus = &now, status
	switch {
	case err == nil:
		d.State, d.DeliveredAt, d.NextRetryAt, d.LastError = appliance.DeliveryDelivered, &now, nil, ""
	case d.Attempts >= s.opts.MaxAttempts:
		d.State, d.NextRetryAt, d.LastError = appliance.DeliveryFailed, nil, err.Error()
		s.log.Warn("webhook delivery failed", "webhook", d.Webhook, "delivery", d.ID, "event", d.EventType,
			"attempts", d.Attempts, "err", err)
	default:
		next := now.Add(s.backoff(d.Attempts))
		d.State, d.NextRetryAt, d.LastError = appliance.DeliveryPending, &next, err.Error()
		s.log.Debug("webhook delivery will be retried", "webhook", d.Webhook, "delivery", d.ID, "attempts", d.Attempts,
			"next_retry_at", next, "err", err)
	}
	// Recorded even when Close began meanwhile: an answered delivery must
	// not be sent again at the next start.
	err = s.store.RecordAttempt(context.WithoutCancel(ctx), d)
	switch {
	case err == nil:
		o.recorded = true
	case appliance.ErrorCode(err) != appliance.ENOTFOUND:
		s.log.Error("record webhook attempt", "webhook", d.Webhook, "delivery", d.ID, "err", err)
		o.storeErr = true
	}
}

// backoff returns the wait after the n-th failed attempt: full jitter over
// the exponential bound, so that deliveries failing together spread out.
func (s *Sender) backoff(n int) time.Duration { return s.opts.Jitter(s.bound(n)) }

// bound is BaseBackoff doubled n-1 times, at most MaxBackoff.
func (s *Sender) bound(n int) time.Duration {
	n = max(n, 1)
	if shift := n - 1; shift < 32 {
		if b := s.opts.BaseBackoff << shift; b > 0 && b < s.opts.MaxBackoff {
			return b
		}
	}
	return s.opts.MaxBackoff
}

// Sign returns the X-Mlnode-Signature value of body sent at timestamp (unix
// seconds): "sha256=" and the hex HMAC-SHA256 of "<timestamp>.<body>".
// Binding the timestamp lets a receiver refuse replays of old deliveries.
func Sign(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(strconv.AppendInt(nil, timestamp, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// post sends one attempt; a nil error means a 2xx answer.
func (s *Sender) post(ctx context.Context, w *appliance.Webhook, d *appliance.WebhookDelivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	ts := s.opts.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mlnode-webhooks")
	req.Header.Set(HeaderEvent, d.EventType)
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(w.Secret, ts, d.Payload))
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, whose query may hold a receiver's
		// token; the webhook's name says where it went.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("no answer within %s", s.opts.Timeout)
		}
		return 0, err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	// Drain a little more so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp.StatusCode, fmt.Errorf("HTTP %d: redirects are not followed; configure the final URL", resp.StatusCode)
	}
	if snippet := printable(head); snippet != "" {
		return resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet)
	}
	return resp.StatusCode, fmt.Errorf("HTTP %d", resp.StatusCode)
}

// printable keeps the start of a receiver's answer readable in a record.
func printable(b []byte) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '\uFFFD' {
			return ' '
		}
		return r
	}, string(b)))
}
