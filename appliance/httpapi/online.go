package httpapi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

// Feature statuses, as Feast's FieldStatus enum names them.
const (
	statusPresent       = "PRESENT"
	statusNullValue     = "NULL_VALUE"
	statusNotFound      = "NOT_FOUND"
	statusOutsideMaxAge = "OUTSIDE_MAX_AGE"
)

// feastRequest is Feast's GetOnlineFeatures HTTP request. Unknown fields are
// ignored, as Feast's server ignores them.
type feastRequest struct {
	featuresRaw      []byte          // the "features" array as sent; see features()
	FeatureService   string          `json:"feature_service"`
	Entities         json.RawMessage `json:"entities"`
	FullFeatureNames bool            `json:"full_feature_names"`
	// RequestContext holds request-time inputs of on-demand transforms, one
	// value per entity row, as Feast's Go server takes them; Feast's Python
	// server takes them inside entities, which works too.
	RequestContext json.RawMessage `json:"request_context"`
}

// viewRead is one view version's part of a request.
type viewRead struct {
	view     *appliance.FeatureView
	features []int // indexes into view.Features, in request order
	names    []string
	rows     []appliance.OnlineRow
	stamps   [][]byte // each row's event timestamp as JSON, formatted once
}

// readPlan is what a list of feature references resolves to: per view
// version, which features and under which output names. Plans are cached
// by the list, and a cached plan is used only while every view it names is
// still the registry's answer for its reference (a new version or a PATCH
// replaces the registry's view objects).
type readPlan struct {
	views []planView
	order []planRef // the requested features, in request order
}

// planRef is one requested feature: its view and its place in that view's
// list.
type planRef struct{ view, pos int }

type planView struct {
	view     *appliance.FeatureView
	version  int // as referenced: 0 for "latest"
	features []int
	names    []string
}

// maxCachedPlans bounds the plan cache: clients send a handful of distinct
// feature lists, not an unbounded stream of them. A list longer than
// maxCachedPlanKey bytes (as sent, spaces and all) is planned every time
// rather than kept: the cache holds at most 4096 × 8 KiB.
const (
	maxCachedPlans   = 4096
	maxCachedPlanKey = 8 << 10
)

// Bounds of one online read, so that one request cannot hold gigabytes:
// rows (entities), and rows × features (values answered).
const (
	maxOnlineRows   = 10_000
	maxOnlineValues = 1_000_000
)

func (s *Server) resolveFeatures(c *fiber.Ctx, key []byte, refs func() ([]string, error), field string, full bool) ([]*viewRead, []planRef, error) {
	cache := &s.plans
	if full {
		cache = &s.plansFull
	}
	cache.mu.RLock()
	plan := cache.m[string(key)] // no allocation: the compiler sees the conversion in the index
	cache.mu.RUnlock()
	if plan != nil {
		for _, pv := range plan.views {
			if v, err := s.svc.Registry.FeatureView(c.UserContext(), pv.view.Name, pv.version); err != nil || v != pv.view {
				plan = nil
				break
			}
		}
	}
	if plan == nil {
		list, err := refs()
		if err != nil {
			return nil, nil, err
		}
		if len(list) == 0 {
			return nil, nil, appliance.Invalid("features", "give \"features\" or \"feature_service\"")
		}
		if plan, err = s.planFeatures(c, list, field, full); err != nil {
			return nil, nil, err
		}
		cache.mu.Lock()
		if cache.m == nil {
			cache.m = map[string]*readPlan{}
		}
		if _, have := cache.m[string(key)]; have || (len(cache.m) < maxCachedPlans && len(key) <= maxCachedPlanKey) {
			cache.m[string(key)] = plan
		}
		cache.mu.Unlock()
	}
	reads := make([]*viewRead, len(plan.views))
	for i := range plan.views {
		pv := &plan.views[i]
		reads[i] = &viewRead{view: pv.view, features: pv.features, names: pv.names}
	}
	return reads, plan.order, nil
}

// planCache maps a feature list, as sent, to its resolved plan.
type planCache struct {
	mu sync.RWMutex
	m  map[string]*readPlan
}

