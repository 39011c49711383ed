package store_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

var webhookT0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func testWebhook(name string, events ...string) *appliance.Webhook {
	return &appliance.Webhook{Name: name, URL: "https://hooks.example.com/mlnode?token=receiver-token",
		Secret: "whsec_0123456789abcdef", Events: events}
}

func testEvent(typ string) *appliance.Event {
	return &appliance.Event{ID: appliance.NewEventID(), Type: typ, Subject: "experiment/checkout",
		Data: map[string]any{"psi": 0.31}, Time: webhookT0}
}

func mustEnqueue(t *testing.T, s *store.Store, e *appliance.Event, only string, want int) []*appliance.WebhookDelivery {
	t.Helper()
	ds, err := s.EnqueueEvent(t.Context(), e, only)
	if err != nil {
		t.Fatalf("enqueue %s: %v", e.Type, err)
	}
	if len(ds) != want {
		t.Fatalf("enqueue %s: %d deliveries, want %d", e.Type, len(ds), want)
	}
	return ds
}

func TestStore_Webhooks_CreateGetDelete(t *testing.T) {
	s := storetest.Open(t, store.Options{Now: func() time.Time { return webhookT0 }})
	ctx := adminCtx(t)

	// No webhook: nothing is queued, and nothing fails.
	mustEnqueue(t, s, testEvent(appliance.EventDriftAlert), "", 0)
	if _, err := s.EnqueueEvent(ctx, testEvent(appliance.EventWebhookTest), "ops"); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("test event to an unknown webhook: %v", err)
	}

	if err := s.CreateWebhook(ctx, testWebhook("ops", "*")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWebhook(ctx, testWebhook("ops", "drift.alert")); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("duplicate name: %v", err)
	}
	bad := testWebhook("other", "*")
	bad.URL = "ftp://hooks.example.com/"
	if err := s.CreateWebhook(ctx, bad); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Fatalf("ftp url: %v", err)
	}
	w, err := s.Webhook(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if w.Secret != "whsec_0123456789abcdef" || w.CreatedBy != "alice" || !w.CreatedAt.Equal(webhookT0) {
		t.Fatalf("stored webhook: %+v", w)
	}
	if list, err := s.Webhooks(ctx); err != nil || len(list) != 1 || list[0].Secret == "" {
		t.Fatalf("list: %v, %v", list, err)
	}

	ds := mustEnqueue(t, s, testEvent(appliance.EventDriftAlert), "", 1)
	if err := s.DeleteWebhook(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Webhook(ctx, "ops"); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("deleted webhook: %v", err)
	}
	if _, err := s.WebhookDeliveries(ctx, "ops", 0); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("deliveries of a deleted webhook: %v", err)
	}
	if due, next, err := s.DueDeliveries(ctx, webhookT0.Add(time.Hour), 10, nil); err != nil || len(due) != 0 || !next.IsZero() {
		t.Fatalf("due after delete: %v, %v, %v", due, next, err)
	}
	d := ds[0]
	d.Attempts, d.State, d.DeliveredAt = 1, appliance.DeliveryDelivered, &webhookT0
	if err := s.RecordAttempt(ctx, d); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("attempt recorded for a deleted webhook: %v", err)
	}
	if err := s.DeleteWebhook(ctx, "ops"); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("second delete: %v", err)
	}

	entries, _, err := s.AuditEntries(ctx, appliance.AuditFilter{Action: "webhook."})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
		if strings.Contains(string(e.Summary), "receiver-token") || strings.Contains(string(e.Summary), "whsec_") {
			t.Fatalf("audit summary leaks a credential: %s", e.Summary)
		}
	}
	if fmt.Sprint(actions) != "[webhook.create webhook.delete]" {
		t.Fatalf("audited %v", actions)
	}
}

