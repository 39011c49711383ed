package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/mlnode/mlnode/appliance"
)

// Interrupt is how a runtime ends a call that is past its deadline.
type Interrupt int

const (
	// InterruptInstrument rewrites each module at load so that every function
	// entry and loop header checks a per-instance flag, which a watchdog
	// goroutine sets when a call is past its deadline. It costs a few
	// nanoseconds per call and allocates nothing. The default.
	InterruptInstrument Interrupt = iota
	// InterruptContext uses wazero's WithCloseOnContextDone and a
	// context.WithTimeout per call: no rewriting of code, but 1–3 µs and a few
	// allocations per call (wazero#2466).
	InterruptContext
	// interruptNone enforces no deadline at all: for benchmarks only.
	interruptNone
)

func (i Interrupt) String() string {
	switch i {
	case InterruptInstrument:
		return "instrument"
	case InterruptContext:
		return "context"
	case interruptNone:
		return "none"
	}
	return fmt.Sprintf("Interrupt(%d)", int(i))
}

// Defaults of Options.
const (
	DefaultMaxMemoryPages = 512 // 32 MiB
	DefaultTimeout        = 100 * time.Millisecond
	DefaultInitTimeout    = time.Second
	DefaultOutputLimit    = 64 << 10
	maxPages              = 65536 // 4 GiB, wasm32's own limit

	// watchdogInterval is how often the watchdog looks at calls in flight: a
	// call ends at most about this long after its deadline.
	watchdogInterval = time.Millisecond
	// watchdogIdle is how many ticks without a call in flight the watchdog
	// waits before it sleeps until the next call.
	watchdogIdle = 100
)

// Options configure a Runtime. The zero value is usable.
type Options struct {
	// CacheDir holds compiled code across restarts, e.g. <data-dir>/wasm-cache;
	// "" compiles in memory only.
	CacheDir string
	// MaxMemoryPages is the most memory, in 64 KiB pages, any one module may
	// have; Limits.MemoryPages is capped by it. Default 512 (32 MiB).
	MaxMemoryPages uint32
	// PoolSize is the number of instances per loaded module, hence the number
	// of concurrent calls into it. Default runtime.GOMAXPROCS(0).
	PoolSize int
	// DefaultTimeout is the deadline of a call into a module whose Limits do
	// not set one. Default 100ms.
	DefaultTimeout time.Duration
	// InitTimeout is the deadline of an instance's initialization: its start
	// function, _initialize, and the allocation of its buffers. Default 1s.
	InitTimeout time.Duration
	// Interrupt selects the deadline mechanism. Default InterruptInstrument.
	Interrupt Interrupt
	// OutputLimit is how many bytes of a module's fd_write output (stdout and
	// stderr, all instances) are kept; the rest is dropped. Default 64 KiB.
	OutputLimit int
	// Metrics receives the per-module series; nil keeps them in a private set.
	Metrics *metrics.Set
	// Logger receives lifecycle events; nil discards them.
	Logger *slog.Logger
}

// Runtime runs WebAssembly modules under the mlnode/v1 ABI (docs/abi.md). It
// owns one wazero runtime, its compilation cache and the watchdog goroutine.
// It is safe for concurrent use.
type Runtime struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics.Set
	rt      wazero.Runtime
	cache   wazero.CompilationCache
	wasi    map[string]funcType // allowed imports and their signatures
	epoch   time.Time           // origin of the monotonic clock of now()

	mu       sync.Mutex
	closed   bool
	modules  map[moduleKey]*Module
	compiled map[compiledKey]*compiled
	stats    map[string]*moduleMetrics // by sha256
	drains   sync.WaitGroup            // pools closing after Unload

	// The watchdog sees every live instance.
	instMu   sync.Mutex
	insts    []*instance
	byModule sync.Map // api.Module → *instance, for yield
	sleeping atomic.Bool
	wake     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
}

type moduleKey struct {
	sha       string
	pages     uint32
	timeout   time.Duration
	nIn, nOut int
}

