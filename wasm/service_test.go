package wasm_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
	"github.com/mlnode/mlnode/wasm"
)

// newService serves the example logistic regression (make examples) from a
// store, releasing modules idle for idle; digest is the module's.
func newService(t *testing.T, idle time.Duration) (rt *wasm.Runtime, svc *wasm.Service, digest string) {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile("../examples/build/logreg_c.wasm")
	if err != nil {
		t.Fatalf("%v: run `make examples`", err)
	}
	s := storetest.Open(t, store.Options{})
	if _, err := s.PutModule(ctx, &appliance.Module{Kinds: []string{appliance.KindModel}}, raw); err != nil {
		t.Fatal(err)
	}
	rt, err = wasm.Open(ctx, wasm.Options{InitTimeout: time.Minute, DefaultTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	svc = wasm.NewService(rt, s, idle)
	t.Cleanup(func() { svc.Close(); rt.Close(ctx) })
	return rt, svc, appliance.ModuleDigest(raw)
}

// Modules nobody calls any more are released, and load again on use.
func TestService_ReleasesIdleModules(t *testing.T) {
	ctx := context.Background()
	_, svc, digest := newService(t, 50*time.Millisecond)
	ref := "sha256:" + digest
	in, out := make([]float64, 32), make([]float64, 1)
	if err := svc.Predict(ctx, ref, appliance.ModuleLimits{}, in, out); err != nil {
		t.Fatal(err)
	}
	if svc.Loaded() != 1 {
		t.Fatalf("loaded %d", svc.Loaded())
	}
	deadline := time.Now().Add(5 * time.Second)
	for svc.Loaded() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("an idle module was not released")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := svc.Predict(ctx, ref, appliance.ModuleLimits{}, in, out); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// A pool the runtime unloaded while the service still held it (the
// evictor unloads after letting go of the service's lock, so a request can
// store a pool that is about to die) is loaded again, not served as 503
// for as long as traffic keeps it from looking idle.
func TestService_ReloadsAPoolUnloadedUnderIt(t *testing.T) {
	ctx := context.Background()
	rt, svc, digest := newService(t, time.Hour)
	in, out := make([]float64, 32), make([]float64, 1)
	if err := svc.Predict(ctx, "sha256:"+digest, appliance.ModuleLimits{}, in, out); err != nil {
		t.Fatal(err)
	}
	rt.Unload(digest) // the service's pool is now dead
	for i := range 3 {
		if err := svc.Predict(ctx, "sha256:"+digest, appliance.ModuleLimits{}, in, out); err != nil {
			t.Fatalf("call %d after the unload: %v", i, err)
		}
	}
	if svc.Loaded() != 1 {
		t.Fatalf("loaded %d", svc.Loaded())
	}
}
