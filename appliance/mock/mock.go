// Package mock holds hand-written mocks of appliance interfaces, one func
// field per method, for tests of code that does not own the real thing.
package mock

import (
	"context"

	"github.com/mlnode/mlnode/appliance"
)

// Transformer is an appliance.Transformer.
type Transformer struct {
	TransformFn    func(ctx context.Context, module string, in, out []float64) error
	TransformRowFn func(ctx context.Context, module string, in []appliance.TransformValue, out []float64) error
}

func (t *Transformer) Transform(ctx context.Context, module string, in, out []float64) error {
	return t.TransformFn(ctx, module, in, out)
}

func (t *Transformer) TransformRow(ctx context.Context, module string, in []appliance.TransformValue, out []float64) error {
	return t.TransformRowFn(ctx, module, in, out)
}

// ModuleInspector is an appliance.ModuleInspector.
type ModuleInspector struct {
	InspectModuleFn func(ctx context.Context, wasm []byte) (*appliance.Module, error)
}

func (m *ModuleInspector) InspectModule(ctx context.Context, wasm []byte) (*appliance.Module, error) {
	return m.InspectModuleFn(ctx, wasm)
}

// ModelRunner is an appliance.ModelRunner.
type ModelRunner struct {
	PredictFn func(ctx context.Context, module string, limits appliance.ModuleLimits, in, out []float64) error
}

func (m *ModelRunner) Predict(ctx context.Context, module string, limits appliance.ModuleLimits, in, out []float64) error {
	return m.PredictFn(ctx, module, limits, in, out)
}

// TelemetrySink is an appliance.TelemetrySink.
type TelemetrySink struct {
	AppendFn func(kind string, data []byte) bool
}

func (t *TelemetrySink) Append(kind string, data []byte) bool { return t.AppendFn(kind, data) }
