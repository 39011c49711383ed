package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
)

// offlineKey is entity key | event time | ingest sequence: one entity's
// events are adjacent and in time order, ties in ingest order.
func appendOfflineKey(dst, entityKey []byte, eventMicros int64, seq uint64) []byte {
	dst = append(dst, entityKey...)
	dst = appendTime(dst, eventMicros)
	return binary.BigEndian.AppendUint64(dst, seq)
}

type idempotencyRecord struct {
	BodyHash []byte    `json:"body_sha256"`
	Response []byte    `json:"response"`
	At       time.Time `json:"at"`
}

// viewCounts is the value of view_stats.
type viewCounts struct{ offline, online, lastSeq uint64 }

func readCounts(b *bolt.Bucket, key []byte) viewCounts {
	v := b.Get(key)
	if len(v) != 24 {
		return viewCounts{}
	}
	return viewCounts{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), binary.BigEndian.Uint64(v[16:])}
}

func (c viewCounts) bytes() []byte {
	b := binary.BigEndian.AppendUint64(nil, c.offline)
	b = binary.BigEndian.AppendUint64(b, c.online)
	return binary.BigEndian.AppendUint64(b, c.lastSeq)
}

// WriteRows implements appliance.FeatureStore.
//
// Rows are numbered with consecutive ingest sequences in input order, then
// written in key order (entity, time, sequence), which keeps bbolt's page
// writes local. Only the last row of each entity in that order can become
// the online value, and it does if it is newer than or as new as the stored
// one: a late event never overwrites a newer value, and a tie goes to the
// later-ingested row.
func (s *Store) WriteRows(ctx context.Context, req *appliance.WriteRequest) (*appliance.WriteResult, error) {
	view := req.View
	viewKey := []byte(view.Key())
	defer s.online.writeView(view.Key())() // see onlineCache
	n := len(req.Rows)
	// Sort once outside the transaction; sequences are added inside it.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ra, rb := &req.Rows[a], &req.Rows[b]
		if c := bytes.Compare(ra.Key, rb.Key); c != 0 {
			return c
		}
		switch {
		case ra.EventTime < rb.EventTime:
			return -1
		case ra.EventTime > rb.EventTime:
			return 1
		}
		return 0 // stable: input order, which is sequence order
	})
	// Tail values are encoded and sealed outside the transaction, packed
	// into one arena: bbolt needs values to stay valid until the commit, and
	// slices of an arena that grew still point at live memory.
	encoded := make([][]byte, n)
	var plain, arena []byte
	for i := range req.Rows {
		plain = appendTailValue(plain[:0], req.Rows[i].Key, req.Rows[i].EventTime, req.Rows[i].Values)
		if arena == nil {
			arena = make([]byte, 0, (len(plain)+16)*n)
		}
		start := len(arena)
		arena = s.codec.Seal(arena, plain)
		encoded[i] = arena[start:len(arena):len(arena)]
	}
	res := &appliance.WriteResult{}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		*res = appliance.WriteResult{}
		if req.Idempotency != nil {
			if rec, ok, err := s.idempotency(tx, req.Idempotency.Key); err != nil {
				return err
			} else if ok {
				if !bytes.Equal(rec.BodyHash, req.Idempotency.BodyHash[:]) {
					return idempotencyConflict()
				}
				res.Replayed, res.Duplicate = rec.Response, true
				return nil
			}
		}
		events := tx.Bucket(bucketEvents).Bucket(viewKey)
		online := tx.Bucket(bucketOnline).Bucket(viewKey)
		if events == nil || online == nil {
			return appliance.NotFound("feature view", view.Key())
		}
		tail := events.Bucket(keyTail)
		tail.FillPercent = 1 // sequences only grow
		meta := tx.Bucket(bucketMeta)
		var first uint64 = 1
		if v := meta.Get(keyIngestSeq); v != nil {
			first = binary.BigEndian.Uint64(v) + 1
		}
		stats := tx.Bucket(bucketViewStats)
		counts := readCounts(stats, viewKey)
		// The tail takes every row in sequence order: appends at the end of
		// the tree, whatever its size.
		var seqKey [8]byte
		for i := range req.Rows {
			binary.BigEndian.PutUint64(seqKey[:], first+uint64(i))
			if err := tail.Put(seqKey[:], encoded[i]); err != nil {
				return fmt.Errorf("append offline row: %w", err)
			}
		}
		onlineVal := make([]byte, 0, 256)
		var onlineArena []byte
		for pos, i := range order {
			row := &req.Rows[i]
			seq := first + uint64(i)
			lastOfEntity := pos == n-1 || !bytes.Equal(req.Rows[order[pos+1]].Key, row.Key)
			if req.OfflineOnly || !lastOfEntity {
				continue
			}
			if old := online.Get(row.Key); old != nil {
				plain, err := s.codec.Open(onlineVal[:0], old)
				if err != nil || len(plain) < 16 {
					return fmt.Errorf("online row of %s: corrupt (%v)", view.Key(), err)
				}
				oldTime, oldSeq := readTime(plain), binary.BigEndian.Uint64(plain[8:])
				if row.EventTime < oldTime || row.EventTime == oldTime && seq < oldSeq {
					continue
				}
			} else {
				counts.online++
			}
			// The online value is sealed as one: time, sequence and values.
			plain := appendTime(onlineVal[:0], row.EventTime)
			plain = binary.BigEndian.AppendUint64(plain, seq)
			plain = encodeValues(plain, row.Values)
			start := len(onlineArena)
			onlineArena = s.codec.Seal(onlineArena, plain)
			if err := online.Put(row.Key, onlineArena[start:len(onlineArena):len(onlineArena)]); err != nil {
				return fmt.Errorf("put online row: %w", err)
			}
			res.Online++
		}
		res.Written = n
		if n > 0 {
			res.FirstSeq, res.LastSeq = first, first+uint64(n)-1
			if err := meta.Put(keyIngestSeq, u64(res.LastSeq)); err != nil {
				return err
			}
			counts.offline += uint64(n)
			counts.lastSeq = res.LastSeq
			if err := stats.Put(viewKey, counts.bytes()); err != nil {
				return err
			}
			em, err := s.readEventsMeta(events)
			if err != nil {
				return err
			}
			em.TailRows += uint64(n)
			if err := s.putJSON(events, keyEventMeta, em); err != nil {
				return err
			}
		}
		if req.Idempotency != nil {
			rec := idempotencyRecord{BodyHash: req.Idempotency.BodyHash[:], Response: req.Idempotency.Response, At: s.now().UTC()}
			if err := s.putJSON(tx.Bucket(bucketIdempotency), []byte(req.Idempotency.Key), &rec); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "rows.write", Object: "feature_view/" + view.Key(),
			Summary: map[string]any{"rows": n, "online": res.Online, "first_seq": res.FirstSeq, "last_seq": res.LastSeq, "offline_only": req.OfflineOnly}})
	}, nil)
	if err != nil {
		return nil, err
	}
	if !res.Duplicate {
		s.rowsWritten.Add(n)
		s.nudgeCompactor()
	}
	return res, nil
}

