package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/abtest"
	"github.com/mlnode/mlnode/appliance/results"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// foldBatch is the batch the node's monitor folds with (results.foldBatch).
var foldBatch = envInt("BENCH_FOLD_BATCH", 50_000)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// eventID is the i-th event's id: "e<i>" (ids that sort in arrival
// order), or with BENCH_EVENT_IDS=random a random UUID-like hex string, as
// most clients send (ids that land all over the index).
func eventID(i int) string {
	if os.Getenv("BENCH_EVENT_IDS") != "random" {
		return "e" + strconv.Itoa(i)
	}
	h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
	return hex.EncodeToString(h[:16])
}

// BenchmarkExperimentEvents records exposures of BENCH_EXP_UNITS units
// (default 100,000) and BENCH_EXP_EVENTS outcome events (default
// 1,000,000) in durable batches of 10,000, as POST /events does, then
// times the results of the experiment: aggregates read and analyzed with
// CUPED and a breakdown. The figure is 1M units and 10M events:
// BENCH_EXP_UNITS=1000000 BENCH_EXP_EVENTS=10000000.
func BenchmarkExperimentEvents(b *testing.B) {
	units, events := envInt("BENCH_EXP_UNITS", 100_000), envInt("BENCH_EXP_EVENTS", 1_000_000)
	ctx := context.Background()
	for range b.N {
		s := storetest.Open(b, store.Options{})
		t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		e := &appliance.Experiment{Name: "exp", Model: "m", Unit: "user_id", State: appliance.ExperimentRunning, Coverage: 1,
			Arms: []appliance.Arm{{Name: "control", Version: 1, Weight: 0.5}, {Name: "treatment", Version: 2, Weight: 0.5}},
			Metrics: []appliance.Metric{
				{Name: "converted", Type: appliance.MetricBinomial, Direction: "increase", Role: "goal"},
				{Name: "revenue", Type: appliance.MetricMean, Direction: "increase", Role: "goal"},
				{Name: "latency", Type: appliance.MetricMean, Direction: "decrease", Role: "guardrail"},
			},
			Breakdowns: []string{"country"}}
		if err := s.CreateExperiment(ctx, e); err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		// Pre-exposure history for CUPED: a tenth of the events, before t0.
		pre := events / 10
		batch := make([]appliance.OutcomeEvent, 0, 10_000)
		var foldTook time.Duration
		var folds, foldWritten int64
		var peakHeap uint64
		fold := func() {
			stop := sampleHeap(&peakHeap)
			defer stop()
			t := time.Now()
			for {
				w := s.DirtyPageBytes()
				n, err := s.FoldEvents(ctx, foldBatch)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 { // a fold may take fewer than asked: the store bounds its memory
					break
				}
				folds++
				foldWritten += s.DirtyPageBytes() - w
			}
			foldTook += time.Since(t)
		}
		flush := func() {
			if len(batch) == 0 {
				return
			}
			if _, err := s.RecordEvents(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
		metrics := []string{"converted", "revenue", "latency"}
		event := func(i int, at time.Time) appliance.OutcomeEvent {
			return appliance.OutcomeEvent{Unit: "u" + strconv.Itoa(r.IntN(units)), Metric: metrics[i%3], Value: r.Float64() * 10,
				Time: at.UnixMicro(), EventID: eventID(i)}
		}
		start := time.Now()
		for i := range pre {
			batch = append(batch, event(i, t0.Add(-time.Duration(r.IntN(240))*time.Hour/24)))
			if len(batch) == cap(batch) {
				flush()
			}
		}
		flush()
		fold()
		exposures := make([]appliance.ExposureLog, 0, 10_000)
		for u := range units {
			exposures = append(exposures, appliance.ExposureLog{Experiment: "exp", Arm: e.Arms[u%2].Name, Unit: "u" + strconv.Itoa(u),
				Time: t0, Attributes: map[string]string{"country": fmt.Sprint("c", u%8)}})
			if len(exposures) == cap(exposures) || u == units-1 {
				if _, err := s.RecordExposures(ctx, exposures, 0); err != nil {
					b.Fatal(err)
				}
				exposures = exposures[:0]
			}
		}
		exposed := time.Since(start)
		foldTook, folds, foldWritten, peakHeap = 0, 0, 0, 0
		evStart := time.Now()
		for i := pre; i < events; i++ {
			batch = append(batch, event(i, t0.Add(time.Duration(r.IntN(48))*time.Hour)))
			if len(batch) == cap(batch) {
				flush()
			}
		}
		flush()
		evTook := time.Since(evStart)
		// Folding runs in the background in the node, a second behind; here
		// it is timed on its own, after the ingestion.
		fold()

		resStart := time.Now()
		const rounds = 20
		for range rounds {
			aggs, err := s.ExperimentAggregates(ctx, "exp")
			if err != nil {
				b.Fatal(err)
			}
			rep, err := results.Analyze(e, aggs, abtest.Options{Sequential: true})
			if err != nil || rep.Result == nil {
				b.Fatalf("results: %v %+v", err, rep)
			}
		}
		resTook := time.Since(resStart) / rounds
		b.ReportMetric(float64(events-pre)/evTook.Seconds(), "events/s")
		b.ReportMetric(float64(events-pre)/foldTook.Seconds(), "folded-events/s")
		b.ReportMetric(float64(pre+units)/exposed.Seconds(), "pre-events+exposures/s")
		b.ReportMetric(float64(resTook.Microseconds())/1000, "results-ms")
		b.ReportMetric(float64(foldWritten)/float64(folds)/(1<<20), "MiB-written/fold")
		b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
	}
}

// sampleHeap keeps in peak the largest live heap seen every 5 ms until
// the returned stop is called: a fold transaction's dirty nodes and pages
// are on the heap until its commit.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			*peak = max(*peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
