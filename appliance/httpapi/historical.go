package httpapi

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/pit"
	"github.com/mlnode/mlnode/appliance/tabular"
)

// historicalRequest is what a training set request asks for, from a JSON
// body or, when the entity rows come as a file, from the query string.
type historicalRequest struct {
	features         []string
	featureService   string
	fullFeatureNames bool
	hasRows          bool
	start, end       string
}

// A table is what a retrieval streams: a point-in-time join or a range.
type table interface {
	Columns() []pit.Column
	Emit(ctx context.Context, fn func(row []appliance.Value) error) error
}

// historicalFeatures is POST /api/v1/historical-features: a training set.
// The entity rows come in a JSON body ("entity_rows") or as a CSV or
// Parquet body with the request in the query string; they are spooled to
// disk, joined point-in-time with the offline log within the configured
// memory budget, and the result is streamed in the entity rows' order.
func (s *Server) historicalFeatures(c *fiber.Ctx) error {
	ctx := c.UserContext()
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	spool, err := pit.NewSpool(s.cfg.SpoolDir, "entity_rows")
	if err != nil {
		return err
	}
	keep := false // the spool outlives this function when the response streams
	defer func() {
		if !keep {
			spool.Close()
		}
	}()
	req, err := s.readEntityRows(c, spool)
	if err != nil {
		return err
	}
	parts, err := s.historicalParts(c, req)
	if err != nil {
		return err
	}
	var tbl table
	var closeTable func()
	if !req.hasRows {
		if req.start == "" && req.end == "" {
			return appliance.Invalid("entity_rows", "give entity rows, or start and end for every event in a time range")
		}
		start, end, err := timeRange(req.start, req.end)
		if err != nil {
			return err
		}
		rg, err := pit.NewRange(parts, s.svc.Offline, start, end)
		if err != nil {
			return err
		}
		tbl = rg
	} else {
		if req.start != "" || req.end != "" {
			return appliance.Invalid("start", "start and end select events without entity rows; with entity rows each row's event_timestamp is its point in time")
		}
		j, err := pit.Prepare(ctx, spool, parts, s.svc.Offline, pit.Options{TempDir: s.cfg.SpoolDir, MemoryBudget: s.cfg.HistoricalMemoryBudget})
		if err != nil {
			return err
		}
		st := j.Stats()
		c.Set("X-Row-Count", strconv.Itoa(st.Rows))
		tbl, closeTable = j, j.Close
	}
	keep = true
	return s.streamTable(c, tbl, format, func() {
		if closeTable != nil {
			closeTable()
		}
		spool.Close()
	})
}

// streamTable writes a table as the response body while the client reads
// it. Errors after the first byte cannot change the status any more: they
// are logged and cut the body short, which every format makes visible (an
// unterminated JSON array, a Parquet file without its footer).
func (s *Server) streamTable(c *fiber.Ctx, tbl table, format tabular.Format, done func()) error {
	cols := make([]tabular.Column, len(tbl.Columns()))
	for i, col := range tbl.Columns() {
		cols[i] = tabular.Column{Name: col.Name, Dtype: col.Dtype}
	}
	// The writer is built now so that a schema it refuses is a 4xx, not a
	// broken stream.
	if _, err := tabular.NewWriter(io.Discard, format, cols); err != nil {
		done()
		return err
	}
	ctx := context.WithoutCancel(c.UserContext())
	reqID, _ := c.Locals(localRequestID).(string)
	c.Set(fiber.HeaderContentType, format.ContentType())
	c.Context().SetBodyStreamWriter(func(bw *bufio.Writer) {
		defer done()
		w, err := tabular.NewWriter(bw, format, cols)
		if err == nil {
			err = tbl.Emit(ctx, w.WriteRow)
		}
		if err == nil {
			err = w.Close()
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			s.log.Warn("table stream cut short", "request_id", reqID, "err", err)
		}
	})
	return nil
}