// planFeatures groups feature references by view version, in order of
// first appearance, keeping the requested order of features.
func (s *Server) planFeatures(c *fiber.Ctx, refs []string, field string, full bool) (*readPlan, error) {
	plan := &readPlan{}
	names := make(map[string]int, len(refs))
	for i, r := range refs {
		fieldAt := func() string { return fmt.Sprintf("%s[%d]", field, i) }
		ref, err := appliance.ParseFeatureRef(field, r)
		if err != nil {
			err.(*appliance.Error).Field = fieldAt()
			return nil, err
		}
		view, err := s.svc.Registry.FeatureView(c.UserContext(), ref.View, ref.Version)
		if err != nil {
			return nil, &appliance.Error{Code: appliance.ErrorCode(err), Field: fieldAt(), Message: appliance.ErrorMessage(err)}
		}
		idx := view.FeatureIndex(ref.Feature)
		if idx < 0 {
			return nil, &appliance.Error{Code: appliance.ENOTFOUND, Field: fieldAt(), Message: fmt.Sprintf("feature view %s has no feature %q", view.Key(), ref.Feature)}
		}
		name := ref.Feature
		if full {
			name = ref.View + "__" + ref.Feature
		}
		if prev, dup := names[name]; dup {
			return nil, appliance.Invalid(fieldAt(), "%q and %q both output the column %q: set full_feature_names or drop one", refs[prev], r, name)
		}
		names[name] = i
		vi := -1
		for j := range plan.views {
			if plan.views[j].view == view && plan.views[j].version == ref.Version {
				vi = j
				break
			}
		}
		if vi < 0 {
			plan.views = append(plan.views, planView{view: view, version: ref.Version})
			vi = len(plan.views) - 1
		}
		pv := &plan.views[vi]
		pv.features = append(pv.features, idx)
		pv.names = append(pv.names, name)
		plan.order = append(plan.order, planRef{view: vi, pos: len(pv.features) - 1})
	}
	return plan, nil
}

