// Command pit measures the offline store of mlnode end to end and writes a
// Markdown report:
//
//   - a point-in-time training set: -rows entity rows (uploaded as Parquet)
//     against a view of -events events over -entities entities with
//     -features float features, over HTTP with the result streamed to a
//     file; wall time and the node's peak anonymous memory (RssAnon, which
//     leaves out bbolt's mapped file pages). In the same run, the same join
//     with DuckDB's ASOF JOIN on the same data (DuckDB from npm's
//     @duckdb/node-api, installed into bench/out/node when missing; data
//     preloaded into DuckDB tables, timing the join that produces every
//     output row) as the baseline;
//   - export of the whole view to Parquet: rows/s;
//   - materialize-incremental of -new-events freshly ingested events: rows/s.
//
// Usage: go run ./bench/pit -bin ./bin/mlnode (make bench-pit).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/tabular"
	"github.com/mlnode/mlnode/store"
)

const token = "bench-pit-admin-token-0123456789abcdef"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pit:", err)
		os.Exit(1)
	}
}

type config struct {
	bin       string
	out       string
	events    int
	entities  int
	rows      int
	features  int
	newEvents int
	duckdb    bool
	keep      string
	budget    string
}

func run(ctx context.Context, args []string) error {
	var c config
	fs := flag.NewFlagSet("pit", flag.ContinueOnError)
	fs.StringVar(&c.bin, "bin", "./bin/mlnode", "the mlnode `binary` to measure")
	fs.StringVar(&c.out, "out", "bench/out/pit.md", "where to write the Markdown report")
	fs.IntVar(&c.events, "events", 10_000_000, "events of the view")
	fs.IntVar(&c.entities, "entities", 100_000, "entities of the view")
	fs.IntVar(&c.rows, "rows", 1_000_000, "entity rows of the training set")
	fs.IntVar(&c.features, "features", 10, "float64 features of the view")
	fs.IntVar(&c.newEvents, "new-events", 1_000_000, "events ingested before the timed materialize-incremental")
	fs.BoolVar(&c.duckdb, "duckdb", true, "run the DuckDB ASOF JOIN baseline (needs node and npm)")
	fs.StringVar(&c.keep, "data", "", "keep the generated data in this directory and reuse it in later runs")
	fs.StringVar(&c.budget, "memory-budget", "", "the node's historical_memory_budget (bytes), default its own")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.events%c.entities != 0 || c.events <= 0 || c.rows <= 0 || c.features <= 0 {
		return errors.New("-events must be a positive multiple of -entities; -rows and -features positive")
	}
	dir := c.keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "mlnode-bench-pit-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	dataDir := filepath.Join(dir, "node")
	rep := &report{cfg: c}
	if _, err := os.Stat(filepath.Join(dataDir, "mlnode.db")); err != nil {
		t := time.Now()
		if err := generate(ctx, c, dir, dataDir); err != nil {
			return fmt.Errorf("generate data: %w", err)
		}
		fmt.Printf("generated %d events, %d entity rows in %v\n", c.events, c.rows, time.Since(t).Round(time.Millisecond))
	}

	if c.duckdb {
		ms, err := duckdbJoin(ctx, c, dir)
		if err != nil {
			return fmt.Errorf("duckdb baseline: %w", err)
		}
		rep.duckdbMs = ms
		fmt.Printf("duckdb ASOF JOIN: %.0f ms\n", ms)
	}

	node, err := startNode(ctx, c, dataDir)
	if err != nil {
		return err
	}
	defer node.stop()

	if err := rep.training(ctx, c, node, dir); err != nil {
		return err
	}
	if err := rep.export(ctx, node, dir); err != nil {
		return err
	}
	if err := rep.materialize(ctx, c, node); err != nil {
		return err
	}
	if c.duckdb {
		// The files mlnode wrote must be what a data lake reads: DuckDB
		// counts them.
		for _, f := range []struct {
			name string
			want int64
			got  *int64
		}{{"training.parquet", int64(c.rows), &rep.duckTrain}, {"export.parquet", rep.exportRows, &rep.duckExport}} {
			n, err := duckdbCount(ctx, filepath.Join(dir, f.name))
			if err != nil {
				return fmt.Errorf("duckdb reading %s: %w", f.name, err)
			}
			if n != f.want {
				return fmt.Errorf("duckdb read %d rows from %s, want %d", n, f.name, f.want)
			}
			*f.got = n
		}
	}
	md := rep.markdown()
	fmt.Print(md)
	if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(c.out, []byte(md), 0o644)
}

func featureNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "f" + strconv.Itoa(i)
	}
	return out
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const span = 30 * 24 * time.Hour