func idempotencyConflict() error {
	return &appliance.Error{Code: appliance.ECONFLICT, Field: "Idempotency-Key",
		Message: "this key was used for a request with a different body; use a new key for new data"}
}

// idempotency returns a live stored answer for key.
func (s *Store) idempotency(tx *bolt.Tx, key string) (*idempotencyRecord, bool, error) {
	var rec idempotencyRecord
	ok, err := s.getJSON(tx.Bucket(bucketIdempotency), []byte(key), &rec)
	if err != nil || !ok {
		return nil, false, err
	}
	if s.now().Sub(rec.At) > s.opts.IdempotencyTTL {
		return nil, false, nil
	}
	return &rec, true, nil
}

// IdempotentResponse implements appliance.FeatureStore.
func (s *Store) IdempotentResponse(_ context.Context, key string) ([]byte, [32]byte, bool, error) {
	var rec *idempotencyRecord
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		rec, ok, err = s.idempotency(tx, key)
		return err
	})
	var hash [32]byte
	if err != nil || !ok {
		return nil, hash, false, err
	}
	copy(hash[:], rec.BodyHash)
	return rec.Response, hash, true, nil
}

// ReadOnline implements appliance.FeatureStore.
func (s *Store) ReadOnline(_ context.Context, view *appliance.FeatureView, keys [][]byte, out []appliance.OnlineRow) error {
	if len(out) != len(keys) {
		panic("BUG: ReadOnline: len(out) != len(keys)")
	}
	var name [64]byte
	viewKey := appendViewKey(name[:0], view)
	// The generation is loaded before the transaction begins: see
	// onlineCache.
	var vc *viewCache // nil: the cache is off or a write is in progress
	var gen uint64
	if s.online != nil {
		vc = s.online.view(viewKey)
		var ok bool
		if gen, ok = s.online.generation(vc); !ok {
			vc = nil
		}
	}
	var b *bolt.Bucket // opened at the first key the cache does not hold
	for i, k := range keys {
		var plain []byte
		if cached, ok := s.online.lookup(vc, gen, k); ok {
			plain = cached
		} else {
			if b == nil {
				tx, err := s.db.Begin(false)
				if err != nil {
					return fmt.Errorf("read online %s: %w", view.Key(), err)
				}
				defer tx.Rollback()
				if b = tx.Bucket(bucketOnline).Bucket(viewKey); b == nil {
					return appliance.NotFound("feature view", view.Key())
				}
			}
			if raw := b.Get(k); raw != nil {
				var err error
				if plain, err = s.codec.Open(nil, raw); err != nil || len(plain) < 16 {
					return fmt.Errorf("read online %s: corrupt row (%v)", view.Key(), err)
				}
			}
			if vc != nil {
				s.online.put(vc, gen, k, plain) // copies
			}
		}
		if plain == nil {
			out[i].Found = false
			out[i].Values = out[i].Values[:0]
			continue
		}
		out[i].Found = true
		out[i].EventTime = readTime(plain)
		var err error
		if out[i].Values, err = decodeValues(out[i].Values, plain[16:], len(view.Features)); err != nil {
			return fmt.Errorf("read online %s: %w", view.Key(), err)
		}
	}
	return nil
}