type compiledKey struct {
	sha   string
	pages uint32
}

// compiled is a rewritten module compiled by wazero, shared by the pools of
// one sha256 and memory limit.
type compiled struct {
	key   compiledKey
	cm    wazero.CompiledModule
	info  *ModuleInfo
	pages uint32
	refs  int // guarded by Runtime.mu
}

// allowedImports is the import allow-list of docs/abi.md: the WASI functions
// a Go wasip1 reactor needs.
var allowedImports = []string{
	"sched_yield", "proc_exit", "args_get", "args_sizes_get", "clock_time_get",
	"environ_get", "environ_sizes_get", "fd_write", "random_get", "poll_oneoff",
}

const wasiModule = wasi_snapshot_preview1.ModuleName

// Open starts a runtime: the wazero runtime (compiler engine where wazero
// supports it, else the interpreter), its on-disk compilation cache, WASI,
// and the watchdog.
func Open(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.MaxMemoryPages == 0 {
		opts.MaxMemoryPages = DefaultMaxMemoryPages
	}
	if opts.MaxMemoryPages > maxPages {
		return nil, fmt.Errorf("wasm: max memory of %d pages is above %d", opts.MaxMemoryPages, maxPages)
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = runtime.GOMAXPROCS(0)
	}
	if opts.PoolSize < 0 {
		return nil, fmt.Errorf("wasm: pool size %d is negative", opts.PoolSize)
	}
	if opts.DefaultTimeout == 0 {
		opts.DefaultTimeout = DefaultTimeout
	}
	if opts.InitTimeout == 0 {
		opts.InitTimeout = DefaultInitTimeout
	}
	if opts.DefaultTimeout < 0 || opts.InitTimeout < 0 {
		return nil, errors.New("wasm: negative timeout")
	}
	if opts.OutputLimit == 0 {
		opts.OutputLimit = DefaultOutputLimit
	}
	switch opts.Interrupt {
	case InterruptInstrument, InterruptContext, interruptNone:
	default:
		return nil, fmt.Errorf("wasm: unknown interrupt mode %d", int(opts.Interrupt))
	}
	r := &Runtime{
		opts:     opts,
		log:      opts.Logger,
		metrics:  opts.Metrics,
		epoch:    time.Now(),
		modules:  make(map[moduleKey]*Module),
		compiled: make(map[compiledKey]*compiled),
		stats:    make(map[string]*moduleMetrics),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.metrics == nil {
		r.metrics = metrics.NewSet()
	}

	cfg := wazero.NewRuntimeConfig(). // the compiler where supported
						WithCoreFeatures(api.CoreFeaturesV2).
						WithMemoryLimitPages(opts.MaxMemoryPages).
						WithCloseOnContextDone(opts.Interrupt == InterruptContext)
	if opts.CacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: open compilation cache %s: %w", opts.CacheDir, err)
		}
		r.cache = cache
		cfg = cfg.WithCompilationCache(cache)
	}
	r.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		r.closeWazero(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	_, err := r.rt.NewHostModuleBuilder(yieldImport).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(r.yield), nil, []api.ValueType{api.ValueTypeI32}).
		Export(yieldName).
		Instantiate(ctx)
	if err != nil {
		r.closeWazero(ctx)
		return nil, fmt.Errorf("wasm: instantiate host module: %w", err)
	}
	defs := r.rt.Module(wasiModule).ExportedFunctionDefinitions()
	r.wasi = make(map[string]funcType, len(allowedImports))
	for _, name := range allowedImports {
		d, ok := defs[name]
		if !ok {
			r.closeWazero(ctx)
			return nil, fmt.Errorf("BUG: wazero's WASI lacks %s", name)
		}
		r.wasi[name] = funcType{params: valTypes(d.ParamTypes()), results: valTypes(d.ResultTypes())}
	}

	r.metrics.RegisterMetricsWriter(r.writeMetrics)
	wctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.watchdog(wctx)
	r.log.Info("wasm runtime open", "cache_dir", opts.CacheDir, "max_memory_pages", opts.MaxMemoryPages,
		"pool_size", opts.PoolSize, "timeout", opts.DefaultTimeout, "interrupt", opts.Interrupt.String())
	return r, nil
}

