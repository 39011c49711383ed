package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mlnode/mlnode/appliance"
)

// SchemaVersion is the layout this code reads and writes.
const SchemaVersion = 4

// ErrLocked means another process holds the database file.
var ErrLocked = errors.New("data directory is in use by another process")

// ErrClosed is returned by writes after Close has begun.
var ErrClosed = appliance.Errorf(appliance.EUNAVAILABLE, "the node is shutting down")

var (
	bucketMeta        = []byte("meta")
	bucketEntities    = []byte("entities")
	bucketViews       = []byte("views")
	bucketServices    = []byte("services")
	bucketTokens      = []byte("tokens")
	bucketAudit       = []byte("audit")
	bucketOnline      = []byte("online")
	bucketViewStats   = []byte("view_stats")
	bucketIdempotency = []byte("idempotency")
	bucketBlobs       = []byte("blobs")
	bucketTelemetry   = []byte("telemetry")
	bucketModules     = []byte("modules")

	keySchemaVersion = []byte("schema_version")
	keyIngestSeq     = []byte("ingest_seq")
	keyAuditHead     = []byte("audit_head")
)

// Options configures a Store. Zero values take the defaults.
type Options struct {
	LockTimeout     time.Duration // default 3s
	Codec           Codec         // default PlainCodec
	Metrics         *metrics.Set  // where the store registers its metrics; nil: none exported
	Logger          *slog.Logger
	Now             func() time.Time
	MaxWriteGroup   int           // write functions per transaction, default 256
	TelemetryBuffer int           // records held before drops, default 65536
	TelemetryFlush  time.Duration // default 1s
	IdempotencyTTL  time.Duration // how long a stored answer is replayed, default 24h
	JanitorInterval time.Duration // how often expired idempotency answers and telemetry are purged, default 10m
	// TelemetryRetention is how long prediction and exposure logs are
	// kept, default 30 days.
	TelemetryRetention time.Duration
	InitialMmapBytes   int // default 256 MiB
	Compaction         CompactionOptions
	// OnlineCacheBytes bounds the memory of recently read online rows kept
	// for get-online-features and predict; default 64 MiB, negative: no
	// cache.
	OnlineCacheBytes int64
	// FoldMaxPages is how many pages one fold of experiment events may
	// change before the next fold takes fewer events; default 32768 (a
	// transaction of about 128 MiB of pages).
	FoldMaxPages int
	// RerunWritesForTesting runs every batch of writes twice, rolling the
	// first run back, as the group commit does when one write of a batch
	// fails. A write whose function is not safe to run again then shows in
	// any test; storetest sets it when MLNODE_TEST_RERUN_WRITES=1.
	RerunWritesForTesting bool
}

// Store is mlnode's storage, one bbolt file. It implements
// appliance.FeatureRegistry, FeatureStore, TokenService and AuditLog.
type Store struct {
	path  string
	db    *bolt.DB
	codec Codec
	opts  Options
	log   *slog.Logger
	now   func() time.Time

	writes   chan *writeOp
	stopping chan struct{}
	closed   sync.Once
	writerWG sync.WaitGroup
	janitor  sync.WaitGroup
	cancel   context.CancelFunc

	compactorWG  sync.WaitGroup
	compactMu    sync.Mutex // one compaction at a time
	compactNudge chan struct{}
	// enqueue guards isClosed so that no write enters the queue after the
	// writer has drained it for the last time.
	enqueue  sync.RWMutex
	isClosed bool

	registry atomic.Pointer[registryState]
	tokens   atomic.Pointer[tokenState]

	telemetry *Telemetry
	online    *onlineCache // nil: off
	foldCap   atomic.Int64 // events per fold, adapted to its cost (adaptFoldCap); 0: the caller's limit

	rowsWritten *metrics.Counter
	commits     *metrics.Counter
	writeFns    *metrics.Counter
	flushes     *metrics.Counter
	merges      *metrics.Counter
}

type writeOp struct {
	fn    func(tx *bolt.Tx) error
	after func() // runs on the writer goroutine after a successful commit
	done  chan error
}

