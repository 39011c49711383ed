package store_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// The sizing case of the product: one string-keyed entity, 100,000
// entities, views of ten features of mixed types, ingest in batches of
// 10,000 rows. Benchmarks use b.Loop, so their setup runs once and is
// outside the timer.
const (
	benchEntities = 100_000
	benchBatch    = 10_000
	benchFeatures = 10
)

// benchDTypes cycles through the scalar types an online read decodes.
var benchDTypes = []appliance.DType{appliance.DTypeInt64, appliance.DTypeFloat64, appliance.DTypeString}

func benchUserKey(i int) []byte {
	return appliance.AppendEntityKeyPart(nil, appliance.StringValue(fmt.Sprintf("u%07d", i)))
}

// benchValues are the feature values of entity i: int64, float64 and short
// strings, in the order of benchDTypes.
func benchValues(i int) []appliance.Value {
	vals := make([]appliance.Value, benchFeatures)
	for f := range vals {
		switch benchDTypes[f%len(benchDTypes)] {
		case appliance.DTypeInt64:
			vals[f] = appliance.Int64Value(int64(i*31 + f))
		case appliance.DTypeFloat64:
			vals[f] = appliance.Float64Value(float64(i)*0.5 + float64(f))
		default:
			vals[f] = appliance.StringValue(fmt.Sprintf("v%d_%d", f, i%1000))
		}
	}
	return vals
}

// benchStore opens a store with one entity "user" and one view of
// benchFeatures features.
func benchStore(b *testing.B, opts ...store.Options) (*store.Store, *appliance.FeatureView) {
	b.Helper()
	ctx := context.Background()
	s := storetest.Open(b, append(opts, store.Options{})[0])
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: appliance.EntityString}); err != nil {
		b.Fatal(err)
	}
	features := make([]appliance.Feature, benchFeatures)
	for f := range features {
		dt := benchDTypes[f%len(benchDTypes)]
		features[f] = appliance.Feature{Name: fmt.Sprintf("f%d_%s", f, dt), Dtype: dt}
	}
	v, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "bench_1x10", Entities: []string{"user"}, Features: features})
	if err != nil {
		b.Fatal(err)
	}
	return s, v
}

// benchBatchRows returns the rows of batch n: benchBatch consecutive
// entities (wrapping around benchEntities), all with the event time of
// batch n. The keys and values are built once per entity and shared.
type benchRows struct {
	keys [][]byte
	vals [][]appliance.Value
	rows []appliance.Row
}

func newBenchRows() *benchRows {
	r := &benchRows{keys: make([][]byte, benchEntities), vals: make([][]appliance.Value, benchEntities), rows: make([]appliance.Row, benchBatch)}
	for i := range benchEntities {
		r.keys[i] = benchUserKey(i)
		r.vals[i] = benchValues(i)
	}
	return r
}

var benchT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

func (r *benchRows) batch(n int) []appliance.Row {
	for j := range r.rows {
		e := (n*benchBatch + j) % benchEntities
		r.rows[j] = appliance.Row{Key: r.keys[e], EventTime: benchT0 + int64(n)*1e6, Values: r.vals[e]}
	}
	return r.rows
}

// percentiles reports the p50 and p99 of the sampled latencies.
func reportPercentiles(b *testing.B, lat []int64) {
	b.Helper()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
}

// BenchmarkReadOnline_1x10 reads one random entity of 100,000 per op, ten
// features, into a reused row. Every op is timed for the percentiles
// (two clock reads, about 50 ns, are inside the reported ns/op); the last
// 1<<20 ops are kept. With the online cache (the default; after the first
// pass over the 65,536 keys every read is a hit) and without it.
func BenchmarkReadOnline_1x10(b *testing.B) {
	b.Run("cache", func(b *testing.B) { benchReadOnline(b, store.Options{}) })
	b.Run("no_cache", func(b *testing.B) { benchReadOnline(b, store.Options{OnlineCacheBytes: -1}) })
}

