package appliance

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ModelRunner runs model modules by digest ("sha256:<hex>"). The wasm
// package implements it. Failures of the module are EUNPROCESSABLE.
type ModelRunner interface {
	Predict(ctx context.Context, module string, limits ModuleLimits, in, out []float64) error
}

// TelemetrySink takes high-rate logs without blocking; false means the
// record was dropped (and counted by the sink).
type TelemetrySink interface {
	Append(kind string, data []byte) bool
}

// PredictRequest asks for one prediction.
type PredictRequest struct {
	Model    string
	Alias    string // default "production"; "latest" and "v<N>" work too
	Version  int    // set: this version, bypassing aliases
	Entities map[string]json.RawMessage
	Request  map[string]json.RawMessage // request-time inputs by name
	Features map[string]float64         // caller-supplied inputs, by reference; they win over stored values
	// Unit identifies the unit for experiments when the experiment's unit
	// attribute is not among Attributes or Entities; logged.
	Unit string
	// Attributes of the unit, for experiment targeting and breakdowns.
	Attributes map[string]any
}

// Prediction is the answer.
type Prediction struct {
	Model     string             `json:"model"`
	Version   int                `json:"version"`
	Alias     string             `json:"alias,omitempty"`
	Outputs   map[string]float64 `json:"outputs"`
	RequestID string             `json:"request_id"`
	// Experiment and Arm are set when a running experiment chose the version.
	Experiment string `json:"experiment,omitempty"`
	Arm        string `json:"arm,omitempty"`
}

// PredictionLog is what the telemetry buffer keeps of each prediction.
// Inputs and outputs are in the order of the version's manifest (its
// inputs and outputs lists): a log line stays small and cheap to write.
type PredictionLog struct {
	RequestID  string            `json:"request_id"`
	Time       time.Time         `json:"time"`
	Model      string            `json:"model"`
	Version    int               `json:"version"`
	Alias      string            `json:"alias,omitempty"`
	EntityKey  map[string]string `json:"entity,omitempty"`
	Unit       string            `json:"unit,omitempty"`
	Experiment string            `json:"experiment,omitempty"`
	Arm        string            `json:"arm,omitempty"`
	Inputs     []float64         `json:"inputs"`
	Outputs    []float64         `json:"outputs"`
	LatencyUS  int64             `json:"latency_us"`
}

// Predictor is the predict flow: resolve the version, read its inputs from
// the online store (one read per view), apply on-demand transforms and
// defaults, run the module, log the prediction asynchronously.
type Predictor struct {
	Models     ModelRegistry
	Views      FeatureRegistry
	Features   FeatureStore
	Runner     ModelRunner
	Transforms Transformer
	Telemetry  TelemetrySink
	// Router applies running experiments to requests that name neither a
	// version nor an alias; nil: none.
	Router ExperimentRouter
	// Shadows runs experiments' shadow versions; nil: shadows are not run.
	Shadows *ShadowRunner
	Now     func() time.Time

	plans   sync.Map // *ModelVersion → *inputPlan
	exposed exposureSet
	arms    armStatsMap
}

// exposureSet remembers which units this process has logged an exposure
// for, as GrowthBook's SDKs do: only a unit's first exposure matters (its
// arm is sticky), so repeats are not logged. It is an open-addressing table
// of 64-bit hashes read and written with atomics: it is on every
// experiment request's path, where a lock showed up in profiles. The table
// starts small, so that a few thousand units stay in cache, and is copied
// into one twice its size when half full, up to about a million units;
// after that a key whose probes find no room evicts another. A unit
// forgotten either way is logged again and the store ignores the repeat;
// a unit is never wrongly taken as seen short of a 64-bit hash collision.
type exposureSet struct {
	table atomic.Pointer[exposureTable]
}

type exposureTable struct {
	slots   []atomic.Uint64
	used    atomic.Int64
	growing atomic.Bool // one request copies the table into a bigger one
}