// Open opens or creates the store in dir and starts its writer. ctx bounds
// the opening only.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 3 * time.Second
	}
	if opts.Codec == nil {
		opts.Codec = PlainCodec{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxWriteGroup <= 0 {
		opts.MaxWriteGroup = 256
	}
	if opts.TelemetryBuffer <= 0 {
		opts.TelemetryBuffer = 65536
	}
	if opts.TelemetryFlush <= 0 {
		opts.TelemetryFlush = time.Second
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = 24 * time.Hour
	}
	if opts.TelemetryRetention <= 0 {
		opts.TelemetryRetention = 30 * 24 * time.Hour
	}
	if opts.JanitorInterval <= 0 {
		opts.JanitorInterval = 10 * time.Minute
	}
	opts.Compaction.defaults()
	if opts.InitialMmapBytes <= 0 {
		opts.InitialMmapBytes = 256 << 20
	}
	if opts.FoldMaxPages <= 0 {
		opts.FoldMaxPages = 32768
	}
	if opts.OnlineCacheBytes == 0 {
		opts.OnlineCacheBytes = 64 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, "mlnode.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.LockTimeout,
		InitialMmapSize: opts.InitialMmapBytes,
		FreelistType:    bolt.FreelistMapType,
		// The freelist is rebuilt on open instead of written on every
		// commit: cheaper ingest, a slower start on a big file.
		NoFreelistSync: true,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (waited %s for its lock; is another mlnode running on this data dir?)", path, ErrLocked, opts.LockTimeout)
	} else if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{
		path: path, db: db, codec: opts.Codec, opts: opts, log: opts.Logger, now: opts.Now,
		writes:       make(chan *writeOp, opts.MaxWriteGroup),
		stopping:     make(chan struct{}),
		compactNudge: make(chan struct{}, 1),
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	s.online = newOnlineCache(opts.OnlineCacheBytes, set)
	s.rowsWritten = set.NewCounter("mlnode_store_rows_written_total")
	s.commits = set.NewCounter("mlnode_store_commits_total")
	s.writeFns = set.NewCounter("mlnode_store_write_requests_total")
	s.flushes = set.NewCounter(`mlnode_store_compactions_total{kind="flush"}`)
	s.merges = set.NewCounter(`mlnode_store_compactions_total{kind="merge"}`)
	set.NewGauge("mlnode_store_file_bytes", func() float64 {
		if fi, err := os.Stat(path); err == nil {
			return float64(fi.Size())
		}
		return 0
	})
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.db.Update(s.dropBuildingRuns); err != nil {
		db.Close()
		return nil, fmt.Errorf("recover interrupted merges: %w", err)
	}
	if err := s.loadCaches(); err != nil {
		db.Close()
		return nil, err
	}
	s.writerWG.Add(1)
	go s.writer()
	s.telemetry = newTelemetry(s, set)
	var janitorCtx context.Context
	janitorCtx, s.cancel = context.WithCancel(context.Background())
	s.janitor.Add(1)
	go s.runJanitor(janitorCtx)
	s.compactorWG.Add(1)
	go s.runCompactor(janitorCtx)
	return s, nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close stops the telemetry flusher (flushing what it holds), lets queued
// writes finish, and closes the file.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		s.cancel()
		s.janitor.Wait()
		s.compactorWG.Wait()
		s.telemetry.close()
		s.enqueue.Lock()
		s.isClosed = true
		s.enqueue.Unlock()
		close(s.stopping)
		s.writerWG.Wait()
		err = s.db.Close()
	})
	return err
}

// runJanitor purges expired idempotency answers until ctx ends, in small
// transactions so that it never holds the writer for long.
func (s *Store) runJanitor(ctx context.Context) {
	defer s.janitor.Done()
	tick := time.NewTicker(s.opts.JanitorInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for {
			n, err := s.purgeIdempotency(ctx, 1000)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("purge idempotency answers", "err", err)
				}
				break
			}
			if n < 1000 {
				break
			}
		}
		for {
			n, err := s.telemetry.purge(ctx, s.opts.TelemetryRetention, 10000)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("purge telemetry", "err", err)
				}
				break
			}
			if n < 10000 {
				break
			}
		}
	}
}

// migrate brings the file's layout to SchemaVersion. Each step runs in the
// same transaction as the version bump, so a crash mid-migration leaves the
// old layout intact.
func (s *Store) migrate(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		var version uint32
		if v := meta.Get(keySchemaVersion); v != nil {
			version = binary.BigEndian.Uint32(v)
		}
		if version > SchemaVersion {
			return fmt.Errorf("store %s has schema version %d, newer than this binary's %d: upgrade mlnode", s.path, version, SchemaVersion)
		}
		for ; version < SchemaVersion; version++ {
			if err := migrations[version](tx); err != nil {
				return fmt.Errorf("migrate store to schema %d: %w", version+1, err)
			}
			s.log.Info("store migrated", "schema_version", version+1)
		}
		return meta.Put(keySchemaVersion, binary.BigEndian.AppendUint32(nil, SchemaVersion))
	})
}

// migrations[i] moves the layout from schema i to i+1.
var migrations = []func(tx *bolt.Tx) error{
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEntities, bucketViews, bucketServices, bucketTokens, bucketAudit,
			[]byte("offline"), bucketOnline, []byte("ingest_index"), bucketViewStats, bucketIdempotency, bucketBlobs, bucketTelemetry} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	},
	// 2: module metadata beside the content-addressed blobs.
	func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketModules)
		return err
	},
	// 3: the offline log becomes a tail and sorted runs (offline.go).
	migrateToEvents,
	// 4: the model registry (models.go).
	func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketModels)
		return err
	},
}