// getOnlineFeatures is Feast's POST /get-online-features: the same request
// and the same column-major response, so Feast's HTTP clients work as they
// are. Differences, all documented in docs/api.md: features keep request
// order; a stored null reads NULL_VALUE and a value older than its view's
// TTL reads OUTSIDE_MAX_AGE with a null value; bytes are base64.
func (s *Server) getOnlineFeatures(c *fiber.Ctx) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	var req feastRequest
	if err := parseFeastRequest(body, &req); err != nil {
		return err
	}
	key, field := req.featuresRaw, "features"
	refs := func() ([]string, error) { return req.features() }
	if req.FeatureService != "" {
		fs, err := s.svc.Registry.FeatureService(c.UserContext(), req.FeatureService)
		if err != nil {
			return &appliance.Error{Code: appliance.ErrorCode(err), Field: "feature_service", Message: appliance.ErrorMessage(err)}
		}
		// Service names never start with '[', so they cannot meet a list.
		key, field = []byte("service:"+fs.Name+"\x00"+strings.Join(fs.Features, "\x00")), "feature_service"
		refs = func() ([]string, error) { return fs.Features, nil }
	}
	if len(key) == 0 || string(key) == "[]" {
		return appliance.Invalid("features", "give \"features\" or \"feature_service\"")
	}
	reads, order, err := s.resolveFeatures(c, key, refs, field, req.FullFeatureNames)
	if err != nil {
		return err
	}
	cols, err := parseEntities("entities", req.Entities)
	if err != nil {
		return err
	}
	nrows := len(cols[0].values)
	nfeatures := 0
	for _, vr := range reads {
		nfeatures += len(vr.features)
	}
	if nrows > maxOnlineRows || nrows*nfeatures > maxOnlineValues {
		return appliance.Invalid("entities", "%d rows × %d features: one read answers at most %d rows and %d values; split the request",
			nrows, nfeatures, maxOnlineRows, maxOnlineValues)
	}
	used := map[string]bool{}
	for _, vr := range reads {
		keys := make([][]byte, nrows)
		for _, jk := range vr.view.JoinKeys {
			col := findColumn(cols, jk.Name)
			if col == nil {
				return appliance.Invalid("entities", "join key %q of feature view %s is missing", jk.Name, vr.view.Key())
			}
			used[jk.Name] = true
			for i, x := range col.values {
				v, err := joinKeyValue("entities."+jk.Name, i, jk.ValueType, x)
				if err != nil {
					return err
				}
				keys[i] = appliance.AppendEntityKeyPart(keys[i], v)
			}
		}
		vr.rows = getRows(nrows)
		defer putRows(vr.rows)
		if err := s.svc.Features.ReadOnline(c.UserContext(), vr.view, keys, vr.rows); err != nil {
			return err
		}
		vr.stamps = make([][]byte, nrows)
		for i := range vr.rows {
			if vr.rows[i].Found {
				vr.stamps[i] = append(appliance.AppendJSONTime(append(make([]byte, 0, 32), '"'), vr.rows[i].EventTime), '"')
			}
		}
	}
	var reqCols []entityColumn
	if len(req.RequestContext) > 0 && string(req.RequestContext) != "null" {
		if reqCols, err = parseEntities("request_context", req.RequestContext); err != nil {
			return err
		}
		if len(reqCols[0].values) != nrows {
			return appliance.Invalid("request_context", "has %d values per input but entities have %d rows", len(reqCols[0].values), nrows)
		}
	}
	for _, vr := range reads {
		if err := s.computeOnDemand(c, vr, cols, reqCols, used); err != nil {
			return err
		}
	}
	for _, col := range cols {
		if !used[col.name] {
			return appliance.Invalid("entities."+col.name, "is not a join key of any requested feature view, nor a request input of its transform")
		}
	}

	now := s.now().UnixMicro()
	bp := outPool.Get().(*[]byte)
	defer outPool.Put(bp)
	out := (*bp)[:0]
	out = append(out, `{"metadata":{"feature_names":[`...)
	first := true
	name := func(n string) {
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appliance.AppendJSONString(out, n)
	}
	for _, col := range cols {
		name(col.name)
	}
	for _, o := range order {
		name(reads[o.view].names[o.pos])
	}
	out = append(out, `]},"results":[`...)
	for ci, col := range cols {
		if ci > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"values":[`...)
		for i, x := range col.values {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendScalar(out, x)
		}
		out = appendRepeated(out, `],"statuses":[`, `"PRESENT"`, nrows)
		out = appendRepeated(out, `],"event_timestamps":[`, `"1970-01-01T00:00:00Z"`, nrows)
		out = append(out, "]}"...)
	}
	for k, o := range order {
		if k > 0 || len(cols) > 0 {
			out = append(out, ',')
		}
		vr := reads[o.view]
		out = appendFeatureColumn(out, vr, vr.features[o.pos], now)
	}
	out = append(out, "]}"...)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	*bp = out
	// SetBody copies: out goes back to the pool when this returns, and
	// fasthttp writes the body later. (fiber's c.Send does not copy: with
	// it, a concurrent request could overwrite this answer mid-write, and
	// a client received another client's values.)
	c.Response().SetBody(out)
	return nil
}

// Per-request scratch, reused across requests: the response buffer and the
// online rows with their value slices. Plain memory, so sync.Pool suits.
var (
	outPool  = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}
	rowsPool = sync.Pool{New: func() any { return new([]appliance.OnlineRow) }}
)

func getRows(n int) []appliance.OnlineRow {
	rows := *rowsPool.Get().(*[]appliance.OnlineRow)
	if cap(rows) < n {
		rows = append(rows[:cap(rows)], make([]appliance.OnlineRow, n-cap(rows))...)
	}
	return rows[:n]
}

func putRows(rows []appliance.OnlineRow) {
	if cap(rows) > 4096 {
		return // a huge batch request: let it go
	}
	rowsPool.Put(&rows)
}

func appendRepeated(out []byte, prefix, item string, n int) []byte {
	out = append(out, prefix...)
	for i := range n {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, item...)
	}
	return out
}

// featureStatus decides what one stored row says about one feature.
func featureStatus(view *appliance.FeatureView, row *appliance.OnlineRow, idx int, nowMicros int64) (string, bool) {
	switch {
	case !row.Found:
		return statusNotFound, false
	case view.TTL > 0 && nowMicros-row.EventTime > int64(view.TTL)/1000:
		return statusOutsideMaxAge, false
	case row.Values[idx].Null():
		return statusNullValue, false
	}
	return statusPresent, true
}

func appendFeatureColumn(out []byte, vr *viewRead, idx int, now int64) []byte {
	out = append(out, `{"values":[`...)
	for i := range vr.rows {
		if i > 0 {
			out = append(out, ',')
		}
		if _, ok := featureStatus(vr.view, &vr.rows[i], idx, now); ok {
			out = appendValue(out, vr.rows[i].Values[idx], true)
		} else {
			out = append(out, "null"...)
		}
	}
	out = append(out, `],"statuses":[`...)
	for i := range vr.rows {
		if i > 0 {
			out = append(out, ',')
		}
		st, _ := featureStatus(vr.view, &vr.rows[i], idx, now)
		out = append(out, '"')
		out = append(out, st...)
		out = append(out, '"')
	}
	out = append(out, `],"event_timestamps":[`...)
	for i := range vr.rows {
		if i > 0 {
			out = append(out, ',')
		}
		if vr.rows[i].Found {
			out = append(out, vr.stamps[i]...)
		} else {
			out = append(out, `"1970-01-01T00:00:00Z"`...)
		}
	}
	return append(out, "]}"...)
}

func findColumn(cols []entityColumn, name string) *entityColumn {
	for i := range cols {
		if cols[i].name == name {
			return &cols[i]
		}
	}
	return nil
}

// getOnlineRow reads one entity's online row of a view:
// GET /api/v1/feature-views/{name}/online?<join_key>=...[&version=N].
func (s *Server) getOnlineRow(c *fiber.Ctx) error {
	version := 0
	if v := c.Query("version"); v != "" {
		n, err := pathInt("version", v)
		if err != nil {
			return err
		}
		version = n
	}
	view, err := s.svc.Registry.FeatureView(c.UserContext(), c.Params("name"), version)
	if err != nil {
		return err
	}
	var key []byte
	entity := map[string]any{}
	for _, jk := range view.JoinKeys {
		text := c.Query(jk.Name)
		if text == "" {
			return appliance.Invalid(jk.Name, "query parameter is required (join keys: %s)", joinKeyNames(view))
		}
		v, err := parseJoinKeyText(jk.Name, jk.ValueType, text)
		if err != nil {
			return err
		}
		key = appliance.AppendEntityKeyPart(key, v)
		if v.Kind == appliance.KindInt64 {
			entity[jk.Name] = v.Int
		} else {
			entity[jk.Name] = copyString(v.Str)
		}
	}
	rows := make([]appliance.OnlineRow, 1)
	if err := s.svc.Features.ReadOnline(c.UserContext(), view, [][]byte{key}, rows); err != nil {
		return err
	}
	now := s.now().UnixMicro()
	values := make(map[string]json.RawMessage, len(view.Features))
	statuses := make(map[string]string, len(view.Features))
	for i, f := range view.Features {
		st, ok := featureStatus(view, &rows[0], i, now)
		statuses[f.Name] = st
		values[f.Name] = json.RawMessage("null")
		if ok {
			values[f.Name] = appendValue(nil, rows[0].Values[i], false)
		}
	}
	res := fiber.Map{"view": view.Name, "version": view.Version, "entity": entity, "found": rows[0].Found, "values": values, "statuses": statuses}
	if rows[0].Found {
		res["event_timestamp"] = json.RawMessage(`"` + string(appliance.AppendJSONTime(nil, rows[0].EventTime)) + `"`)
	}
	return c.JSON(res)
}

func joinKeyNames(v *appliance.FeatureView) string {
	names := make([]string, len(v.JoinKeys))
	for i, jk := range v.JoinKeys {
		names[i] = jk.Name
	}
	return strings.Join(names, ", ")
}

// computeOnDemand fills the derived values of an on-demand transform for
// every found row, from the stored features and the request-time inputs
// (request_context first, then entities columns of the same name).
func (s *Server) computeOnDemand(c *fiber.Ctx, vr *viewRead, cols, reqCols []entityColumn, used map[string]bool) error {
	view := vr.view
	if view.Transform == nil || view.Transform.Mode != appliance.TransformOnDemand {
		return nil
	}
	needed := false
	for _, idx := range vr.features {
		needed = needed || view.Features[idx].Derived
	}
	if !needed {
		return nil
	}
	if s.svc.Transforms == nil {
		return appliance.Errorf(appliance.EUNAVAILABLE, "this node has no WebAssembly runtime for %s's transform", view.Key())
	}
	// Request inputs by name: their columns, from either place.
	inputs := map[string]*entityColumn{}
	for _, in := range view.Transform.Inputs {
		name, ok := strings.CutPrefix(in, appliance.RequestPrefix)
		if !ok {
			continue
		}
		col := findColumn(reqCols, name)
		if col == nil {
			col = findColumn(cols, name)
			if col != nil {
				used[name] = true
			}
		}
		if col == nil {
			return appliance.Invalid("request_context", "request input %q of %s's transform is missing", name, view.Key())
		}
		inputs[name] = col
	}
	request := map[string]appliance.Value{}
	scratchIn := make([]appliance.TransformValue, 0, len(view.Transform.Inputs))
	nums := make([]float64, 0, len(view.Transform.Inputs))
	out := make([]float64, len(view.Transform.Outputs))
	for i := range vr.rows {
		row := &vr.rows[i]
		if !row.Found {
			continue
		}
		for name, col := range inputs {
			if x := col.values[i]; x.num {
				f, _ := strconv.ParseFloat(x.text, 64)
				request[name] = appliance.Float64Value(f)
			} else {
				request[name] = appliance.StringValue(x.text)
			}
		}
		if err := view.RunTransform(c.UserContext(), s.svc.Transforms, row.Values, request, scratchIn, nums, out); err != nil {
			return &appliance.Error{Code: appliance.ErrorCode(err), Field: "features",
				Message: fmt.Sprintf("on-demand transform of %s: %s", view.Key(), appliance.ErrorMessage(err))}
		}
	}
	return nil
}