// outputFormat is ?format=, else the Accept header, else JSON.
func outputFormat(c *fiber.Ctx) (tabular.Format, error) {
	if f := c.Query("format"); f != "" {
		return tabular.ParseFormat(f)
	}
	if f, ok := tabular.FormatFromAccept(c.Get(fiber.HeaderAccept)); ok {
		return f, nil
	}
	return tabular.FormatJSON, nil
}

// timeRange parses optional RFC 3339 bounds to unix microseconds.
func timeRange(start, end string) (int64, int64, error) {
	var s, e int64
	if start != "" {
		t, err := time.Parse(time.RFC3339Nano, start)
		if err != nil {
			return 0, 0, appliance.Invalid("start", "%q is not an RFC 3339 time", start)
		}
		s = t.UnixMicro()
	}
	if end != "" {
		t, err := time.Parse(time.RFC3339Nano, end)
		if err != nil {
			return 0, 0, appliance.Invalid("end", "%q is not an RFC 3339 time", end)
		}
		e = t.UnixMicro()
	}
	if s != 0 && e != 0 && e <= s {
		return 0, 0, appliance.Invalid("end", "must be after start")
	}
	return s, e, nil
}

// historicalParts resolves the requested features to view versions.
func (s *Server) historicalParts(c *fiber.Ctx, req *historicalRequest) ([]pit.Part, error) {
	refs, field := req.features, "features"
	if req.featureService != "" {
		if len(refs) > 0 {
			return nil, appliance.Invalid("feature_service", "give features or a feature_service, not both")
		}
		fs, err := s.svc.Registry.FeatureService(c.UserContext(), req.featureService)
		if err != nil {
			return nil, &appliance.Error{Code: appliance.ErrorCode(err), Field: "feature_service", Message: appliance.ErrorMessage(err)}
		}
		refs, field = fs.Features, "feature_service"
	}
	if len(refs) == 0 {
		return nil, appliance.Invalid("features", "give \"features\" or \"feature_service\"")
	}
	plan, err := s.planFeatures(c, refs, field, req.fullFeatureNames)
	if err != nil {
		return nil, err
	}
	parts := make([]pit.Part, len(plan.views))
	for i, pv := range plan.views {
		if t := pv.view.Transform; t != nil && t.Mode == appliance.TransformOnDemand {
			for _, fi := range pv.features {
				if pv.view.Features[fi].Derived {
					return nil, appliance.Invalid(field, "%s:%s is computed on demand at read time; historical retrieval returns stored features only", pv.view.Name, pv.view.Features[fi].Name)
				}
			}
		}
		parts[i] = pit.Part{View: pv.view, Features: pv.features, Names: pv.names}
	}
	return parts, nil
}

// readEntityRows reads the request and spools its entity rows.
func (s *Server) readEntityRows(c *fiber.Ctx, spool *pit.Spool) (*historicalRequest, error) {
	mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	switch mt {
	case fiber.MIMEApplicationJSON:
		body, err := bodyReader(c, s.cfg.EntityUploadLimit)
		if err != nil {
			return nil, err
		}
		return readJSONEntityRows(c.UserContext(), body, spool)
	case "text/csv", "application/vnd.apache.parquet", "application/x-parquet":
	case "":
		return nil, &appliance.Error{Code: appliance.EMEDIATYPE, Field: "Content-Type",
			Message: "is required: application/json, or text/csv or application/vnd.apache.parquet for an entity file"}
	default:
		return nil, &appliance.Error{Code: appliance.EMEDIATYPE, Field: "Content-Type",
			Message: fmt.Sprintf("%q is not supported: use application/json, or text/csv or application/vnd.apache.parquet for an entity file", mt)}
	}
	req, err := queryRequest(c)
	if err != nil {
		return nil, err
	}
	req.hasRows = true
	body, err := bodyReader(c, s.cfg.EntityUploadLimit)
	if err != nil {
		return nil, err
	}
	if mt == "text/csv" {
		return req, readCSVEntityRows(c.UserContext(), body, spool)
	}
	return req, s.readParquetEntityRows(c.UserContext(), body, spool)
}