// grown copies the table into one twice its size. A unit marked in the
// old table while the copy runs may be missed: it is logged once more.
func (t *exposureTable) grown() *exposureTable {
	next := &exposureTable{slots: make([]atomic.Uint64, 2*len(t.slots))}
	mask := uint64(len(next.slots) - 1)
	for i := range t.slots {
		h := t.slots[i].Load()
		if h == 0 {
			continue
		}
		for p, j := 0, h>>32; p < exposureProbes; p, j = p+1, j+1 {
			if next.slots[j&mask].CompareAndSwap(0, h) {
				next.used.Add(1)
				break
			}
		}
	}
	return next
}

const (
	exposureSetMinSlots = 1 << 12
	exposureSetMaxSlots = 1 << 21 // 16 MiB
)

// exposureSeed keys the exposure set's hashes; it lives only in memory.
var exposureSeed = maphash.MakeSeed()

func exposureKey(experiment string, phase int64, unit string) uint64 {
	var h maphash.Hash
	h.SetSeed(exposureSeed)
	h.WriteString(experiment)
	h.WriteByte(0)
	h.WriteString(unit)
	var p [8]byte
	binary.LittleEndian.PutUint64(p[:], uint64(phase))
	h.Write(p[:])
	k := h.Sum64()
	if k == 0 { // 0 marks an empty slot
		k = 1
	}
	return k
}

// exposureProbes bounds a lookup; below half full a run of taken slots
// this long is all but impossible, and most lookups read one cache line.
const exposureProbes = 64

func (s *exposureSet) current() *exposureTable {
	t := s.table.Load()
	if t == nil {
		s.table.CompareAndSwap(nil, &exposureTable{slots: make([]atomic.Uint64, exposureSetMinSlots)})
		t = s.table.Load()
	}
	return t
}

// forget unmarks a unit whose exposure could not be logged.
func (s *exposureSet) forget(h uint64) {
	t := s.current()
	mask := uint64(len(t.slots) - 1)
	for p, i := 0, h>>32; p < exposureProbes; p, i = p+1, i+1 {
		// A gap left here may hide a key further along: it is then logged
		// once more, which the store ignores.
		if t.slots[i&mask].CompareAndSwap(h, 0) {
			return
		}
	}
}

// first reports whether the unit's exposure (keyed by exposureKey: a new
// phase reassigns everyone) has not been seen yet, and marks it.
func (s *exposureSet) first(h uint64) bool {
	t := s.current()
	mask := uint64(len(t.slots) - 1)
	start := h >> 32 // the low bits are the phase's and unit's mix too, but these are spread by the hash
	for p, i := 0, start; p < exposureProbes; p, i = p+1, i+1 {
		slot := &t.slots[i&mask]
		switch v := slot.Load(); {
		case v == h:
			return false
		case v == 0:
			if slot.CompareAndSwap(0, h) {
				if n := len(t.slots); t.used.Add(1) > int64(n/2) && n < exposureSetMaxSlots && t.growing.CompareAndSwap(false, true) {
					s.table.Store(t.grown())
				}
				return true
			}
			if slot.Load() == h { // marked meanwhile by a concurrent request
				return false
			}
		}
	}
	t.slots[start&mask].Store(h) // no room nearby: evict
	return true
}

// inputPlan is how a version's inputs are gathered.
type inputPlan struct {
	views  []*planView
	inputs []inputSource // one per manifest input, in order
}

type planView struct {
	view *FeatureView
}

type inputSource struct {
	ref     string // as in the manifest
	view    int    // index in views; -1 for a request input
	feature int
	request string
}