// EraseEntityKey implements appliance.FeatureStore. Every version of every
// view keyed by the entity is searched: by prefix where the entity's join
// keys lead the view's key, otherwise by decoding each key.
func (s *Store) EraseEntityKey(ctx context.Context, entity *appliance.Entity, key []appliance.Value) (*appliance.EraseResult, error) {
	defer s.online.writeAll()() // see onlineCache
	if len(key) != len(entity.JoinKeys) {
		return nil, appliance.Invalid("key", "entity %q has %d join keys, got %d values", entity.Name, len(entity.JoinKeys), len(key))
	}
	var views []*appliance.FeatureView
	for _, versions := range s.registry.Load().views {
		for _, v := range versions {
			if v.HasEntity(entity.Name) {
				views = append(views, v)
			}
		}
	}
	slices.SortFunc(views, func(a, b *appliance.FeatureView) int { return cmpString(a.Key(), b.Key()) })
	res := &appliance.EraseResult{Views: []string{}}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		*res = appliance.EraseResult{Views: []string{}}
		for _, v := range views {
			match, prefix := entityMatcher(v, entity, key)
			viewKey := []byte(v.Key())
			events := tx.Bucket(bucketEvents).Bucket(viewKey)
			online := tx.Bucket(bucketOnline).Bucket(viewKey)
			if events == nil || online == nil {
				continue
			}
			offline, err := s.eraseEvents(events, prefix, match)
			if err != nil {
				return err
			}
			// Collect first: deleting under a bbolt cursor can skip keys.
			onKeys := collectKeys(online, prefix, match)
			for _, k := range onKeys {
				if err := online.Delete(k); err != nil {
					return err
				}
			}
			if offline+len(onKeys) > 0 {
				stats := tx.Bucket(bucketViewStats)
				c := readCounts(stats, viewKey)
				if err := putErasure(tx, viewKey, entity.Name, key, c.lastSeq); err != nil {
					return err
				}
				c.offline -= min(c.offline, uint64(offline))
				c.online -= min(c.online, uint64(len(onKeys)))
				if err := stats.Put(viewKey, c.bytes()); err != nil {
					return err
				}
				res.Views = append(res.Views, v.Key())
			}
			res.Offline += offline
			res.Online += len(onKeys)
		}
		// The key itself is personal data: the audit names only the entity.
		return s.audit(ctx, tx, appliance.AuditRecord{Action: "entity.erase", Object: "entity/" + entity.Name,
			Summary: map[string]any{"views": res.Views, "offline_rows": res.Offline, "online_rows": res.Online}})
	}, nil)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// entityMatcher returns a predicate on a view's entity keys that is true
// when the entity's part equals key, and the key prefix to scan (nil: all).
func entityMatcher(v *appliance.FeatureView, entity *appliance.Entity, key []appliance.Value) (func([]byte) bool, []byte) {
	var want []byte
	for _, k := range key {
		want = appliance.AppendEntityKeyPart(want, k)
	}
	return entityKeyMatcher(v, entity.Name, want)
}

