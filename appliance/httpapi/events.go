package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/abtest"
	"github.com/mlnode/mlnode/appliance/results"
)

// eventRoutes registers outcome events and experiment results.
func (s *Server) eventRoutes(v1 fiber.Router, reader, writer fiber.Handler) {
	v1.Post("/events", writer, s.postEvents)
	v1.Get("/experiments/:name/results", reader, s.experimentResults)
}

type eventIn struct {
	Unit      string          `json:"unit"`
	Metric    string          `json:"metric"`
	Value     json.RawMessage `json:"value"`
	Timestamp json.RawMessage `json:"timestamp"`
	EventID   string          `json:"event_id"`
}

type eventError struct {
	Row    int    `json:"row"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// postEvents is POST /api/v1/events: one JSON object, a JSON array of them
// or NDJSON, each {"unit","metric","value","timestamp","event_id"}. The
// batch is atomic: one invalid event refuses it, naming every bad row (up
// to 100). Events are durable when the answer is sent.
func (s *Server) postEvents(c *fiber.Ctx) error {
	if s.svc.ExperimentData == nil {
		return appliance.Errorf(appliance.EUNAVAILABLE, "this node runs no experiments")
	}
	mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if mt != fiber.MIMEApplicationJSON && mt != "application/x-ndjson" && mt != "application/ndjson" {
		return &appliance.Error{Code: appliance.EMEDIATYPE, Field: "Content-Type", Message: "use application/json (an object or an array) or application/x-ndjson"}
	}
	body, err := bodyReader(c, s.cfg.IngestBodyLimit)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	var events []appliance.OutcomeEvent
	var errs []eventError
	bad := 0
	add := func(row int, in *eventIn) {
		ev, field, reason := in.event(now)
		if reason != "" {
			bad++
			if len(errs) < 100 {
				errs = append(errs, eventError{Row: row, Field: field, Reason: reason})
			}
			return
		}
		events = append(events, ev)
	}
	br := bufio.NewReaderSize(body, 64<<10)
	first, err := peekNonSpace(br)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	switch {
	case first == '[':
		if _, err := dec.Token(); err != nil {
			return jsonErr("body", err)
		}
		for row := 0; dec.More(); row++ {
			var in eventIn
			if err := dec.Decode(&in); err != nil {
				return eventDecodeErr(row, err)
			}
			add(row, &in)
		}
		if _, err := dec.Token(); err != nil {
			return jsonErr("body", err)
		}
	default:
		for row := 0; ; row++ {
			var in eventIn
			err := dec.Decode(&in)
			if err == io.EOF {
				break
			}
			if err != nil {
				return eventDecodeErr(row, err)
			}
			add(row, &in)
		}
	}
	if bad > 0 {
		return &appliance.Error{Code: appliance.EINVALID, Field: "events",
			Message: fmt.Sprintf("%d of %d events are invalid; nothing was recorded", bad, bad+len(events)), Details: errs}
	}
	if len(events) == 0 {
		return appliance.Invalid("body", "no events")
	}
	res, err := s.svc.ExperimentData.RecordEvents(c.UserContext(), events)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func peekNonSpace(r *bufio.Reader) (byte, error) {
	for {
		b, err := r.ReadByte()
		if err == io.EOF {
			return 0, appliance.Invalid("body", "is empty")
		}
		if err != nil {
			return 0, appliance.Invalid("body", "reading the body: %v", err)
		}
		if b != ' ' && b != '\n' && b != '\r' && b != '\t' {
			return b, r.UnreadByte()
		}
	}
}

func eventDecodeErr(row int, err error) error {
	return appliance.JSONError(fmt.Sprintf("events[%d]", row), err)
}

// event validates one event: unit and metric required, value finite
// (default 1: a conversion), timestamp RFC 3339 or unix seconds (below
// 1e11) or milliseconds, default now.
func (in *eventIn) event(now time.Time) (appliance.OutcomeEvent, string, string) {
	ev := appliance.OutcomeEvent{Unit: in.Unit, Metric: in.Metric, Value: 1, EventID: in.EventID, Time: now.UnixMicro()}
	if in.Unit == "" {
		return ev, "unit", "is required"
	}
	if len(in.Unit) > 256 {
		return ev, "unit", "is longer than 256 bytes"
	}
	if strings.ContainsRune(in.Unit, utf8.RuneError) {
		// encoding/json turns invalid UTF-8 into U+FFFD: two units would
		// silently become one.
		return ev, "unit", "is not valid UTF-8"
	}
	if err := appliance.ValidateName("metric", in.Metric); err != nil {
		return ev, "metric", appliance.ErrorMessage(err)
	}
	if len(in.Value) > 0 {
		// Bounded so that sums of squares over millions of units stay
		// finite and exact enough. null is not "absent": a conversion
		// leaves the value out.
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(in.Value)), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e12 {
			return ev, "value", "must be a finite number within ±1e12 (leave it out for a conversion, 1)"
		}
		ev.Value = v
	}
	if len(in.EventID) > 256 {
		return ev, "event_id", "is longer than 256 bytes"
	}
	if ts := bytes.TrimSpace(in.Timestamp); len(ts) > 0 && string(ts) != "null" {
		var s string
		if json.Unmarshal(ts, &s) == nil {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return ev, "timestamp", fmt.Sprintf("%q is not an RFC 3339 time", s)
			}
			if y := t.UTC().Year(); y < 1 || y > 9999 {
				return ev, "timestamp", "is outside the years 0001 to 9999"
			}
			ev.Time = t.UnixMicro()
		} else {
			f, err := strconv.ParseFloat(string(ts), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return ev, "timestamp", "must be an RFC 3339 time or unix seconds or milliseconds"
			}
			if math.Abs(f) >= 1e11 {
				f /= 1000
			}
			if math.Abs(f) > 253402300800 { // the year 10000
				return ev, "timestamp", "is outside the years 0001 to 9999"
			}
			ev.Time = int64(math.Round(f * 1e6))
		}
	}
	return ev, "", ""
}

// experimentResults is GET /api/v1/experiments/{name}/results[?sequential=
// true&alpha=0.05&correction=holm|bh|none&scale=relative|absolute]: from the
// incremental aggregates, never the raw events.
func (s *Server) experimentResults(c *fiber.Ctx) error {
	x, err := s.experiments()
	if err != nil {
		return err
	}
	if s.svc.ExperimentData == nil {
		return appliance.Errorf(appliance.EUNAVAILABLE, "this node runs no experiments")
	}
	e, err := x.Store.Experiment(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	var opts abtest.Options
	if c.Query("sequential") != "" {
		if opts.Sequential, err = boolQuery(c, "sequential"); err != nil {
			return err
		}
	}
	if v := c.Query("alpha"); v != "" {
		a, err := strconv.ParseFloat(v, 64)
		if err != nil || !(a > 0 && a < 0.5) { // NaN fails too
			return appliance.Invalid("alpha", "must be a number in (0, 0.5)")
		}
		opts.Alpha = a
	}
	if v := c.Query("sequential_tuning"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || !(n > 0) || math.IsInf(n, 1) {
			return appliance.Invalid("sequential_tuning", "must be a positive number of units (N*)")
		}
		opts.SequentialTuning = n
	}
	switch v := c.Query("correction"); v {
	case "":
	case "holm":
		opts.Correction = abtest.CorrectionHolm
	case "bh":
		opts.Correction = abtest.CorrectionBH
	case "none":
		opts.Correction = abtest.CorrectionNone
	default:
		return appliance.Invalid("correction", "%q is not holm, bh or none", v)
	}
	switch v := c.Query("scale"); v {
	case "":
	case "relative":
		opts.Scale = abtest.Relative
	case "absolute":
		opts.Scale = abtest.Absolute
	default:
		return appliance.Invalid("scale", "%q is not relative or absolute", v)
	}
	aggs, caps, err := results.Aggregates(c.UserContext(), s.svc.ExperimentData, e)
	if err != nil {
		return err
	}
	rep, err := results.Analyze(e, aggs, opts)
	if err != nil {
		return err
	}
	rep.PercentileCaps = caps
	return c.JSON(rep)
}