// queryRequest reads the request from the query string of a file upload:
// ?features=v:a,v:b (or repeated), ?feature_service=, ?full_feature_names=.
func queryRequest(c *fiber.Ctx) (*historicalRequest, error) {
	req := &historicalRequest{featureService: c.Query("feature_service")}
	for _, v := range c.Context().QueryArgs().PeekMulti("features") {
		for _, f := range strings.Split(string(v), ",") {
			if f = strings.TrimSpace(f); f != "" {
				req.features = append(req.features, f)
			}
		}
	}
	if c.Query("full_feature_names") != "" {
		b, err := boolQuery(c, "full_feature_names")
		if err != nil {
			return nil, err
		}
		req.fullFeatureNames = b
	}
	return req, nil
}

// maxHistoricalFeatures bounds the feature references of one training set.
const maxHistoricalFeatures = 10_000

// readJSONEntityRows reads {"features", "feature_service",
// "full_feature_names", "entity_rows": [{...}], "start", "end"} token by
// token, so that entity rows go to the spool without the body ever being
// held in memory.
func readJSONEntityRows(ctx context.Context, body io.Reader, spool *pit.Spool) (*historicalRequest, error) {
	dec := json.NewDecoder(body)
	dec.UseNumber()
	req := &historicalRequest{}
	if err := expectDelim(dec, '{', "body", "a JSON object"); err != nil {
		return nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr("body", err)
		}
		key, _ := tok.(string)
		switch key {
		case "features":
			// Token by token, bounded: the body may be as large as the
			// entity upload limit, and 16M tiny strings decoded at once
			// held 1.4 GiB.
			if err := expectDelim(dec, '[', "features", "a list of \"view:feature\" strings"); err != nil {
				return nil, err
			}
			for dec.More() {
				tok, err := dec.Token()
				if err != nil {
					return nil, jsonErr("features", err)
				}
				ref, ok := tok.(string)
				switch {
				case !ok:
					return nil, appliance.Invalid(fmt.Sprintf("features[%d]", len(req.features)), "must be a \"view:feature\" string")
				case len(ref) > 1024:
					return nil, appliance.Invalid(fmt.Sprintf("features[%d]", len(req.features)), "is longer than 1024 bytes")
				case len(req.features) == maxHistoricalFeatures:
					return nil, appliance.Invalid("features", "has more than %d references", maxHistoricalFeatures)
				}
				req.features = append(req.features, ref)
			}
			if _, err := dec.Token(); err != nil {
				return nil, jsonErr("features", err)
			}
		case "feature_service":
			if err := dec.Decode(&req.featureService); err != nil {
				return nil, jsonErr("feature_service", err)
			}
		case "full_feature_names":
			if err := dec.Decode(&req.fullFeatureNames); err != nil {
				return nil, jsonErr("full_feature_names", err)
			}
		case "start":
			if err := dec.Decode(&req.start); err != nil {
				return nil, jsonErr("start", err)
			}
		case "end":
			if err := dec.Decode(&req.end); err != nil {
				return nil, jsonErr("end", err)
			}
		case "entity_rows":
			req.hasRows = true
			if err := readJSONRows(ctx, dec, spool); err != nil {
				return nil, err
			}
		default:
			return nil, appliance.Invalid(key, "unknown field")
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, jsonErr("body", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, appliance.Invalid("body", "unexpected data after the JSON object")
	}
	return req, nil
}

func expectDelim(dec *json.Decoder, want json.Delim, field, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonErr(field, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return appliance.Invalid(field, "must be %s", what)
	}
	return nil
}

func jsonErr(field string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return appliance.Invalid("body", "truncated JSON") // of the whole body, not the field
	}
	return appliance.JSONError(field, err)
}

// readJSONRows spools an array of row objects.
func readJSONRows(ctx context.Context, dec *json.Decoder, spool *pit.Spool) error {
	if err := expectDelim(dec, '[', "entity_rows", "an array of objects"); err != nil {
		return err
	}
	var raw any
	for i := 0; dec.More(); i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := expectDelim(dec, '{', fmt.Sprintf("entity_rows[%d]", i), "an object"); err != nil {
			return err
		}
		spool.Begin()
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return jsonErr("entity_rows", err)
			}
			name, _ := tok.(string)
			raw = nil
			if err := dec.Decode(&raw); err != nil {
				return jsonErr(fmt.Sprintf("entity_rows[%d].%s", i, name), err)
			}
			if err := spool.Set(spool.Column(name), jsonValue(raw)); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return jsonErr("entity_rows", err)
		}
		if err := spool.End(); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return jsonErr("entity_rows", err)
}

