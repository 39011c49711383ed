package webhooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/webhooks"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const secret = "whsec_test_0123456789"

// fakeClock drives the sender's and the store's time: timers fire only when
// a test advances it, so that backoffs of seconds take no time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.now) {
			kept = append(kept, tm)
		} else {
			tm.ch <- c.now
		}
	}
	c.timers = kept
}

// waitFor polls cond, calling tick (if any) between looks, for up to 10s of
// real time.
func waitFor(t *testing.T, what string, cond func() bool, tick func()) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if tick != nil {
			tick()
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// receiver is a webhook endpoint that records what it gets.
type receiver struct {
	mu     sync.Mutex
	got    []received
	status func(n int) int // for the n-th request, from 1
	srv    *httptest.Server
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), body})
		n := len(r.got)
		r.mu.Unlock()
		code := r.status(n)
		w.WriteHeader(code)
		if code >= 300 {
			_, _ = io.WriteString(w, "busy\n")
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func always(code int) func(int) int { return func(int) int { return code } }

// verify checks a request's signature the way docs/webhooks.md tells a
// receiver to, without the package's own Sign.
func verify(t *testing.T, r received) {
	t.Helper()
	ts := r.header.Get("X-Mlnode-Timestamp")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(r.body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(r.header.Get("X-Mlnode-Signature")), []byte(want)) {
		t.Fatalf("signature %q does not verify (want %q)", r.header.Get("X-Mlnode-Signature"), want)
	}
}

type rig struct {
	t      *testing.T
	clock  *fakeClock
	store  *store.Store
	sender *webhooks.Sender
}

// newRig opens a store in dir and starts a sender on it, both on one fake
// clock, with jitter off so that each backoff is its upper bound.
func newRig(t *testing.T, dir string, clock *fakeClock, opts webhooks.Options) *rig {
	t.Helper()
	r := &rig{t: t, clock: clock, store: storetest.OpenDir(t, dir, store.Options{Now: clock.Now})}
	r.sender = r.start(r.store, opts)
	return r
}

func (r *rig) start(st appliance.WebhookStore, opts webhooks.Options) *webhooks.Sender {
	opts.Now, opts.After = r.clock.Now, r.clock.After
	if opts.Jitter == nil {
		opts.Jitter = func(max time.Duration) time.Duration { return max }
	}
	s := webhooks.New(st, opts)
	if err := s.Start(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			r.t.Errorf("close sender: %v", err)
		}
	})
	return s
}

func (r *rig) subscribe(st appliance.WebhookStore, name, url string, events ...string) {
	r.t.Helper()
	err := st.CreateWebhook(r.t.Context(), &appliance.Webhook{Name: name, URL: url, Secret: secret, Events: events})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) notify(s *webhooks.Sender, typ string) {
	r.t.Helper()
	if err := s.Notify(r.t.Context(), appliance.Event{Type: typ, Subject: "experiment/checkout", Data: map[string]any{"metric": "error_rate"}}); err != nil {
		r.t.Fatal(err)
	}
}

// delivery returns the only delivery of a webhook.
func delivery(t *testing.T, st appliance.WebhookStore, name string) *appliance.WebhookDelivery {
	t.Helper()
	ds, err := st.WebhookDeliveries(t.Context(), name, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("%d deliveries to %s, want 1", len(ds), name)
	}
	return ds[0]
}