// entityKeyMatcher matches the keys of a view's rows whose entity has the
// encoded key want; the prefix is what every such key starts with ("" when
// the entity is not the view's first).
func entityKeyMatcher(v *appliance.FeatureView, entityName string, want []byte) (func([]byte) bool, []byte) {
	entity := &appliance.Entity{Name: entityName}
	if v.JoinKeys[0].Entity == entity.Name {
		return func(k []byte) bool { return bytes.HasPrefix(k, want) }, want
	}
	return func(k []byte) bool {
		rest := k
		for _, jk := range v.JoinKeys {
			start := rest
			var err error
			if _, rest, err = appliance.DecodeEntityKeyPart(rest, jk.ValueType); err != nil {
				return false
			}
			if jk.Entity == entity.Name {
				// The entity's join keys are adjacent: compare them at once.
				return bytes.HasPrefix(start, want)
			}
		}
		return false
	}, nil
}

func collectKeys(b *bolt.Bucket, prefix []byte, match func([]byte) bool) [][]byte {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if match(k) {
			keys = append(keys, slices.Clone(k))
		}
	}
	return keys
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ViewStats implements appliance.FeatureStore.
func (s *Store) ViewStats(_ context.Context, view *appliance.FeatureView) (*appliance.ViewStats, error) {
	var c viewCounts
	err := s.view(func(tx *bolt.Tx) error {
		c = readCounts(tx.Bucket(bucketViewStats), []byte(view.Key()))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &appliance.ViewStats{OfflineRows: int(c.offline), OnlineRows: int(c.online), LastSeq: c.lastSeq}, nil
}

// ScanIngested calls fn with every row of a view version ingested after
// sequence afterSeq — late events included, whatever their event time —
// until fn returns false. It is how incremental jobs find new data. Rows
// still in the tail come in ingest order after those already compacted into
// runs, which come in entity order. Rows are copies and may be kept.
func (s *Store) ScanIngested(_ context.Context, view *appliance.FeatureView, afterSeq uint64, fn func(seq uint64, row appliance.Row) bool) error {
	viewKey := []byte(view.Key())
	n := len(view.Features)
	return s.view(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents).Bucket(viewKey)
		if events == nil {
			return appliance.NotFound("feature view", view.Key())
		}
		runs, meta, err := s.runs(events, false)
		if err != nil {
			return err
		}
		for i, src := range runs {
			if meta.Runs[runIndex(meta, src.id)].MaxSeq <= afterSeq {
				continue
			}
			c := src.run.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				seq := binary.BigEndian.Uint64(k[len(k)-8:])
				if seq <= afterSeq {
					continue
				}
				plain, err := s.codec.Open(nil, v)
				if err != nil {
					return err
				}
				values, err := decodeValues(nil, plain, n)
				if err != nil {
					return fmt.Errorf("run %d of %s: %w", runs[i].id, view.Key(), err)
				}
				kl := len(k)
				if !fn(seq, appliance.Row{Key: slices.Clone(k[:kl-16]), EventTime: readTime(k[kl-16:]), Values: values}) {
					return nil
				}
			}
		}
		c := events.Bucket(keyTail).Cursor()
		for k, v := c.Seek(u64(afterSeq + 1)); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			plain, err := s.codec.Open(nil, v)
			if err != nil {
				return err
			}
			row, err := decodeTailValue(plain)
			if err != nil {
				return fmt.Errorf("tail of %s seq %d: %w", view.Key(), seq, err)
			}
			values, err := decodeValues(nil, row.values, n)
			if err != nil {
				return fmt.Errorf("tail of %s seq %d: %w", view.Key(), seq, err)
			}
			if !fn(seq, appliance.Row{Key: slices.Clone(row.key), EventTime: row.micros, Values: values}) {
				return nil
			}
		}
		return nil
	})
}

func runIndex(meta *eventsMeta, id uint64) int {
	for i, r := range meta.Runs {
		if r.ID == id {
			return i
		}
	}
	panic(fmt.Sprintf("BUG: run %d not in its meta", id))
}