func valTypes(ts []api.ValueType) []byte {
	b := make([]byte, len(ts))
	copy(b, ts)
	return b
}

func (r *Runtime) closeWazero(ctx context.Context) {
	_ = r.rt.Close(ctx)
	if r.cache != nil {
		_ = r.cache.Close(ctx)
	}
}

// Close unloads every module, waits until their calls in flight end (calls
// still running when ctx is done are stopped), then stops the watchdog and
// closes wazero.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	mods := r.takeModulesLocked(func(moduleKey) bool { return true })
	clear(r.stats)
	r.mu.Unlock()
	for _, m := range mods {
		r.unload(m)
	}

	drained := make(chan struct{})
	go func() { r.drains.Wait(); close(drained) }()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = fmt.Errorf("wasm: close: %w", ctx.Err())
		r.stopAll()
		<-drained // each pending call now ends at its next check
	}
	r.cancel()
	<-r.done
	if cerr := r.rt.Close(context.Background()); cerr != nil && err == nil {
		err = fmt.Errorf("wasm: close runtime: %w", cerr)
	}
	if r.cache != nil {
		if cerr := r.cache.Close(context.Background()); cerr != nil && err == nil {
			err = fmt.Errorf("wasm: close cache: %w", cerr)
		}
	}
	return err
}

// now is a monotonic clock in nanoseconds since Open; time.Since on a time
// with a monotonic reading reads only the monotonic clock.
func (r *Runtime) now() int64 { return int64(time.Since(r.epoch)) }

// ModuleInfo describes a module that passed Inspect.
type ModuleInfo struct {
	SHA256        string
	Size          int      // bytes
	Kinds         []Kind   // the entry points it exports
	HasBatch      bool     // exports mlnode_predict_batch
	HasInitialize bool     // exports _initialize
	HasStart      bool     // has a start function (run as mlnode.start)
	Imports       []string // "wasi_snapshot_preview1.fd_write", …
	// MinMemoryPages is the memory the module declares at start; MaxMemoryPages
	// its declared maximum, 0 when it declares none.
	MinMemoryPages, MaxMemoryPages uint32
	Functions                      int // defined functions
	Loops                          int // loop headers that check the deadline (0 unless instrumented)
}