func (p *Predictor) plan(ctx context.Context, mv *ModelVersion) (*inputPlan, error) {
	if cached, ok := p.plans.Load(mv); ok {
		return cached.(*inputPlan), nil
	}
	plan := &inputPlan{}
	byKey := map[string]int{}
	for i, in := range mv.Inputs {
		if name, ok := strings.CutPrefix(in, RequestPrefix); ok {
			plan.inputs = append(plan.inputs, inputSource{ref: in, view: -1, request: name})
			continue
		}
		ref, err := ParseFeatureRef(fmt.Sprintf("inputs[%d]", i), in)
		if err != nil {
			return nil, err
		}
		version := ref.Version
		if version == 0 {
			version = mv.Lineage.FeatureViews[ref.View] // pinned at upload
		}
		view, err := p.Views.FeatureView(ctx, ref.View, version)
		if err != nil {
			return nil, Errorf(ErrorCode(err), "input %q of %s: %s", in, ModelRef(mv.Model, mv.Version), ErrorMessage(err))
		}
		idx := view.FeatureIndex(ref.Feature)
		if idx < 0 {
			return nil, Errorf(EUNPROCESSABLE, "input %q of %s: %s has no feature %q", in, ModelRef(mv.Model, mv.Version), view.Key(), ref.Feature)
		}
		vi, ok := byKey[view.Key()]
		if !ok {
			vi = len(plan.views)
			byKey[view.Key()] = vi
			plan.views = append(plan.views, &planView{view: view})
		}
		plan.inputs = append(plan.inputs, inputSource{ref: in, view: vi, feature: idx})
	}
	p.plans.Store(mv, plan)
	return plan, nil
}

// Resolve returns the version a request names.
func (p *Predictor) Resolve(ctx context.Context, req *PredictRequest) (*ModelVersion, string, error) {
	if req.Version > 0 {
		mv, err := p.Models.ModelVersion(ctx, req.Model, req.Version)
		return mv, "", err
	}
	alias := req.Alias
	if alias == "" {
		alias = "production"
	}
	mv, err := p.Models.ResolveModel(ctx, req.Model, alias)
	return mv, alias, err
}

// UnitOf finds a unit attribute's value in the request: among the
// attributes, then the entities (a join key is the usual unit), then the
// request's explicit unit.
func (req *PredictRequest) UnitOf(attribute string) (string, bool) {
	if v, ok := req.Attributes[attribute]; ok {
		switch t := v.(type) {
		case string:
			return t, true
		case json.Number:
			return t.String(), true
		case float64:
			return strconv.FormatFloat(t, 'f', -1, 64), true
		case int64:
			return strconv.FormatInt(t, 10), true
		}
	}
	if raw, ok := req.Entities[attribute]; ok {
		// A plain quoted string (the usual join key) needs no decoder.
		if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' && !bytes.ContainsAny(raw[1:n-1], "\\\"") {
			return string(raw[1 : n-1]), true
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, true
		}
		return strings.TrimSpace(string(raw)), true
	}
	if req.Unit != "" {
		return req.Unit, true
	}
	return "", false
}

// route applies a running experiment: a request that names no version and
// no alias, from a unit an experiment takes, gets its arm's version; rt is
// filled in then.
func (p *Predictor) route(ctx context.Context, req *PredictRequest, rt *Route) (bool, *ModelVersion, error) {
	if p.Router == nil || req.Version > 0 || req.Alias != "" {
		return false, nil, nil
	}
	route, ok, err := p.Router.Route(ctx, req.Model, req, req.Attributes)
	if err != nil || !ok {
		return false, nil, err
	}
	mv, err := p.Models.ModelVersion(ctx, req.Model, route.Arm.Version)
	if err != nil {
		return false, nil, fmt.Errorf("experiment %s arm %s: %w", route.Experiment.Name, route.Arm.Name, err)
	}
	*rt = route
	return true, mv, nil
}