// An event is on disk once EnqueueEvent returns, with the payload every
// attempt will sign, for exactly the webhooks that want its type.
func TestStore_Webhooks_EnqueueIsDurableAndMatches(t *testing.T) {
	dir := t.TempDir()
	opts := store.Options{Now: func() time.Time { return webhookT0 }}
	s, err := store.Open(t.Context(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := adminCtx(t)
	for _, w := range []*appliance.Webhook{testWebhook("drift", "drift.alert"), testWebhook("exp", "experiment.*"),
		testWebhook("all", "*")} {
		if err := s.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	drift := testEvent(appliance.EventDriftAlert)
	guard := testEvent(appliance.EventExperimentGuardrail)
	job := testEvent(appliance.EventJobFailed)
	mustEnqueue(t, s, drift, "", 2)
	mustEnqueue(t, s, guard, "", 2)
	mustEnqueue(t, s, job, "", 1)
	if _, err := s.EnqueueEvent(ctx, &appliance.Event{ID: "x", Type: "Drift", Time: webhookT0}, ""); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Fatalf("bad event type: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = storetest.OpenDir(t, dir, opts)
	due, next, err := s.DueDeliveries(ctx, webhookT0, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 5 || !next.IsZero() {
		t.Fatalf("after reopen: %d due, next %v", len(due), next)
	}
	got := map[string][]string{}
	for _, d := range due {
		got[d.EventType] = append(got[d.EventType], d.Webhook)
		if d.State != appliance.DeliveryPending || d.Attempts != 0 || d.NextRetryAt == nil || !d.NextRetryAt.Equal(webhookT0) {
			t.Fatalf("fresh delivery: %+v", d)
		}
	}
	// Order of webhooks within one event is by name; events in queue order.
	if fmt.Sprint(got) != "map[drift.alert:[all drift] experiment.guardrail:[all exp] job.failed:[all]]" {
		t.Fatalf("routed %v", got)
	}
	want, err := drift.Payload()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(due[0].Payload, want) {
		t.Fatalf("payload\n%s\nwant\n%s", due[0].Payload, want)
	}
	var body map[string]any
	if err := json.Unmarshal(due[0].Payload, &body); err != nil {
		t.Fatal(err)
	}
	if body["id"] != drift.ID || body["type"] != "drift.alert" || body["subject"] != "experiment/checkout" ||
		body["time"] != "2026-06-01T12:00:00Z" || body["data"].(map[string]any)["psi"] != 0.31 {
		t.Fatalf("payload fields: %v", body)
	}
}

func TestStore_Webhooks_DueOrderSkipAndRecord(t *testing.T) {
	s := storetest.Open(t, store.Options{Now: func() time.Time { return webhookT0 }})
	ctx := adminCtx(t)
	if err := s.CreateWebhook(ctx, testWebhook("a", "*")); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		ids = append(ids, mustEnqueue(t, s, testEvent(appliance.EventJobFailed), "", 1)[0].ID)
	}
	first, err := s.WebhookDeliveries(ctx, "a", 1)
	if err != nil || len(first) != 1 || first[0].ID != ids[2] {
		t.Fatalf("newest first: %v, %v", first, err)
	}

	retry := webhookT0.Add(10 * time.Second)
	due, _, err := s.DueDeliveries(ctx, webhookT0, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := due[0]
	d.State, d.Attempts, d.HTTPStatus, d.LastError, d.LastAttemptAt, d.NextRetryAt = appliance.DeliveryPending, 1, 500, "HTTP 500", &webhookT0, &retry
	if err := s.RecordAttempt(ctx, d); err != nil {
		t.Fatal(err)
	}

	dueIDs := func(now time.Time, limit int, skip func(string, string) bool) (string, time.Time) {
		t.Helper()
		ds, next, err := s.DueDeliveries(ctx, now, limit, skip)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return strings.Join(out, ","), next
	}
	if got, next := dueIDs(webhookT0, 10, nil); got != ids[1]+","+ids[2] || !next.Equal(retry) {
		t.Fatalf("due now: %s, next %v", got, next)
	}
	if got, next := dueIDs(webhookT0, 1, nil); got != ids[1] || !next.Equal(webhookT0) {
		t.Fatalf("limit 1: %s, next %v (want now: more is due)", got, next)
	}
	if got, _ := dueIDs(webhookT0, 10, func(_, id string) bool { return id == ids[1] }); got != ids[2] {
		t.Fatalf("skipping %s: %s", ids[1], got)
	}
	if got, next := dueIDs(retry, 10, nil); got != ids[1]+","+ids[2]+","+ids[0] || !next.IsZero() {
		t.Fatalf("due at the retry: %s, next %v", got, next)
	}

	// Delivered: out of the due index, payload dropped. Failed: out of
	// the index, payload kept for inspection.
	all, err := s.WebhookDeliveries(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*appliance.WebhookDelivery{}
	for _, d := range all {
		byID[d.ID] = d
	}
	del, fail := byID[ids[1]], byID[ids[2]]
	del.State, del.Attempts, del.HTTPStatus, del.DeliveredAt, del.LastAttemptAt, del.NextRetryAt = appliance.DeliveryDelivered, 1, 204, &webhookT0, &webhookT0, nil
	fail.State, fail.Attempts, fail.LastError, fail.LastAttemptAt, fail.NextRetryAt = appliance.DeliveryFailed, 8, "connection refused", &webhookT0, nil
	for _, d := range []*appliance.WebhookDelivery{del, fail} {
		if err := s.RecordAttempt(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := dueIDs(retry, 10, nil); got != ids[0] {
		t.Fatalf("due after finishing two: %s", got)
	}
	all, err = s.WebhookDeliveries(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		switch d.ID {
		case ids[0]:
			if d.State != appliance.DeliveryPending || d.Attempts != 1 || d.HTTPStatus != 500 || !d.NextRetryAt.Equal(retry) {
				t.Fatalf("retrying: %+v", d)
			}
		case ids[1]:
			if d.State != appliance.DeliveryDelivered || d.Payload != nil || d.NextRetryAt != nil || d.HTTPStatus != 204 {
				t.Fatalf("delivered: %+v", d)
			}
		case ids[2]:
			if d.State != appliance.DeliveryFailed || len(d.Payload) == 0 || d.NextRetryAt != nil || d.LastError != "connection refused" {
				t.Fatalf("failed: %+v", d)
			}
		}
	}
}

// Many concurrent events for one webhook: pending deliveries are never
// dropped, finished ones are kept to the newest 1000.
func TestStore_Webhooks_HistoryIsBounded(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	ctx := adminCtx(t)
	if err := s.CreateWebhook(ctx, testWebhook("a", "*")); err != nil {
		t.Fatal(err)
	}
	const n = 1100
	var mu sync.Mutex
	var queued []*appliance.WebhookDelivery
	hammer(t, n, func(int) error {
		ds, err := s.EnqueueEvent(ctx, testEvent(appliance.EventDriftAlert), "a")
		mu.Lock()
		queued = append(queued, ds...)
		mu.Unlock()
		return err
	})
	if list, err := s.WebhookDeliveries(ctx, "a", 5000); err != nil || len(list) != n {
		t.Fatalf("pending kept: %d, %v", len(list), err)
	}
	at := time.Now()
	hammer(t, n, func(i int) error {
		d := queued[i]
		d.State, d.Attempts, d.DeliveredAt, d.NextRetryAt = appliance.DeliveryDelivered, 1, &at, nil
		return s.RecordAttempt(ctx, d)
	})
	list, err := s.WebhookDeliveries(ctx, "a", 5000)
	if err != nil || len(list) != 1000 {
		t.Fatalf("finished kept: %d, %v", len(list), err)
	}
	last := mustEnqueue(t, s, testEvent(appliance.EventDriftAlert), "a", 1)[0]
	list, err = s.WebhookDeliveries(ctx, "a", 5000)
	if err != nil || len(list) != 1000 || list[0].ID != last.ID {
		t.Fatalf("after one more: %d, newest %s, %v", len(list), list[0].ID, err)
	}
}

// hammer runs f(0..n-1) on 32 goroutines, so that the writes share group
// commits.
func hammer(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

var _ appliance.WebhookStore = (*store.Store)(nil)
