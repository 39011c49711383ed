package appliance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// ProductionAlias is the alias units outside an experiment are served by,
// and whose signing policy every arm must meet.
const ProductionAlias = "production"

// Experiments is the experiment lifecycle: definitions checked against the
// model registry, and the state changes draft → running → stopped →
// concluded, each audited by the store.
type Experiments struct {
	Store    ExperimentStore
	Models   ModelRegistry
	Policies map[string]AliasPolicy // by alias
	// Router, when set, is told of every change, so predict routes by the
	// new state at once, and compiles each definition before it is stored
	// (the node always sets it; without it, targeting is checked only for
	// its operators).
	Router ExperimentRouter
	// Notifier, when set, is told of every stop (experiment.stopped).
	Notifier Notifier
	Logger   *slog.Logger
	Now      func() time.Time
}

func (x *Experiments) changed() {
	if x.Router != nil {
		x.Router.Invalidate()
	}
}

func (x *Experiments) now() time.Time {
	if x.Now != nil {
		return x.Now().UTC()
	}
	return time.Now().UTC()
}

// prepare fills defaults and checks a definition against the registry.
func (x *Experiments) prepare(ctx context.Context, e *Experiment) error {
	if e.Coverage == 0 {
		e.Coverage = 1
	}
	if err := e.Validate(); err != nil {
		return err
	}
	if x.Router != nil {
		if err := x.Router.Check(e); err != nil {
			return err
		}
	}
	if _, err := x.Models.Model(ctx, e.Model); err != nil {
		return &Error{Code: ErrorCode(err), Field: "model", Message: ErrorMessage(err)}
	}
	check := func(field string, version int) error {
		v, err := x.Models.ModelVersion(ctx, e.Model, version)
		if err != nil {
			return &Error{Code: ErrorCode(err), Field: field, Message: ErrorMessage(err)}
		}
		if v.Status == StatusArchived {
			return Invalid(field, "%s is archived", ModelRef(e.Model, version))
		}
		return nil
	}
	for i, a := range e.Arms {
		if err := check(fmt.Sprintf("arms[%d].version", i), a.Version); err != nil {
			return err
		}
	}
	for i, s := range e.Shadow {
		if err := check(fmt.Sprintf("shadow[%d].version", i), s.Version); err != nil {
			return err
		}
	}
	return nil
}

// Create stores a new draft experiment.
func (x *Experiments) Create(ctx context.Context, e *Experiment) (*Experiment, error) {
	if err := x.prepare(ctx, e); err != nil {
		return nil, err
	}
	now := x.now()
	e.State, e.CreatedAt, e.UpdatedAt = ExperimentDraft, now, now
	e.CreatedBy = CallerFromContext(ctx).Name
	e.StartedAt, e.StoppedAt, e.StopReason, e.ConcludedArm = nil, nil, "", ""
	e.PhaseStartedAt, e.RampSteps = nil, nil // the node's, never the client's
	if err := x.Store.CreateExperiment(ctx, e); err != nil {
		return nil, err
	}
	x.changed()
	return e, nil
}

