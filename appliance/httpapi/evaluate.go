package httpapi

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"mime"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/evalmetrics"
	"github.com/mlnode/mlnode/appliance/tabular"
)

// evaluateVersion is POST /api/v1/models/{name}/versions/{v}/evaluate
// ?label=column[&segment=column&task=classification|regression&output=name&threshold=0.5]:
// scores a labelled set — a training set from historical retrieval, or any
// NDJSON, CSV or Parquet file — through the same input coercions and module
// as predict, and reports classifier or regressor metrics, per segment when
// asked. A model input "view:feature" reads the column "view__feature" or
// "feature" (historical retrieval's two namings); "request:x" reads "x"; a
// missing or null input takes the manifest's default, else the row is
// counted as skipped.
func (s *Server) evaluateVersion(c *fiber.Ctx) error {
	p, err := s.predictor()
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	name := c.Params("name")
	version, err := pathInt("version", c.Params("version"))
	if err != nil {
		return err
	}
	mv, err := s.svc.Models.ModelVersion(ctx, name, version)
	if err != nil {
		return err
	}
	label := c.Query("label")
	if label == "" {
		return appliance.Invalid("label", "is required: the column holding each row's true value")
	}
	segment := c.Query("segment")
	task := c.Query("task", "classification")
	if task != "classification" && task != "regression" {
		return appliance.Invalid("task", "%q is not classification or regression", task)
	}
	outIdx := 0
	if o := c.Query("output"); o != "" {
		outIdx = -1
		for i, name := range mv.Outputs {
			if name == o {
				outIdx = i
			}
		}
		if outIdx < 0 {
			return appliance.Invalid("output", "%s has no output %q (outputs: %s)", appliance.ModelRef(mv.Model, mv.Version), o, strings.Join(mv.Outputs, ", "))
		}
	}
	threshold := 0.0
	if v := c.Query("threshold"); v != "" {
		if threshold, err = strconv.ParseFloat(v, 64); err != nil || threshold <= 0 || threshold > 1 {
			return appliance.Invalid("threshold", "must be a number in (0, 1]")
		}
	}
	var add func(pred, lab float64, seg string) error
	var report func() (any, error)
	if task == "classification" {
		cl, err := evalmetrics.NewClassifier(evalmetrics.ClassifierOptions{Threshold: threshold})
		if err != nil {
			return err
		}
		add, report = cl.Add, func() (any, error) { return cl.Report() }
	} else {
		rg, err := evalmetrics.NewRegressor(evalmetrics.RegressorOptions{})
		if err != nil {
			return err
		}
		add, report = rg.Add, func() (any, error) { return rg.Report() }
	}
	// Where each input comes from, resolved once the columns are known.
	candidates := make([][]string, len(mv.Inputs))
	for i, ref := range mv.Inputs {
		if req, ok := strings.CutPrefix(ref, appliance.RequestPrefix); ok {
			candidates[i] = []string{req}
			continue
		}
		fr, err := appliance.ParseFeatureRef("inputs", ref)
		if err != nil {
			return err
		}
		candidates[i] = []string{fr.View + "__" + fr.Feature, fr.Feature}
	}
	var rows, skipped int64
	labelSeen := false
	in := make([]float64, len(mv.Inputs))
	out := make([]float64, len(mv.Outputs))
	score := func(row func(col string) (appliance.Value, bool)) error {
		lv, ok := row(label)
		labelSeen = labelSeen || ok
		lab, isNum := appliance.AsInput(lv)
		if !ok || !isNum {
			skipped++
			return nil
		}
		for i, names := range candidates {
			found := false
			for _, col := range names {
				if v, ok := row(col); ok {
					if x, ok := appliance.AsInput(v); ok {
						in[i], found = x, true
						break
					}
				}
			}
			if !found {
				d, ok := mv.Defaults[mv.Inputs[i]]
				if !ok {
					skipped++
					return nil
				}
				in[i] = d
			}
		}
		if err := p.Score(ctx, mv, in, out); err != nil {
			return err
		}
		seg := ""
		if segment != "" {
			if v, ok := row(segment); ok {
				seg = valueText(v)
			}
		}
		if err := add(out[outIdx], lab, seg); err != nil {
			return appliance.Invalid(label, "row %d: %s", rows+skipped, appliance.ErrorMessage(err))
		}
		rows++
		return nil
	}
	body, err := bodyReader(c, s.cfg.EntityUploadLimit)
	if err != nil {
		return err
	}
	mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	switch mt {
	case "application/x-ndjson", "application/ndjson":
		err = evalNDJSON(body, score)
	case "text/csv":
		err = evalCSV(body, score)
	case "application/vnd.apache.parquet", "application/x-parquet":
		err = s.evalParquet(ctx, body, score)
	default:
		return &appliance.Error{Code: appliance.EMEDIATYPE, Field: "Content-Type", Message: "use application/x-ndjson, text/csv or application/vnd.apache.parquet"}
	}
	if err != nil {
		return err
	}
	if rows == 0 && !labelSeen && skipped > 0 {
		return appliance.Invalid("label", "no row has a column %q", label)
	}
	if rows == 0 {
		return appliance.Invalid("body", "no row could be scored (%d skipped: a missing or non-numeric label or input without a default)", skipped)
	}
	rep, err := report()
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"model": mv.Model, "version": mv.Version, "task": task, "output": mv.Outputs[outIdx],
		"rows": rows, "skipped": skipped, "metrics": rep})
}

