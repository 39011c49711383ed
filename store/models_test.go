package store_test

import (
	"fmt"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

func newVersion(t *testing.T, s *store.Store, name string, content string) *appliance.ModelVersion {
	t.Helper()
	wasm := []byte("\x00asm\x01\x00\x00\x00" + content)
	v := &appliance.ModelVersion{Model: name, SHA256: appliance.ModuleDigest([]byte("manifest" + content)),
		Module: "sha256:" + appliance.ModuleDigest(wasm), Inputs: []string{"v:x"}, Outputs: []string{"score"},
		Manifest: []byte(`{"name":"` + name + `"}`), Lineage: appliance.Lineage{FeatureViews: map[string]int{"v": 1}}}
	got, created, err := s.CreateModelVersion(ctx, v, []byte("bundle"+content), map[string][]byte{"model.wasm": wasm})
	if err != nil || !created {
		t.Fatalf("create %s %s: %v %v", name, content, created, err)
	}
	return got
}

func TestModels_VersionsAndIdenticalUploads(t *testing.T) {
	dir := t.TempDir()
	s := storetest.OpenDir(t, dir, store.Options{})
	v1 := newVersion(t, s, "churn", "a")
	v2 := newVersion(t, s, "churn", "b")
	if v1.Version != 1 || v2.Version != 2 || v1.Status != appliance.StatusActive || v1.BundleSize != 7 {
		t.Fatalf("versions: %+v %+v", v1, v2)
	}
	again, created, err := s.CreateModelVersion(ctx, &appliance.ModelVersion{Model: "churn", SHA256: v1.SHA256}, []byte("bundlea"), nil)
	if err != nil || created || again.Version != 1 {
		t.Fatalf("identical upload: %+v %v %v", again, created, err)
	}
	if b, err := s.ModelBundle(ctx, "churn", 2); err != nil || string(b) != "bundleb" {
		t.Fatalf("bundle: %q %v", b, err)
	}
	if m, err := s.Module(ctx, v2.Module[len("sha256:"):]); err != nil || m.Kinds[0] != appliance.KindModel {
		t.Fatalf("module stored with the version: %+v %v", m, err)
	}
	for alias, want := range map[string]int{"latest": 2, "v1": 1} {
		if mv, err := s.ResolveModel(ctx, "churn", alias); err != nil || mv.Version != want {
			t.Fatalf("resolve %s: %+v %v", alias, mv, err)
		}
	}
	if _, err := s.ResolveModel(ctx, "churn", "v9"); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("v9: %v", err)
	}
	if _, err := s.ResolveModel(ctx, "nope", "latest"); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("unknown model: %v", err)
	}
	if _, _, err := s.CreateModelVersion(ctx, &appliance.ModelVersion{Model: "Bad Name"}, nil, nil); appliance.ErrorCode(err) != appliance.EINVALID {
		t.Fatalf("bad name: %v", err)
	}
}

func TestModels_AliasesHistoryAndRollback(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	for _, c := range []string{"a", "b", "c", "d"} {
		newVersion(t, s, "churn", c)
	}
	policy := appliance.AliasPolicy{}
	set := func(v int) {
		t.Helper()
		if _, err := s.SetAlias(ctx, "churn", "production", v, policy); err != nil {
			t.Fatal(err)
		}
	}
	resolve := func() int {
		t.Helper()
		mv, err := s.ResolveModel(ctx, "churn", "production")
		if err != nil {
			t.Fatal(err)
		}
		return mv.Version
	}
	set(1)
	set(2)
	set(3)
	if got := resolve(); got != 3 {
		t.Fatalf("production = %d", got)
	}
	for _, want := range []int{2, 1} {
		ch, err := s.RollbackAlias(ctx, "churn", "production", policy)
		if err != nil || ch.Version != want || resolve() != want {
			t.Fatalf("rollback to %d: %+v %v", want, ch, err)
		}
	}
	if _, err := s.RollbackAlias(ctx, "churn", "production", policy); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("rollback past the first: %v", err)
	}
	set(4)
	if ch, _ := s.RollbackAlias(ctx, "churn", "production", policy); ch.Version != 1 {
		t.Fatalf("rollback after a new set goes to what it pointed to before: %+v", ch)
	}
	hist, err := s.AliasHistory(ctx, "churn", "production")
	if err != nil {
		t.Fatal(err)
	}
	var actions string
	for _, h := range hist {
		actions += fmt.Sprintf("%s:%d ", h.Action, h.Version)
	}
	if actions != "set:1 set:2 set:3 rollback:2 rollback:1 set:4 rollback:1 " {
		t.Fatalf("history: %s", actions)
	}
	// A version under an alias cannot be archived; an archived one cannot take one.
	archived := appliance.StatusArchived
	if _, err := s.PatchModelVersion(ctx, "churn", 1, &appliance.ModelVersionPatch{Status: &archived}); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("archive under alias: %v", err)
	}
	if _, err := s.PatchModelVersion(ctx, "churn", 3, &appliance.ModelVersionPatch{Status: &archived}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAlias(ctx, "churn", "staging", 3, policy); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("alias to archived: %v", err)
	}
	// Policy: production requires a trusted signature.
	strict := appliance.AliasPolicy{RequireSignature: true}
	if _, err := s.SetAlias(ctx, "churn", "production", 2, strict); appliance.ErrorCode(err) != appliance.ECONFLICT {
		t.Fatalf("unsigned under policy: %v", err)
	}
	if _, err := s.AddSignature(ctx, "churn", 2, appliance.Signature{KeyID: "k1", Valid: true, Trusted: true, Signature: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAlias(ctx, "churn", "production", 2, strict); err != nil {
		t.Fatalf("signed under policy: %v", err)
	}
	for _, bad := range []string{"latest", "v2", "", "has space"} {
		if _, err := s.SetAlias(ctx, "churn", bad, 2, policy); appliance.ErrorCode(err) != appliance.EINVALID {
			t.Fatalf("alias %q: %v", bad, err)
		}
	}
	if _, err := s.DeleteAlias(ctx, "churn", "production"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveModel(ctx, "churn", "production"); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("deleted alias: %v", err)
	}
	entries, _, _ := s.AuditEntries(ctx, appliance.AuditFilter{Action: "alias.", Limit: 1000})
	if len(entries) != 9 {
		t.Fatalf("%d alias audit entries, want 9", len(entries))
	}
}