// generate writes the view's events straight into a store (ingestion speed
// is measured elsewhere), compacts it as the node would, and writes the
// same events and the entity rows as Parquet files for DuckDB and upload.
func generate(ctx context.Context, c config, dir, dataDir string) error {
	s, err := store.Open(ctx, dataDir, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.BootstrapAdmin(ctx, token); err != nil {
		return err
	}
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: "int64"}); err != nil {
		return err
	}
	fv := &appliance.FeatureView{Name: "user_stats", Entities: []string{"user"}}
	for _, name := range featureNames(c.features) {
		fv.Features = append(fv.Features, appliance.Feature{Name: name, Dtype: appliance.DTypeFloat64})
	}
	view, _, err := s.ApplyFeatureView(ctx, fv)
	if err != nil {
		return err
	}

	evCols := []tabular.Column{{Name: "user_id", Dtype: "int64"}, {Name: "event_timestamp", Dtype: "timestamp"}}
	for _, name := range featureNames(c.features) {
		evCols = append(evCols, tabular.Column{Name: name, Dtype: "float64"})
	}
	evFile, err := os.Create(filepath.Join(dir, "events.parquet"))
	if err != nil {
		return err
	}
	defer evFile.Close()
	bw := bufio.NewWriterSize(evFile, 1<<20)
	evw, err := tabular.NewWriter(bw, tabular.FormatParquet, evCols)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 2))
	const batch = 100_000
	rows := make([]appliance.Row, 0, batch)
	out := make([]appliance.Value, len(evCols))
	for i := range c.events {
		// Entities interleave as live traffic would: event i belongs to
		// entity i % entities, at a random time.
		user := int64(i % c.entities)
		tm := t0.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Microsecond)
		vals := make([]appliance.Value, c.features)
		for k := range vals {
			vals[k] = appliance.Float64Value(r.Float64())
		}
		rows = append(rows, appliance.Row{Key: appliance.AppendEntityKeyPart(nil, appliance.Int64Value(user)), EventTime: tm.UnixMicro(), Values: vals})
		out[0], out[1] = appliance.Int64Value(user), appliance.TimestampValue(tm)
		copy(out[2:], vals)
		if err := evw.WriteRow(out); err != nil {
			return err
		}
		if len(rows) == batch || i == c.events-1 {
			if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: view, Rows: rows, OfflineOnly: true}); err != nil {
				return err
			}
			rows = rows[:0]
		}
	}
	if err := evw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := s.Compact(ctx); err != nil {
		return err
	}

	entFile, err := os.Create(filepath.Join(dir, "entities.parquet"))
	if err != nil {
		return err
	}
	defer entFile.Close()
	ebw := bufio.NewWriterSize(entFile, 1<<20)
	ew, err := tabular.NewWriter(ebw, tabular.FormatParquet, []tabular.Column{{Name: "user_id", Dtype: "int64"}, {Name: "event_timestamp", Dtype: "timestamp"}, {Name: "label", Dtype: "int64"}})
	if err != nil {
		return err
	}
	for i := range c.rows {
		tm := t0.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Microsecond)
		if err := ew.WriteRow([]appliance.Value{appliance.Int64Value(r.Int64N(int64(c.entities))), appliance.TimestampValue(tm), appliance.Int64Value(int64(i % 2))}); err != nil {
			return err
		}
	}
	if err := ew.Close(); err != nil {
		return err
	}
	return ebw.Flush()
}