// update runs fn in a group-committed write transaction and returns once it
// is durable. after, if not nil, runs after the commit on the writer
// goroutine, in commit order. The wait is not cut short by ctx once the
// write is queued: a caller must not report failure for a write that lands.
func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error, after func()) error {
	op := &writeOp{fn: fn, after: after, done: make(chan error, 1)}
	s.enqueue.RLock()
	if s.isClosed {
		s.enqueue.RUnlock()
		return ErrClosed
	}
	select {
	case s.writes <- op:
		s.enqueue.RUnlock()
	case <-ctx.Done():
		s.enqueue.RUnlock()
		return ctx.Err()
	}
	return <-op.done
}

func (s *Store) writer() {
	defer s.writerWG.Done()
	group := make([]*writeOp, 0, s.opts.MaxWriteGroup)
	for {
		select {
		case op := <-s.writes:
			group = append(group[:0], op)
		drain:
			for len(group) < s.opts.MaxWriteGroup {
				select {
				case op := <-s.writes:
					group = append(group, op)
				default:
					break drain
				}
			}
			s.commit(group)
		case <-s.stopping:
			// Answer what was queued before the stop, then exit.
			for {
				select {
				case op := <-s.writes:
					s.commit([]*writeOp{op})
				default:
					return
				}
			}
		}
	}
}

// commit runs a group in one transaction. If one function fails, the
// transaction is rolled back, that caller gets its error and the rest are
// tried again without it.
// errRerun rolls back the first run of a batch under RerunWritesForTesting.
var errRerun = errors.New("store: rerun for testing")

// rerunAllForTesting is RerunWritesForTesting for every store; only this
// package's tests set it (MLNODE_TEST_RERUN_WRITES=1).
var rerunAllForTesting bool

func (s *Store) commit(group []*writeOp) {
	if s.opts.RerunWritesForTesting || rerunAllForTesting {
		_ = s.db.Update(func(tx *bolt.Tx) error {
			for _, op := range group {
				if err := op.fn(tx); err != nil {
					return err
				}
			}
			return errRerun
		})
	}
	for len(group) > 0 {
		failed := -1
		var failure error
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, op := range group {
				if err := op.fn(tx); err != nil {
					failed, failure = i, err
					return err
				}
			}
			return nil
		})
		if err == nil {
			s.commits.Inc()
			s.writeFns.Add(len(group))
			for _, op := range group {
				if op.after != nil {
					op.after()
				}
				op.done <- nil
			}
			return
		}
		if failed < 0 {
			// The commit itself failed (I/O): nothing was written.
			for _, op := range group {
				op.done <- fmt.Errorf("commit: %w", err)
			}
			return
		}
		group[failed].done <- failure
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(tx *bolt.Tx) error) error { return s.db.View(fn) }

// putJSON seals and stores v as JSON.
func (s *Store) putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Put(key, s.codec.Seal(nil, raw))
}

// getJSON opens and decodes the value at key into v; false if absent.
func (s *Store) getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	return true, s.decodeJSON(raw, v)
}

func (s *Store) decodeJSON(sealed []byte, v any) error {
	plain, err := s.codec.Open(nil, sealed)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, v)
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// appendTime encodes unix microseconds so that byte order is time order.
func appendTime(dst []byte, micros int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(micros)^(1<<63))
}

func readTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// audit appends an audit entry in tx, chaining it to the previous one.
func (s *Store) audit(ctx context.Context, tx *bolt.Tx, rec appliance.AuditRecord) error {
	e, err := appliance.NewAuditEntry(ctx, rec, s.now())
	if err != nil {
		return fmt.Errorf("audit %s: %w", rec.Action, err)
	}
	b := tx.Bucket(bucketAudit)
	meta := tx.Bucket(bucketMeta)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	e.Seq = seq
	e.PrevHash = string(meta.Get(keyAuditHead))
	e.Hash = e.ComputeHash()
	b.FillPercent = 1 // append-only
	if err := s.putJSON(b, u64(seq), e); err != nil {
		return err
	}
	return meta.Put(keyAuditHead, []byte(e.Hash))
}

// lazyBuckets returns a root bucket and its named children, created on
// first use in a write transaction (stores made before them need no
// migration); in a read transaction of a store that has none, ok is false.
func lazyBuckets(tx *bolt.Tx, root []byte, children ...[]byte) (*bolt.Bucket, []*bolt.Bucket, bool, error) {
	subs := make([]*bolt.Bucket, len(children))
	if !tx.Writable() {
		r := tx.Bucket(root)
		if r == nil {
			return nil, subs, false, nil
		}
		for i, k := range children {
			subs[i] = r.Bucket(k)
		}
		return r, subs, true, nil
	}
	r, err := tx.CreateBucketIfNotExists(root)
	if err != nil {
		return nil, subs, false, err
	}
	for i, k := range children {
		if subs[i], err = r.CreateBucketIfNotExists(k); err != nil {
			return nil, subs, false, err
		}
	}
	return r, subs, true, nil
}
