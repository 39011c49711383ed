package appliance

import (
	"context"
	"io"
)

// EventCursor walks the offline events of one view version in (entity key,
// event time, ingest sequence) order: the order a point-in-time join, an
// export or a materialization wants. It sees the events stored when it was
// opened; events ingested later are not part of its snapshot.
//
// Values are decoded only on request, so that a join can pass over the
// events it does not need at the cost of a key comparison.
type EventCursor interface {
	// Next moves to the next event and reports whether there is one; at the
	// end or on an error it returns false (see Err).
	Next() bool
	// SeekKey makes the first event whose entity key is >= key current and
	// reports whether there is one; Next then moves past it.
	SeekKey(key []byte) bool
	// Key is the current event's entity key; valid until the next move.
	Key() []byte
	// EventTime is the current event's time in unix microseconds.
	EventTime() int64
	// Seq is the current event's ingest sequence.
	Seq() uint64
	// Values decodes the current event's values (one per feature of the
	// version) into dst[:0] and returns it.
	Values(dst []Value) ([]Value, error)
	// Keep sets the current event's values aside (a copy of their encoded
	// form, cheaper than decoding); KeptValues decodes the last ones kept.
	// A point-in-time join passes over many events to find the last one
	// before a time, and decodes only that one.
	Keep()
	KeptValues(dst []Value) ([]Value, error)
	// Release ends the cursor's read transaction now; the next use takes a
	// new one at the same place. Call it before writing to the store, or
	// before blocking (on a slow client), while holding a cursor: a write
	// that grows the store's file waits for every read transaction.
	Release()
	// Err is the error that stopped the cursor, if any.
	Err() error
	// Close releases the cursor; it is safe to call more than once.
	Close() error
}

// OfflineStore reads and maintains the offline log of every view version.
type OfflineStore interface {
	// Events opens a cursor over a view version's events.
	Events(ctx context.Context, view *FeatureView) (EventCursor, error)
	// EventsAfter opens a cursor over the events ingested after afterSeq,
	// in the same order, at a cost that follows their number rather than
	// the log's size: incremental passes use it.
	EventsAfter(ctx context.Context, view *FeatureView, afterSeq uint64) (EventCursor, error)
	// ScanIngested calls fn for every event of a view version with an
	// ingest sequence above afterSeq, in no particular order, until fn
	// returns false.
	ScanIngested(ctx context.Context, view *FeatureView, afterSeq uint64, fn func(seq uint64, row Row) bool) error
	// LastSeq is the highest ingest sequence given to any row so far.
	LastSeq(ctx context.Context) (uint64, error)
	// WriteOnline makes rows the online values of their entities where they
	// are newer than (or as new as, and ingested after) what is there:
	// "newer or equal wins". It reports how many rows it applied. The write
	// is durable when it returns, together with the job checkpoint and the
	// watermark it carries: jobs commit their progress with their data.
	WriteOnline(ctx context.Context, w *OnlineWrite) (int, error)
	// Watermark is the ingest sequence through which a view version's
	// events have been materialized incrementally (0: never).
	Watermark(ctx context.Context, view *FeatureView) (uint64, error)
	// DeleteEventsBefore drops a view version's offline events whose event
	// time is before cutoff (unix microseconds): retention.
	DeleteEventsBefore(ctx context.Context, view *FeatureView, cutoff int64) (int, error)
	// Backup writes a consistent snapshot of the whole store to w while
	// writes continue, and returns its size.
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// OnlineWrite is one chunk of a materialization.
type OnlineWrite struct {
	View *FeatureView
	Rows []SeqRow
	// JobID, when set, has Checkpoint committed as that job's resume state
	// in the same transaction.
	JobID      string
	Checkpoint []byte
	// Watermark, when not zero, becomes the view version's watermark.
	Watermark uint64
}

// SeqRow is a row with the ingest sequence it was given: materialization
// needs it to break ties on event time the way ingestion does.
type SeqRow struct {
	Row
	Seq uint64
}
