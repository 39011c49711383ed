// Package store implements mlnode's storage interfaces on one bbolt file,
// <data-dir>/mlnode.db.
//
// # Buckets and keys
//
// Keys are order-preserving so that scans by entity and time are cursor
// seeks: integers are big-endian (signed ones with the sign bit flipped),
// strings inside composite keys are uvarint-length-prefixed. Root buckets:
//
//	meta          "schema_version" → u32; "ingest_seq" → u64 (last ingest
//	              sequence handed out); "audit_head" → hash of the last audit entry
//	entities      name → Entity (JSON)
//	views         name → bucket { "meta" → view metadata (JSON),
//	              "v" u32(version) → version schema (JSON) }
//	services      name → FeatureService (JSON)
//	tokens        name → token record (JSON, with the secret's SHA-256)
//	audit         u64(seq) → AuditEntry (JSON)
//	events        "view@N" → bucket { the offline log, a small LSM tree (offline.go):
//	                tail → { u64(seq) → entity key | i64(event µs) | row values },
//	                runs → { u64(run id) → { entity key | i64(event µs) | u64(seq) → row values } },
//	                meta → run list (level, rows, sequence range), tail row count }
//	              "everything ingested since N", late events included, is a seek in the
//	              tail plus a filtered pass over the runs whose sequence range reaches N
//	online        "view@N" → bucket { entity key → i64(event µs) | u64(seq) | row values }
//	view_stats    "view@N" → u64 offline rows | u64 online rows | u64 last seq
//	feature_stats "view@N" → uvarint header length | header (JSON: through seq,
//	              rows, the version's creation time) | featstats state (binary),
//	              sealed as one; created by the first write (stats.go)
//	idempotency   scope|key → stored answer (JSON)
//	blobs         sha256 (32 bytes) → module bytes
//	modules       hex sha256 → Module metadata (JSON)        (schema 2)
//	models        name → bucket { meta, versions, digests, aliases, history } (schema 4,
//	              models.go); bundles are blobs keyed by the archive's sha256
//	telemetry     kind → bucket { u64(seq) → record }: prediction and exposure logs
//	schedules     { defs → name → Schedule (JSON), state → name → ScheduleState (JSON),
//	              runs → name → bucket { u64(run id) → ScheduleRun (JSON) } }
//	              (schedules.go; created by the first write, no migration). Run ids
//	              come from the root bucket's sequence, so they are never reused; each
//	              schedule keeps its newest 1000 runs, and its runs and state go with it
//	jobs          u64(job number) → Job (JSON), with its checkpoint (jobs.go; created
//	              by the first job); the newest 10,000 are kept
//	erasures      "view@N" → bucket { u64(n) → entity name, 0, encoded key, u64(the
//	              version's last ingest sequence then) }: tombstones of erased
//	              entities, so that a materialization that scanned before an erasure
//	              does not write the erased rows back online (features.go; created by
//	              the first erasure, deleted with its view)
//	watermarks    "view@N" → u64: the ingest sequence through which the version was
//	              materialized incrementally, written with the last chunk (jobs.go)
//	webhooks      { defs → name → Webhook (JSON, signing secret included),
//	              deliveries → name → bucket { u64(id) → delivery (JSON, payload included) },
//	              due → i64(next attempt µs) | u64(id) → webhook name }
//	              (webhooks.go; created by the first write, no migration). The outbox:
//	              a delivery is committed before Notify returns, and every pending one
//	              is in the due index, which the sender seeks instead of scanning
//	              histories. Each webhook keeps its newest 1000 deliveries, and older
//	              ones while pending; ids come from the root bucket's sequence
//	outcome_log, outcome_rows, outcome_runs, event_ids, event_ids_t, exp_units,
//	exp_aggs, exp_meta
//	              experiment data (expdata.go, expdata_runs.go; created by the first
//	              write, no migration): events as received, folded in batches into raw
//	              outcomes (sorted runs per metric), per-unit states and aggregates
//
// The entity key is the concatenation of appliance.AppendEntityKeyPart of
// each join key. Row values are encoded by encodeValues: per feature a kind
// byte and its payload, in schema order.
//
// Every value written passes through the Codec (seal on put, open on get):
// the one place where encryption at rest goes. Keys are not sealed. The
// plain codec prefixes a format byte (0) so that a sealed format can be told
// apart later.
//
// # Writes
//
// All writes go through one writer goroutine that drains a queue and commits
// what it found in one bbolt transaction (group commit): concurrent requests
// share one fsync, and each caller returns only after its transaction is
// durable. A write function that fails aborts the group; the writer answers
// the failed one and re-runs the others, so write functions may run more than
// once and must have no side effects outside the transaction. In-memory
// caches change in after-commit hooks, run by the writer in commit order.
// The online row cache (onlinecache.go) is the exception: writers of online
// rows mark it before they queue and after their commit, a sequence lock
// that keeps reads from returning a row older than an acknowledged write.
//
// # Compaction
//
// Ingest appends to a view version's tail in sequence order, which costs the
// same whatever the store's size. A compactor goroutine (owned by the Store,
// stopped by Close) moves the oldest tail rows into a new sorted run in one
// transaction once the tail holds CompactionOptions.FlushRows, and merges
// MergeFanIn runs of one level into one of the next, copying in chunks of
// MergeChunkRows per transaction. A run being built is invisible to readers
// until a last transaction publishes it and drops its sources; a merge cut
// short by a crash is dropped at the next open.
//
// # Caveats
//
//   - bbolt's file lock makes a second process wait; Open gives up after
//     Options.LockTimeout with ErrLocked.
//   - Values read in a transaction are valid only inside it: decoders copy.
//   - Entity keys are part of bbolt keys and so are not sealed by the codec.
//   - Webhook secrets are stored as they are, not hashed like token secrets,
//     because every delivery is signed with them: only the codec protects
//     them at rest.
//   - Telemetry is written asynchronously and may be lost on a crash (up to
//     one flush interval); it is counted when dropped, never blocks a caller.
package store
