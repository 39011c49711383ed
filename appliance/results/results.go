// Package results turns an experiment's incremental aggregates into the
// statistics a data scientist reads (package abtest), and runs the monitor
// that keeps those aggregates fed with exposures and stops an experiment
// whose guardrail is breached.
package results

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/abtest"
)

// Report is GET /experiments/{name}/results.
type Report struct {
	Experiment string          `json:"experiment"`
	State      string          `json:"state"`
	Result     *abtest.Result  `json:"result,omitempty"`
	Note       string          `json:"note,omitempty"`
	Guardrails []GuardrailNote `json:"breached_guardrails,omitempty"`
	// PercentileCaps are the values each percentile-capped metric was capped
	// at in this analysis.
	PercentileCaps map[string]float64 `json:"percentile_caps,omitempty"`
}

// Aggregates reads an experiment's aggregates, recomputing those of
// percentile-capped metrics with the cap of the units as they are now.
func Aggregates(ctx context.Context, data appliance.ExperimentData, e *appliance.Experiment) ([]appliance.Aggregate, map[string]float64, error) {
	aggs, err := data.ExperimentAggregates(ctx, e.Name)
	if err != nil {
		return nil, nil, err
	}
	var caps map[string]float64
	for _, m := range e.Metrics {
		if m.CapPercentile <= 0 {
			continue
		}
		capAt, capped, err := data.CappedAggregates(ctx, e, m.Name)
		if err != nil {
			return nil, nil, err
		}
		kept := aggs[:0:0]
		for _, a := range aggs {
			if a.Metric != m.Name {
				kept = append(kept, a)
			}
		}
		aggs = append(kept, capped...)
		if caps == nil {
			caps = map[string]float64{}
		}
		caps[m.Name] = capAt
	}
	return aggs, caps, nil
}

// GuardrailNote names a breached guardrail.
type GuardrailNote struct {
	Metric string `json:"metric"`
	Arm    string `json:"arm"`
}

// Analyze computes an experiment's results from its aggregates: every arm
// against the first (control), every metric, the breakdowns, SRM.
func Analyze(e *appliance.Experiment, aggs []appliance.Aggregate, opts abtest.Options) (*Report, error) {
	rep := &Report{Experiment: e.Name, State: string(e.State)}
	in := abtest.Input{Control: e.Arms[0].Name, Options: opts}
	arms := map[string]*abtest.Arm{}
	for _, a := range e.Arms {
		in.Arms = append(in.Arms, abtest.Arm{Name: a.Name, Weight: a.Weight, Metrics: map[string]abtest.Moments{}})
	}
	for i := range in.Arms {
		arms[in.Arms[i].Name] = &in.Arms[i]
	}
	for _, m := range e.Metrics {
		spec := abtest.MetricSpec{Name: m.Name, Type: abtest.MeanMetric, Direction: abtest.Increase, Role: abtest.Goal}
		if m.Type == appliance.MetricBinomial {
			spec.Type = abtest.BinomialMetric
		}
		if m.Direction == appliance.DirectionDecrease {
			spec.Direction = abtest.Decrease
		}
		if m.Role == appliance.RoleGuardrail {
			spec.Role = abtest.Guardrail
		}
		in.Metrics = append(in.Metrics, spec)
	}
	type bkey struct{ attr, metric string }
	breakdowns := map[bkey]*abtest.Breakdown{}
	var border []bkey
	for _, ag := range aggs {
		arm := arms[ag.Arm]
		if arm == nil || !hasMetric(e, ag.Metric) {
			continue // an arm or metric removed by a reseed: not part of this analysis
		}
		mom := abtest.Moments{N: ag.N, Sum: ag.Sum, SumSq: ag.SumSq, SumX: ag.SumX, SumXSq: ag.SumXSq, SumXY: ag.SumXY}
		if ag.Group == "" {
			arm.Metrics[ag.Metric] = mom
			continue
		}
		attr, value, ok := strings.Cut(ag.Group, "=")
		if !ok {
			continue
		}
		k := bkey{attr, ag.Metric}
		b := breakdowns[k]
		if b == nil {
			b = &abtest.Breakdown{Attribute: attr, Metric: ag.Metric}
			breakdowns[k] = b
			border = append(border, k)
		}
		gi := -1
		for i := range b.Groups {
			if b.Groups[i].Name == value {
				gi = i
			}
		}
		if gi < 0 {
			b.Groups = append(b.Groups, abtest.Group{Name: value, Arms: map[string]abtest.Moments{}})
			gi = len(b.Groups) - 1
		}
		b.Groups[gi].Arms[ag.Arm] = mom
	}
	for _, k := range border {
		in.Breakdowns = append(in.Breakdowns, *breakdowns[k])
	}
	exposed := false
	for _, a := range in.Arms {
		for _, m := range a.Metrics {
			exposed = exposed || m.N > 0
		}
	}
	if !exposed || len(e.Metrics) == 0 {
		rep.Note = "no exposed units yet"
		if len(e.Metrics) == 0 {
			rep.Note = "the experiment declares no metrics"
		}
		return rep, nil
	}
	// Arms with no unit yet still need every metric present.
	for i := range in.Arms {
		for _, m := range e.Metrics {
			if _, ok := in.Arms[i].Metrics[m.Name]; !ok {
				in.Arms[i].Metrics[m.Name] = abtest.Moments{}
			}
		}
	}
	if err := opts.Validate(); err != nil {
		return nil, err // the caller's options: a 400 naming the option
	}
	res, err := abtest.Analyze(in)
	if err != nil {
		// The input is the node's own aggregates, not the caller's: a
		// refusal here is a server-side problem.
		return nil, appliance.Errorf(appliance.EINTERNAL, "analyze %s: %s", e.Name, appliance.ErrorMessage(err))
	}
	rep.Result = res
	for _, c := range res.BreachedGuardrails() {
		rep.Guardrails = append(rep.Guardrails, GuardrailNote{Metric: c.Metric, Arm: c.Arm})
	}
	return rep, nil
}

