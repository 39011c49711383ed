// Package routing decides, per predict request, which running experiment
// of a model a unit is in and which arm's version serves it. It compiles
// each running experiment once (GrowthBook-compatible assignment, package
// assign) and keeps them in an immutable table that is swapped whole when
// an experiment changes, so the hot path takes no lock and allocates
// nothing.
package routing

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/assign"
)

// Router implements appliance.ExperimentRouter.
type Router struct {
	Store appliance.ExperimentStore

	table atomic.Pointer[table]
	stale atomic.Bool
	mu    sync.Mutex // one rebuild at a time
}

type table struct {
	byModel map[string][]*entry
}

type entry struct {
	exp      *appliance.Experiment
	compiled *assign.Compiled
}

// Invalidate makes the next Route reload the running experiments; the
// experiment service calls it after every change.
func (r *Router) Invalidate() { r.stale.Store(true) }

// Check implements appliance.ExperimentRouter.
func (r *Router) Check(e *appliance.Experiment) error {
	_, err := Compile(e)
	return err
}

func (r *Router) current(ctx context.Context) (*table, error) {
	if t := r.table.Load(); t != nil && !r.stale.Load() {
		return t, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.table.Load(); t != nil && !r.stale.Load() {
		return t, nil
	}
	// Cleared before reading, so that a change during the read marks the
	// new table stale again.
	r.stale.Store(false)
	list, err := r.Store.Experiments(ctx)
	if err != nil {
		r.stale.Store(true)
		return nil, fmt.Errorf("load experiments: %w", err)
	}
	t := &table{byModel: map[string][]*entry{}}
	for _, e := range list {
		if e.State != appliance.ExperimentRunning {
			continue
		}
		c, err := Compile(e)
		if err != nil {
			// A stored running experiment always compiled when it started;
			// if it no longer does, serving production is the safe answer.
			continue
		}
		t.byModel[e.Model] = append(t.byModel[e.Model], &entry{exp: e, compiled: c})
	}
	r.table.Store(t)
	return t, nil
}

// Compile turns an experiment into its assignment: arms become variations
// in order (the first is the control), conditions and forced units carry
// over, the layer becomes a GrowthBook namespace; hashing is version 2.
func Compile(e *appliance.Experiment) (*assign.Compiled, error) {
	ae := &assign.Experiment{Key: e.Name, Seed: e.HashSeed(), HashVersion: 2, Coverage: e.Coverage}
	for _, a := range e.Arms {
		ae.Weights = append(ae.Weights, a.Weight)
	}
	if e.Layer != nil {
		ae.Namespace = &assign.Namespace{ID: e.Layer.Name, Start: e.Layer.Start, End: e.Layer.End}
	}
	for _, c := range e.Conditions {
		ae.Conditions = append(ae.Conditions, assign.Rule{Attribute: c.Attribute, Op: c.Op, Value: c.Value})
	}
	if len(e.Force) > 0 {
		ae.Force = map[string]int{}
		for unit, arm := range e.Force {
			for i, a := range e.Arms {
				if a.Name == arm {
					ae.Force[unit] = i
				}
			}
		}
	}
	return assign.Compile(ae)
}

// Route implements appliance.ExperimentRouter.
func (r *Router) Route(ctx context.Context, model string, units appliance.UnitSource, attrs map[string]any) (appliance.Route, bool, error) {
	t, err := r.current(ctx)
	if err != nil {
		return appliance.Route{}, false, err
	}
	for _, en := range t.byModel[model] {
		id, ok := units.UnitOf(en.exp.Unit)
		if !ok || id == "" {
			continue
		}
		v, in, _ := en.compiled.Assign(id, attrs)
		if !in || v < 0 || v >= len(en.exp.Arms) {
			continue
		}
		return appliance.Route{Experiment: en.exp, Arm: &en.exp.Arms[v], Unit: id}, true, nil
	}
	return appliance.Route{}, false, nil
}
