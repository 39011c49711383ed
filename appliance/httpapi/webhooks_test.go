package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/appliance/webhooks"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// newWebhookNode is a test node whose webhook sender runs on real time.
func newWebhookNode(t *testing.T) *testNode {
	t.Helper()
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	sender := webhooks.New(n.store, webhooks.Options{})
	if err := sender.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Close(context.Background()) })
	n.srv = httpapi.New(httpapi.Config{Now: func() time.Time { return n.now }},
		httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store, Webhooks: sender})
	return n
}

func TestWebhooks_CreateListGetDelete(t *testing.T) {
	n := newWebhookNode(t)
	r := n.admin("POST", "/api/v1/webhooks", map[string]any{"name": "ops", "url": "https://hooks.example.com/mlnode",
		"events": []string{"experiment.guardrail", "drift.alert"}, "description": "on-call"}, 201)
	created := r.json(t)
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || created["created_by"] != "admin" || r.header.Get("Cache-Control") != "no-store" ||
		r.header.Get("Location") != "/api/v1/webhooks/ops" {
		t.Fatalf("created: %s %v", r.body, r.header)
	}
	r = n.admin("POST", "/api/v1/webhooks", map[string]any{"name": "audit_sink", "url": "http://10.0.0.5:8080/in",
		"secret": "my-own-secret-0123456789", "events": []string{"*"}}, 201)
	if r.json(t)["secret"] != "my-own-secret-0123456789" {
		t.Fatalf("given secret: %s", r.body)
	}
	n.admin("POST", "/api/v1/webhooks", map[string]any{"name": "ops", "url": "https://x.example.com/", "events": []string{"*"}}, 409)

	r = n.admin("GET", "/api/v1/webhooks", nil, 200)
	if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "whsec_") {
		t.Fatalf("the list shows secrets: %s", r.body)
	}
	if list := r.json(t)["webhooks"].([]any); len(list) != 2 || list[0].(map[string]any)["name"] != "audit_sink" {
		t.Fatalf("list: %s", r.body)
	}
	r = n.admin("GET", "/api/v1/webhooks/ops", nil, 200)
	if got := r.json(t); got["url"] != "https://hooks.example.com/mlnode" || got["description"] != "on-call" || strings.Contains(string(r.body), "secret") {
		t.Fatalf("get: %s", r.body)
	}
	n.admin("DELETE", "/api/v1/webhooks/ops", nil, 204)
	n.admin("GET", "/api/v1/webhooks/ops", nil, 404)
	n.admin("DELETE", "/api/v1/webhooks/ops", nil, 404)
	n.admin("GET", "/api/v1/webhooks/ops/deliveries", nil, 404)
	n.admin("POST", "/api/v1/webhooks/ops/test", nil, 404)
}

func TestWebhooks_InvalidRequests(t *testing.T) {
	n := newWebhookNode(t)
	for _, tc := range []struct {
		name      string
		body      map[string]any
		wantField string
	}{
		{"ftp url", map[string]any{"name": "a", "url": "ftp://files.example.com/", "events": []string{"*"}}, "url"},
		{"no host", map[string]any{"name": "a", "url": "http:///path", "events": []string{"*"}}, "url"},
		{"relative", map[string]any{"name": "a", "url": "/hooks", "events": []string{"*"}}, "url"},
		{"credentials", map[string]any{"name": "a", "url": "https://u:p@hooks.example.com/", "events": []string{"*"}}, "url"},
		{"port out of range", map[string]any{"name": "a", "url": "http://hooks.example.com:99999/x", "events": []string{"*"}}, "url"},
		{"no url", map[string]any{"name": "a", "events": []string{"*"}}, "url"},
		{"bad name", map[string]any{"name": "Ops", "url": "https://hooks.example.com/", "events": []string{"*"}}, "name"},
		{"no events", map[string]any{"name": "a", "url": "https://hooks.example.com/"}, "events"},
		{"typo event", map[string]any{"name": "a", "url": "https://hooks.example.com/", "events": []string{"drift.alrt"}}, "events"},
		{"short secret", map[string]any{"name": "a", "url": "https://hooks.example.com/", "secret": "short", "events": []string{"*"}}, "secret"},
		{"unknown field", map[string]any{"name": "a", "url": "https://hooks.example.com/", "events": []string{"*"}, "secrets": "x"}, "secrets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := n.do("POST", "/api/v1/webhooks", adminSecret, "application/json", tc.body)
			if r.status != 400 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if code, field := r.errorOf(t); code != "invalid" || field != tc.wantField {
				t.Fatalf("error %s on %q, want invalid on %q: %s", code, field, tc.wantField, r.body)
			}
		})
	}
	n.admin("GET", "/api/v1/webhooks/a/deliveries?limit=0", nil, 400)
}

