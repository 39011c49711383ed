package wasm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// Service adapts a Runtime to the appliance's interfaces: it inspects
// uploaded modules (appliance.ModuleInspector) and runs stored transforms
// by digest (appliance.Transformer), loading each module's bytes from the
// module store on first use.
type Service struct {
	rt      *Runtime
	modules appliance.ModuleStore

	mu     sync.Mutex
	loaded map[serviceKey]*loadedModule
	rows   sync.Pool // *[]RowValue scratch for row transforms

	idle   time.Duration
	cancel context.CancelFunc
	done   chan struct{}
}

type loadedModule struct {
	m        *Module
	lastUsed atomic.Int64 // unix nanoseconds
}

type serviceKey struct {
	digest    string
	nIn, nOut int
	limits    Limits
}

// NewService returns a Service over rt and a module store. Modules unused
// for idle (default 10 minutes) are unloaded, releasing their instances:
// a version no alias points to any more stops holding memory, and is
// loaded again (from the compilation cache) if someone calls it.
func NewService(rt *Runtime, modules appliance.ModuleStore, idle time.Duration) *Service {
	if idle <= 0 {
		idle = 10 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{rt: rt, modules: modules, loaded: map[serviceKey]*loadedModule{}, idle: idle, cancel: cancel, done: make(chan struct{}),
		rows: sync.Pool{New: func() any { return new([]RowValue) }}}
	go s.evict(ctx)
	return s
}

// Close stops the eviction goroutine. The runtime is closed by its owner.
func (s *Service) Close() {
	s.cancel()
	<-s.done
}

func (s *Service) evict(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(min(s.idle/2, time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// The runtime unloads by digest, every pool of it: a digest goes
		// only when all its pools (shapes, limits) are idle.
		cutoff := time.Now().Add(-s.idle).UnixNano()
		busy := map[string]bool{}
		s.mu.Lock()
		for k, lm := range s.loaded {
			if lm.lastUsed.Load() >= cutoff {
				busy[k.digest] = true
			}
		}
		var stale []string
		for k := range s.loaded {
			if !busy[k.digest] {
				delete(s.loaded, k)
				if !slices.Contains(stale, k.digest) {
					stale = append(stale, k.digest)
				}
			}
		}
		s.mu.Unlock()
		for _, digest := range stale {
			s.rt.Unload(digest)
		}
	}
}

// Loaded reports how many module pools the service holds (tests).
func (s *Service) Loaded() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.loaded)
}

// InspectModule implements appliance.ModuleInspector.
func (s *Service) InspectModule(ctx context.Context, wasm []byte) (*appliance.Module, error) {
	info, err := s.rt.Inspect(ctx, wasm)
	if err != nil {
		return nil, err
	}
	m := &appliance.Module{SHA256: info.SHA256, Size: info.Size, HasBatch: info.HasBatch, Imports: info.Imports}
	for _, k := range info.Kinds {
		m.Kinds = append(m.Kinds, k.String())
	}
	if m.Imports == nil {
		m.Imports = []string{}
	}
	return m, nil
}

// module returns the loaded module for a reference and shape, loading it
// from the store the first time.
func (s *Service) module(ctx context.Context, ref string, nIn, nOut int, limits Limits) (*Module, error) {
	key := serviceKey{strings.TrimPrefix(ref, "sha256:"), nIn, nOut, limits}
	now := time.Now().UnixNano()
	// The evictor unloads a digest after it lets go of s.mu, so a pool can
	// die between its lookup (or its Load) and its use: a dead pool found
	// here is dropped and loaded again, never kept. Unloading only happens
	// to a pool idle for s.idle, so a second round finds a live one.
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		lm, ok := s.loaded[key]
		if ok && lm.m.closed.Load() {
			delete(s.loaded, key)
			ok = false
		}
		s.mu.Unlock()
		if ok {
			lm.lastUsed.Store(now)
			return lm.m, nil
		}
		wasm, err := s.modules.ModuleBytes(ctx, key.digest)
		if err != nil {
			return nil, err
		}
		m, err := s.rt.Load(ctx, wasm, limits, nIn, nOut)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if have, ok := s.loaded[key]; ok && !have.m.closed.Load() {
			s.mu.Unlock()
			return have.m, nil // a concurrent first use won; Load returned the same pool
		}
		if m.closed.Load() {
			s.mu.Unlock()
			if attempt < 2 {
				continue
			}
			return nil, errUnloaded
		}
		lm = &loadedModule{m: m}
		lm.lastUsed.Store(now)
		s.loaded[key] = lm
		s.mu.Unlock()
		return m, nil
	}
}

// call runs fn on the module for ref, once more if the module was unloaded
// between its lookup and the call (see module).
func (s *Service) call(ctx context.Context, ref string, nIn, nOut int, limits Limits, fn func(*Module) error) error {
	for attempt := 0; ; attempt++ {
		m, err := s.module(ctx, ref, nIn, nOut, limits)
		if err != nil {
			return err
		}
		if err = fn(m); !errors.Is(err, errUnloaded) || attempt > 0 {
			return err
		}
	}
}

// Transform implements appliance.Transformer. A module that exports only
// the row entry point gets numeric inputs as number records.
func (s *Service) Transform(ctx context.Context, ref string, in, out []float64) error {
	return s.call(ctx, ref, len(in), len(out), Limits{}, func(m *Module) error {
		if m.Info().Has(KindTransform) {
			return m.Transform(ctx, in, out)
		}
		rp := s.rows.Get().(*[]RowValue)
		defer s.rows.Put(rp)
		rows := (*rp)[:0]
		for _, x := range in {
			rows = append(rows, RowValue{Num: x})
		}
		*rp = rows
		return m.TransformRow(ctx, rows, out)
	})
}

// TransformRow implements appliance.Transformer.
func (s *Service) TransformRow(ctx context.Context, ref string, in []appliance.TransformValue, out []float64) error {
	return s.call(ctx, ref, len(in), len(out), Limits{}, func(m *Module) error {
		rp := s.rows.Get().(*[]RowValue)
		defer s.rows.Put(rp)
		rows := (*rp)[:0]
		for _, x := range in {
			rows = append(rows, RowValue{Null: x.Null, Num: x.Num, Str: x.Str, IsStr: x.IsStr})
		}
		*rp = rows
		return m.TransformRow(ctx, rows, out)
	})
}

// Predict implements appliance.ModelRunner.
func (s *Service) Predict(ctx context.Context, ref string, limits appliance.ModuleLimits, in, out []float64) error {
	lim := Limits{MemoryPages: limits.MemoryPages, Timeout: time.Duration(limits.TimeoutMS) * time.Millisecond}
	return s.call(ctx, ref, len(in), len(out), lim, func(m *Module) error { return m.Predict(ctx, in, out) })
}

// PredictModule runs a model from its bytes, before it is stored: the
// upload flow checks a bundle's sample with it. The runtime keeps the
// compiled module, so serving the version later does not compile again.
func (s *Service) PredictModule(ctx context.Context, wasm []byte, limits appliance.ModuleLimits, in, out []float64) error {
	m, err := s.rt.Load(ctx, wasm, Limits{MemoryPages: limits.MemoryPages, Timeout: time.Duration(limits.TimeoutMS) * time.Millisecond}, len(in), len(out))
	if err != nil {
		return err
	}
	return m.Predict(ctx, in, out)
}

var (
	_ appliance.ModelRunner     = (*Service)(nil)
	_ appliance.ModuleInspector = (*Service)(nil)
	_ appliance.Transformer     = (*Service)(nil)
)
