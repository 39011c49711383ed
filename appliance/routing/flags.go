package routing

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/assign"
)

// Flags stores and evaluates feature flags with the experiments' hashing.
// Compiled flags are cached by name and dropped on every change, so an
// evaluation reads nothing from the store.
type Flags struct {
	Store appliance.FlagStore

	mu    sync.RWMutex
	cache map[string]*compiledFlag
	gen   uint64 // bumped by every change: a read that straddles one is not cached
}

type compiledFlag struct {
	flag     *appliance.Flag
	compiled *assign.CompiledFlag
}

// CompileFlag checks a flag's rules and split the way evaluation will use
// them: an operator or pattern it refuses is a 400 naming the field.
func CompileFlag(f *appliance.Flag) (*assign.CompiledFlag, error) {
	af := &assign.Flag{Key: f.Name, Variants: f.Variants, Weights: f.Weights, Coverage: f.Coverage, Seed: f.Seed, HashVersion: 2}
	for _, r := range f.Rules {
		af.Rules = append(af.Rules, assign.FlagRule{Variant: r.Variant,
			Conditions: []assign.Rule{{Attribute: r.Attribute, Op: r.Op, Value: r.Value}}})
	}
	c, err := assign.CompileFlag(af)
	var ae *appliance.Error
	if errors.As(err, &ae) {
		// The API's rules carry one condition each, without the list.
		ae.Field = strings.Replace(ae.Field, ".conditions[0]", "", 1)
	}
	return c, err
}

// Put validates and stores a flag; created reports a new one. With
// createOnly, an existing flag of that name is a conflict, checked inside
// the write.
func (x *Flags) Put(ctx context.Context, f *appliance.Flag, createOnly bool) (bool, error) {
	if f.Coverage == 0 {
		f.Coverage = 1
	}
	if err := f.Validate(); err != nil {
		return false, err
	}
	if _, err := CompileFlag(f); err != nil {
		return false, err
	}
	created, err := x.Store.PutFlag(ctx, f, createOnly)
	x.forget(f.Name)
	return created, err
}

// Delete removes a flag.
func (x *Flags) Delete(ctx context.Context, name string) error {
	err := x.Store.DeleteFlag(ctx, name)
	x.forget(name)
	return err
}

func (x *Flags) forget(name string) {
	x.mu.Lock()
	delete(x.cache, name)
	x.gen++
	x.mu.Unlock()
}

// Evaluation is a flag's answer for one unit.
type Evaluation struct {
	Flag         string `json:"flag"`
	Unit         string `json:"unit"`
	VariantIndex int    `json:"variant_index"`
	Variant      any    `json:"variant"`
	Reason       string `json:"reason"` // rule, split, coverage, no_unit, default
}

// Evaluate returns the unit's variant of a flag.
func (x *Flags) Evaluate(ctx context.Context, name, unit string, attrs map[string]any) (*Evaluation, error) {
	x.mu.RLock()
	cf, gen := x.cache[name], x.gen
	x.mu.RUnlock()
	if cf == nil {
		f, err := x.Store.Flag(ctx, name)
		if err != nil {
			return nil, err
		}
		c, err := CompileFlag(f)
		if err != nil {
			return nil, err
		}
		cf = &compiledFlag{flag: f, compiled: c}
		x.mu.Lock()
		if x.gen == gen { // no change since the read: the copy is current
			if x.cache == nil {
				x.cache = map[string]*compiledFlag{}
			}
			x.cache[strings.Clone(name)] = cf // name may alias a reused request buffer
		}
		x.mu.Unlock()
	}
	v, reason := cf.compiled.Evaluate(unit, attrs)
	return &Evaluation{Flag: name, Unit: unit, VariantIndex: v, Variant: cf.flag.Variants[v], Reason: reason}, nil
}