func benchReadOnline(b *testing.B, opts store.Options) {
	ctx := context.Background()
	s, view := benchStore(b, opts)
	rows := newBenchRows()
	for n := range benchEntities / benchBatch {
		if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: view, Rows: rows.batch(n)}); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const nkeys = 1 << 16
	keys := make([][]byte, nkeys)
	for i := range keys {
		keys[i] = rows.keys[rng.IntN(benchEntities)]
	}
	const nlat = 1 << 20
	lat := make([]int64, nlat)
	out := make([]appliance.OnlineRow, 1)
	one := make([][]byte, 1)
	// Warm the row's values slice so that its growth is not counted.
	one[0] = keys[0]
	if err := s.ReadOnline(ctx, view, one, out); err != nil || !out[0].Found {
		b.Fatalf("warm read: found=%v err=%v", out[0].Found, err)
	}
	b.ReportAllocs()
	i := 0
	var cpu0 time.Duration
	for b.Loop() {
		if i == 0 {
			cpu0 = processCPU()
		}
		one[0] = keys[i&(nkeys-1)]
		start := time.Now()
		err := s.ReadOnline(ctx, view, one, out)
		lat[i&(nlat-1)] = int64(time.Since(start))
		if err != nil || !out[0].Found {
			b.Fatalf("read: found=%v err=%v", out[0].Found, err)
		}
		i++
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(i), "cpu-ns/op")
	reportPercentiles(b, lat[:min(i, nlat)])
}

// processCPU is the user and system CPU time of this process: on a shared
// machine, CPU per op moves less than wall time per op when other work
// competes for the cores.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// BenchmarkWriteRows_10kBatch writes one durable batch of 10,000 rows of
// ten features per op into a view that already holds 100,000 entities: an
// offline row, an ingest index entry and an online row per row, one fsync.
func BenchmarkWriteRows_10kBatch(b *testing.B) {
	ctx := context.Background()
	s, view := benchStore(b)
	rows := newBenchRows()
	n := 0
	for ; n < benchEntities/benchBatch; n++ {
		if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: view, Rows: rows.batch(n)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	ops := 0
	var cpu0 time.Duration
	for b.Loop() {
		if ops == 0 {
			cpu0 = processCPU()
		}
		// Building the batch only points rows at prebuilt keys and values.
		req := &appliance.WriteRequest{View: view, Rows: rows.batch(n)}
		if _, err := s.WriteRows(ctx, req); err != nil {
			b.Fatal(err)
		}
		n++
		ops++
	}
	b.ReportMetric(float64(ops*benchBatch)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(ops*benchBatch), "cpu-ns/row")
}

// BenchmarkBoltBulkLoad_10kBatch is the baseline of WriteRows: the same
// offline keys (entity key | time with the sign bit flipped | sequence)
// with values of about the same size, put in sorted order straight into a
// bare bbolt file, one durable Update of 10,000 puts per op, with the
// store's bbolt options.
func BenchmarkBoltBulkLoad_10kBatch(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "bare.db"), 0o600, &bolt.Options{
		InitialMmapSize: 256 << 20, FreelistType: bolt.FreelistMapType, NoFreelistSync: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	bucket := []byte("offline")
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(bucket)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	rows := newBenchRows()
	values := make([][]byte, benchEntities)
	for i := range values {
		values[i] = make([]byte, approxEncodedSize(rows.vals[i]))
		for j := range values[i] {
			values[i][j] = byte(i + j)
		}
	}
	put := func(n int) error {
		return db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucket)
			key := make([]byte, 0, 64)
			// Entities of a batch are consecutive, so index order is key
			// order except where the batch wraps around: sort as WriteRows does.
			order := make([]int, benchBatch)
			for j := range order {
				order[j] = (n*benchBatch + j) % benchEntities
			}
			slices.Sort(order)
			for j, e := range order {
				key = append(key[:0], rows.keys[e]...)
				key = binary.BigEndian.AppendUint64(key, uint64(benchT0+int64(n)*1e6)^(1<<63))
				key = binary.BigEndian.AppendUint64(key, uint64(n*benchBatch+j+1))
				if err := bk.Put(key, values[e]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	n := 0
	for ; n < benchEntities/benchBatch; n++ {
		if err := put(n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	ops := 0
	var cpu0 time.Duration
	for b.Loop() {
		if ops == 0 {
			cpu0 = processCPU()
		}
		if err := put(n); err != nil {
			b.Fatal(err)
		}
		n++
		ops++
	}
	b.ReportMetric(float64(ops*benchBatch)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(ops*benchBatch), "cpu-ns/row")
}

// approxEncodedSize is the size of a row as the store encodes it (a kind
// byte and the payload per value, a format byte in front).
func approxEncodedSize(vals []appliance.Value) int {
	n := 1
	for _, v := range vals {
		n++
		switch v.Kind {
		case appliance.KindFloat64:
			n += 8
		case appliance.KindString:
			n += 1 + len(v.Str)
		default:
			n += len(binary.AppendVarint(nil, v.Int))
		}
	}
	return n
}