// Has reports whether the module exports the entry point of k.
func (i *ModuleInfo) Has(k Kind) bool {
	for _, x := range i.Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Kind is an entry point of the ABI.
type Kind int

const (
	KindModel        Kind = iota // mlnode_predict
	KindTransform                // mlnode_transform
	KindRowTransform             // mlnode_transform_row
)

func (k Kind) String() string {
	switch k {
	case KindModel:
		return "model"
	case KindTransform:
		return "transform"
	case KindRowTransform:
		return "row_transform"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Export names and signatures of the ABI.
const (
	exportMemory       = "memory"
	exportAlloc        = "mlnode_alloc"
	exportPredict      = "mlnode_predict"
	exportPredictBatch = "mlnode_predict_batch"
	exportTransform    = "mlnode_transform"
	exportTransformRow = "mlnode_transform_row"
	exportInitialize   = "_initialize"
)

var (
	sigAlloc   = funcType{params: []byte{valI32}, results: []byte{valI32}}
	sigCall    = funcType{params: []byte{valI32, valI32, valI32, valI32}, results: []byte{valI32}}
	sigBatch   = funcType{params: []byte{valI32, valI32, valI32, valI32, valI32}, results: []byte{valI32}}
	sigInit    = funcType{}
	kindExport = [...]string{KindModel: exportPredict, KindTransform: exportTransform, KindRowTransform: exportTransformRow}
)

func invalidModule(format string, args ...any) error {
	return appliance.Invalid("module", format, args...)
}

// check decodes wasm and checks its imports and exports against the ABI.
func (r *Runtime) check(wasm []byte) (*binaryModule, *ModuleInfo, error) {
	bm, err := decodeModule(wasm)
	if errors.Is(err, errNotWasm) {
		return nil, nil, invalidModule("not a WebAssembly module")
	} else if err != nil {
		return nil, nil, invalidModule("malformed module: %v", err)
	}
	sum := sha256.Sum256(wasm)
	info := &ModuleInfo{SHA256: hex.EncodeToString(sum[:]), Size: len(wasm), Functions: len(bm.funcs), HasStart: bm.hasStart}

	for _, imp := range bm.imports {
		full := imp.module + "." + imp.name
		want, ok := r.wasi[imp.name]
		if imp.module != wasiModule || !ok {
			return nil, nil, invalidModule("import %s is not allowed: a module may import only %s.{%s}",
				full, wasiModule, joinNames(allowedImports))
		}
		if imp.kind != externFunc {
			return nil, nil, invalidModule("import %s is a %s, want a function", full, externName(imp.kind))
		}
		if got := bm.types[imp.typeIndex]; !got.equal(want.params, want.results) {
			return nil, nil, invalidModule("import %s has signature %s, want %s", full, got, want)
		}
		info.Imports = append(info.Imports, full)
	}

	mem, ok := bm.export(exportMemory)
	if !ok {
		return nil, nil, invalidModule("missing export %q", exportMemory)
	}
	if mem.kind != externMemory {
		return nil, nil, invalidModule("export %q is a %s, want a memory", exportMemory, externName(mem.kind))
	}
	if len(bm.memories) != 1 || bm.importedMems != 0 {
		return nil, nil, invalidModule("module must define exactly one memory")
	}
	l := bm.memories[0]
	info.MinMemoryPages = l.min
	if l.hasMax {
		info.MaxMemoryPages = l.max
	}
	if l.shared {
		return nil, nil, invalidModule("shared memory is not supported")
	}

	if bm.hasStart {
		if t, ok := bm.funcTypeOf(bm.start); !ok || !t.equal(nil, nil) {
			return nil, nil, invalidModule("start function must have type () -> ()")
		}
	}

	checkFunc := func(name string, want funcType, required bool) (bool, error) {
		e, ok := bm.export(name)
		if !ok {
			if required {
				return false, invalidModule("missing export %q %s", name, want)
			}
			return false, nil
		}
		if e.kind != externFunc {
			return false, invalidModule("export %q is a %s, want a function", name, externName(e.kind))
		}
		got, ok := bm.funcTypeOf(e.index)
		if !ok {
			return false, invalidModule("export %q names unknown function %d", name, e.index)
		}
		if !got.equal(want.params, want.results) {
			return false, invalidModule("export %q has signature %s, want %s", name, got, want)
		}
		return true, nil
	}
	if _, err := checkFunc(exportAlloc, sigAlloc, true); err != nil {
		return nil, nil, err
	}
	for k, name := range kindExport {
		ok, err := checkFunc(name, sigCall, false)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			info.Kinds = append(info.Kinds, Kind(k))
		}
	}
	if len(info.Kinds) == 0 {
		return nil, nil, invalidModule("module exports none of %s, %s, %s", exportPredict, exportTransform, exportTransformRow)
	}
	if info.HasBatch, err = checkFunc(exportPredictBatch, sigBatch, false); err != nil {
		return nil, nil, err
	}
	if info.HasBatch && !info.Has(KindModel) {
		return nil, nil, invalidModule("module exports %s without %s", exportPredictBatch, exportPredict)
	}
	if info.HasInitialize, err = checkFunc(exportInitialize, sigInit, false); err != nil {
		return nil, nil, err
	}
	return bm, info, nil
}

func joinNames(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ","
		}
		s += n
	}
	return s
}