func hasMetric(e *appliance.Experiment, name string) bool {
	for _, m := range e.Metrics {
		if m.Name == name {
			return true
		}
	}
	return false
}

// Monitor feeds exposures from the telemetry buffer into the experiment
// aggregates and stops running experiments whose guardrails are breached
// (under the sequential test, so checking often is safe): every unit then
// gets the production alias until someone concludes the experiment. The
// stop is audited by the experiment store, logged, and sent to webhooks.
type Monitor struct {
	Telemetry   appliance.TelemetryReader
	Data        appliance.ExperimentData
	Experiments *appliance.Experiments
	Notifier    appliance.Notifier // nil: no webhooks
	// Arms gives the live counts of an arm's predictions for the error-rate
	// and latency guardrails; nil: those guardrails are not checked.
	Arms     func(e *appliance.Experiment, arm string) *appliance.ArmStats
	Logger   *slog.Logger
	Interval time.Duration // default 1 s
	// GuardrailEvery is how often guardrails are checked; default 10 s.
	GuardrailEvery time.Duration

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Start runs the monitor until Close.
func (m *Monitor) Start(ctx context.Context) {
	if m.Interval <= 0 {
		m.Interval = time.Second
	}
	if m.GuardrailEvery <= 0 {
		m.GuardrailEvery = 10 * time.Second
	}
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.done = make(chan struct{})
	go m.run(ctx)
}

// Close stops the monitor and waits for it.
func (m *Monitor) Close() {
	m.once.Do(func() {
		if m.cancel != nil {
			m.cancel()
			<-m.done
		}
	})
}

func (m *Monitor) run(ctx context.Context) {
	defer close(m.done)
	tick := time.NewTicker(m.Interval)
	defer tick.Stop()
	lastGuard, lastPurge := time.Now(), time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := m.ConsumeExposures(ctx); err != nil && ctx.Err() == nil {
			m.Logger.Warn("consume exposures", "err", err)
		}
		if err := m.Fold(ctx); err != nil && ctx.Err() == nil {
			m.Logger.Warn("fold events", "err", err)
		}
		if time.Since(lastPurge) >= 10*time.Minute {
			lastPurge = time.Now()
			// Event ids older than the dedup window, a bounded chunk at a time.
			for {
				n, err := m.Data.PurgeEventIDs(ctx, time.Now().Add(-appliance.EventIDWindow), 10000)
				if err != nil {
					if ctx.Err() == nil {
						m.Logger.Warn("purge event ids", "err", err)
					}
					break
				}
				if n < 10000 {
					break
				}
			}
		}
		if time.Since(lastGuard) >= m.GuardrailEvery {
			lastGuard = time.Now()
			if err := m.CheckGuardrails(ctx); err != nil && ctx.Err() == nil {
				m.Logger.Warn("check guardrails", "err", err)
			} else if err == nil {
				// Ramps advance only after a guardrail check found nothing
				// to stop.
				if err := m.AdvanceRamps(ctx); err != nil && ctx.Err() == nil {
					m.Logger.Warn("advance ramps", "err", err)
				}
			}
		}
	}
}