// Predict runs one prediction.
func (p *Predictor) Predict(ctx context.Context, req *PredictRequest) (*Prediction, error) {
	start := time.Now()
	var route Route
	routed, mv, err := p.route(ctx, req, &route)
	if err != nil {
		return nil, err
	}
	var rt *Route // nil: no experiment
	if routed {
		rt = &route
	}
	alias := ""
	if mv == nil {
		if mv, alias, err = p.Resolve(ctx, req); err != nil {
			return nil, err
		}
	}
	plan, err := p.plan(ctx, mv)
	if err != nil {
		return nil, err
	}
	in := make([]float64, len(plan.inputs))
	if err := p.gather(ctx, mv, plan, req, in); err != nil {
		return nil, err
	}
	out := make([]float64, len(mv.Outputs))
	err = p.Runner.Predict(ctx, mv.Module, mv.Limits, in, out)
	took := time.Since(start)
	if rt != nil {
		// A failure of the arm's model is what its error-rate guardrail counts.
		p.arms.get(rt.Experiment.Name, rt.Arm.Name, rt.Experiment.Phase()).record(start, took, err != nil)
	}
	if err != nil {
		return nil, err
	}
	caller := CallerFromContext(ctx)
	res := &Prediction{Model: mv.Model, Version: mv.Version, Alias: alias, Outputs: make(map[string]float64, len(out)), RequestID: caller.RequestID}
	for i, name := range mv.Outputs {
		res.Outputs[name] = out[i]
	}
	if rt != nil {
		res.Experiment, res.Arm = rt.Experiment.Name, rt.Arm.Name
	}
	if p.Telemetry != nil {
		p.log(req, mv, alias, rt, in, out, res.RequestID, took)
		if rt != nil {
			if h := exposureKey(rt.Experiment.Name, rt.Experiment.Phase(), rt.Unit); p.exposed.first(h) && !p.logExposure(req, rt, mv, res.RequestID) {
				// Dropped by a full buffer: the next prediction tries again.
				p.exposed.forget(h)
			}
		}
	}
	if rt != nil && p.Shadows != nil && len(rt.Experiment.Shadow) > 0 {
		p.Shadows.offer(rt, req, mv, in, out, res.RequestID, took)
	}
	return res, nil
}

// gather fills in: caller-supplied features first, then stored values
// (one online read per view), on-demand transforms, request inputs, and the
// manifest's defaults for what is missing or expired. Anything still
// missing fails with EUNPROCESSABLE naming every missing input.
func (p *Predictor) gather(ctx context.Context, mv *ModelVersion, plan *inputPlan, req *PredictRequest, in []float64) error {
	now := p.now().UnixMicro()
	rows := make([]OnlineRow, len(plan.views))
	var missing []string
	for vi, pv := range plan.views {
		needed := false
		for _, src := range plan.inputs {
			if src.view == vi {
				if _, given := req.Features[src.ref]; !given {
					needed = true
				}
			}
		}
		if !needed {
			continue
		}
		var key []byte
		for _, jk := range pv.view.JoinKeys {
			raw, ok := req.Entities[jk.Name]
			if !ok {
				return Invalid("entities."+jk.Name, "join key of %s (needed by %s) is missing", pv.view.Key(), ModelRef(mv.Model, mv.Version))
			}
			v, err := parseJoinKeyJSON("entities."+jk.Name, jk.ValueType, raw)
			if err != nil {
				return err
			}
			key = AppendEntityKeyPart(key, v)
		}
		one := rows[vi : vi+1]
		if err := p.Features.ReadOnline(ctx, pv.view, [][]byte{key}, one); err != nil {
			return err
		}
		view := pv.view
		if t := view.Transform; t != nil && t.Mode == TransformOnDemand && rows[vi].Found {
			if p.Transforms == nil {
				return Errorf(EUNAVAILABLE, "no WebAssembly runtime for %s's transform", view.Key())
			}
			request := map[string]Value{}
			for name, raw := range req.Request {
				request[name] = requestValue(raw)
			}
			err := view.RunTransform(ctx, p.Transforms, rows[vi].Values, request, make([]TransformValue, 0, len(t.Inputs)),
				make([]float64, 0, len(t.Inputs)), make([]float64, len(t.Outputs)))
			if err != nil {
				return err
			}
		}
	}
	for i, src := range plan.inputs {
		if v, ok := req.Features[src.ref]; ok {
			in[i] = v
			continue
		}
		var val Value
		if src.view < 0 {
			if raw, ok := req.Request[src.request]; ok {
				val = requestValue(raw)
			}
		} else if row := &rows[src.view]; row.Found && !plan.views[src.view].view.expired(row.EventTime, now) {
			val = row.Values[src.feature]
		}
		if f, ok := asNumber(val); ok {
			in[i] = f
			continue
		}
		if d, ok := mv.Defaults[src.ref]; ok {
			in[i] = d
			continue
		}
		missing = append(missing, src.ref)
	}
	if len(missing) > 0 {
		return &Error{Code: EUNPROCESSABLE, Field: "entities",
			Message: fmt.Sprintf("%d inputs of %s have no value and no default: %s", len(missing), ModelRef(mv.Model, mv.Version), strings.Join(missing, ", ")),
			Details: map[string]any{"missing": missing}}
	}
	return nil
}

