package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/assign"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/appliance/routing"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

func newFlagNode(t *testing.T) *testNode {
	t.Helper()
	n := &testNode{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	n.store = storetest.Open(t, store.Options{})
	if _, err := n.store.BootstrapAdmin(context.Background(), adminSecret); err != nil {
		t.Fatal(err)
	}
	n.srv = httpapi.New(httpapi.Config{Now: func() time.Time { return n.now }},
		httpapi.Services{Registry: n.store, Features: n.store, Tokens: n.store, Audit: n.store, Flags: &routing.Flags{Store: n.store}})
	return n
}

func TestFlags_RulesSplitAndAudit(t *testing.T) {
	n := newFlagNode(t)
	writer, reader := n.token("writer"), n.token("reader")
	flag := map[string]any{"name": "new_ranker", "variants": []any{"off", "v2", "v3"}, "weights": []float64{0.5, 0.25, 0.25},
		"rules": []map[string]any{{"attribute": "country", "op": "in", "value": []string{"AE", "SA"}, "variant": 2},
			{"attribute": "age", "op": "gte", "value": 65, "variant": 0}}}
	if r := n.do("POST", "/api/v1/flags", writer, "application/json", flag); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := n.do("POST", "/api/v1/flags", writer, "application/json", flag); r.status != 409 {
		t.Fatalf("create twice: %d", r.status)
	}
	eval := func(query string) map[string]any {
		return n.do("GET", "/api/v1/flags/new_ranker/evaluate?"+query, reader, "", nil).json(t)
	}
	if r := eval("unit=u1&country=AE"); r["variant"] != "v3" || r["reason"] != "rule" {
		t.Fatalf("rule: %v", r)
	}
	if r := eval("unit=u1&age=70"); r["variant"] != "off" || r["reason"] != "rule" {
		t.Fatalf("numeric rule: %v", r)
	}
	// Without a matching rule the split decides, as assign computes it.
	f := &assign.Flag{Key: "new_ranker", Variants: nil, Weights: []float64{0.5, 0.25, 0.25}, Coverage: 1, HashVersion: 2}
	seen := map[string]int{}
	for i := range 200 {
		unit := fmt.Sprintf("user-%d", i)
		r := eval("unit=" + unit + "&country=FR")
		f.Variants = make([]json.RawMessage, 3)
		want, _ := assign.Evaluate(f, unit, nil)
		if int(r["variant_index"].(float64)) != want || r["reason"] != "split" {
			t.Fatalf("%s: %v, want variant %d", unit, r, want)
		}
		seen[r["variant"].(string)]++
	}
	if seen["off"] < 70 || seen["v2"] < 30 || seen["v3"] < 30 {
		t.Fatalf("split %v, want about 100/50/50", seen)
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no variants", map[string]any{"name": "f", "variants": []any{}}, "variants"},
		{"weights of wrong length", map[string]any{"name": "f", "variants": []any{1, 2}, "weights": []float64{1}}, "weights"},
		{"weights not summing to 1", map[string]any{"name": "f", "variants": []any{1, 2}, "weights": []float64{0.5, 0.4}}, "weights"},
		{"rule to a missing variant", map[string]any{"name": "f", "variants": []any{1, 2}, "rules": []map[string]any{{"attribute": "a", "op": "eq", "value": 1, "variant": 5}}}, "rules[0].variant"},
		{"unknown operator", map[string]any{"name": "f", "variants": []any{1, 2}, "rules": []map[string]any{{"attribute": "a", "op": "like", "value": 1, "variant": 1}}}, "rules[0].op"},
		{"bad regex", map[string]any{"name": "f", "variants": []any{1, 2}, "rules": []map[string]any{{"attribute": "a", "op": "regex", "value": "(", "variant": 1}}}, "rules[0].value"},
		{"coverage 0 (not every unit)", map[string]any{"name": "f", "variants": []any{1, 2}, "coverage": 0}, "coverage"},
	} {
		r := n.do("POST", "/api/v1/flags", writer, "application/json", tc.body)
		if _, field := r.errorOf(t); r.status != 400 || field != tc.field {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	if r := n.do("POST", "/api/v1/flags", reader, "application/json", flag); r.status != 403 {
		t.Fatalf("reader created a flag: %d", r.status)
	}
	flag["weights"] = []float64{0, 0, 1}
	n.do("PUT", "/api/v1/flags/new_ranker", writer, "application/json", flag)
	if r := eval("unit=user-1"); r["variant"] != "v3" {
		t.Fatalf("after replacing the weights: %v", r)
	}
	if r := n.do("DELETE", "/api/v1/flags/new_ranker", writer, "", nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	if r := n.do("GET", "/api/v1/flags/new_ranker/evaluate?unit=u", reader, "", nil); r.status != 404 {
		t.Fatalf("evaluate a deleted flag: %d", r.status)
	}
	entries, _, err := n.store.AuditEntries(context.Background(), appliance.AuditFilter{Object: "flag/new_ranker"})
	if err != nil || len(entries) != 3 {
		t.Fatalf("audit entries for the flag: %d %v", len(entries), err)
	}
}
