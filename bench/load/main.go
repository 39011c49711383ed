// Command load measures mlnode over loopback against baselines run on the
// same machine in the same run, and writes a Markdown report:
//
//   - online reads (Feast /get-online-features, 1 entity × 10 features),
//     closed loop, against a bare fiber server returning a fixed 200-byte
//     JSON, with vegeta and, when available, wrk;
//   - online reads of 1 entity × 50 features, open loop at a fixed rate
//     (vegeta), against the same bare server;
//   - redis-server GET with redis-benchmark, when redis is available;
//   - durable ingest of NDJSON batches of 10,000 rows into a node holding
//     -events rows, against bare bbolt puts of the same keys.
//
// Usage: go run ./bench/load -bin ./bin/mlnode (make bench-http). Every
// process it starts listens on 127.0.0.1 only and is stopped at the end,
// on error and on Ctrl-C; temporary directories are removed. With
// -bare-server it is the bare server itself (a separate process, so that
// it gets the same isolation as mlnode).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	vegeta "github.com/tsenart/vegeta/v12/lib"
	bolt "go.etcd.io/bbolt"

	"github.com/mlnode/mlnode/appliance/bundle"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		stop()
		os.Exit(2)
	}
	err := m.Run(ctx)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

const (
	batchRows = 10_000
	token     = "bench-load-admin-token-0123456789abcdef"
)

// Main is one run of the load tool.
type Main struct {
	Bin           string
	Out           string
	Phases        string
	Duration      time.Duration
	Warmup        time.Duration
	Conns         int
	Rate          int
	Entities      int
	Events        int
	IngestBatches int
	IngestClients int
	Timeout       time.Duration
	NoInstall     bool
	BareServer    bool
	NodeEnv       string
	KeepBodies    bool

	tmp    string
	procs  []*proc
	report *report
	cpu    *cpuMeter
}

// NewMain returns a Main with the defaults.
func NewMain() *Main { return &Main{report: &report{}, cpu: &cpuMeter{}} }

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&m.Bin, "bin", "./bin/mlnode", "the mlnode `binary` to measure")
	fs.StringVar(&m.Out, "out", "bench/out/results.md", "where to write the Markdown report")
	fs.StringVar(&m.Phases, "phases", "read,redis,predict,ingest", "comma-separated phases to run: read, redis, predict, ingest; open is read's open-loop measurement alone")
	fs.DurationVar(&m.Duration, "duration", 10*time.Second, "length of each throughput and latency measurement")
	fs.DurationVar(&m.Warmup, "warmup", 2*time.Second, "closed-loop warm-up before each server's measurements")
	fs.IntVar(&m.Conns, "conns", 32, "connections of the closed-loop measurements")
	fs.IntVar(&m.Rate, "rate", 5000, "requests per second of the open-loop measurement")
	fs.IntVar(&m.Entities, "entities", 100_000, "entities of each view (a multiple of 10,000)")
	fs.IntVar(&m.Events, "events", 10_000_000, "rows preloaded before the ingest measurement (a multiple of -entities)")
	fs.IntVar(&m.IngestBatches, "ingest-batches", 50, "batches of 10,000 rows timed in the ingest measurement")
	fs.IntVar(&m.IngestClients, "ingest-clients", 4, "concurrent clients of the ingest preload and measurement")
	fs.DurationVar(&m.Timeout, "timeout", 40*time.Minute, "bound on the whole run")
	fs.BoolVar(&m.NoInstall, "no-install", false, "do not apt-get install missing wrk or redis-server")
	fs.StringVar(&m.NodeEnv, "node-env", "", "extra environment of the mlnode processes, space-separated (e.g. GOGC=400), for experiments")
	fs.BoolVar(&m.KeepBodies, "keep-bodies", false, "keep every answer's body in the load generator, as vegeta does by default (for comparison: it adds the generator's garbage collection to the machine)")
	fs.BoolVar(&m.BareServer, "bare-server", false, "internal: serve the bare baseline and print its address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case m.Entities <= 0 || m.Entities%batchRows != 0:
		return usageError(fs, "-entities must be a positive multiple of %d", batchRows)
	case m.Events < 0 || m.Events%m.Entities != 0:
		return usageError(fs, "-events must be a multiple of -entities")
	case m.Conns < 1 || m.Rate < 1 || m.IngestClients < 1 || m.IngestBatches < 1 || m.Duration <= 0:
		return usageError(fs, "-conns, -rate, -ingest-clients, -ingest-batches and -duration must be positive")
	}
	return nil
}

func usageError(fs *flag.FlagSet, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	fmt.Fprintln(fs.Output(), "load:", err)
	return err
}

func (m *Main) phase(name string) bool { return slices.Contains(strings.Split(m.Phases, ","), name) }