func (v *FeatureView) expired(eventMicros, nowMicros int64) bool {
	return v.TTL > 0 && nowMicros-eventMicros > int64(v.TTL)/1000
}

// asNumber coerces a stored value for the ABI: int64, float64, bool (0/1)
// and timestamps (unix seconds) become float64; anything else is missing.
// AsInput is how predict turns a stored or given value into a model input:
// numbers as they are, booleans 0 or 1, timestamps as unix seconds; other
// kinds are not inputs. Offline evaluation uses it so that a model is
// scored on a file exactly as it would be live.
func AsInput(v Value) (float64, bool) { return asNumber(v) }

// Score runs a version's module on inputs in its manifest's order.
func (p *Predictor) Score(ctx context.Context, mv *ModelVersion, in, out []float64) error {
	return p.Runner.Predict(ctx, mv.Module, mv.Limits, in, out)
}

func asNumber(v Value) (float64, bool) {
	switch v.Kind {
	case KindInt64, KindBool:
		return float64(v.Int), true
	case KindFloat64:
		return v.Float, !math.IsNaN(v.Float)
	case KindTimestamp:
		return float64(v.Int) / 1e6, true
	}
	return 0, false
}

// requestValue reads a request-time input: a number, a bool or a string.
func requestValue(raw json.RawMessage) Value {
	var x any
	if json.Unmarshal(raw, &x) != nil {
		return Value{}
	}
	switch t := x.(type) {
	case float64:
		return Float64Value(t)
	case bool:
		return BoolValue(t)
	case string:
		return StringValue(t)
	}
	return Value{}
}

// parseJoinKeyJSON reads a join key from JSON: an int64 entity takes an
// integer or a decimal string, a string entity a string.
func parseJoinKeyJSON(field, valueType string, raw json.RawMessage) (Value, error) {
	var x any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return Value{}, Invalid(field, "is not a JSON value")
	}
	switch t := x.(type) {
	case json.Number:
		if valueType != EntityInt64 {
			return Value{}, Invalid(field, "%s is a number; this join key is a string", t)
		}
		n, err := strconv.ParseInt(t.String(), 10, 64)
		if err != nil {
			return Value{}, Invalid(field, "%s is not an int64", t)
		}
		return Int64Value(n), nil
	case string:
		if t == "" {
			return Value{}, Invalid(field, "is empty")
		}
		if valueType == EntityInt64 {
			n, err := strconv.ParseInt(t, 10, 64)
			if err != nil {
				return Value{}, Invalid(field, "%q is not an int64", t)
			}
			return Int64Value(n), nil
		}
		return StringValue(t), nil
	}
	return Value{}, Invalid(field, "must be a string or an integer")
}