// ConsumeExposures folds the exposures flushed since the last call into
// the aggregates, in batches, committing the telemetry cursor with them.
func (m *Monitor) ConsumeExposures(ctx context.Context) error {
	after, err := m.Data.ExposureCursor(ctx)
	if err != nil {
		return err
	}
	const batch = 10000
	for {
		var logs []appliance.ExposureLog
		var last uint64
		var decodeErr error
		err := m.Telemetry.Read("exposure", after, func(seq uint64, data []byte) bool {
			var l appliance.ExposureLog
			if err := json.Unmarshal(data, &l); err != nil {
				decodeErr = fmt.Errorf("exposure %d: %w", seq, err)
				// A record that cannot be read is skipped, not retried forever.
			} else {
				logs = append(logs, l)
			}
			last = seq
			return len(logs) < batch
		})
		if err != nil {
			return err
		}
		if last == 0 {
			return decodeErr
		}
		if _, err := m.Data.RecordExposures(ctx, logs, last); err != nil {
			return err
		}
		if decodeErr != nil {
			m.Logger.Warn("unreadable exposure skipped", "err", decodeErr)
		}
		if len(logs) < batch {
			return nil
		}
		after = last
	}
}

// minGuardrailRequests is how many predictions an arm needs before its
// error rate and p99 latency are judged: a handful of slow first calls
// (a module compiling) must not stop an experiment.
const minGuardrailRequests = 100

// foldBatch is how many events one fold transaction takes: large, so that
// the random updates keyed by unit are shared by many events.
const foldBatch = 50000

// Fold folds every logged event into the aggregates, a batch per
// transaction.
//
// The store may fold fewer events than asked (it bounds a transaction's
// memory), so this folds until the log is empty, or for foldBudget at a
// time when events keep coming faster: the monitor's other duties
// (guardrails, ramps) must not wait behind a backlog.
func (m *Monitor) Fold(ctx context.Context) error {
	start := time.Now()
	for time.Since(start) < foldBudget {
		n, err := m.Data.FoldEvents(ctx, foldBatch)
		if err != nil || n == 0 {
			return err
		}
	}
	return nil
}

// foldBudget is how long one Fold call may keep folding a backlog.
const foldBudget = 5 * time.Second

