package appliance

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ShadowRunner runs shadow versions of an experiment on the inputs of
// sampled live requests, after the primary's answer is on its way: a
// bounded queue and a few workers, so shadows never delay a response and
// never grow without bound. What does not fit in the queue is dropped and
// counted.
type ShadowRunner struct {
	Predictor *Predictor
	Workers   int // default 2
	Queue     int // default 1024
	Logger    *slog.Logger

	jobs    chan shadowJob
	mu      sync.RWMutex // closed and offers: an offer after Close is dropped, not a panic
	closed  bool
	wg      sync.WaitGroup
	dropped atomic.Uint64
	ran     atomic.Uint64
	once    sync.Once
	// stop cancels the shadows' contexts: Close does when its deadline
	// passes, and the queue's rest is then dropped (counted).
	runCtx context.Context
	stop   context.CancelFunc
}

type shadowJob struct {
	experiment string
	unit       string
	requestID  string
	version    int
	primary    *ModelVersion
	inputs     []float64 // the primary's inputs, used when the shadow has the same ones
	outputs    []float64
	primaryUS  int64
	req        PredictRequest
	at         time.Time
}

// Start launches the workers; Close stops them.
func (s *ShadowRunner) Start() {
	s.once.Do(func() {
		if s.Workers <= 0 {
			s.Workers = 2
		}
		if s.Queue <= 0 {
			s.Queue = 1024
		}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		s.jobs = make(chan shadowJob, s.Queue)
		s.runCtx, s.stop = context.WithCancel(context.Background())
		for range s.Workers {
			s.wg.Add(1)
			go s.work()
		}
	})
}

// Close lets queued shadows finish until ctx ends, then cancels those
// running and drops (and counts) the rest; it returns once the workers
// have stopped. Offers after it (a request that outlived the HTTP
// shutdown) are dropped and counted.
func (s *ShadowRunner) Close(ctx context.Context) {
	s.Start() // a runner never started still closes cleanly
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.jobs)
	}
	s.mu.Unlock()
	stopped := make(chan struct{})
	go func() { s.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.stop()
		<-stopped // each shadow ends at its context's next check
	}
	s.stop()
}

// Dropped counts shadows not run because the queue was full; Ran those run.
func (s *ShadowRunner) Dropped() uint64 { return s.dropped.Load() }
func (s *ShadowRunner) Ran() uint64     { return s.ran.Load() }

// offer queues the sampled shadows of a routed request; it never blocks.
func (s *ShadowRunner) offer(rt *Route, req *PredictRequest, mv *ModelVersion, in, out []float64, requestID string, took time.Duration) {
	for _, sh := range rt.Experiment.Shadow {
		if rand.Float64()*100 >= sh.Percent {
			continue
		}
		job := shadowJob{experiment: rt.Experiment.Name, unit: rt.Unit, requestID: requestID, version: sh.Version,
			primary: mv, inputs: slices.Clone(in), outputs: slices.Clone(out), primaryUS: took.Microseconds(), req: *req, at: time.Now()}
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			s.dropped.Add(1)
			continue
		}
		select {
		case s.jobs <- job:
		default:
			s.dropped.Add(1)
		}
		s.mu.RUnlock()
	}
}

func (s *ShadowRunner) work() {
	defer s.wg.Done()
	for job := range s.jobs {
		if s.runCtx.Err() != nil {
			s.dropped.Add(1) // Close ran out of time
			continue
		}
		if err := s.run(job); err != nil {
			s.Logger.Warn("shadow prediction failed", "experiment", job.experiment, "version", job.version, "err", err)
		}
	}
}