// eraseEvents deletes one entity's rows from every run (those being built
// by a merge too) and from the tail, and returns how many rows it erased:
// copies in a run being built are not counted twice.
func (s *Store) eraseEvents(events *bolt.Bucket, prefix []byte, match func([]byte) bool) (int, error) {
	runs, meta, err := s.runs(events, true)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, src := range runs {
		keys := collectKeys(src.run, prefix, func(k []byte) bool { return len(k) >= 16 && match(k[:len(k)-16]) })
		for _, k := range keys {
			if err := src.run.Delete(k); err != nil {
				return 0, err
			}
		}
		info := &meta.Runs[runIndex(meta, src.id)]
		info.Rows -= min(info.Rows, uint64(len(keys)))
		if !info.Building {
			deleted += len(keys)
		}
	}
	tail := events.Bucket(keyTail)
	var tailKeys [][]byte
	c := tail.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		plain, err := s.codec.Open(nil, v)
		if err != nil {
			return 0, err
		}
		row, err := decodeTailValue(plain)
		if err != nil {
			return 0, err
		}
		if match(row.key) {
			tailKeys = append(tailKeys, slices.Clone(k))
		}
	}
	for _, k := range tailKeys {
		if err := tail.Delete(k); err != nil {
			return 0, err
		}
	}
	meta.TailRows -= min(meta.TailRows, uint64(len(tailKeys)))
	deleted += len(tailKeys)
	return deleted, s.putJSON(events, keyEventMeta, meta)
}

// purgeIdempotency deletes stored answers older than the idempotency TTL,
// at most limit of them, and reports how many it deleted.
func (s *Store) purgeIdempotency(ctx context.Context, limit int) (int, error) {
	deleted := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		deleted = 0
		b := tx.Bucket(bucketIdempotency)
		var expired [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(expired) < limit; k, v = c.Next() {
			var rec idempotencyRecord
			if s.decodeJSON(v, &rec) != nil || s.now().Sub(rec.At) > s.opts.IdempotencyTTL {
				expired = append(expired, slices.Clone(k))
			}
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		deleted = len(expired)
		return nil
	}, nil)
	return deleted, err
}

// appendViewKey appends the bucket name of a view version, "name@version",
// without building a string.
func appendViewKey(dst []byte, v *appliance.FeatureView) []byte {
	dst = append(dst, v.Name...)
	dst = append(dst, '@')
	return strconv.AppendInt(dst, int64(v.Version), 10)
}

// erasures/<view key>/u64(n) → entity name, 0, encoded key, u64(last ingest
// sequence of the view at the erasure): a tombstone. A materialization
// that scanned the offline log before an erasure would otherwise write the
// erased rows back online; WriteOnline drops rows a tombstone covers, that
// is rows of that entity ingested before the erasure. Later rows (new data
// for the same key) pass. Created by the first erasure; erasures are rare,
// and a view's go with it.
var bucketErasures = []byte("erasures")

type erasure struct {
	match   func([]byte) bool
	lastSeq uint64
}

func putErasure(tx *bolt.Tx, viewKey []byte, entity string, key []appliance.Value, lastSeq uint64) error {
	root, err := tx.CreateBucketIfNotExists(bucketErasures)
	if err != nil {
		return err
	}
	b, err := root.CreateBucketIfNotExists(viewKey)
	if err != nil {
		return err
	}
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	v := append([]byte(entity), 0)
	for _, k := range key {
		v = appliance.AppendEntityKeyPart(v, k)
	}
	return b.Put(u64(n), binary.BigEndian.AppendUint64(v, lastSeq))
}

// erasuresOf returns a view version's tombstones, nil when it has none.
func erasuresOf(tx *bolt.Tx, view *appliance.FeatureView) ([]erasure, error) {
	root := tx.Bucket(bucketErasures)
	if root == nil {
		return nil, nil
	}
	b := root.Bucket([]byte(view.Key()))
	if b == nil {
		return nil, nil
	}
	var out []erasure
	err := b.ForEach(func(_, v []byte) error {
		name, rest, ok := bytes.Cut(v, []byte{0})
		if !ok || len(rest) < 8 {
			return fmt.Errorf("erasure of %s: corrupt record", view.Key())
		}
		want := slices.Clone(rest[:len(rest)-8])
		match, _ := entityKeyMatcher(view, string(name), want)
		out = append(out, erasure{match: match, lastSeq: binary.BigEndian.Uint64(rest[len(rest)-8:])})
		return nil
	})
	return out, err
}

// erased reports whether a tombstone covers a row.
func erased(tombs []erasure, key []byte, seq uint64) bool {
	for _, t := range tombs {
		if seq <= t.lastSeq && t.match(key) {
			return true
		}
	}
	return false
}