func valueText(v appliance.Value) string {
	switch v.Kind {
	case appliance.KindString, appliance.KindBytes:
		return v.Str
	case appliance.KindInt64:
		return strconv.FormatInt(v.Int, 10)
	case appliance.KindBool:
		return strconv.FormatBool(v.Int != 0)
	case appliance.KindFloat64:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	}
	return ""
}

func evalNDJSON(body io.Reader, score func(func(string) (appliance.Value, bool)) error) error {
	dec := json.NewDecoder(bufio.NewReaderSize(body, 64<<10))
	dec.UseNumber()
	for line := 0; ; line++ {
		var m map[string]any
		err := dec.Decode(&m)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return appliance.Invalid("body", "row %d: bad JSON: %v", line, err)
		}
		if err := score(func(col string) (appliance.Value, bool) {
			x, ok := m[col]
			if !ok || x == nil {
				return appliance.Value{}, false
			}
			return jsonValue(x), true
		}); err != nil {
			return err
		}
	}
}

func evalCSV(body io.Reader, score func(func(string) (appliance.Value, bool)) error) error {
	r := csv.NewReader(body)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return csvErr(err)
	}
	idx := map[string]int{}
	for i, h := range header {
		idx[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvErr(err)
		}
		if err := score(func(col string) (appliance.Value, bool) {
			i, ok := idx[col]
			if !ok || i >= len(rec) || rec[i] == "" {
				return appliance.Value{}, false
			}
			if f, err := strconv.ParseFloat(rec[i], 64); err == nil {
				return appliance.Float64Value(f), true
			}
			if b, err := strconv.ParseBool(rec[i]); err == nil {
				return appliance.BoolValue(b), true
			}
			return appliance.StringValue(rec[i]), true
		}); err != nil {
			return err
		}
	}
}

func (s *Server) evalParquet(ctx context.Context, body io.Reader, score func(func(string) (appliance.Value, bool)) error) error {
	f, size, err := spoolFile(s.cfg.SpoolDir, body)
	if err != nil {
		return err
	}
	defer f.Close()
	pf, err := tabular.OpenParquet(f, size)
	if err != nil {
		return err
	}
	idx := map[string]int{}
	for i, col := range pf.Columns() {
		if col.Dtype != "" {
			idx[col.Name] = i
		}
	}
	return pf.Rows(ctx, func(row []appliance.Value) error {
		return score(func(col string) (appliance.Value, bool) {
			i, ok := idx[col]
			if !ok || row[i].Null() {
				return appliance.Value{}, false
			}
			return row[i], true
		})
	})
}