// compile rewrites a checked module for a memory limit and compiles it.
func (r *Runtime) compile(ctx context.Context, bm *binaryModule, info *ModuleInfo, pages uint32) (*compiled, error) {
	if info.MinMemoryPages > pages {
		return nil, invalidModule("module needs %d pages of memory at start, above its limit of %d pages", info.MinMemoryPages, pages)
	}
	bin, stats, err := rewriteModule(bm, rewriteOptions{memoryMax: pages, checks: r.opts.Interrupt == InterruptInstrument})
	if err != nil {
		return nil, invalidModule("%v", err)
	}
	info.Loops = stats.loops
	start := time.Now()
	cm, err := r.rt.CompileModule(ctx, bin)
	if err != nil {
		return nil, invalidModule("invalid module: %v", err)
	}
	r.log.Debug("wasm module compiled", "module", info.SHA256[:12], "size", info.Size, "loops", stats.loops,
		"elapsed", time.Since(start))
	return &compiled{key: compiledKey{info.SHA256, pages}, cm: cm, info: info, pages: pages}, nil
}

// Inspect validates a module without keeping it: it decodes it, checks its
// imports against the allow-list and its exports against the ABI, compiles
// it (which fills the on-disk cache for a later Load with default limits) and
// initializes one instance. Faults of the module are *appliance.Error with
// code EINVALID and field "module".
func (r *Runtime) Inspect(ctx context.Context, wasm []byte) (*ModuleInfo, error) {
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	bm, info, err := r.check(wasm)
	if err != nil {
		return nil, err
	}
	c, err := r.compile(ctx, bm, info, r.opts.MaxMemoryPages)
	if err != nil {
		return nil, err
	}
	defer c.cm.Close(ctx)
	inst, err := r.instantiate(ctx, c, io.Discard)
	if err != nil {
		return nil, invalidModule("module failed to initialize: %s", message(err))
	}
	r.closeInstance(inst)
	return info, nil
}

func (r *Runtime) checkOpen() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errClosed
	}
	return nil
}

// Limits bound one loaded module. Zero fields take the runtime's defaults.
type Limits struct {
	// MemoryPages caps the module's memory in 64 KiB pages; at most
	// Options.MaxMemoryPages.
	MemoryPages uint32
	// Timeout is the deadline of each call.
	Timeout time.Duration
}

// Load checks and compiles a module (once per sha256 and memory limit; from
// the on-disk cache after a restart) and returns its pool of instances for nIn
// inputs and nOut outputs, initializing the first instance at once. Loading
// the same module with the same limits and counts again returns the same
// *Module.
func (r *Runtime) Load(ctx context.Context, wasm []byte, limits Limits, nIn, nOut int) (*Module, error) {
	pages := limits.MemoryPages
	if pages == 0 {
		pages = r.opts.MaxMemoryPages
	}
	if pages > r.opts.MaxMemoryPages {
		return nil, appliance.Invalid("memory_pages", "memory limit of %d pages is above the node's maximum of %d pages",
			pages, r.opts.MaxMemoryPages)
	}
	timeout := limits.Timeout
	if timeout == 0 {
		timeout = r.opts.DefaultTimeout
	}
	if timeout < 0 {
		return nil, appliance.Invalid("timeout", "timeout %s is negative", timeout)
	}
	if nIn < 0 || nOut < 1 || nIn > 1<<20 || nOut > 1<<20 {
		return nil, appliance.Invalid("module", "bad counts: %d inputs, %d outputs", nIn, nOut)
	}
	sum := sha256.Sum256(wasm)
	key := moduleKey{sha: hex.EncodeToString(sum[:]), pages: pages, timeout: timeout, nIn: nIn, nOut: nOut}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed
	}
	if m := r.modules[key]; m != nil {
		r.mu.Unlock()
		return m, nil
	}
	c := r.compiled[compiledKey{key.sha, pages}]
	if c != nil {
		c.refs++ // held while this Load runs
	}
	r.mu.Unlock()

	if c == nil {
		bm, info, err := r.check(wasm)
		if err != nil {
			return nil, err
		}
		if c, err = r.compile(ctx, bm, info, pages); err != nil {
			return nil, err
		}
		r.mu.Lock()
		if other := r.compiled[c.key]; other != nil { // a concurrent Load won
			_ = c.cm.Close(ctx)
			c = other
		} else {
			r.compiled[c.key] = c
		}
		c.refs++
		r.mu.Unlock()
	}

	m := r.newModule(c, key)
	inst, err := m.instantiate(ctx)
	if err != nil {
		r.release(c)
		if cerr := ctx.Err(); cerr != nil {
			return nil, canceled(cerr)
		}
		return nil, invalidModule("module failed to initialize: %s", message(err))
	}

	r.mu.Lock()
	if other := r.modules[key]; other != nil || r.closed {
		r.mu.Unlock()
		r.closeInstance(inst)
		r.release(c)
		if other == nil {
			return nil, errClosed
		}
		return other, nil
	}
	stats := r.stats[key.sha]
	if stats == nil {
		stats = newModuleMetrics(key.sha)
		r.stats[key.sha] = stats
	}
	m.stats = stats
	stats.add(m)
	m.slots <- inst
	for i := 1; i < cap(m.slots); i++ {
		m.slots <- nil // instantiated on first use
	}
	r.modules[key] = m // published only when ready
	r.mu.Unlock()
	r.log.Info("wasm module loaded", "module", key.sha[:12], "memory_pages", pages, "timeout", timeout,
		"inputs", nIn, "outputs", nOut)
	return m, nil
}