func TestWebhooks_AdminOnly(t *testing.T) {
	n := newWebhookNode(t)
	n.admin("POST", "/api/v1/webhooks", map[string]any{"name": "ops", "url": "https://hooks.example.com/", "events": []string{"*"}}, 201)
	for _, role := range []string{"reader", "writer"} {
		tok := n.token(role)
		for _, req := range []struct{ method, path string }{
			{"POST", "/api/v1/webhooks"}, {"GET", "/api/v1/webhooks"}, {"GET", "/api/v1/webhooks/ops"},
			{"DELETE", "/api/v1/webhooks/ops"}, {"POST", "/api/v1/webhooks/ops/test"}, {"GET", "/api/v1/webhooks/ops/deliveries"},
		} {
			r := n.do(req.method, req.path, tok, "application/json", map[string]any{"name": "x", "url": "https://h.example.com/", "events": []string{"*"}})
			if r.status != 403 {
				t.Fatalf("%s %s as %s: %d %s", req.method, req.path, role, r.status, r.body)
			}
		}
	}

	bare := newTestNode(t, httpapi.Config{})
	if r := bare.admin("GET", "/api/v1/webhooks", nil, 503); !strings.Contains(string(r.body), "unavailable") {
		t.Fatalf("node without webhooks: %s", r.body)
	}
}

func TestWebhooks_TestEventIsDelivered(t *testing.T) {
	type got struct {
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	var reqs []got
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		reqs = append(reqs, got{req.Header.Clone(), body})
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)

	n := newWebhookNode(t)
	// Subscribed to drift alerts only: a test event reaches it anyway.
	r := n.admin("POST", "/api/v1/webhooks", map[string]any{"name": "ops", "url": rcv.URL + "/hook", "events": []string{"drift.alert"}}, 201)
	secret := r.json(t)["secret"].(string)
	r = n.admin("POST", "/api/v1/webhooks/ops/test", nil, 202)
	d := r.json(t)
	if d["event_type"] != "webhook.test" || d["status"] != "pending" || r.header.Get("Location") != "/api/v1/webhooks/ops/deliveries" {
		t.Fatalf("test: %s", r.body)
	}

	var last map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := n.admin("GET", "/api/v1/webhooks/ops/deliveries?limit=10", nil, 200).json(t)["deliveries"].([]any)
		if len(list) != 1 {
			t.Fatalf("%d deliveries", len(list))
		}
		if last = list[0].(map[string]any); last["status"] == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %v", last)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if last["id"] != d["id"] || last["attempts"] != 1.0 || last["http_status"] != 200.0 || last["event_id"] != d["event_id"] {
		t.Fatalf("delivery record: %v", last)
	}
	// Asking for a test is audited, with the caller.
	entries := n.admin("GET", "/api/v1/audit?action=webhook.test", nil, 200).json(t)["entries"].([]any)
	if len(entries) != 1 || entries[0].(map[string]any)["object"] != "webhook/ops" || entries[0].(map[string]any)["actor"] != "admin" {
		t.Fatalf("webhook.test audit entries: %v", entries)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	h := reqs[0].header
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(h.Get("X-Mlnode-Timestamp") + "." + string(reqs[0].body)))
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); h.Get("X-Mlnode-Signature") != want {
		t.Fatalf("signature %q, want %q", h.Get("X-Mlnode-Signature"), want)
	}
	if h.Get("X-Mlnode-Event") != "webhook.test" || h.Get("X-Mlnode-Delivery") != d["id"] ||
		!strings.Contains(string(reqs[0].body), `"requested_by":"admin"`) {
		t.Fatalf("request: %v %s", h, reqs[0].body)
	}
}