// run predicts with the shadow version and logs both answers side by side.
func (s *ShadowRunner) run(job shadowJob) error {
	p := s.Predictor
	// Shadows outlive the request; they get their own bounded context.
	ctx, cancel := context.WithTimeout(s.runCtx, 5*time.Second)
	defer cancel()
	mv, err := p.Models.ModelVersion(ctx, job.primary.Model, job.version)
	if err != nil {
		return err
	}
	start := time.Now()
	in := job.inputs
	if !slices.Equal(mv.Inputs, job.primary.Inputs) {
		plan, err := p.plan(ctx, mv)
		if err != nil {
			return err
		}
		in = make([]float64, len(plan.inputs))
		if err := p.gather(ctx, mv, plan, &job.req, in); err != nil {
			return err
		}
	}
	out := make([]float64, len(mv.Outputs))
	if err := p.Runner.Predict(ctx, mv.Module, mv.Limits, in, out); err != nil {
		return err
	}
	took := time.Since(start)
	s.ran.Add(1)
	if p.Telemetry == nil {
		return nil
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"request_id":`...)
	b = AppendJSONString(b, job.requestID)
	b = append(b, `,"time":"`...)
	b = job.at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","experiment":`...)
	b = AppendJSONString(b, job.experiment)
	b = append(b, `,"unit":`...)
	b = AppendJSONString(b, job.unit)
	b = append(b, `,"model":`...)
	b = AppendJSONString(b, mv.Model)
	b = append(b, `,"primary_version":`...)
	b = strconv.AppendInt(b, int64(job.primary.Version), 10)
	b = appendFloats(append(b, `,"primary_outputs":`...), job.outputs)
	b = append(b, `,"primary_latency_us":`...)
	b = strconv.AppendInt(b, job.primaryUS, 10)
	b = append(b, `,"shadow_version":`...)
	b = strconv.AppendInt(b, int64(mv.Version), 10)
	b = appendFloats(append(b, `,"shadow_outputs":`...), out)
	b = append(b, `,"shadow_latency_us":`...)
	b = strconv.AppendInt(b, took.Microseconds(), 10)
	b = append(b, '}')
	p.Telemetry.Append("shadow", b)
	return nil
}

// ShadowLog is what the telemetry buffer keeps of each shadow prediction.
type ShadowLog struct {
	RequestID        string    `json:"request_id"`
	Time             time.Time `json:"time"`
	Experiment       string    `json:"experiment"`
	Unit             string    `json:"unit"`
	Model            string    `json:"model"`
	PrimaryVersion   int       `json:"primary_version"`
	PrimaryOutputs   []float64 `json:"primary_outputs"`
	PrimaryLatencyUS int64     `json:"primary_latency_us"`
	ShadowVersion    int       `json:"shadow_version"`
	ShadowOutputs    []float64 `json:"shadow_outputs"`
	ShadowLatencyUS  int64     `json:"shadow_latency_us"`
}

// TelemetryReader reads back what the telemetry buffer flushed.
type TelemetryReader interface {
	Read(kind string, after uint64, fn func(seq uint64, data []byte) bool) error
	// FlushedBefore returns a sequence after which every record of the
	// kind taken at or after t lies (0: from the start).
	FlushedBefore(kind string, t time.Time) (uint64, error)
}

// ShadowReport compares one shadow version with the primary arms.
type ShadowReport struct {
	Version int   `json:"version"`
	Count   int64 `json:"count"`
	// Agreement is the share of requests where shadow and primary make
	// the same decision on the first output: the same side of 0.5 for
	// outputs in [0, 1] (probabilities), else equal within 1e-9.
	Agreement       float64 `json:"agreement_rate"`
	MeanAbsDiff     float64 `json:"mean_absolute_difference"` // over every output
	ShadowP50US     int64   `json:"shadow_latency_p50_us"`
	ShadowP99US     int64   `json:"shadow_latency_p99_us"`
	PrimaryP50US    int64   `json:"primary_latency_p50_us"`
	PrimaryP99US    int64   `json:"primary_latency_p99_us"`
	OutputsMismatch int64   `json:"outputs_mismatched,omitempty"` // records whose output counts differ
}

// ShadowReports aggregates the shadow logs of one experiment.
func ShadowReports(r TelemetryReader, experiment string, decode func([]byte, *ShadowLog) error) ([]ShadowReport, error) {
	type acc struct {
		rep            ShadowReport
		agree, diffN   int64
		diffSum        float64
		shadow, primer []int64
	}
	byVersion := map[int]*acc{}
	var decodeErr error
	err := r.Read("shadow", 0, func(_ uint64, data []byte) bool {
		var l ShadowLog
		if err := decode(data, &l); err != nil {
			decodeErr = err
			return false
		}
		if l.Experiment != experiment {
			return true
		}
		a := byVersion[l.ShadowVersion]
		if a == nil {
			a = &acc{rep: ShadowReport{Version: l.ShadowVersion}}
			byVersion[l.ShadowVersion] = a
		}
		a.rep.Count++
		a.shadow = append(a.shadow, l.ShadowLatencyUS)
		a.primer = append(a.primer, l.PrimaryLatencyUS)
		if len(l.ShadowOutputs) != len(l.PrimaryOutputs) || len(l.ShadowOutputs) == 0 {
			a.rep.OutputsMismatch++
			return true
		}
		p, s := l.PrimaryOutputs[0], l.ShadowOutputs[0]
		if p >= 0 && p <= 1 && s >= 0 && s <= 1 {
			if (p >= 0.5) == (s >= 0.5) {
				a.agree++
			}
		} else if abs(p-s) <= 1e-9 {
			a.agree++
		}
		for i := range l.ShadowOutputs {
			a.diffSum += abs(l.ShadowOutputs[i] - l.PrimaryOutputs[i])
			a.diffN++
		}
		return true
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, err
	}
	out := make([]ShadowReport, 0, len(byVersion))
	for _, a := range byVersion {
		compared := a.rep.Count - a.rep.OutputsMismatch
		if compared > 0 {
			a.rep.Agreement = float64(a.agree) / float64(compared)
		}
		if a.diffN > 0 {
			a.rep.MeanAbsDiff = a.diffSum / float64(a.diffN)
		}
		a.rep.ShadowP50US, a.rep.ShadowP99US = percentile(a.shadow, 0.5), percentile(a.shadow, 0.99)
		a.rep.PrimaryP50US, a.rep.PrimaryP99US = percentile(a.primer, 0.5), percentile(a.primer, 0.99)
		out = append(out, a.rep)
	}
	slices.SortFunc(out, func(x, y ShadowReport) int { return x.Version - y.Version })
	return out, nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// percentile is the nearest-rank percentile of xs (sorted in place).
func percentile(xs []int64, q float64) int64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	i := int(q*float64(len(xs))+0.999999) - 1
	return xs[max(0, min(i, len(xs)-1))]
}