// Update replaces a definition. A running experiment may change only in
// ways that keep every assigned unit in its arm (metrics, shadows,
// guardrails, breakdowns, more coverage), unless the new definition has a
// new seed: then every unit is reassigned, on purpose, and the audit log
// says so.
func (x *Experiments) Update(ctx context.Context, name string, next *Experiment) (*Experiment, error) {
	next.Name = name
	if err := x.prepare(ctx, next); err != nil {
		return nil, err
	}
	defer x.changed()
	return x.Store.UpdateExperiment(ctx, name, "update", func(cur *Experiment, _ []*Experiment) (*Experiment, error) {
		switch cur.State {
		case ExperimentConcluded:
			return nil, Errorf(ECONFLICT, "experiment %s is concluded; create a new one", name)
		case ExperimentStopped:
			if !cur.SameMetrics(next) && cur.HashSeed() == next.HashSeed() {
				return nil, &Error{Code: ECONFLICT, Field: "seed",
					Message: "the collected results count metrics as defined; give a new seed to start a new phase with the new metrics"}
			}
		case ExperimentRunning:
			if cur.Model != next.Model {
				return nil, Invalid("model", "a running experiment cannot change its model")
			}
			cmp := *next
			if cur.Ramp != nil && next.Ramp != nil {
				cmp.Coverage = cur.Coverage // the ramp owns coverage while it runs
			}
			if (cur.MovesUnits(&cmp) || !cur.SameMetrics(next)) && cur.HashSeed() == next.HashSeed() {
				return nil, &Error{Code: ECONFLICT, Field: "seed",
					Message: "this change would move units that are already assigned (arms, weights, layer, forced units or less coverage) or change how metrics are counted; give a new seed to start a new phase"}
			}
		}
		out := *next
		out.RampSteps = cur.RampSteps // the node's record, never the client's
		if cur.State == ExperimentRunning && cur.Ramp != nil && next.Ramp != nil {
			// The ramp owns coverage while it runs.
			out.Coverage = cur.Coverage
		}
		out.State, out.StopReason, out.ConcludedArm = cur.State, cur.StopReason, cur.ConcludedArm
		out.CreatedAt, out.CreatedBy, out.StartedAt, out.StoppedAt = cur.CreatedAt, cur.CreatedBy, cur.StartedAt, cur.StoppedAt
		out.PhaseStartedAt = cur.PhaseStartedAt
		if cur.PhaseStartedAt != nil && (cur.HashSeed() != next.HashSeed() || !slices.Equal(cur.Arms, next.Arms) || !cur.SameMetrics(next)) {
			// A new phase: the store drops the old phase's units and
			// aggregates in this same write.
			now := x.now()
			out.PhaseStartedAt = &now
		}
		return &out, nil
	})
}