func (p *Predictor) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// log appends the prediction to the telemetry buffer. It is on every
// request's path, so the JSON is written by hand: no maps, no reflection.
func (p *Predictor) log(req *PredictRequest, mv *ModelVersion, alias string, rt *Route, in, out []float64, requestID string, took time.Duration) {
	b := make([]byte, 0, 256+len(in)*12)
	b = append(b, `{"request_id":`...)
	b = AppendJSONString(b, requestID)
	b = append(b, `,"time":"`...)
	b = p.now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","model":`...)
	b = AppendJSONString(b, mv.Model)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(mv.Version), 10)
	if alias != "" {
		b = append(b, `,"alias":`...)
		b = AppendJSONString(b, alias)
	}
	if len(req.Entities) > 0 {
		b = append(b, `,"entity":{`...)
		first := true
		for k, v := range req.Entities {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = AppendJSONString(b, k)
			b = append(b, ':')
			b = AppendJSONString(b, strings.Trim(string(v), `"`))
		}
		b = append(b, '}')
	}
	if rt != nil {
		b = append(b, `,"experiment":`...)
		b = AppendJSONString(b, rt.Experiment.Name)
		b = append(b, `,"arm":`...)
		b = AppendJSONString(b, rt.Arm.Name)
		b = append(b, `,"unit":`...)
		b = AppendJSONString(b, rt.Unit)
	} else if req.Unit != "" {
		b = append(b, `,"unit":`...)
		b = AppendJSONString(b, req.Unit)
	}
	b = appendFloats(append(b, `,"inputs":`...), in)
	b = appendFloats(append(b, `,"outputs":`...), out)
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendInt(b, took.Microseconds(), 10)
	b = append(b, '}')
	p.Telemetry.Append("prediction", b)
}

// ExposureLog is what the telemetry buffer keeps of each exposure: a unit
// served by an experiment's arm. The breakdown attributes of the
// experiment come along, so results can be split by them.
type ExposureLog struct {
	RequestID  string    `json:"request_id"`
	Time       time.Time `json:"time"`
	Experiment string    `json:"experiment"`
	Arm        string    `json:"arm"`
	Version    int       `json:"version"`
	Unit       string    `json:"unit"`
	// Seed is the assignment's seed: an exposure routed under an older seed
	// (a request in flight while the experiment was reseeded) is not counted
	// in the new phase.
	Seed       string            `json:"seed,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// logExposure appends an exposure to the telemetry buffer, by hand like
// log, and reports whether the buffer took it.
func (p *Predictor) logExposure(req *PredictRequest, rt *Route, mv *ModelVersion, requestID string) bool {
	b := make([]byte, 0, 192)
	b = append(b, `{"request_id":`...)
	b = AppendJSONString(b, requestID)
	b = append(b, `,"time":"`...)
	b = p.now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","experiment":`...)
	b = AppendJSONString(b, rt.Experiment.Name)
	b = append(b, `,"arm":`...)
	b = AppendJSONString(b, rt.Arm.Name)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(mv.Version), 10)
	b = append(b, `,"unit":`...)
	b = AppendJSONString(b, rt.Unit)
	b = append(b, `,"seed":`...)
	b = AppendJSONString(b, rt.Experiment.HashSeed())
	if len(rt.Experiment.Breakdowns) > 0 {
		b = append(b, `,"attributes":{`...)
		n := 0
		for _, name := range rt.Experiment.Breakdowns {
			v, ok := req.Attributes[name]
			if !ok {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			b = AppendJSONString(b, name)
			b = append(b, ':')
			b = AppendJSONString(b, fmt.Sprint(v))
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	return p.Telemetry.Append("exposure", b)
}

// appendFloats writes a JSON array; NaN and infinities (which JSON cannot
// hold) become null.
func appendFloats(b []byte, fs []float64) []byte {
	b = append(b, '[')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	return append(b, ']')
}