// CheckGuardrails stops every running experiment with a breached guardrail:
// a guardrail metric significantly worse for an arm under the sequential
// test, or an arm's error rate or p99 latency above the experiment's limit.
func (m *Monitor) CheckGuardrails(ctx context.Context) error {
	list, err := m.Experiments.Store.Experiments(ctx)
	if err != nil {
		return err
	}
	for _, e := range list {
		if e.State != appliance.ExperimentRunning {
			continue
		}
		var reason, metric, arm string
		var breached any
		if hasGuardrail(e) {
			aggs, _, err := Aggregates(ctx, m.Data, e)
			if err != nil {
				return err
			}
			rep, err := Analyze(e, aggs, abtest.Options{Sequential: true})
			if err != nil {
				// One experiment's bad data must not blind the others.
				m.Logger.Error("guardrail analysis failed", "experiment", e.Name, "err", err)
				continue
			}
			if len(rep.Guardrails) > 0 {
				g := rep.Guardrails[0]
				metric, arm, breached = g.Metric, g.Arm, rep.Guardrails
				reason = fmt.Sprintf("guardrail %s breached by arm %s (sequential test)", g.Metric, g.Arm)
			}
		}
		if reason == "" && e.Guardrails != nil && m.Arms != nil {
			for _, a := range e.Arms[1:] { // the control is what the others fall back to
				requests, errs, p99 := m.Arms(e, a.Name).Snapshot(time.Now())
				if requests < minGuardrailRequests {
					continue
				}
				rate := float64(errs) / float64(requests)
				switch g := e.Guardrails; {
				case g.MaxErrorRate > 0 && rate > g.MaxErrorRate:
					metric, arm = "error_rate", a.Name
					reason = fmt.Sprintf("guardrail error_rate breached by arm %s: %.4f of %d predictions in the last %s failed, above %g", a.Name, rate, requests, appliance.ArmStatsWindow, g.MaxErrorRate)
				case g.MaxP99LatencyMS > 0 && float64(p99)/float64(time.Millisecond) > g.MaxP99LatencyMS:
					metric, arm = "p99_latency_ms", a.Name
					reason = fmt.Sprintf("guardrail p99_latency_ms breached by arm %s: p99 %.1f ms over %d predictions in the last %s, above %g", a.Name, float64(p99)/float64(time.Millisecond), requests, appliance.ArmStatsWindow, g.MaxP99LatencyMS)
				}
				if reason != "" {
					breached = map[string]any{"requests": requests, "errors": errs, "p99_ms": float64(p99) / float64(time.Millisecond)}
					break
				}
			}
		}
		if reason == "" {
			continue
		}
		reason += fmt.Sprintf(": every unit is served the %s alias", appliance.ProductionAlias)
		sysCtx := appliance.NewContextWithCaller(ctx, appliance.Caller{Name: "guardrail", Role: appliance.RoleAdmin})
		if _, err := m.Experiments.Stop(sysCtx, e.Name, reason); err != nil {
			if appliance.ErrorCode(err) == appliance.ECONFLICT {
				continue // stopped by someone else meanwhile
			}
			return err
		}
		m.Logger.Warn("experiment stopped by a guardrail", "experiment", e.Name, "metric", metric, "arm", arm)
		if m.Notifier != nil {
			ev := appliance.Event{Type: appliance.EventExperimentGuardrail, Subject: "experiment/" + e.Name, Time: time.Now().UTC(),
				Data: map[string]any{"experiment": e.Name, "metric": metric, "arm": arm, "reason": reason, "breached": breached}}
			if err := m.Notifier.Notify(sysCtx, ev); err != nil {
				m.Logger.Error("notify webhooks of a guardrail stop", "experiment", e.Name, "err", err)
			}
		}
	}
	return nil
}

// AdvanceRamps moves every running ramp whose interval has passed to its
// next step; call it after CheckGuardrails, so a ramp advances only while
// the guardrails hold.
func (m *Monitor) AdvanceRamps(ctx context.Context) error {
	list, err := m.Experiments.Store.Experiments(ctx)
	if err != nil {
		return err
	}
	for _, e := range list {
		if e.State != appliance.ExperimentRunning || e.Ramp == nil {
			continue
		}
		sysCtx := appliance.NewContextWithCaller(ctx, appliance.Caller{Name: "ramp", Role: appliance.RoleAdmin})
		ok, err := m.Experiments.AdvanceRamp(sysCtx, e.Name)
		if err != nil {
			return err
		}
		if ok {
			m.Logger.Info("experiment ramped up", "experiment", e.Name)
		}
	}
	return nil
}

func hasGuardrail(e *appliance.Experiment) bool {
	for _, m := range e.Metrics {
		if m.Role == appliance.RoleGuardrail {
			return true
		}
	}
	return false
}