// Start runs a draft or stopped experiment. Every arm and shadow must meet
// the production alias's signing policy, and no running experiment of its
// layer may overlap its range.
func (x *Experiments) Start(ctx context.Context, name string) (*Experiment, error) {
	e, err := x.Store.Experiment(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := x.prepare(ctx, e); err != nil { // versions may have been archived since
		return nil, err
	}
	if policy := x.Policies[ProductionAlias]; policy.RequireSignature {
		check := func(field string, version int) error {
			v, err := x.Models.ModelVersion(ctx, e.Model, version)
			if err != nil {
				return err
			}
			if !v.HasTrustedSignature() {
				return &Error{Code: ECONFLICT, Field: field,
					Message: fmt.Sprintf("%s has no trusted signature, which the %s alias requires of every version serving traffic", ModelRef(e.Model, version), ProductionAlias)}
			}
			return nil
		}
		for i, a := range e.Arms {
			if err := check(fmt.Sprintf("arms[%d].version", i), a.Version); err != nil {
				return nil, err
			}
		}
		for i, s := range e.Shadow {
			if err := check(fmt.Sprintf("shadow[%d].version", i), s.Version); err != nil {
				return nil, err
			}
		}
	}
	defer x.changed()
	return x.Store.UpdateExperiment(ctx, name, "start", func(cur *Experiment, others []*Experiment) (*Experiment, error) {
		if cur.State != ExperimentDraft && cur.State != ExperimentStopped {
			return nil, Errorf(ECONFLICT, "experiment %s is %s; only a draft or stopped experiment starts", name, cur.State)
		}
		for _, o := range others {
			if o.State != ExperimentRunning {
				continue
			}
			if cur.Layer != nil && o.Layer != nil && cur.Layer.Overlaps(o.Layer) {
				return nil, &Error{Code: ECONFLICT, Field: "layer",
					Message: fmt.Sprintf("running experiment %s uses [%g, %g) of layer %s, which overlaps [%g, %g)", o.Name, o.Layer.Start, o.Layer.End, o.Layer.Name, cur.Layer.Start, cur.Layer.End)}
			}
			if o.Model == cur.Model && (cur.Layer == nil || o.Layer == nil || cur.Layer.Name != o.Layer.Name) {
				return nil, &Error{Code: ECONFLICT, Field: "model",
					Message: fmt.Sprintf("experiment %s is already running on model %s; put both in one layer with disjoint ranges to run them side by side", o.Name, cur.Model)}
			}
		}
		now := x.now()
		out := *cur
		out.State, out.StartedAt, out.StoppedAt, out.StopReason = ExperimentRunning, &now, nil, ""
		if out.PhaseStartedAt == nil {
			out.PhaseStartedAt = &now
		}
		if out.Ramp != nil && len(out.RampSteps) == 0 {
			out.Coverage = out.Ramp.Steps[0]
			out.RampSteps = []RampStep{{Step: 0, Coverage: out.Coverage, At: now}}
		}
		return &out, nil
	})
}

// AdvanceRamp moves a running experiment's ramp to its next step when the
// interval since the last step has passed, and reports whether it did.
// The caller checks guardrails first: a ramp advances only while they hold.
func (x *Experiments) AdvanceRamp(ctx context.Context, name string) (bool, error) {
	advanced := false
	_, err := x.Store.UpdateExperiment(ctx, name, "ramp", func(cur *Experiment, _ []*Experiment) (*Experiment, error) {
		advanced = false
		if cur.State != ExperimentRunning || cur.Ramp == nil || len(cur.RampSteps) == 0 {
			return nil, errNoRamp
		}
		last := cur.RampSteps[len(cur.RampSteps)-1]
		now := x.now()
		if last.Step+1 >= len(cur.Ramp.Steps) || now.Sub(last.At) < time.Duration(cur.Ramp.Interval) {
			return nil, errNoRamp
		}
		out := *cur
		out.Coverage = cur.Ramp.Steps[last.Step+1]
		out.RampSteps = append(append([]RampStep(nil), cur.RampSteps...), RampStep{Step: last.Step + 1, Coverage: out.Coverage, At: now})
		advanced = true
		return &out, nil
	})
	if errors.Is(err, errNoRamp) {
		return false, nil
	}
	if err == nil && advanced {
		x.changed()
	}
	return advanced, err
}

// errNoRamp aborts an update that has nothing to do.
var errNoRamp = errors.New("no ramp step due")

// Stop stops a running experiment: every unit gets the production alias
// again. reason is recorded (a guardrail names itself).
func (x *Experiments) Stop(ctx context.Context, name, reason string) (*Experiment, error) {
	defer x.changed()
	out, err := x.Store.UpdateExperiment(ctx, name, "stop", func(cur *Experiment, _ []*Experiment) (*Experiment, error) {
		if cur.State != ExperimentRunning {
			return nil, Errorf(ECONFLICT, "experiment %s is %s, not running", name, cur.State)
		}
		now := x.now()
		out := *cur
		out.State, out.StoppedAt, out.StopReason = ExperimentStopped, &now, reason
		return &out, nil
	})
	if err == nil && x.Notifier != nil {
		// The stop is committed; a failed notification is logged, not the
		// stop's error.
		ev := Event{Type: EventExperimentStopped, Subject: "experiment/" + name, Time: x.now(),
			Data: map[string]any{"experiment": name, "reason": reason, "by": CallerFromContext(ctx).Name}}
		if nerr := x.Notifier.Notify(context.WithoutCancel(ctx), ev); nerr != nil {
			cmp.Or(x.Logger, slog.Default()).Error("notify webhooks of an experiment stop", "experiment", name, "err", nerr)
		}
	}
	return out, err
}

// Conclude ends an experiment with a winning arm; promote moves the
// model's production alias to that arm's version (audited by the registry,
// under the alias's policy).
func (x *Experiments) Conclude(ctx context.Context, name, arm string, promote bool) (*Experiment, *AliasChange, error) {
	e, err := x.Store.Experiment(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	if e.Arm(arm) == nil {
		return nil, nil, Invalid("arm", "experiment %s has no arm %q", name, arm)
	}
	defer x.changed()
	version := 0
	out, err := x.Store.UpdateExperiment(ctx, name, "conclude", func(cur *Experiment, _ []*Experiment) (*Experiment, error) {
		a := cur.Arm(arm)
		if a == nil {
			return nil, Invalid("arm", "experiment %s has no arm %q", name, arm)
		}
		version = a.Version
		if cur.State == ExperimentConcluded || cur.State == ExperimentDraft {
			return nil, Errorf(ECONFLICT, "experiment %s is %s; only a running or stopped experiment is concluded", name, cur.State)
		}
		now := x.now()
		c := *cur
		if c.StoppedAt == nil {
			c.StoppedAt = &now
		}
		c.State, c.ConcludedArm = ExperimentConcluded, arm
		return &c, nil
	})
	if err != nil || !promote {
		return out, nil, err
	}
	ch, err := x.Models.SetAlias(ctx, e.Model, ProductionAlias, version, x.Policies[ProductionAlias])
	if err != nil {
		return out, nil, fmt.Errorf("experiment %s is concluded, but moving %s to version %d failed: %w", name, ProductionAlias, version, err)
	}
	return out, ch, nil
}