// release drops a reference to a compiled module, closing it with the last.
func (r *Runtime) release(c *compiled) {
	r.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last && r.compiled[c.key] == c {
		delete(r.compiled, c.key)
	}
	r.mu.Unlock()
	if last {
		_ = c.cm.Close(context.Background())
	}
}

// Unload removes every pool of the module with that sha256: new calls fail,
// calls in flight finish, and its instances and metrics are then released.
func (r *Runtime) Unload(sha256 string) {
	r.mu.Lock()
	mods := r.takeModulesLocked(func(k moduleKey) bool { return k.sha == sha256 })
	delete(r.stats, sha256)
	r.mu.Unlock()
	for _, m := range mods {
		r.unload(m)
	}
	if len(mods) > 0 {
		r.log.Info("wasm module unloaded", "module", shortSHA(sha256))
	}
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func (r *Runtime) takeModulesLocked(match func(moduleKey) bool) []*Module {
	var mods []*Module
	for k, m := range r.modules {
		if match(k) {
			mods = append(mods, m)
			delete(r.modules, k)
		}
	}
	return mods
}

// unload closes a module's pool in the background once its calls end.
func (r *Runtime) unload(m *Module) {
	if !m.closed.CompareAndSwap(false, true) {
		return
	}
	close(m.done)
	r.drains.Add(1)
	go func() {
		defer r.drains.Done()
		// As a waiter, the drain makes every release use slots; then it
		// collects each token once, from hot or from slots.
		m.waiting.Add(1)
		n := 0
		for n < cap(m.slots) {
			inst := m.takeHot()
			if inst == nil {
				inst = <-m.slots
			}
			if inst != nil {
				r.closeInstance(inst)
				m.live.Add(-1)
			}
			n++
		}
		m.stats.remove(m)
		r.release(m.c)
	}()
}

// writeMetrics writes the series of every loaded module, in a stable order.
func (r *Runtime) writeMetrics(w io.Writer) {
	r.mu.Lock()
	sets := make([]*moduleMetrics, 0, len(r.stats))
	for _, s := range r.stats {
		sets = append(sets, s)
	}
	r.mu.Unlock()
	sort.Slice(sets, func(i, j int) bool { return sets[i].label < sets[j].label })
	for _, s := range sets {
		s.set.WritePrometheus(w)
	}
}