// Run runs the selected phases and writes the report.
func (m *Main) Run(ctx context.Context) error {
	if m.BareServer {
		return serveBare(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	bin, err := filepath.Abs(m.Bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("mlnode binary: %w (run make build)", err)
	}
	m.Bin = bin
	if m.tmp, err = os.MkdirTemp("", "mlnode-load-"); err != nil {
		return err
	}
	m.report.machine()
	started := time.Now()
	if m.phase("read") || m.phase("open") || m.phase("redis") || m.phase("predict") {
		if err := m.runReads(ctx); err != nil {
			return err
		}
	}
	if m.phase("ingest") {
		if err := m.runIngest(ctx); err != nil {
			return err
		}
	}
	m.report.notef("Whole run: %s.", time.Since(started).Round(time.Second))
	md := m.report.markdown()
	fmt.Print("\n" + md)
	if err := os.MkdirAll(filepath.Dir(m.Out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(m.Out, []byte(md), 0o644)
}

// Close stops every process still running, newest first, and removes the
// temporary directory.
func (m *Main) Close() error {
	for i := len(m.procs) - 1; i >= 0; i-- {
		m.procs[i].stop()
	}
	m.procs = nil
	if m.tmp != "" {
		if err := os.RemoveAll(m.tmp); err != nil {
			return err
		}
		m.tmp = ""
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// ---------------------------------------------------------------------------
// Processes

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	url  chan string
}

var listenRe = regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)

// start runs a long-lived process. When addr is true it waits for the
// process to print "listening on http://127.0.0.1:PORT" and returns that URL.
func (m *Main) start(ctx context.Context, name string, env []string, addr bool, argv ...string) (*proc, string, error) {
	logPath := filepath.Join(m.tmp, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	p := &proc{name: name, log: logPath, done: make(chan struct{}), url: make(chan string, 1)}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = &lineWatcher{w: logFile, found: p.url}
	p.cmd.Stderr = logFile
	// If this tool dies without cleaning up, the kernel stops the child.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	m.procs = append(m.procs, p)
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	if !addr {
		return p, "", nil
	}
	select {
	case url := <-p.url:
		return p, url, nil
	case <-p.done:
		return nil, "", fmt.Errorf("%s exited before listening: %s", name, tail(logPath))
	case <-time.After(60 * time.Second):
		return nil, "", fmt.Errorf("%s did not print its address within 60s: %s", name, tail(logPath))
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
}

// stop asks the process to stop, then kills it after 15 seconds.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (m *Main) stopProc(p *proc) {
	p.stop()
	m.procs = slices.DeleteFunc(m.procs, func(q *proc) bool { return q == p })
}

// lineWatcher copies output to w and sends the first loopback URL it sees.
type lineWatcher struct {
	w     io.Writer
	found chan string
	buf   []byte
	sent  bool
}

func (l *lineWatcher) Write(p []byte) (int, error) {
	if !l.sent {
		l.buf = append(l.buf, p...)
		if sub := listenRe.FindSubmatch(l.buf); sub != nil {
			l.found <- string(sub[1])
			l.sent, l.buf = true, nil
		}
	}
	return l.w.Write(p)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// startNode starts mlnode on a fresh data directory.
func (m *Main) startNode(ctx context.Context, name string) (*proc, string, error) {
	dir := filepath.Join(m.tmp, name)
	env := append([]string{"MLNODE_ADMIN_TOKEN=" + token}, strings.Fields(m.NodeEnv)...)
	return m.start(ctx, name, env, true,
		m.Bin, "serve", "--data-dir", dir, "--addr", "127.0.0.1:0")
}

// ---------------------------------------------------------------------------
// The bare baseline server

// bareBody is the bare server's answer: a fixed 200-byte JSON shaped like a
// Feast response.
var bareBody = func() []byte {
	b := []byte(`{"metadata":{"feature_names":["user_id","f00"]},"results":[{"values":["u0000000"],"statuses":["PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z"]}],"pad":"`)
	for len(b) < 198 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}()

func serveBare(ctx context.Context) error {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/*", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(bareBody)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	fmt.Printf("bare listening on http://%s\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return app.ShutdownWithContext(sctx)
}

// ---------------------------------------------------------------------------
// Setup through the HTTP API

var httpClient = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

func call(ctx context.Context, method, url, contentType string, body []byte, want ...int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(want, resp.StatusCode) {
		return nil, fmt.Errorf("%s %s: status %d: %.300s", method, url, resp.StatusCode, raw)
	}
	return raw, nil
}

func featureName(f int) string { return fmt.Sprintf("f%02d", f) }

// defineView creates the entity user (once) and a view of n features,
// float64 at even positions and int64 at odd ones.
func defineView(ctx context.Context, base, name string, n int) error {
	if _, err := call(ctx, "POST", base+"/api/v1/entities", "application/json",
		[]byte(`{"name":"user","join_keys":["user_id"],"value_type":"string"}`), 200, 201); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"name":%q,"entities":["user"],"features":[`, name)
	for f := range n {
		if f > 0 {
			b.WriteByte(',')
		}
		dt := "float64"
		if f%2 == 1 {
			dt = "int64"
		}
		fmt.Fprintf(&b, `{"name":%q,"dtype":%q}`, featureName(f), dt)
	}
	b.WriteString("]}")
	_, err := call(ctx, "POST", base+"/api/v1/feature-views", "application/json", []byte(b.String()), 200, 201)
	return err
}

// t0 is the event time of the first event of every entity; event k is k
// seconds later.
var t0 = time.Now().Add(-30 * 24 * time.Hour).Truncate(time.Second)

func appendEntityID(dst []byte, e int) []byte {
	dst = append(dst, 'u')
	s := strconv.Itoa(e)
	for i := len(s); i < 7; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// batchRange is what batch b holds: 10,000 consecutive entities starting at
// first, all at event number k.
func (m *Main) batchRange(b int) (first, k int) {
	groups := m.Entities / batchRows
	return (b % groups) * batchRows, b / groups
}

func intValue(e, f, k int) int64         { return int64(e*7 + f + k) }
func floatValue(e, f, k int) float64     { return float64((e+k)%1000)*0.25 + float64(f) }
func eventMicros(k int) int64            { return t0.Add(time.Duration(k) * time.Second).UnixMicro() }
func eventTime(k int) time.Time          { return t0.Add(time.Duration(k) * time.Second).UTC() }
func entityKey(dst []byte, e int) []byte { return appendEntityID(append(dst, 8), e) } // uvarint length 8, then the id

// ndjsonBatch appends the NDJSON body of batch b of a view of n features.
func (m *Main) ndjsonBatch(dst []byte, b, n int) []byte {
	first, k := m.batchRange(b)
	ts := eventTime(k).AppendFormat(nil, time.RFC3339)
	for e := first; e < first+batchRows; e++ {
		dst = append(dst, `{"user_id":"`...)
		dst = appendEntityID(dst, e)
		dst = append(dst, `","event_timestamp":"`...)
		dst = append(dst, ts...)
		dst = append(dst, '"')
		for f := range n {
			dst = append(dst, `,"`...)
			dst = append(dst, featureName(f)...)
			dst = append(dst, `":`...)
			if f%2 == 0 {
				dst = strconv.AppendFloat(dst, floatValue(e, f, k), 'f', -1, 64)
			} else {
				dst = strconv.AppendInt(dst, intValue(e, f, k), 10)
			}
		}
		dst = append(dst, "}\n"...)
	}
	return dst
}

// ingest posts batches with several clients. Bodies come from bodies[i] when
// given, else are generated per batch by each client.
func (m *Main) ingest(ctx context.Context, base, view string, nfeat int, batches []int, bodies [][]byte, clients int) error {
	url := base + "/api/v1/feature-views/" + view + "/rows"
	work := make(chan int)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range work {
				body := bodies[i]
				if body == nil {
					buf = m.ndjsonBatch(buf[:0], batches[i], nfeat)
					body = buf
				}
				raw, err := call(ctx, "POST", url, "application/x-ndjson", body, 200)
				if err == nil && !bytes.Contains(raw, []byte(`"accepted":10000`)) {
					err = fmt.Errorf("ingest: unexpected answer %.300s", raw)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range batches {
		select {
		case work <- i:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

func seq(from, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = from + i
	}
	return s
}

// ---------------------------------------------------------------------------
// Reads

// readBody is a Feast request for one random entity of a view.
func readBody(view string, nfeat, entity int) []byte {
	b := []byte(`{"features":[`)
	for f := range nfeat {
		if f > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, view...)
		b = append(b, ':')
		b = append(b, featureName(f)...)
		b = append(b, '"')
	}
	b = append(b, `],"entities":{"user_id":["`...)
	b = appendEntityID(b, entity)
	return append(b, `"]}}`...)
}

func (m *Main) runReads(ctx context.Context) error {
	logf("read phase: starting mlnode and loading %d entities into views of 10 and 50 features", m.Entities)
	node, base, err := m.startNode(ctx, "read-node")
	if err != nil {
		return err
	}
	start := time.Now()
	for _, v := range []struct {
		name string
		n    int
	}{{"v10", 10}, {"v50", 50}} {
		if err := defineView(ctx, base, v.name, v.n); err != nil {
			return err
		}
		batches := seq(0, m.Entities/batchRows)
		if err := m.ingest(ctx, base, v.name, v.n, batches, make([][]byte, len(batches)), 2); err != nil {
			return err
		}
	}
	m.report.notef("Read node setup: %d entities × (10 + 50 features) ingested over HTTP in %s.", m.Entities, time.Since(start).Round(time.Millisecond))
	// Check the answers before measuring them.
	raw, err := call(ctx, "POST", base+"/get-online-features", "application/json", readBody("v10", 10, m.Entities-1), 200)
	if err != nil {
		return err
	}
	if bytes.Count(raw, []byte(`"PRESENT"`)) != 11 {
		return fmt.Errorf("online read: not every feature present: %.500s", raw)
	}

	bare, bareURL, err := m.start(ctx, "bare", nil, true, selfBinary(), "-bare-server")
	if err != nil {
		return err
	}
	mlURL := base + "/get-online-features"
	bareURL += "/get-online-features"
	// The measured server first, then the load generator.
	pids := func(i int) []int {
		return []int{[]*proc{node, bare}[i].cmd.Process.Pid, os.Getpid()}
	}

	if m.phase("read") {
		logf("closed loop, 1 entity × 10 features, %d connections, %s each", m.Conns, m.Duration)
		var vl [2]*loadResult
		for i, u := range []string{mlURL, bareURL} {
			m.closedLoop(ctx, u, "v10", 10, m.Warmup) // warm-up, discarded
			m.cpu.begin(pids(i))
			r, err := m.closedLoop(ctx, u, "v10", 10, m.Duration)
			if err != nil {
				return err
			}
			r.cpu = m.cpu.end()
			vl[i] = r
		}
		m.report.closed("vegeta", vl[0], vl[1])
	}
	var wrkML *loadResult
	if m.phase("read") || m.phase("redis") {
		if path, note := m.need(ctx, "wrk", "wrk"); path == "" {
			m.report.notef("wrk: skipped (%s).", note)
		} else {
			var wr [2]*loadResult
			for i, u := range []string{mlURL, bareURL} {
				m.cpu.begin(pids(i))
				r, err := m.wrk(ctx, path, u, "v10", 10)
				if err != nil {
					return err
				}
				r.cpu = m.cpu.end()
				wr[i] = r
			}
			wrkML = wr[0]
			if m.phase("read") {
				m.report.closed("wrk", wr[0], wr[1])
			}
		}
	}
	if m.phase("read") || m.phase("open") {
		logf("open loop, 1 entity × 50 features, %d req/s, %s each", m.Rate, m.Duration)
		var ol [2]*loadResult
		for i, u := range []string{mlURL, bareURL} {
			m.cpu.begin(pids(i))
			r, err := m.openLoop(ctx, u, "v50", 50)
			if err != nil {
				return err
			}
			r.cpu = m.cpu.end()
			ol[i] = r
		}
		m.report.open(m.Rate, ol[0], ol[1])
	}
	m.stopProc(bare)
	if m.phase("predict") {
		if err := m.runPredict(ctx, base, pids(0)); err != nil {
			return err
		}
	}
	if m.phase("redis") {
		mlRate, client := 0.0, ""
		if wrkML != nil {
			mlRate, client = wrkML.rps, "wrk"
		} else if m.phase("read") {
			// Without wrk, the closed-loop vegeta figure.
			mlRate, client = m.report.vegetaRate, "vegeta"
		}
		if err := m.runRedis(ctx, mlRate, client); err != nil {
			return err
		}
	}
	m.stopProc(node)
	return nil
}

// runPredict uploads the 32-input logistic regression of examples/ (10
// inputs from view v10, 22 request inputs with defaults) and measures
// closed-loop predict against /get-online-features for the same entities,
// same connections, same duration.
func (m *Main) runPredict(ctx context.Context, base string, pids []int) error {
	wasmBytes, err := os.ReadFile("examples/build/logreg_c.wasm")
	if err != nil {
		m.report.notef("predict: skipped (%v; run `make examples`).", err)
		return nil
	}
	dir, err := os.MkdirTemp(m.tmp, "bundle")
	if err != nil {
		return err
	}
	inputs := make([]string, 32)
	defaults := map[string]float64{}
	for i := range inputs {
		if i < 10 {
			inputs[i] = "v10:" + featureName(i)
		} else {
			inputs[i] = fmt.Sprintf("request:r%d", i)
			defaults[inputs[i]] = 0.5
		}
	}
	manifest, _ := json.Marshal(map[string]any{"name": "bench", "abi": "mlnode/v1", "module": "model.wasm",
		"inputs": inputs, "outputs": []string{"p"}, "defaults": defaults})
	os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o600)
	os.WriteFile(filepath.Join(dir, "model.wasm"), wasmBytes, 0o600)
	archive, err := bundle.Build(dir)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := call(ctx, "POST", base+"/api/v1/models", "application/gzip", archive, 201, 200); err != nil {
		return err
	}
	if _, err := call(ctx, "PUT", base+"/api/v1/models/bench/aliases/production", "application/json", []byte(`{"version":1}`), 200); err != nil {
		return err
	}
	one := []byte(`{"entities":{"user_id":"` + string(appendEntityID(nil, 1)) + `"}}`)
	if _, err := call(ctx, "POST", base+"/api/v1/predict/bench", "application/json", one, 200); err != nil {
		return err
	}
	m.report.notef("predict: upload to first prediction of a %d-byte bundle (C logistic regression) in %s.", len(archive), time.Since(t0).Round(time.Millisecond))
	if err := m.uploadToServable(ctx, base, "examples/build/gbdt_go.wasm", 16); err != nil {
		return err
	}
	logf("predict phase: closed loop, predict vs get-online-features (1 × 10), %d connections, %s each", m.Conns, m.Duration)
	bodies := make([][]byte, 8192)
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range bodies {
		bodies[i] = []byte(`{"entities":{"user_id":"` + string(appendEntityID(nil, rng.IntN(m.Entities))) + `"}}`)
	}
	header := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + token}}
	predictTargeter := func(t *vegeta.Target) error {
		t.Method, t.URL, t.Header = "POST", base+"/api/v1/predict/bench", header.Clone()
		t.Body = bodies[rand.IntN(len(bodies))]
		return nil
	}
	newAttacker := m.closedAttacker
	m.attack(ctx, newAttacker(), predictTargeter, vegeta.Rate{Freq: 0}, m.Warmup)
	m.cpu.begin(pids)
	pr, err := m.attack(ctx, newAttacker(), predictTargeter, vegeta.Rate{Freq: 0}, m.Duration)
	if err != nil {
		return err
	}
	pr.cpu = m.cpu.end()
	m.cpu.begin(pids)
	or, err := m.closedLoop(ctx, base+"/get-online-features", "v10", 10, m.Duration)
	if err != nil {
		return err
	}
	or.cpu = m.cpu.end()
	ratio := pr.rps / or.rps
	m.report.row("Closed loop (vegeta): predict (10 stored + 22 default inputs, C logistic regression) vs get-online-features 1×10: req/s",
		fmt.Sprintf("%.0f", pr.rps), fmt.Sprintf("%.0f (get-online-features)", or.rps), fmt.Sprintf("%.2f", ratio), "ratio ≥ 0.7", verdict(ratio >= 0.7))
	m.report.row("… p50 / p99", ms(pr.p50)+" / "+ms(pr.p99), ms(or.p50)+" / "+ms(or.p99), "", "", "")
	m.report.detail("closed loop vegeta predict", pr)
	m.report.detail("closed loop vegeta get-online-features (predict phase)", or)
	return m.runExperiment(ctx, base, pids, dir, predictTargeter, newAttacker)
}

// runExperiment measures predict inside a running two-arm experiment
// (versions 1 and 2 of the same model, half the units each, exposures
// logged) against predict through the production alias, same targets and
// connections: alias, experiment, then alias again after stopping it, so
// that drift of the machine over the run shows.
func (m *Main) runExperiment(ctx context.Context, base string, pids []int, bundleDir string, tr vegeta.Targeter, newAttacker func() *vegeta.Attacker) error {
	// Version 2: the same module with another default, so a distinct bundle.
	manifest, err := os.ReadFile(filepath.Join(bundleDir, "manifest.json"))
	if err != nil {
		return err
	}
	os.WriteFile(filepath.Join(bundleDir, "manifest.json"), bytes.Replace(manifest, []byte("0.5"), []byte("0.25"), 1), 0o600)
	archive, err := bundle.Build(bundleDir)
	if err != nil {
		return err
	}
	if _, err := call(ctx, "POST", base+"/api/v1/models", "application/gzip", archive, 201); err != nil {
		return fmt.Errorf("version 2: %w", err)
	}
	exp := []byte(`{"name":"bench_ab","model":"bench","unit":"user_id","arms":[{"name":"control","version":1,"weight":0.5},` +
		`{"name":"treatment","version":2,"weight":0.5}],"metrics":[{"name":"converted","type":"binomial","direction":"increase","role":"goal"}]}`)
	if _, err := call(ctx, "POST", base+"/api/v1/experiments", "application/json", exp, 201); err != nil {
		return fmt.Errorf("create experiment: %w", err)
	}
	measure := func(what string) (*loadResult, error) {
		logf("experiment phase: closed loop predict, %s, %d connections, %s", what, m.Conns, m.Duration)
		m.attack(ctx, newAttacker(), tr, vegeta.Rate{Freq: 0}, m.Warmup)
		m.cpu.begin(pids)
		r, err := m.attack(ctx, newAttacker(), tr, vegeta.Rate{Freq: 0}, m.Duration)
		if err != nil {
			return nil, err
		}
		r.cpu = m.cpu.end()
		return r, nil
	}
	alias, err := measure("production alias")
	if err != nil {
		return err
	}
	if _, err := call(ctx, "POST", base+"/api/v1/experiments/bench_ab/start", "application/json", nil, 200); err != nil {
		return fmt.Errorf("start experiment: %w", err)
	}
	inExp, err := measure("running experiment")
	if err != nil {
		return err
	}
	if _, err := call(ctx, "POST", base+"/api/v1/experiments/bench_ab/stop", "application/json", []byte(`{"reason":"benchmark"}`), 200); err != nil {
		return fmt.Errorf("stop experiment: %w", err)
	}
	after, err := measure("production alias after the experiment")
	if err != nil {
		return err
	}
	ratio := inExp.rps / alias.rps
	m.report.row("Closed loop (vegeta): predict inside a running 2-arm experiment vs through the production alias: req/s",
		fmt.Sprintf("%.0f", inExp.rps), fmt.Sprintf("%.0f (alias; %.0f after)", alias.rps, after.rps), fmt.Sprintf("%.2f", ratio), "ratio ≥ 0.95", verdict(ratio >= 0.95))
	m.report.row("… p50 / p99", ms(inExp.p50)+" / "+ms(inExp.p99), ms(alias.p50)+" / "+ms(alias.p99), "", "", "")
	m.report.row("… server CPU per request", fmt.Sprintf("%.1f µs", perReq(inExp.cpu.server, inExp.requests)),
		fmt.Sprintf("%.1f µs", perReq(alias.cpu.server, alias.requests)), "", "", "")
	m.report.detail("closed loop vegeta predict in experiment", inExp)
	m.report.detail("closed loop vegeta predict alias", alias)
	m.report.detail("closed loop vegeta predict alias after the experiment", after)
	return nil
}

// uploadToServable times a bigger bundle (a Go-built module of about 2 MB:
// compile, instrument, first instance) from the start of its upload to its
// first prediction: upload, alias, predict.
func (m *Main) uploadToServable(ctx context.Context, base, module string, nIn int) error {
	wasmBytes, err := os.ReadFile(module)
	if err != nil {
		m.report.notef("predict: %s skipped (%v).", module, err)
		return nil
	}
	dir, err := os.MkdirTemp(m.tmp, "bundle")
	if err != nil {
		return err
	}
	inputs := make([]string, nIn)
	defaults := map[string]float64{}
	for i := range inputs {
		if i < 10 {
			inputs[i] = "v10:" + featureName(i)
		} else {
			inputs[i] = fmt.Sprintf("request:r%d", i)
			defaults[inputs[i]] = 0.5
		}
	}
	manifest, _ := json.Marshal(map[string]any{"name": "bench-big", "abi": "mlnode/v1", "module": "model.wasm",
		"inputs": inputs, "outputs": []string{"p"}, "defaults": defaults})
	os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o600)
	os.WriteFile(filepath.Join(dir, "model.wasm"), wasmBytes, 0o600)
	archive, err := bundle.Build(dir)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := call(ctx, "POST", base+"/api/v1/models", "application/gzip", archive, 201, 200); err != nil {
		return err
	}
	up := time.Since(t0)
	if _, err := call(ctx, "PUT", base+"/api/v1/models/bench-big/aliases/production", "application/json", []byte(`{"version":1}`), 200); err != nil {
		return err
	}
	one := []byte(`{"entities":{"user_id":"` + string(appendEntityID(nil, 1)) + `"}}`)
	if _, err := call(ctx, "POST", base+"/api/v1/predict/bench-big", "application/json", one, 200); err != nil {
		return err
	}
	m.report.notef("predict: upload to first prediction of a %d-byte bundle (%s, %d-byte module) in %s (the upload itself, with inspection and compilation: %s).",
		len(archive), filepath.Base(module), len(wasmBytes), time.Since(t0).Round(time.Millisecond), up.Round(time.Millisecond))
	return nil
}

func selfBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return exe
}

// loadResult is one measurement of one server.
type loadResult struct {
	tool           string
	requests       int
	ok             int
	rps            float64
	p50, p99, pmax time.Duration
	errors         []string
	cpu            cpuUse
	clientGCs      uint32 // garbage collections of the load generator during the measurement
}

func (r *loadResult) successRate() float64 {
	if r.requests == 0 {
		return 0
	}
	return float64(r.ok) / float64(r.requests)
}

// randomTargeter posts a Feast request for a random entity; it is called
// from every vegeta worker at once.
func (m *Main) randomTargeter(url, view string, nfeat int) vegeta.Targeter {
	bodies := make([][]byte, 8192)
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range bodies {
		bodies[i] = readBody(view, nfeat, rng.IntN(m.Entities))
	}
	header := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + token}}
	return func(t *vegeta.Target) error {
		t.Method, t.URL, t.Header = "POST", url, header.Clone()
		t.Body = bodies[rand.IntN(len(bodies))]
		return nil
	}
}

func (m *Main) attack(ctx context.Context, atk *vegeta.Attacker, tr vegeta.Targeter, rate vegeta.Rate, d time.Duration) (*loadResult, error) {
	res := &loadResult{tool: "vegeta"}
	gcs := numGC()
	var lat []time.Duration
	var metrics vegeta.Metrics
	errSeen := map[string]bool{}
	results := atk.Attack(tr, rate, d, "")
	for {
		select {
		case r, ok := <-results:
			if !ok {
				metrics.Close()
				res.clientGCs = numGC() - gcs
				res.requests = int(metrics.Requests)
				res.rps = metrics.Throughput
				if len(lat) > 0 {
					slices.Sort(lat)
					res.p50, res.p99, res.pmax = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
				}
				for e := range errSeen {
					res.errors = append(res.errors, e)
				}
				return res, nil
			}
			metrics.Add(r)
			if r.Error == "" {
				res.ok++
				lat = append(lat, r.Latency)
			} else if len(errSeen) < 5 {
				errSeen[r.Error] = true
			}
		case <-ctx.Done():
			atk.Stop()
			for range results {
			}
			return nil, ctx.Err()
		}
	}
}

// closedLoop keeps m.Conns requests in flight for d.
func (m *Main) closedLoop(ctx context.Context, url, view string, nfeat int, d time.Duration) (*loadResult, error) {
	return m.attack(ctx, m.closedAttacker(), m.randomTargeter(url, view, nfeat), vegeta.Rate{Freq: 0}, d)
}

// closedAttacker returns an attacker of m.Conns workers on as many
// keep-alive connections.
func (m *Main) closedAttacker() *vegeta.Attacker {
	return m.attacker(vegeta.Workers(uint64(m.Conns)), vegeta.MaxWorkers(uint64(m.Conns)),
		vegeta.Connections(m.Conns), vegeta.MaxConnections(m.Conns))
}

// attacker returns a vegeta attacker on keep-alive connections that reads
// every answer to its end and, unless -keep-bodies, keeps none of it, as
// wrk does. Vegeta keeps each body by default; with 5.5 KB answers that made
// the load generator collect garbage 2.5 times as often as with the bare
// server's 200 bytes, on the two cores the measured server shares, and the
// server's open-loop p99 carried it (BENCHMARKS.md, session 4). A short or
// broken body is still an error: vegeta reads the rest and checks it.
func (m *Main) attacker(opts ...func(*vegeta.Attacker)) *vegeta.Attacker {
	opts = append(opts, vegeta.KeepAlive(true), vegeta.Timeout(10*time.Second))
	if !m.KeepBodies {
		opts = append(opts, vegeta.MaxBody(0))
	}
	return vegeta.NewAttacker(opts...)
}

// openLoop sends m.Rate requests per second whatever the answers' pace.
func (m *Main) openLoop(ctx context.Context, url, view string, nfeat int) (*loadResult, error) {
	atk := m.attacker(vegeta.Workers(uint64(m.Conns)), vegeta.MaxWorkers(10_000), vegeta.Connections(10_000))
	return m.attack(ctx, atk, m.randomTargeter(url, view, nfeat), vegeta.Rate{Freq: m.Rate, Per: time.Second}, m.Duration)
}

// need returns the path of a tool, installing its Debian package if it is
// missing and installing is allowed; else "" and why.
func (m *Main) need(ctx context.Context, tool, pkg string) (string, string) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, ""
	}
	if m.NoInstall {
		return "", tool + " is not installed and -no-install was given"
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", tool + " is not installed and there is no apt-get"
	}
	logf("installing %s with apt-get", pkg)
	install := func() error {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ictx, "apt-get", "install", "-y", "-qq", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, tailBytes(out))
		}
		return nil
	}
	if err := install(); err != nil {
		// A fresh machine may have no package lists yet.
		uctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		_ = exec.CommandContext(uctx, "apt-get", "update", "-qq").Run()
		cancel()
		if err := install(); err != nil {
			return "", fmt.Sprintf("apt-get install %s failed: %v", pkg, err)
		}
	}
	if p, err := exec.LookPath(tool); err == nil {
		return p, ""
	}
	return "", fmt.Sprintf("%s not found after installing %s", tool, pkg)
}

func tailBytes(b []byte) string {
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return strings.TrimSpace(string(b))
}

// wrk runs wrk closed loop, one random entity per request (a Lua script).
func (m *Main) wrk(ctx context.Context, path, url, view string, nfeat int) (*loadResult, error) {
	body := string(readBody(view, nfeat, 0))
	prefix, suffix, _ := strings.Cut(body, `"u0000000"`)
	script := fmt.Sprintf(`wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
local prefix = '%s"u'
local suffix = '"%s'
local n = %d
request = function()
  return wrk.format(nil, nil, nil, prefix .. string.format("%%07d", math.random(0, n - 1)) .. suffix)
end
`, token, prefix, suffix, m.Entities)
	sp := filepath.Join(m.tmp, "wrk.lua")
	if err := os.WriteFile(sp, []byte(script), 0o644); err != nil {
		return nil, err
	}
	threads := strconv.Itoa(min(runtime.NumCPU(), m.Conns))
	run := func(d time.Duration) (string, error) {
		wctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(wctx, path, "-t"+threads, "-c"+strconv.Itoa(m.Conns), "-d"+d.String(),
			"--timeout", "10s", "--latency", "-s", sp, url).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("wrk: %w: %s", err, tailBytes(out))
		}
		return string(out), nil
	}
	if _, err := run(m.Warmup); err != nil {
		return nil, err
	}
	out, err := run(m.Duration)
	if err != nil {
		return nil, err
	}
	return parseWrk(out)
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkTotal    = regexp.MustCompile(`(\d+) requests in`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$`)
	wrkMax      = regexp.MustCompile(`Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockErrs = regexp.MustCompile(`Socket errors: (.*)`)
)

func wrkDuration(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return time.Duration(f * 1e3)
	case "ms":
		return time.Duration(f * 1e6)
	}
	return time.Duration(f * 1e9)
}

func parseWrk(out string) (*loadResult, error) {
	r := &loadResult{tool: "wrk"}
	sub := wrkRPS.FindStringSubmatch(out)
	tot := wrkTotal.FindStringSubmatch(out)
	if sub == nil || tot == nil {
		return nil, fmt.Errorf("cannot read wrk output: %s", out)
	}
	r.rps, _ = strconv.ParseFloat(sub[1], 64)
	r.requests, _ = strconv.Atoi(tot[1])
	r.ok = r.requests
	for _, p := range wrkPct.FindAllStringSubmatch(out, -1) {
		if p[1] == "50" {
			r.p50 = wrkDuration(p[2], p[3])
		} else {
			r.p99 = wrkDuration(p[2], p[3])
		}
	}
	if mx := wrkMax.FindStringSubmatch(out); mx != nil {
		r.pmax = wrkDuration(mx[1], mx[2])
	}
	if n := wrkNon2xx.FindStringSubmatch(out); n != nil {
		bad, _ := strconv.Atoi(n[1])
		r.ok -= bad
		r.errors = append(r.errors, n[0])
	}
	if s := wrkSockErrs.FindStringSubmatch(out); s != nil {
		r.errors = append(r.errors, "socket errors: "+s[1])
	}
	return r, nil
}

// ---------------------------------------------------------------------------
// redis

func (m *Main) runRedis(ctx context.Context, mlRate float64, client string) error {
	server, note := m.need(ctx, "redis-server", "redis-server")
	benchmark, note2 := "", ""
	if server != "" {
		benchmark, note2 = m.need(ctx, "redis-benchmark", "redis-tools")
	}
	if server == "" || benchmark == "" {
		m.report.notef("redis: skipped (%s%s).", note, note2)
		return nil
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	logf("redis: redis-server on 127.0.0.1:%d, redis-benchmark -t get -c %d -n 300000", port, m.Conns)
	p, _, err := m.start(ctx, "redis", nil, false, server, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", m.tmp)
	if err != nil {
		return err
	}
	defer m.stopProc(p)
	if err := waitRedis(ctx, port); err != nil {
		return fmt.Errorf("redis-server: %w: %s", err, tail(p.log))
	}
	bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(bctx, benchmark, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "get",
		"-c", strconv.Itoa(m.Conns), "-n", "300000", "--csv").Output()
	if err != nil {
		return fmt.Errorf("redis-benchmark: %w", err)
	}
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(recs) < 2 || len(recs[1]) < 2 {
		return fmt.Errorf("cannot read redis-benchmark output: %v: %s", err, out)
	}
	r := &loadResult{tool: "redis-benchmark", requests: 300000, ok: 300000}
	r.rps, _ = strconv.ParseFloat(recs[1][1], 64)
	for i, h := range recs[0] {
		ms, _ := strconv.ParseFloat(recs[1][i], 64)
		d := time.Duration(ms * float64(time.Millisecond))
		switch h {
		case "p50_latency_ms":
			r.p50 = d
		case "p99_latency_ms":
			r.p99 = d
		case "max_latency_ms":
			r.pmax = d
		}
	}
	m.report.redis(r, mlRate, client)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitRedis(ctx context.Context, port int) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = conn.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("not answering PING after 20s")
}

// ---------------------------------------------------------------------------
// Durable ingest

func (m *Main) runIngest(ctx context.Context) error {
	node, base, err := m.startNode(ctx, "ingest-node")
	if err != nil {
		return err
	}
	if err := defineView(ctx, base, "events", 10); err != nil {
		return err
	}
	preload := m.Events / batchRows
	logf("ingest phase: preloading %d rows (%d batches, %d clients)", m.Events, preload, m.IngestClients)
	start := time.Now()
	if err := m.ingest(ctx, base, "events", 10, seq(0, preload), make([][]byte, preload), m.IngestClients); err != nil {
		return err
	}
	pre := time.Since(start)
	m.report.notef("mlnode preload: %d rows in %s (%.0f rows/s, %d clients, bodies generated while sending).",
		m.Events, pre.Round(time.Millisecond), float64(m.Events)/pre.Seconds(), m.IngestClients)

	// Timed: bodies are built before the clock starts.
	measure := func(first, clients int) (time.Duration, cpuUse, error) {
		batches := seq(first, m.IngestBatches)
		bodies := make([][]byte, len(batches))
		for i, b := range batches {
			bodies[i] = m.ndjsonBatch(nil, b, 10)
		}
		m.cpu.begin([]int{node.cmd.Process.Pid, os.Getpid()})
		w0 := writeBytes(node.cmd.Process.Pid)
		start := time.Now()
		err := m.ingest(ctx, base, "events", 10, batches, bodies, clients)
		d := time.Since(start)
		use := m.cpu.end()
		use.written = writeBytes(node.cmd.Process.Pid) - w0
		return d, use, err
	}
	logf("ingest phase: timing %d batches with %d clients, then with 1", m.IngestBatches, m.IngestClients)
	dN, cpuN, err := measure(preload, m.IngestClients)
	if err != nil {
		return err
	}
	d1, cpu1, err := measure(preload+m.IngestBatches, 1)
	if err != nil {
		return err
	}
	size := dirSize(filepath.Join(m.tmp, "ingest-node"))
	m.stopProc(node)

	logf("ingest phase: bare bbolt baseline, preloading %d keys", m.Events)
	bolt, err := m.boltBaseline(ctx, preload)
	if err != nil {
		return err
	}
	logf("ingest phase: bare bbolt baseline of mlnode's write set, preloading %d keys", m.Events)
	tail, err := m.boltTailBaseline(ctx, preload)
	if err != nil {
		return err
	}
	m.report.ingest(m.IngestBatches*batchRows, m.IngestClients, dN, d1, cpuN, cpu1, bolt, m.Events, size)
	m.report.ingestTail(m.IngestBatches*batchRows, dN, tail)
	return nil
}

// boltTailBaseline is bare bbolt doing what mlnode's ingest writes since the
// offline log became log-structured: per row an append to a tail keyed by
// ingest sequence, and per entity a put into an online bucket keyed by
// entity — the same keys as the mlnode run, the same durable 10,000-row
// transactions, without mlnode's code (nor its background compaction).
func (m *Main) boltTailBaseline(ctx context.Context, preload int) (*boltResult, error) {
	path := filepath.Join(m.tmp, "bare-tail", "bare.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, InitialMmapSize: 256 << 20,
		FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	defer func() {
		db.Close()
		os.RemoveAll(filepath.Dir(path))
	}()
	tailName, onlineName := []byte("tail"), []byte("online")
	// Tail values: entity key, time, ten values (about the store's size).
	value := func(dst []byte, e, k int) []byte {
		dst = entityKey(dst, e)
		dst = binary.BigEndian.AppendUint64(dst, uint64(eventMicros(k)))
		for f := range 10 {
			if f%2 == 0 {
				dst = append(dst, 2)
				dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(floatValue(e, f, k)))
			} else {
				dst = append(dst, 1)
				dst = binary.AppendVarint(dst, intValue(e, f, k))
			}
		}
		return dst
	}
	put := func(tx *bolt.Tx, b int) error {
		tail, online := tx.Bucket(tailName), tx.Bucket(onlineName)
		tail.FillPercent = 1
		first, k := m.batchRange(b)
		for j := range batchRows {
			v := value(nil, first+j, k)
			if err := tail.Put(binary.BigEndian.AppendUint64(nil, uint64(b*batchRows+j+1)), v); err != nil {
				return err
			}
			if err := online.Put(entityKey(nil, first+j), v); err != nil {
				return err
			}
		}
		return nil
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket(tailName); err != nil {
			return err
		}
		_, err := tx.CreateBucket(onlineName)
		return err
	}); err != nil {
		return nil, err
	}
	res := &boltResult{valSize: len(value(nil, 0, 0))}
	start := time.Now()
	const txBatches = 100 // the preload in large transactions
	for b := 0; b < preload; b += txBatches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			for i := b; i < min(b+txBatches, preload); i++ {
				if err := put(tx, i); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	res.preload = time.Since(start)
	w0 := writeBytes(os.Getpid())
	start = time.Now()
	for i := range m.IngestBatches {
		if err := db.Update(func(tx *bolt.Tx) error { return put(tx, preload+i) }); err != nil {
			return nil, err
		}
	}
	res.measured = time.Since(start)
	res.written = writeBytes(os.Getpid()) - w0
	if fi, err := os.Stat(path); err == nil {
		res.size = fi.Size()
	}
	return res, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// boltResult is the bare bbolt baseline.
type boltResult struct {
	written  int64
	preload  time.Duration
	measured time.Duration
	size     int64
	valSize  int
}

// boltBaseline loads the same keys as the mlnode run (entity key | event
// time with the sign bit flipped | sequence) into a bare bbolt file with
// the store's options: the preload in large sorted transactions, then the
// measured batches in durable 10,000-row transactions.
func (m *Main) boltBaseline(ctx context.Context, preload int) (*boltResult, error) {
	path := filepath.Join(m.tmp, "bare-bolt", "bare.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, InitialMmapSize: 256 << 20,
		FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	defer func() {
		db.Close()
		os.RemoveAll(filepath.Dir(path))
	}()
	name := []byte("offline")
	// Values of the size the store gives a row of these ten features: a
	// format byte, then a kind byte and the payload per value.
	value := func(e, k int) []byte {
		n := 1
		for f := range 10 {
			if f%2 == 0 {
				n += 9
			} else {
				n += 1 + len(binary.AppendVarint(nil, intValue(e, f, k)))
			}
		}
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(e + i)
		}
		return v
	}
	res := &boltResult{valSize: len(value(0, 0))}
	key := func(dst []byte, e, k, b, j int) []byte {
		dst = entityKey(dst, e)
		dst = binary.BigEndian.AppendUint64(dst, uint64(eventMicros(k))^(1<<63))
		return binary.BigEndian.AppendUint64(dst, uint64(b*batchRows+j+1))
	}
	groups := m.Entities / batchRows
	eventsPerEntity := m.Events / m.Entities
	start := time.Now()
	// Sorted: entity by entity, each entity's events in time order.
	const txRows = 1_000_000
	tx, err := db.Begin(true)
	if err != nil {
		return nil, err
	}
	bk, err := tx.CreateBucketIfNotExists(name)
	if err != nil {
		tx.Rollback()
		return nil, err
	}
	inTx := 0
	buf := make([]byte, 0, 64)
	for e := 0; e < m.Entities; e++ {
		for k := range eventsPerEntity {
			b := k*groups + e/batchRows
			buf = key(buf[:0], e, k, b, e%batchRows)
			if err := bk.Put(buf, value(e, k)); err != nil {
				tx.Rollback()
				return nil, err
			}
			if inTx++; inTx == txRows {
				if err := tx.Commit(); err != nil {
					return nil, err
				}
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				if tx, err = db.Begin(true); err != nil {
					return nil, err
				}
				bk, inTx = tx.Bucket(name), 0
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	res.preload = time.Since(start)

	// The measured keys: the first IngestBatches batches after the preload,
	// as the mlnode run wrote them with its clients. Values are built first.
	type kv struct{ k, v []byte }
	batches := make([][]kv, m.IngestBatches)
	for i := range batches {
		b := preload + i
		first, k := m.batchRange(b)
		batches[i] = make([]kv, batchRows)
		for j := range batchRows {
			batches[i][j] = kv{key(nil, first+j, k, b, j), value(first+j, k)}
		}
	}
	w0 := writeBytes(os.Getpid())
	start = time.Now()
	for _, batch := range batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(name)
			for _, r := range batch {
				if err := bk.Put(r.k, r.v); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	res.measured = time.Since(start)
	res.written = writeBytes(os.Getpid()) - w0
	if fi, err := os.Stat(path); err == nil {
		res.size = fi.Size()
	}
	return res, nil
}

// ---------------------------------------------------------------------------
// CPU accounting. The machine is shared: "other" is the user CPU of
// processes other than the measured server and the load generator, a sign
// that a figure was disturbed. Kernel time (loopback networking, disk
// writeback threads) is left out of it because the measurement itself causes
// it. "server" is the CPU time of the measured server process.

type cpuUse struct {
	written       int64 // bytes the server wrote to storage, when measured
	wall          time.Duration
	otherUser     float64 // CPU seconds
	server, total float64 // CPU seconds of the server, of all measured processes
}

// others is the average number of cores busy in user mode outside the
// measured processes.
func (c cpuUse) others() float64 {
	if c.wall <= 0 {
		return 0
	}
	return max(0, c.otherUser) / c.wall.Seconds()
}

type cpuSample struct {
	machineUser, server, oursUser, oursTotal float64
}

type cpuMeter struct {
	pids  []int // the server first
	start time.Time
	at    cpuSample
}

const clockTick = 100.0 // USER_HZ on Linux

func (c *cpuMeter) sample() cpuSample {
	var s cpuSample
	s.machineUser = machineUserCPU()
	for i, pid := range c.pids {
		u, sys := pidCPU(pid)
		if i == 0 {
			s.server = u + sys
		}
		s.oursUser += u
		s.oursTotal += u + sys
	}
	u, sys := childrenCPU()
	s.oursUser += u
	s.oursTotal += u + sys
	return s
}

func (c *cpuMeter) begin(pids []int) {
	c.pids, c.start = pids, time.Now()
	c.at = c.sample()
}

func (c *cpuMeter) end() cpuUse {
	s := c.sample()
	return cpuUse{wall: time.Since(c.start), otherUser: (s.machineUser - c.at.machineUser) - (s.oursUser - c.at.oursUser),
		server: s.server - c.at.server, total: s.oursTotal - c.at.oursTotal}
}

// machineUserCPU is the user and nice CPU time of the machine, from /proc/stat.
func machineUserCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 3 {
		return 0
	}
	user, _ := strconv.ParseFloat(f[1], 64)
	nice, _ := strconv.ParseFloat(f[2], 64)
	return (user + nice) / clockTick
}

// pidCPU is the user and system CPU time of a process, from /proc/PID/stat.
func pidCPU(pid int) (float64, float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// Fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return u / clockTick, s / clockTick
}

// writeBytes is what a process has caused to be written to storage, from
// /proc/PID/io (-1 if unknown).
func writeBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return -1
}

// childrenCPU is the CPU time of this process's waited-for children (wrk,
// redis-benchmark).
func childrenCPU() (float64, float64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime)).Seconds(), time.Duration(syscall.TimevalToNsec(ru.Stime)).Seconds()
}

// ---------------------------------------------------------------------------
// Report

type report struct {
	header     []string
	rows       [][]string
	details    []string
	notes      []string
	vegetaRate float64
}

func (r *report) notef(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	logf("%s", s)
	r.notes = append(r.notes, s)
}

func (r *report) row(cells ...string) { r.rows = append(r.rows, cells) }

func (r *report) machine() {
	model, mem := "?", "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, model, _ = strings.Cut(l, ":")
				model = strings.TrimSpace(model)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			mem = fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	r.header = []string{
		fmt.Sprintf("Run: %s, %s/%s, %d CPUs (%s), %s memory, %s.", time.Now().UTC().Format(time.RFC3339), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), model, mem, runtime.Version()),
		fmt.Sprintf("Load average at start: %s.", strings.TrimSpace(string(load))),
		fmt.Sprintf("Command: go run ./bench/load %s.", strings.Join(os.Args[1:], " ")),
		"Load generators run on the same cores as the servers. \"Server CPU\" is the CPU time of the measured server process per request or row, which depends little on other load. \"Other CPU\" is the average number of cores busy in user mode with processes other than the server and the load generator during a measurement: above ~0.1 the figure is disturbed by other work on the machine.",
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", d.Seconds()*1000) }

func ratioCell(x, y float64) string {
	if y == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", x/y)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func (r *report) closed(tool string, ml, bare *loadResult) {
	if tool == "vegeta" {
		r.vegetaRate = ml.rps
	}
	ratio := ml.rps / bare.rps
	r.row(fmt.Sprintf("Closed loop (%s), 1×10: req/s", tool), fmt.Sprintf("%.0f", ml.rps), fmt.Sprintf("%.0f (bare fiber)", bare.rps),
		fmt.Sprintf("%.2f", ratio), "ratio ≥ 0.6", verdict(ratio >= 0.6))
	r.row(fmt.Sprintf("Closed loop (%s), 1×10: p50 / p99", tool), ms(ml.p50)+" / "+ms(ml.p99), ms(bare.p50)+" / "+ms(bare.p99), "", "", "")
	r.detail(fmt.Sprintf("closed loop %s mlnode", tool), ml)
	r.detail(fmt.Sprintf("closed loop %s bare", tool), bare)
}

func (r *report) open(rate int, ml, bare *loadResult) {
	r.row(fmt.Sprintf("Open loop %d req/s, 1×50: p50 / p99 / max", rate), ms(ml.p50)+" / "+ms(ml.p99)+" / "+ms(ml.pmax),
		ms(bare.p50)+" / "+ms(bare.p99)+" / "+ms(bare.pmax), "p99 "+ratioCell(ml.p99.Seconds(), bare.p99.Seconds()),
		"p99 ≤ 1 ms", verdict(ml.p99 <= time.Millisecond && ml.successRate() == 1))
	r.row(fmt.Sprintf("Open loop %d req/s, 1×50: success, achieved req/s", rate),
		fmt.Sprintf("%.2f%%, %.0f", 100*ml.successRate(), ml.rps), fmt.Sprintf("%.2f%%, %.0f", 100*bare.successRate(), bare.rps), "", "100%", verdict(ml.successRate() == 1))
	r.detail("open loop mlnode", ml)
	r.detail("open loop bare", bare)
}

func (r *report) redis(red *loadResult, mlRate float64, client string) {
	if mlRate == 0 {
		r.row("redis GET (redis-benchmark -c 32): req/s", "–", fmt.Sprintf("%.0f (redis)", red.rps), "–", "informational", "")
	} else {
		r.row(fmt.Sprintf("1×10 req/s (%s) vs redis GET (redis-benchmark)", client), fmt.Sprintf("%.0f", mlRate),
			fmt.Sprintf("%.0f (redis)", red.rps), ratioCell(mlRate, red.rps), "informational", "")
	}
	r.detail("redis-benchmark GET", red)
}

func (r *report) ingest(rows, clients int, dN, d1 time.Duration, cpuN, cpu1 cpuUse, b *boltResult, events int, size int64) {
	rateN, rate1 := float64(rows)/dN.Seconds(), float64(rows)/d1.Seconds()
	rateB := float64(rows) / b.measured.Seconds()
	r.row(fmt.Sprintf("Durable ingest over HTTP, %d clients, into %s rows: rows/s", clients, humanCount(events)),
		fmt.Sprintf("%.0f", rateN), fmt.Sprintf("%.0f (bare bbolt)", rateB), fmt.Sprintf("%.2f", rateN/rateB), "≥ 200,000 rows/s", verdict(rateN >= 200_000))
	r.row(fmt.Sprintf("Durable ingest over HTTP, 1 client, into %s rows: rows/s", humanCount(events+rows)),
		fmt.Sprintf("%.0f", rate1), fmt.Sprintf("%.0f (bare bbolt)", rateB), fmt.Sprintf("%.2f", rate1/rateB), "", "")
	r.details = append(r.details,
		fmt.Sprintf("ingest mlnode, %d clients: %d rows in %s; server CPU %.2f µs/row (%.0f%% of one core); %s written per 10,000-row batch; other CPU %.2f cores",
			clients, rows, dN.Round(time.Millisecond), perReq(cpuN.server, rows), 100*cpuN.server/dN.Seconds(), perBatch(cpuN.written, rows), cpuN.others()),
		fmt.Sprintf("ingest mlnode, 1 client: %d rows in %s; server CPU %.2f µs/row (%.0f%% of one core); %s written per 10,000-row batch; other CPU %.2f cores",
			rows, d1.Round(time.Millisecond), perReq(cpu1.server, rows), 100*cpu1.server/d1.Seconds(), perBatch(cpu1.written, rows), cpu1.others()),
		fmt.Sprintf("mlnode data dir after ingest: %.2f GiB", float64(size)/(1<<30)),
		fmt.Sprintf("bare bbolt: preload of %d keys (values %d bytes) in %s (%.0f keys/s); %d keys in %d durable transactions in %s, %s written per transaction; file %.2f GiB",
			events, b.valSize, b.preload.Round(time.Millisecond), float64(events)/b.preload.Seconds(), rows, rows/batchRows, b.measured.Round(time.Millisecond),
			perBatch(b.written, rows), float64(b.size)/(1<<30)))
}

func (r *report) ingestTail(rows int, dN time.Duration, b *boltResult) {
	rateN, rateB := float64(rows)/dN.Seconds(), float64(rows)/b.measured.Seconds()
	r.row("Durable ingest vs bare bbolt doing mlnode's write set (tail append + online put, same keys)",
		fmt.Sprintf("%.0f", rateN), fmt.Sprintf("%.0f (bare bbolt, 1 writer)", rateB), fmt.Sprintf("%.2f", rateN/rateB), "", "")
	r.details = append(r.details, fmt.Sprintf("bare bbolt, mlnode's write set: preload in %s; %d rows in %d durable transactions in %s, %s written per transaction; file %.2f GiB",
		b.preload.Round(time.Millisecond), rows, rows/batchRows, b.measured.Round(time.Millisecond), perBatch(b.written, rows), float64(b.size)/(1<<30)))
}

// perBatch is bytes written per 10,000 rows.
func perBatch(written int64, rows int) string {
	if written < 0 || rows == 0 {
		return "? MB"
	}
	return fmt.Sprintf("%.1f MB", float64(written)/float64(rows/batchRows)/1e6)
}

func humanCount(n int) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return strconv.FormatFloat(float64(n)/1e6, 'f', -1, 64) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func (r *report) detail(name string, l *loadResult) {
	s := fmt.Sprintf("%s (%s): %d requests, %d ok, %.0f req/s, p50 %s, p99 %s, max %s; server CPU %.1f µs/request, server+client %.1f µs/request; other CPU %.2f cores",
		name, l.tool, l.requests, l.ok, l.rps, ms(l.p50), ms(l.p99), ms(l.pmax), perReq(l.cpu.server, l.requests), perReq(l.cpu.total, l.requests), l.cpu.others())
	if l.tool == "vegeta" {
		s += fmt.Sprintf("; %d GCs in the load generator", l.clientGCs)
	}
	if len(l.errors) > 0 {
		s += "; errors: " + strings.Join(l.errors, "; ")
	}
	r.details = append(r.details, s)
}

func numGC() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

func perReq(cpuSeconds float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return cpuSeconds / float64(n) * 1e6
}

func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("# mlnode load benchmark\n\n")
	for _, h := range r.header {
		b.WriteString(h + "\n")
	}
	b.WriteString("\n| Measure | mlnode | baseline | ratio | target | |\n|---|---|---|---|---|---|\n")
	for _, row := range r.rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	b.WriteString("\nDetails:\n\n")
	for _, d := range r.details {
		b.WriteString("- " + d + "\n")
	}
	if len(r.notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range r.notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}