func TestSender_DeliversSignedEvent(t *testing.T) {
	rcv := newReceiver(t, always(204))
	r := newRig(t, t.TempDir(), newClock(), webhooks.Options{})
	r.subscribe(r.store, "ops", rcv.srv.URL+"/hook?x=1", "experiment.*")
	r.subscribe(r.store, "drift", rcv.srv.URL+"/drift", appliance.EventDriftAlert)
	r.notify(r.sender, appliance.EventExperimentGuardrail)

	waitFor(t, "delivery", func() bool { return delivery(t, r.store, "ops").State == appliance.DeliveryDelivered }, nil)
	d := delivery(t, r.store, "ops")
	if d.Attempts != 1 || d.HTTPStatus != 204 || d.DeliveredAt == nil || d.LastError != "" {
		t.Fatalf("delivered: %+v", d)
	}
	if ds, _ := r.store.WebhookDeliveries(t.Context(), "drift", 10); len(ds) != 0 {
		t.Fatalf("drift webhook got %d deliveries of a guardrail event", len(ds))
	}
	reqs := rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	h := reqs[0].header
	if h.Get("Content-Type") != "application/json" || h.Get("X-Mlnode-Event") != "experiment.guardrail" ||
		h.Get("X-Mlnode-Delivery") != d.ID || h.Get("X-Mlnode-Timestamp") != strconv.FormatInt(t0.Unix(), 10) {
		t.Fatalf("headers: %v", h)
	}
	verify(t, reqs[0])
	if got := webhooks.Sign(secret, t0.Unix(), reqs[0].body); got != h.Get("X-Mlnode-Signature") {
		t.Fatalf("Sign = %s, header %s", got, h.Get("X-Mlnode-Signature"))
	}
	var body struct {
		ID, Type, Subject string
		Time              time.Time
		Data              map[string]any
	}
	if err := json.Unmarshal(reqs[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if body.ID != d.EventID || !strings.HasPrefix(body.ID, "evt_") || body.Type != "experiment.guardrail" ||
		body.Subject != "experiment/checkout" || !body.Time.Equal(t0) || body.Data["metric"] != "error_rate" {
		t.Fatalf("body: %s", reqs[0].body)
	}
}

func TestSender_RetriesWithBackoff(t *testing.T) {
	rcv := newReceiver(t, func(n int) int {
		if n == 1 {
			return 500
		}
		return 200
	})
	r := newRig(t, t.TempDir(), newClock(), webhooks.Options{})
	r.subscribe(r.store, "ops", rcv.srv.URL, "*")
	r.notify(r.sender, appliance.EventDriftAlert)

	waitFor(t, "the first attempt", func() bool { return delivery(t, r.store, "ops").Attempts == 1 }, nil)
	d := delivery(t, r.store, "ops")
	if d.State != appliance.DeliveryPending || d.HTTPStatus != 500 || d.LastError != "HTTP 500: busy" ||
		d.NextRetryAt == nil || !d.NextRetryAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("after a 500: %+v", d)
	}
	if n := len(rcv.requests()); n != 1 {
		t.Fatalf("%d requests before the backoff elapsed", n)
	}
	waitFor(t, "the retry", func() bool { return delivery(t, r.store, "ops").State == appliance.DeliveryDelivered },
		func() { r.clock.Advance(time.Second) })
	d = delivery(t, r.store, "ops")
	if d.Attempts != 2 || d.HTTPStatus != 200 || d.LastError != "" || d.NextRetryAt != nil {
		t.Fatalf("after the retry: %+v", d)
	}
	reqs := rcv.requests()
	if len(reqs) != 2 || string(reqs[0].body) != string(reqs[1].body) ||
		reqs[0].header.Get("X-Mlnode-Delivery") != reqs[1].header.Get("X-Mlnode-Delivery") {
		t.Fatalf("a retry must resend the same delivery: %d requests", len(reqs))
	}
	for _, req := range reqs {
		verify(t, req)
	}
}

func TestSender_FailsAfterMaxAttempts(t *testing.T) {
	rcv := newReceiver(t, always(503))
	var mu sync.Mutex
	var bounds []time.Duration
	jitter := func(max time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		bounds = append(bounds, max)
		return max / 2
	}
	r := newRig(t, t.TempDir(), newClock(), webhooks.Options{MaxAttempts: 4, BaseBackoff: time.Second, MaxBackoff: 3 * time.Second, Jitter: jitter})
	r.subscribe(r.store, "ops", rcv.srv.URL, "*")
	r.notify(r.sender, appliance.EventJobFailed)

	waitFor(t, "failure", func() bool { return delivery(t, r.store, "ops").State == appliance.DeliveryFailed },
		func() { r.clock.Advance(500 * time.Millisecond) })
	d := delivery(t, r.store, "ops")
	if d.Attempts != 4 || d.HTTPStatus != 503 || d.LastError != "HTTP 503: busy" || d.NextRetryAt != nil || len(d.Payload) == 0 {
		t.Fatalf("failed: %+v", d)
	}
	if n := len(rcv.requests()); n != 4 {
		t.Fatalf("%d requests, want 4", n)
	}
	mu.Lock()
	defer mu.Unlock()
	// Exponential, capped at MaxBackoff; no backoff after the last attempt.
	if got := fmt.Sprint(bounds); got != "[1s 2s 3s]" {
		t.Fatalf("backoff bounds %s, want [1s 2s 3s]", got)
	}
	if due, _, _ := r.store.DueDeliveries(t.Context(), r.clock.Now().Add(time.Hour), 10, nil); len(due) != 0 {
		t.Fatalf("a failed delivery is still due")
	}
}

// A delivery waiting for its retry when the node stops goes out after the
// next start, with its attempt count intact.
func TestSender_ResumesAfterRestart(t *testing.T) {
	rcv := newReceiver(t, func(n int) int {
		if n == 1 {
			return 502
		}
		return 200
	})
	dir, clock := t.TempDir(), newClock()
	st, err := store.Open(t.Context(), dir, store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, clock: clock, store: st}
	first := webhooks.New(st, webhooks.Options{Now: clock.Now, After: clock.After, Jitter: func(max time.Duration) time.Duration { return max }})
	if err := first.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.subscribe(st, "ops", rcv.srv.URL, "*")
	r.notify(first, appliance.EventDriftAlert)
	waitFor(t, "the first attempt", func() bool { return delivery(t, st, "ops").Attempts == 1 }, nil)
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	clock.Advance(time.Hour) // the node was down past the retry time
	r = newRig(t, dir, clock, webhooks.Options{})
	waitFor(t, "the resumed delivery", func() bool { return delivery(t, r.store, "ops").State == appliance.DeliveryDelivered }, nil)
	if d := delivery(t, r.store, "ops"); d.Attempts != 2 {
		t.Fatalf("resumed: %+v", d)
	}
	if n := len(rcv.requests()); n != 2 {
		t.Fatalf("%d requests", n)
	}
}

// Close cancels a request in flight at once; the attempt is not counted and
// the delivery stays pending for the next start.
func TestSender_CloseIsPrompt(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		arrived <- struct{}{}
		select {
		case <-req.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	clock := newClock()
	st := storetest.Open(t, store.Options{Now: clock.Now})
	r := &rig{t: t, clock: clock, store: st}
	s := webhooks.New(st, webhooks.Options{Now: clock.Now, After: clock.After, Timeout: time.Minute})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.subscribe(st, "ops", srv.URL, "*")
	r.notify(s, appliance.EventDriftAlert)
	<-arrived

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Close took %s", took)
	}
	if d := delivery(t, st, "ops"); d.State != appliance.DeliveryPending || d.Attempts != 0 {
		t.Fatalf("after Close: %+v", d)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestSender_NoRedirectsAndTimeout(t *testing.T) {
	target := newReceiver(t, always(200))
	redirect := httptest.NewServer(http.RedirectHandler(target.srv.URL, http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-req.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })

	r := newRig(t, t.TempDir(), newClock(), webhooks.Options{MaxAttempts: 1, Timeout: 50 * time.Millisecond})
	r.subscribe(r.store, "moved", redirect.URL, "*")
	r.subscribe(r.store, "slow", hang.URL, "*")
	r.notify(r.sender, appliance.EventDriftAlert)
	for _, name := range []string{"moved", "slow"} {
		waitFor(t, name+" to fail", func() bool { return delivery(t, r.store, name).State == appliance.DeliveryFailed }, nil)
	}
	if d := delivery(t, r.store, "moved"); d.HTTPStatus != 307 || !strings.Contains(d.LastError, "redirects are not followed") {
		t.Fatalf("redirected: %+v", d)
	}
	if n := len(target.requests()); n != 0 {
		t.Fatalf("the redirect was followed (%d requests)", n)
	}
	if d := delivery(t, r.store, "slow"); d.HTTPStatus != 0 || d.LastError != "no answer within 50ms" {
		t.Fatalf("timed out: %+v", d)
	}
}

// At most Concurrency requests are in flight, and at most two to one
// webhook.
func TestSender_BoundsConcurrency(t *testing.T) {
	var mu sync.Mutex
	inFlight, maxInFlight := map[string]int{}, map[string]int{}
	total, maxTotal := 0, 0
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		inFlight[req.URL.Path]++
		total++
		maxInFlight[req.URL.Path] = max(maxInFlight[req.URL.Path], inFlight[req.URL.Path])
		maxTotal = max(maxTotal, total)
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight[req.URL.Path]--
		total--
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	r := newRig(t, t.TempDir(), newClock(), webhooks.Options{Concurrency: 4})
	for _, name := range []string{"a", "b", "c"} {
		r.subscribe(r.store, name, srv.URL+"/"+name, "*")
	}
	for range 4 {
		r.notify(r.sender, appliance.EventDriftAlert)
	}
	current := func() int {
		mu.Lock()
		defer mu.Unlock()
		return total
	}
	waitFor(t, "4 requests in flight", func() bool { return current() == 4 }, nil)
	time.Sleep(50 * time.Millisecond) // room for a fifth, which must not come
	close(release)
	waitFor(t, "every delivery", func() bool {
		for _, name := range []string{"a", "b", "c"} {
			ds, err := r.store.WebhookDeliveries(t.Context(), name, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.State != appliance.DeliveryDelivered {
					return false
				}
			}
		}
		return true
	}, nil)
	mu.Lock()
	defer mu.Unlock()
	if maxTotal != 4 {
		t.Fatalf("at most %d in flight, want 4", maxTotal)
	}
	for path, n := range maxInFlight {
		if n > 2 {
			t.Fatalf("%d in flight to %s", n, path)
		}
	}
}

func TestSender_Service(t *testing.T) {
	rcv := newReceiver(t, always(200))
	r := newRig(t, t.TempDir(), newClock(), webhooks.Options{})
	ctx := t.Context()
	w, sec, err := r.sender.CreateWebhook(ctx, &appliance.Webhook{Name: "ops", URL: rcv.srv.URL, Events: []string{"drift.alert"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sec, "whsec_") || len(sec) != 6+64 || w.Secret != "" {
		t.Fatalf("generated secret %q, returned webhook %+v", sec, w)
	}
	if got, err := r.sender.Webhook(ctx, "ops"); err != nil || got.Secret != "" {
		t.Fatalf("Webhook: %+v, %v", got, err)
	}
	if list, err := r.sender.Webhooks(ctx); err != nil || len(list) != 1 || list[0].Secret != "" {
		t.Fatalf("Webhooks: %v, %v", list, err)
	}
	if stored, _ := r.store.Webhook(ctx, "ops"); stored.Secret != sec {
		t.Fatalf("the store holds %q, not the secret shown", stored.Secret)
	}
	// A test event reaches a webhook that does not subscribe to it.
	d, err := r.sender.TestWebhook(ctx, "ops")
	if err != nil || d.EventType != appliance.EventWebhookTest || d.State != appliance.DeliveryPending {
		t.Fatalf("TestWebhook: %+v, %v", d, err)
	}
	waitFor(t, "the test event", func() bool { return len(rcv.requests()) == 1 }, nil)
	if err := r.sender.Notify(ctx, appliance.Event{Type: "not a type"}); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Fatalf("bad event: %v", err)
	}
	if _, err := r.sender.TestWebhook(ctx, "nope"); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("unknown webhook: %v", err)
	}
}

// failingRecords is the real store whose first RecordAttempt fails like a
// full disk.
type failingRecords struct {
	*store.Store
	mu     sync.Mutex
	failed bool
}

func (f *failingRecords) RecordAttempt(ctx context.Context, d *appliance.WebhookDelivery) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failed {
		f.failed = true
		return errors.New("write: no space left on device")
	}
	return f.Store.RecordAttempt(ctx, d)
}

// A delivery whose outcome could not be stored is still due; the sender
// waits before trying the store again instead of resending in a loop.
func TestSender_PausesWhenTheStoreFails(t *testing.T) {
	rcv := newReceiver(t, always(200))
	clock := newClock()
	r := &rig{t: t, clock: clock, store: storetest.Open(t, store.Options{Now: clock.Now})}
	r.subscribe(r.store, "ops", rcv.srv.URL, "*")
	s := r.start(&failingRecords{Store: r.store}, webhooks.Options{})
	r.notify(s, appliance.EventDriftAlert)

	waitFor(t, "the first request", func() bool { return len(rcv.requests()) == 1 }, nil)
	time.Sleep(20 * time.Millisecond) // room for a resend, which must wait for the clock
	if n := len(rcv.requests()); n != 1 {
		t.Fatalf("%d requests while the store fails", n)
	}
	waitFor(t, "the delivery", func() bool { return delivery(t, r.store, "ops").State == appliance.DeliveryDelivered },
		func() { clock.Advance(time.Second) })
	if n := len(rcv.requests()); n != 2 {
		t.Fatalf("%d requests, want 2 (at least once)", n)
	}
}

var (
	_ appliance.Notifier       = (*webhooks.Sender)(nil)
	_ appliance.WebhookService = (*webhooks.Sender)(nil)
)