// jsonValue types a decoded JSON value: integers stay int64, other numbers
// float64; arrays and objects pass through as their JSON text.
func jsonValue(x any) appliance.Value {
	switch t := x.(type) {
	case nil:
		return appliance.Value{}
	case bool:
		return appliance.BoolValue(t)
	case string:
		return appliance.StringValue(t)
	case json.Number:
		if n, err := strconv.ParseInt(t.String(), 10, 64); err == nil {
			return appliance.Int64Value(n)
		}
		if f, err := t.Float64(); err == nil && !math.IsInf(f, 0) {
			return appliance.Float64Value(f)
		}
		return appliance.StringValue(t.String())
	}
	b, _ := json.Marshal(x)
	return appliance.StringValue(string(b))
}

// readCSVEntityRows spools a CSV file with a header line.
func readCSVEntityRows(ctx context.Context, body io.Reader, spool *pit.Spool) error {
	r := csv.NewReader(body)
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		return appliance.Invalid("body", "the CSV file is empty: it needs a header line")
	}
	if err != nil {
		return csvErr(err)
	}
	cols := make([]int, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if h == "" || seen[h] {
			return appliance.Invalid("body", "CSV header column %d is empty or repeated (%q)", i+1, h)
		}
		seen[h] = true
		cols[i] = spool.Column(h)
	}
	for i := 0; ; i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvErr(err)
		}
		spool.Begin()
		for k, cell := range rec {
			if err := spool.SetText(cols[k], cell); err != nil {
				return err
			}
		}
		if err := spool.End(); err != nil {
			return err
		}
	}
}

func csvErr(err error) error {
	var ae *appliance.Error
	if errors.As(err, &ae) {
		return err
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return appliance.Invalid("body", "CSV line %d: %v", pe.Line, pe.Err)
	}
	return appliance.Invalid("body", "reading CSV: %v", err)
}

// readParquetEntityRows spools the body to a file (Parquet's footer is at
// its end) and reads the entity rows from it.
func (s *Server) readParquetEntityRows(ctx context.Context, body io.Reader, spool *pit.Spool) error {
	f, size, err := spoolFile(s.cfg.SpoolDir, body)
	if err != nil {
		return err
	}
	defer f.Close()
	pf, err := tabular.OpenParquet(f, size)
	if err != nil {
		return err
	}
	pcols := pf.Columns()
	cols := make([]int, len(pcols))
	for i, pc := range pcols {
		if pc.Dtype == "" {
			return appliance.Invalid("body", "Parquet column %q has a type mlnode cannot read", pc.Name)
		}
		cols[i] = spool.Column(pc.Name)
	}
	return pf.Rows(ctx, func(row []appliance.Value) error {
		spool.Begin()
		for k, v := range row {
			if err := spool.Set(cols[k], v); err != nil {
				return err
			}
		}
		return spool.End()
	})
}

// exportView is GET /api/v1/feature-views/{name}/export: every event of a
// view version in a time range, in (entity, time) order, as Parquet, CSV,
// NDJSON or JSON, streamed.
func (s *Server) exportView(c *fiber.Ctx) error {
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
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	start, end, err := timeRange(c.Query("start"), c.Query("end"))
	if err != nil {
		return err
	}
	part := pit.Part{View: view}
	for i, f := range view.Features {
		part.Features = append(part.Features, i)
		part.Names = append(part.Names, f.Name)
	}
	rg, err := pit.NewRange([]pit.Part{part}, s.svc.Offline, start, end)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s_v%d%s"`, view.Name, view.Version, format.Extension()))
	return s.streamTable(c, rg, format, func() {})
}