// duckdbJoin times DuckDB's ASOF JOIN on the same data, tables preloaded.
func duckdbJoin(ctx context.Context, c config, dir string) (float64, error) {
	nodeDir, err := filepath.Abs("bench/out/node")
	if err != nil {
		return 0, err
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "@duckdb", "node-api")); err != nil {
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			return 0, err
		}
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--prefix", nodeDir, "@duckdb/node-api@1.5.6-r.1")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("npm install @duckdb/node-api: %w", err)
		}
	}
	var sel []string
	for _, name := range featureNames(c.features) {
		sel = append(sel, "v."+name)
	}
	script := fmt.Sprintf(`
import { DuckDBInstance } from '@duckdb/node-api';
const inst = await DuckDBInstance.create(':memory:', { threads: '%d' });
const con = await inst.connect();
await con.run("CREATE TABLE events AS SELECT * FROM read_parquet('%s')");
await con.run("CREATE TABLE entities AS SELECT * FROM read_parquet('%s')");
const t = performance.now();
await con.run("CREATE TABLE result AS SELECT e.user_id, e.event_timestamp, e.label, %s FROM entities e ASOF LEFT JOIN events v ON e.user_id = v.user_id AND e.event_timestamp >= v.event_timestamp");
const ms = performance.now() - t;
const n = (await con.runAndReadAll('SELECT count(*) FROM result')).getRows()[0][0];
console.log(JSON.stringify({ ms, rows: Number(n) }));
`, 2, filepath.Join(dir, "events.parquet"), filepath.Join(dir, "entities.parquet"), strings.Join(sel, ", "))
	path := filepath.Join(nodeDir, "asof.mjs")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, "node", path)
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("node %s: %w", path, err)
	}
	var res struct {
		Ms   float64 `json:"ms"`
		Rows int     `json:"rows"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(outb), &res); err != nil {
		return 0, fmt.Errorf("duckdb output %q: %w", outb, err)
	}
	if res.Rows != c.rows {
		return 0, fmt.Errorf("duckdb returned %d rows, want %d", res.Rows, c.rows)
	}
	return res.Ms, nil
}

// duckdbCount reads a Parquet file with DuckDB and counts its rows.
func duckdbCount(ctx context.Context, path string) (int64, error) {
	nodeDir, err := filepath.Abs("bench/out/node")
	if err != nil {
		return 0, err
	}
	script := fmt.Sprintf(`
import { DuckDBInstance } from '@duckdb/node-api';
const con = await (await DuckDBInstance.create(':memory:')).connect();
const rows = (await con.runAndReadAll("SELECT count(*) FROM read_parquet('%s')")).getRows();
console.log(Number(rows[0][0]));
`, path)
	sp := filepath.Join(nodeDir, "count.mjs")
	if err := os.WriteFile(sp, []byte(script), 0o644); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, "node", sp)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

type node struct {
	cmd  *exec.Cmd
	addr string
}

func startNode(ctx context.Context, c config, dataDir string) (*node, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.CommandContext(ctx, c.bin, "serve", "--data-dir", dataDir, "--addr", addr)
	cmd.Env = append(os.Environ(), "MLNODE_ADMIN_TOKEN="+token)
	if c.budget != "" {
		cmd.Env = append(cmd.Env, "MLNODE_HISTORICAL_MEMORY_BUDGET="+c.budget)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := &node{cmd: cmd, addr: addr}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return n, nil
			}
		}
		if time.Since(start) > 60*time.Second {
			n.stop()
			return nil, errors.New("the node did not become ready in 60 s")
		}
	}
}

func (n *node) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	_ = n.cmd.Wait()
}

// rssAnon samples the node's RssAnon (kB) every 10 ms until stopped and
// keeps the peak.
func (n *node) rssAnon() (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		path := fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid)
		for {
			if b, err := os.ReadFile(path); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssAnon:" {
						if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > peak.Load() {
							peak.Store(kb)
						}
					}
				}
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(done); <-finished; return peak.Load() }
}

func (n *node) request(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.addr+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp, nil
}

type report struct {
	cfg        config
	duckdbMs   float64
	trainMs    float64
	trainPeak  int64 // kB
	trainBytes int64
	exportMs   float64
	exportRows int64
	matMs      float64
	matRows    int64
	duckTrain  int64 // rows DuckDB read from mlnode's files
	duckExport int64
}

func (rep *report) training(ctx context.Context, c config, n *node, dir string) error {
	in, err := os.Open(filepath.Join(dir, "entities.parquet"))
	if err != nil {
		return err
	}
	defer in.Close()
	outPath := filepath.Join(dir, "training.parquet")
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	defer out.Close()
	q := "/api/v1/historical-features?format=parquet&features="
	for i, name := range featureNames(c.features) {
		if i > 0 {
			q += ","
		}
		q += "user_stats:" + name
	}
	peak := n.rssAnon()
	t := time.Now()
	resp, err := n.request(ctx, "POST", q, "application/vnd.apache.parquet", in)
	if err != nil {
		peak()
		return err
	}
	rep.trainBytes, err = io.Copy(out, resp.Body)
	resp.Body.Close()
	rep.trainMs = float64(time.Since(t).Microseconds()) / 1000
	rep.trainPeak = peak()
	if err != nil {
		return err
	}
	st, err := out.Stat()
	if err != nil {
		return err
	}
	pf, err := tabular.OpenParquet(out, st.Size())
	if err != nil {
		return fmt.Errorf("training set: %w", err)
	}
	if pf.NumRows() != int64(c.rows) {
		return fmt.Errorf("training set has %d rows, want %d", pf.NumRows(), c.rows)
	}
	fmt.Printf("training set: %d rows in %.0f ms, peak RssAnon %d MiB\n", c.rows, rep.trainMs, rep.trainPeak/1024)
	return nil
}

func (rep *report) export(ctx context.Context, n *node, dir string) error {
	out, err := os.Create(filepath.Join(dir, "export.parquet"))
	if err != nil {
		return err
	}
	defer out.Close()
	t := time.Now()
	resp, err := n.request(ctx, "GET", "/api/v1/feature-views/user_stats/export?format=parquet", "", nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, resp.Body)
	resp.Body.Close()
	rep.exportMs = float64(time.Since(t).Microseconds()) / 1000
	if err != nil {
		return err
	}
	st, _ := out.Stat()
	pf, err := tabular.OpenParquet(out, st.Size())
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	rep.exportRows = pf.NumRows()
	fmt.Printf("export: %d rows in %.0f ms\n", rep.exportRows, rep.exportMs)
	return nil
}

// materialize brings the watermark to the present (untimed), ingests
// -new-events over HTTP offline-only, and times the incremental run that
// takes them online.
func (rep *report) materialize(ctx context.Context, c config, n *node) error {
	if _, err := runJob(ctx, n, `{"feature_views":["user_stats"]}`); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(3, 4))
	names := featureNames(c.features)
	for done := 0; done < c.newEvents; {
		var b bytes.Buffer
		for i := 0; i < 10_000 && done < c.newEvents; i++ {
			fmt.Fprintf(&b, `{"user_id":%d,"event_timestamp":"%s"`, r.Int64N(int64(c.entities)), t0.Add(span+time.Duration(r.Int64N(int64(time.Hour)))).Format(time.RFC3339Nano))
			for _, name := range names {
				fmt.Fprintf(&b, `,"%s":%g`, name, r.Float64())
			}
			b.WriteString("}\n")
			done++
		}
		resp, err := n.request(ctx, "POST", "/api/v1/feature-views/user_stats/rows?online=false", "application/x-ndjson", &b)
		if err != nil {
			return err
		}
		resp.Body.Close()
	}
	j, err := runJob(ctx, n, `{"feature_views":["user_stats"]}`)
	if err != nil {
		return err
	}
	rep.matMs = j.ms
	rep.matRows = int64(c.newEvents)
	fmt.Printf("materialize-incremental of %d new events: %.0f ms (%d events scanned)\n", c.newEvents, j.ms, j.RowsDone)
	return nil
}

type jobResult struct {
	appliance.Job
	ms float64
}

func runJob(ctx context.Context, n *node, args string) (*jobResult, error) {
	t := time.Now()
	resp, err := n.request(ctx, "POST", "/api/v1/materialize-incremental", "application/json", strings.NewReader(args))
	if err != nil {
		return nil, err
	}
	var j appliance.Job
	err = json.NewDecoder(resp.Body).Decode(&j)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	for !j.State.Finished() {
		time.Sleep(5 * time.Millisecond)
		resp, err := n.request(ctx, "GET", "/api/v1/jobs/"+j.ID, "", nil)
		if err != nil {
			return nil, err
		}
		err = json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	if j.State != appliance.JobSucceeded {
		return nil, fmt.Errorf("job %s %s: %s", j.ID, j.State, j.Error)
	}
	return &jobResult{Job: j, ms: float64(time.Since(t).Microseconds()) / 1000}, nil
}

func (rep *report) markdown() string {
	c := rep.cfg
	var b strings.Builder
	fmt.Fprintf(&b, "## Offline store (%s, %d cores)\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), numCPU())
	fmt.Fprintf(&b, "View: %d events over %d entities, %d float64 features; training set of %d entity rows.\n\n", c.events, c.entities, c.features, c.rows)
	b.WriteString("| measurement | mlnode | baseline | ratio |\n|---|---|---|---|\n")
	if rep.duckdbMs > 0 {
		fmt.Fprintf(&b, "| point-in-time join, wall time | %.0f ms (HTTP, Parquet in and out, to a file) | DuckDB ASOF JOIN %.0f ms (tables preloaded) | %.2f× DuckDB |\n",
			rep.trainMs, rep.duckdbMs, rep.trainMs/rep.duckdbMs)
	} else {
		fmt.Fprintf(&b, "| point-in-time join, wall time | %.0f ms | — | — |\n", rep.trainMs)
	}
	fmt.Fprintf(&b, "| point-in-time join, peak RssAnon | %d MiB | | |\n", rep.trainPeak/1024)
	fmt.Fprintf(&b, "| export to Parquet | %.0f rows/s (%d rows in %.0f ms) | | |\n", float64(rep.exportRows)/(rep.exportMs/1000), rep.exportRows, rep.exportMs)
	fmt.Fprintf(&b, "| materialize-incremental | %.0f new events/s (%d in %.0f ms) | | |\n", float64(rep.matRows)/(rep.matMs/1000), rep.matRows, rep.matMs)
	if rep.duckTrain > 0 {
		fmt.Fprintf(&b, "\nDuckDB read mlnode's Parquet files back: %d training rows, %d exported events.\n", rep.duckTrain, rep.duckExport)
	}
	return b.String()
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}
