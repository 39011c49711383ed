package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance/bundle"
	"github.com/mlnode/mlnode/examples/models/logreg_go/logreg"
)

// binPath is the mlnode binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mlnode-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "mlnode")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build mlnode: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is a running mlnode process.
type node struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	token  string
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startNode runs `mlnode serve` on dataDir and waits for its address.
func startNode(t *testing.T, dataDir string, env ...string) *node {
	t.Helper()
	return startNodeArgs(t, dataDir, nil, env...)
}

// startNodeArgs is startNode with extra flags.
func startNodeArgs(t *testing.T, dataDir string, args []string, env ...string) *node {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"serve", "--data-dir", dataDir, "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = n.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() { n.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-n.done
		}
	})
	deadline := time.After(20 * time.Second)
	for n.url == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("mlnode exited before listening: %s", n.stderr)
			}
			if _, after, found := strings.Cut(line, "listening on "); found {
				n.url = strings.TrimSpace(after)
			}
		case <-deadline:
			t.Fatalf("mlnode did not start: %s", n.stderr)
		}
	}
	go func() {
		for range lines {
		}
	}()
	if raw, err := os.ReadFile(filepath.Join(dataDir, "admin.token")); err == nil {
		n.token = strings.TrimSpace(string(raw))
	}
	return n
}

// wait waits for the process to exit and returns its exit code.
func (n *node) wait(timeout time.Duration) int {
	n.t.Helper()
	select {
	case <-n.done:
	case <-time.After(timeout):
		n.cmd.Process.Kill()
		n.t.Fatalf("mlnode did not exit within %s: %s", timeout, n.stderr)
	}
	return n.cmd.ProcessState.ExitCode()
}

func (n *node) call(method, path, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, n.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func (n *node) mustCall(method, path string, body any, want int) []byte {
	n.t.Helper()
	var raw []byte
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		raw, ctype = []byte(b), "application/x-ndjson"
	default:
		raw, _ = json.Marshal(b)
		ctype = "application/json"
	}
	status, resp, err := n.call(method, path, ctype, raw)
	if err != nil || status != want {
		n.t.Fatalf("%s %s: %d %v: %s", method, path, status, err, resp)
	}
	return resp
}

func defineUserStats(n *node) {
	n.mustCall("POST", "/api/v1/entities", map[string]any{"name": "user", "join_keys": []string{"user_id"}, "value_type": "string"}, 201)
	n.mustCall("POST", "/api/v1/feature-views", map[string]any{"name": "user_stats", "entities": []string{"user"}, "features": []map[string]string{
		{"name": "clicks", "dtype": "int64"}, {"name": "score", "dtype": "float64"}}}, 201)
}

func TestBinary_QuickStartAndGracefulStop(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	fi, err := os.Stat(filepath.Join(dir, "admin.token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v %v", fi, err)
	}
	if strings.Contains(n.stderr.String(), n.token) {
		t.Fatal("the admin token was logged")
	}
	defineUserStats(n)
	n.mustCall("POST", "/api/v1/feature-views/user_stats/rows", `{"user_id":"u1","event_timestamp":"2026-01-01T00:00:00Z","clicks":5,"score":0.25}`, 200)
	got := n.mustCall("POST", "/get-online-features", map[string]any{"features": []string{"user_stats:clicks"}, "entities": map[string]any{"user_id": []string{"u1"}}}, 200)
	if !strings.Contains(string(got), `"values":[5]`) {
		t.Fatalf("online read: %s", got)
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := n.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM: %s", code, n.stderr)
	}
	if !strings.Contains(n.stderr.String(), "mlnode stopped") {
		t.Fatalf("no clean stop logged: %s", n.stderr)
	}
	// The store opens cleanly again with its data and the same token.
	n2 := startNode(t, dir)
	got = n2.mustCall("GET", "/api/v1/feature-views/user_stats/online?user_id=u1", nil, 200)
	if !strings.Contains(string(got), `"clicks":5`) {
		t.Fatalf("after restart: %s", got)
	}
}

func TestBinary_AdminTokenFromEnv(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, "MLNODE_ADMIN_TOKEN=env-admin-token-0123456789")
	if _, err := os.Stat(filepath.Join(dir, "admin.token")); !os.IsNotExist(err) {
		t.Fatalf("admin.token written although MLNODE_ADMIN_TOKEN was set: %v", err)
	}
	n.token = "env-admin-token-0123456789"
	n.mustCall("GET", "/api/v1/tokens", nil, 200)
}

func TestBinary_SecondNodeOnSameDataDirFails(t *testing.T) {
	dir := t.TempDir()
	startNode(t, dir)
	start := time.Now()
	out, err := exec.Command(binPath, "serve", "--data-dir", dir, "--addr", "127.0.0.1:0").CombinedOutput()
	if err == nil {
		t.Fatalf("second node started: %s", out)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("second node took %s to fail", took)
	}
	if !strings.Contains(string(out), "in use by another process") {
		t.Fatalf("unclear message: %s", out)
	}
}

// SIGTERM while a request is in flight: the request completes, then the
// node exits cleanly.
func TestBinary_SIGTERMFinishesInFlightRequest(t *testing.T) {
	n := startNode(t, t.TempDir())
	defineUserStats(n)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", n.url+"/api/v1/feature-views/user_stats/rows", pr)
	req.Header.Set("Authorization", "Bearer "+n.token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		res <- result{status: resp.StatusCode, body: string(b)}
	}()
	fmt.Fprintln(pw, `{"user_id":"a","event_timestamp":1700000000,"clicks":1}`)
	time.Sleep(300 * time.Millisecond)
	n.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	fmt.Fprintln(pw, `{"user_id":"b","event_timestamp":1700000000,"clicks":2}`)
	pw.Close()
	r := <-res
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, `"accepted":2`) {
		t.Fatalf("in-flight request: %+v", r)
	}
	if code := n.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d: %s", code, n.stderr)
	}
}

// A node killed with SIGKILL in the middle of heavy ingest: after restart
// every row whose request got a 2xx is readable and the store opens cleanly.
func TestBinary_SIGKILLDuringIngestKeepsAcknowledgedRows(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	defineUserStats(n)
	const writers = 8
	var mu sync.Mutex
	acked := map[string]int{} // user id → clicks
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; ; b++ {
				select {
				case <-stop:
					return
				default:
				}
				var body strings.Builder
				ids := make([]string, 500)
				for i := range ids {
					ids[i] = fmt.Sprintf("w%d_b%d_r%d", w, b, i)
					fmt.Fprintf(&body, "{\"user_id\":%q,\"event_timestamp\":1700000000,\"clicks\":%d,\"score\":1.5}\n", ids[i], b*1000+i)
				}
				status, _, err := n.call("POST", "/api/v1/feature-views/user_stats/rows", "application/x-ndjson", []byte(body.String()))
				if err != nil {
					return // the node is gone
				}
				if status == 200 {
					mu.Lock()
					for i, id := range ids {
						acked[id] = b*1000 + i
					}
					mu.Unlock()
				}
			}
		}()
	}
	// Let ingest run, then kill without warning.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k >= 20000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n.wait(10 * time.Second)
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no batch was acknowledged before the kill")
	}
	n2 := startNode(t, dir)
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	for start := 0; start < len(ids); start += 2000 {
		chunk := ids[start:min(start+2000, len(ids))]
		raw := n2.mustCall("POST", "/get-online-features", map[string]any{"features": []string{"user_stats:clicks"}, "entities": map[string]any{"user_id": chunk}}, 200)
		var resp struct {
			Results []struct {
				Values   []any    `json:"values"`
				Statuses []string `json:"statuses"`
			} `json:"results"`
		}
		if err := json.Unmarshal(raw, &resp); err != nil {
			t.Fatal(err)
		}
		for i, id := range chunk {
			if resp.Results[1].Statuses[i] != "PRESENT" || int(resp.Results[1].Values[i].(float64)) != acked[id] {
				t.Fatalf("acknowledged row %s lost after SIGKILL: %v %v", id, resp.Results[1].Statuses[i], resp.Results[1].Values[i])
			}
		}
	}
	verify := n2.mustCall("GET", "/api/v1/audit/verify", nil, 200)
	if !strings.Contains(string(verify), `"ok":true`) {
		t.Fatalf("audit after SIGKILL: %s", verify)
	}
	t.Logf("%d acknowledged rows all present after SIGKILL", len(acked))
}

func TestCLI(t *testing.T) {
	tests := []struct {
		args     []string
		env      []string
		code     int
		contains string
	}{
		{[]string{"version"}, nil, 0, "mlnode "},
		{[]string{"--help"}, nil, 0, "mlnode serve"},
		{nil, nil, 2, "Usage"},
		{[]string{"launch"}, nil, 2, `unknown command "launch"`},
		{[]string{"serve", "--help"}, nil, 0, "-data-dir"},
		{[]string{"serve", "--bogus"}, nil, 2, "bogus"},
		{[]string{"serve", "--addr", "nonsense"}, nil, 2, "addr"},
		{[]string{"serve", "--log-level", "loud"}, nil, 2, "log_level"},
		{[]string{"serve", "--config", "/nonexistent.yaml"}, nil, 2, "/nonexistent.yaml"},
		{[]string{"serve"}, []string{"MLNODE_INGEST_BODY_LIMIT=lots"}, 2, "MLNODE_INGEST_BODY_LIMIT"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := exec.Command(binPath, tt.args...)
			cmd.Env = append(os.Environ(), tt.env...)
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != tt.code || !strings.Contains(string(out), tt.contains) {
				t.Fatalf("exit %d, want %d; output must contain %q:\n%s", code, tt.code, tt.contains, out)
			}
		})
	}
}

func TestConfig_FileEnvFlagPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mlnode.yaml")
	os.WriteFile(path, []byte("data_dir: /from/file\naddr: 127.0.0.1:1111\ningest_body_limit: 1MiB\nlog_level: debug\n"), 0o600)
	t.Setenv("MLNODE_ADDR", "127.0.0.1:2222")
	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags([]string{"--config", path, "--log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.DataDir != "/from/file" || c.Addr != "127.0.0.1:2222" || c.IngestBodyLimit != 1<<20 || c.LogLevel != "warn" {
		t.Fatalf("config %+v", c)
	}
	os.WriteFile(path, []byte("datadir: x\n"), 0o600)
	if err := NewMain().ParseFlags([]string{"--config", path}); err == nil || !strings.Contains(err.Error(), "datadir") {
		t.Fatalf("unknown key: %v", err)
	}
}

// Every "env MLNODE_X" a flag's help promises is read, and every variable
// read is named in its flag's help (three documented ones were once
// silently ignored).
func TestConfig_EveryEnvVarNamedInHelpIsRead(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg := DefaultConfig()
	bindFlags(fs, &cfg)
	envRE := regexp.MustCompile(`env (MLNODE_[A-Z_]+)`)
	named := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		for _, m := range envRE.FindAllStringSubmatch(f.Usage, -1) {
			named[m[1]] = f.Name
		}
	})
	for env, flagName := range named {
		if got, ok := envVars[env]; !ok || got != flagName {
			t.Errorf("--%s's help names %s, but the node maps it to %q", flagName, env, got)
		}
	}
	for env, flagName := range envVars {
		if named[env] != flagName {
			t.Errorf("%s sets --%s, but that flag's help does not name it", env, flagName)
		}
	}
	// And they take effect.
	t.Setenv("MLNODE_TRUSTED_KEYS", "a.pub, b.pub")
	t.Setenv("MLNODE_TELEMETRY_RETENTION", "36h")
	t.Setenv("MLNODE_BUNDLE_BODY_LIMIT", "3MiB")
	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if !slices.Equal(c.TrustedKeys, []string{"a.pub", "b.pub"}) || c.TelemetryRetention != 36*time.Hour || c.BundleBodyLimit != 3<<20 {
		t.Fatalf("from the environment: trusted keys %v, retention %v, bundle limit %d", c.TrustedKeys, c.TelemetryRetention, c.BundleBodyLimit)
	}
}

// runInProcess runs a node in this process on a temporary data dir and a
// free port; the caller closes it.
func runInProcess(t *testing.T) *Main {
	t.Helper()
	m := NewMain()
	m.Stdout, m.Stderr = io.Discard, io.Discard
	m.Config.DataDir, m.Config.Addr = t.TempDir(), "127.0.0.1:0"
	m.AdminToken = "in-process-admin-token-01234"
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

// The in-process node, as the end-to-end tests' binary runs it.
func TestMain_RunAndClose(t *testing.T) {
	m := runInProcess(t)
	resp, err := http.Get("http://" + m.Addr() + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// A Close right after Run (a later start-up step failing, say) leaves
// nothing serving: fasthttp's shutdown alone misses a server that has not
// yet started on its listener.
func TestMain_CloseRightAfterRunStopsServing(t *testing.T) {
	for i := range 5 {
		m := runInProcess(t)
		addr := m.Addr()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-m.Served():
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: still serving after Close", i)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("round %d: %s accepts connections after Close", i, addr)
		}
	}
}

// The README's walkthrough, run as a user would against the real binary.
func TestBinary_READMEWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	n := startNode(t, t.TempDir())
	cmd := exec.Command("bash", "../../examples/walkthrough.sh")
	cmd.Env = append(os.Environ(), "MLNODE_URL="+n.url, "MLNODE_TOKEN="+n.token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"version":1`, `"accepted":2`, `"feature_names":["driver_id","conv_rate","avg_daily_trips"]`,
		`{"values":[0.81,0.47,null],"statuses":["PRESENT","PRESENT","NOT_FOUND"]`,
		`"name":"scoring_app","role":"reader","token":"`, `"action":"token.create"`, `"ok":true`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("walkthrough output lacks %s:\n%s", want, out)
		}
	}
}

// The README's offline-store walkthrough: backfill, a point-in-time
// training set, a Parquet export, materialization, a schedule, statistics
// and a backup, against the real binary.
func TestBinary_READMEOfflineWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	dir := t.TempDir()
	n := startNode(t, dir)
	out := t.TempDir()
	cmd := exec.Command("bash", "../../examples/offline-walkthrough.sh")
	cmd.Env = append(os.Environ(), "MLNODE_URL="+n.url, "MLNODE_TOKEN="+n.token, "OUT="+out)
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("offline walkthrough failed: %v\n%s", err, got)
	}
	for _, want := range []string{`"accepted":4`,
		"driver_id,event_timestamp,trip_completed,conv_rate,avg_daily_trips\n" +
			"1001,2026-04-01T11:00:00Z,1,0.6,11\n1001,2026-04-01T07:00:00Z,0,,\n1002,2026-04-01T09:30:00Z,1,0.3,5\n",
		`"state":"succeeded"`, `"online_rows_written":2`, `"name":"refresh_driver_stats"`, `"status":"succeeded"`,
		`"name":"conv_rate","dtype":"float64","count":4`, `"kind":"backup"`} {
		if !strings.Contains(string(got), want) {
			t.Fatalf("offline walkthrough output lacks %s:\n%s", want, got)
		}
	}
	pq, err := os.ReadFile(filepath.Join(out, "driver_hourly_stats.parquet"))
	if err != nil || !bytes.HasPrefix(pq, []byte("PAR1")) || !bytes.HasSuffix(pq, []byte("PAR1")) {
		t.Fatalf("the export is not a Parquet file (%v, %d bytes)", err, len(pq))
	}
	// The backup job ran in the background; it lands in <data-dir>/backups.
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "backups", "mlnode-*.db"))
		if len(files) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no backup in %s after the backup job", filepath.Join(dir, "backups"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The README's experiment walkthrough against the real binary: traffic is
// split between two versions, events attribute to arms, results show the
// lift, and the latency guardrail stops the experiment on its own.
func TestBinary_READMEExperimentWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	if _, err := os.Stat("../../examples/build/logreg_c.wasm"); err != nil {
		t.Fatalf("%v (run `make examples`)", err)
	}
	n := startNode(t, t.TempDir(), "MLNODE_GUARDRAIL_INTERVAL=1s")
	cmd := exec.Command("bash", "examples/experiment-walkthrough.sh")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "MLNODE_URL="+n.url, "MLNODE_TOKEN="+n.token, "MLNODE_BIN="+binPath, "UNITS=300")
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("experiment walkthrough failed: %v\n%s", err, got)
	}
	out := string(got)
	for _, want := range []string{`"state":"draft"`, `"metric":"converted"`, `"significant":true`, `"state":"stopped"`,
		`guardrail latency_ms breached by arm treatment`, `"action":"experiment.stop"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("experiment walkthrough output lacks %s:\n%s", want, out)
		}
	}
	// After the stop, shoppers get production (version 1) and no experiment.
	if !strings.Contains(out, `"model":"ranker","version":1,"alias":"production"`) {
		t.Fatalf("after the guardrail the prediction is not production's:\n%s", out)
	}
}

// Over the ingest limit a body is refused with 413, whether its size is
// declared or it arrives chunked, and nothing is written.
func TestBinary_IngestBodyLimit(t *testing.T) {
	n := startNode(t, t.TempDir(), "MLNODE_INGEST_BODY_LIMIT=2KiB")
	defineUserStats(n)
	line := `{"user_id":"a","event_timestamp":1700000000,"clicks":1}` + "\n"
	big := strings.Repeat(line, 100)
	status, body, err := n.call("POST", "/api/v1/feature-views/user_stats/rows", "application/x-ndjson", []byte(big))
	if err != nil || status != 413 || !strings.Contains(string(body), `"too_large"`) {
		t.Fatalf("declared size: %d %v %s", status, err, body)
	}
	pr, pw := io.Pipe()
	go func() {
		for range 100 {
			if _, err := io.WriteString(pw, line); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", n.url+"/api/v1/feature-views/user_stats/rows", pr)
	req.Header.Set("Authorization", "Bearer "+n.token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	pr.Close()
	// The node answers 413 and closes the connection without reading the
	// rest; a client still sending may see the reset before the answer.
	if err != nil && !strings.Contains(err.Error(), "connection reset") && !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("chunked: %v", err)
	}
	if err == nil {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("chunked: %d %s", resp.StatusCode, raw)
		}
	}
	got := n.mustCall("GET", "/api/v1/feature-views/user_stats", nil, 200)
	if !strings.Contains(string(got), `"offline_rows":0`) {
		t.Fatalf("an oversized body wrote rows: %s", got)
	}
}

// A real transform module, built by `make examples`, uploaded and applied
// at ingest time and on demand.
func TestBinary_WasmTransforms(t *testing.T) {
	wasmPath := "../../examples/build/features_go.wasm"
	raw, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatalf("%s: %v (run `make examples`, which `make test` does first)", wasmPath, err)
	}
	n := startNode(t, t.TempDir())
	status, body, err := n.call("POST", "/api/v1/modules", "application/wasm", raw)
	if err != nil || status != 201 {
		t.Fatalf("upload: %d %v %s", status, err, body)
	}
	var mod struct {
		SHA256 string   `json:"sha256"`
		Kinds  []string `json:"kinds"`
	}
	json.Unmarshal(body, &mod)
	if !strings.Contains(strings.Join(mod.Kinds, ","), "row_transform") {
		t.Fatalf("kinds: %s", body)
	}
	// Not WebAssembly: refused before anything is stored.
	if status, body, _ := n.call("POST", "/api/v1/modules", "application/wasm", []byte("hello")); status != 400 || !strings.Contains(string(body), `"field":"module"`) {
		t.Fatalf("bad module: %d %s", status, body)
	}
	n.mustCall("POST", "/api/v1/entities", map[string]any{"name": "user", "join_keys": []string{"user_id"}, "value_type": "string"}, 201)
	outputs := []map[string]string{{"name": "log_amount", "dtype": "float64"}, {"name": "age_bucket", "dtype": "int64"},
		{"name": "country_ae", "dtype": "bool"}, {"name": "country_de", "dtype": "bool"}, {"name": "country_fr", "dtype": "bool"},
		{"name": "country_gb", "dtype": "bool"}, {"name": "country_us", "dtype": "bool"}}
	features := []map[string]string{{"name": "amount", "dtype": "float64"}, {"name": "country", "dtype": "string"}, {"name": "age", "dtype": "int64"}}
	n.mustCall("POST", "/api/v1/feature-views", map[string]any{"name": "payments", "entities": []string{"user"}, "features": features,
		"transform": map[string]any{"module": "sha256:" + mod.SHA256, "mode": "ingest", "inputs": []string{"amount", "country", "age"}, "outputs": outputs}}, 201)
	n.mustCall("POST", "/api/v1/feature-views/payments/rows",
		"{\"user_id\":\"a\",\"event_timestamp\":1700000000,\"amount\":99,\"country\":\"FR\",\"age\":30}\n"+
			"{\"user_id\":\"b\",\"event_timestamp\":1700000000,\"amount\":0,\"country\":\"JP\"}\n", 200)
	got := n.mustCall("POST", "/get-online-features", map[string]any{"features": []string{"payments:log_amount", "payments:age_bucket", "payments:country_fr"},
		"entities": map[string]any{"user_id": []string{"a", "b"}}}, 200)
	want := fmt.Sprintf(`{"values":[%v,0],`, math.Log1p(99))
	if !strings.Contains(string(got), want) || !strings.Contains(string(got), `{"values":[2,-1],`) || !strings.Contains(string(got), `{"values":[true,false],`) {
		t.Fatalf("derived at ingest: %s", got)
	}

	// The same module on demand, with the amount sent with the request.
	n.mustCall("POST", "/api/v1/feature-views", map[string]any{"name": "profile", "entities": []string{"user"},
		"features":  []map[string]string{{"name": "country", "dtype": "string"}, {"name": "age", "dtype": "int64"}},
		"transform": map[string]any{"module": "sha256:" + mod.SHA256, "mode": "on_demand", "inputs": []string{"request:amount", "country", "age"}, "outputs": outputs}}, 201)
	n.mustCall("POST", "/api/v1/feature-views/profile/rows", `{"user_id":"a","event_timestamp":1700000000,"country":"GB","age":70}`, 200)
	got = n.mustCall("POST", "/get-online-features", map[string]any{"features": []string{"profile:log_amount", "profile:age_bucket", "profile:country_gb"},
		"entities": map[string]any{"user_id": []string{"a"}}, "request_context": map[string]any{"amount": []any{0}}}, 200)
	if !strings.Contains(string(got), `{"values":[0],`) || !strings.Contains(string(got), `{"values":[5],`) || !strings.Contains(string(got), `{"values":[true],`) {
		t.Fatalf("derived on demand: %s", got)
	}
}

// The model lifecycle against the real binary: build a bundle of the C
// logistic regression (made by `make examples`), upload it unsigned and
// signed, see the alias policy refuse the unsigned version, serve
// predictions, roll back.
func TestBinary_ModelBundleLifecycle(t *testing.T) {
	wasmBytes, err := os.ReadFile("../../examples/build/logreg_c.wasm")
	if err != nil {
		t.Fatalf("%v (run `make examples`)", err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	pubPEM, _ := bundle.MarshalPublicKey(pub)
	os.WriteFile(filepath.Join(dir, "ci.pub"), pubPEM, 0o600)
	cfg := filepath.Join(dir, "mlnode.yaml")
	os.WriteFile(cfg, []byte("trusted_keys: ["+filepath.Join(dir, "ci.pub")+"]\nalias_policies:\n  production: {require_signature: true}\n"), 0o600)

	dataDir := filepath.Join(dir, "data")
	n := startNodeArgs(t, dataDir, []string{"--config", cfg})

	inputs := make([]string, 32)
	features := make([]map[string]string, 32)
	row := map[string]any{"user_id": "u1", "event_timestamp": 1700000000}
	sample := make([]float64, 32)
	for i := range inputs {
		inputs[i] = fmt.Sprintf("user_feats:f%d", i)
		features[i] = map[string]string{"name": fmt.Sprintf("f%d", i), "dtype": "float64"}
		sample[i] = float64(i%7) / 10
		row[fmt.Sprintf("f%d", i)] = sample[i]
	}
	// A multipart body fasthttp cannot read: a 400 on the body.
	if status, body, err := n.call("POST", "/api/v1/models", "multipart/form-data; boundary=XX", []byte("--XX\r\nbroken")); err != nil ||
		status != 400 || !strings.Contains(string(body), `"field":"body"`) {
		t.Fatalf("malformed multipart: %d %s %v", status, body, err)
	}
	n.mustCall("POST", "/api/v1/entities", map[string]any{"name": "user", "join_keys": []string{"user_id"}, "value_type": "string"}, 201)
	n.mustCall("POST", "/api/v1/feature-views", map[string]any{"name": "user_feats", "entities": []string{"user"}, "features": features}, 201)
	line, _ := json.Marshal(row)
	n.mustCall("POST", "/api/v1/feature-views/user_feats/rows", string(line), 200)
	want := logreg.Predict(sample)

	build := func(description string, sign bool) []byte {
		t.Helper()
		bdir := t.TempDir()
		manifest := map[string]any{"name": "churn", "abi": "mlnode/v1", "module": "model.wasm", "inputs": inputs, "outputs": []string{"p"},
			"description": description, "framework": "c", "sample": map[string]any{"input": sample, "output": []float64{want}, "tolerance": 1e-9}}
		raw, _ := json.Marshal(manifest)
		os.WriteFile(filepath.Join(bdir, "manifest.json"), raw, 0o600)
		os.WriteFile(filepath.Join(bdir, "model.wasm"), wasmBytes, 0o600)
		archive, err := bundle.Build(bdir)
		if err != nil {
			t.Fatal(err)
		}
		if sign {
			b, err := bundle.Open(bytes.NewReader(archive), bundle.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if archive, err = bundle.WithSignature(archive, bundle.Sign(b, priv)); err != nil {
				t.Fatal(err)
			}
		}
		return archive
	}
	upload := func(archive []byte, want int) map[string]any {
		t.Helper()
		status, body, err := n.call("POST", "/api/v1/models", "application/gzip", archive)
		if err != nil || status != want {
			t.Fatalf("upload: %d %v %s", status, err, body)
		}
		var m map[string]any
		json.Unmarshal(body, &m)
		return m
	}
	v1 := upload(build("unsigned", false), 201)
	upload(build("unsigned", false), 200) // identical content: the same version
	v2 := upload(build("signed", true), 201)
	if v1["version"].(float64) != 1 || v2["version"].(float64) != 2 || !strings.Contains(fmt.Sprint(v2["signatures"]), "trusted:true") {
		t.Fatalf("versions: %v / %v", v1, v2)
	}
	if lin := fmt.Sprint(v1["lineage"]); !strings.Contains(lin, "user_feats:1") {
		t.Fatalf("lineage: %s", lin)
	}
	// The policy refuses the unsigned version for production.
	if status, body, _ := n.call("PUT", "/api/v1/models/churn/aliases/production", "application/json", []byte(`{"version":1}`)); status != 409 {
		t.Fatalf("unsigned production: %d %s", status, body)
	}
	n.mustCall("PUT", "/api/v1/models/churn/aliases/staging", map[string]any{"version": 1}, 200)
	n.mustCall("PUT", "/api/v1/models/churn/aliases/production", map[string]any{"version": 2}, 200)
	got := n.mustCall("POST", "/api/v1/predict/churn", map[string]any{"entities": map[string]any{"user_id": "u1"}}, 200)
	var res struct {
		Version int                `json:"version"`
		Outputs map[string]float64 `json:"outputs"`
	}
	json.Unmarshal(got, &res)
	if res.Version != 2 || math.Abs(res.Outputs["p"]-want) > 1e-9 {
		t.Fatalf("predict: %s, want p=%v", got, want)
	}
	// A bundle whose sample does not match its module is refused.
	badDir := t.TempDir()
	manifest := map[string]any{"name": "churn", "abi": "mlnode/v1", "module": "model.wasm", "inputs": inputs, "outputs": []string{"p"},
		"sample": map[string]any{"input": sample, "output": []float64{want + 0.5}}}
	raw, _ := json.Marshal(manifest)
	os.WriteFile(filepath.Join(badDir, "manifest.json"), raw, 0o600)
	os.WriteFile(filepath.Join(badDir, "model.wasm"), wasmBytes, 0o600)
	archive, _ := bundle.Build(badDir)
	if status, body, _ := n.call("POST", "/api/v1/models", "application/gzip", archive); status != 422 || !strings.Contains(string(body), "sample") {
		t.Fatalf("bad sample: %d %s", status, body)
	}
	// A manifest naming a feature that does not exist, and a signature that
	// does not match the bundle: refused, nothing stored.
	ghostDir := t.TempDir()
	ghost := map[string]any{"name": "churn", "abi": "mlnode/v1", "module": "model.wasm", "inputs": append([]string{"user_feats:nope"}, inputs[1:]...), "outputs": []string{"p"}}
	raw, _ = json.Marshal(ghost)
	os.WriteFile(filepath.Join(ghostDir, "manifest.json"), raw, 0o600)
	os.WriteFile(filepath.Join(ghostDir, "model.wasm"), wasmBytes, 0o600)
	archive, _ = bundle.Build(ghostDir)
	if status, body, _ := n.call("POST", "/api/v1/models", "application/gzip", archive); status != 404 || !strings.Contains(string(body), `"field":"inputs[0]"`) {
		t.Fatalf("unknown feature: %d %s", status, body)
	}
	signedElsewhere := build("signed for another bundle", true)
	sb, _ := bundle.Open(bytes.NewReader(signedElsewhere), bundle.Limits{})
	tampered, _ := bundle.Open(bytes.NewReader(build("tampered", false)), bundle.Limits{})
	forged := tarGz(t, map[string][]byte{"manifest.json": tampered.RawManifest, "model.wasm": wasmBytes, "signature.ed25519": sb.Signature})
	if status, body, _ := n.call("POST", "/api/v1/models", "application/gzip", forged); status != 400 || !strings.Contains(string(body), "signature") {
		t.Fatalf("forged signature: %d %s", status, body)
	}
	if v := n.mustCall("GET", "/api/v1/models/churn", nil, 200); !strings.Contains(string(v), `"latest_version":2`) {
		t.Fatalf("a refused upload made a version: %s", v)
	}
	n.mustCall("POST", "/api/v1/models/churn/aliases/staging/rollback", nil, 409) // nothing before version 1
	hist := n.mustCall("GET", "/api/v1/models/churn/aliases/production/history", nil, 200)
	if !strings.Contains(string(hist), `"action":"set"`) {
		t.Fatalf("history: %s", hist)
	}
}

// The README's model walkthrough with the mlnode CLI against the binary.
func TestBinary_READMEModelWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	if _, err := os.Stat("../../examples/build/logreg_c.wasm"); err != nil {
		t.Fatalf("%v (run `make examples`)", err)
	}
	n := startNode(t, t.TempDir())
	cmd := exec.Command("bash", "examples/model-walkthrough.sh")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "MLNODE_URL="+n.url, "MLNODE_TOKEN="+n.token, "MLNODE_BIN="+binPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("model walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"version":2,"alias":"production","outputs":{"p_churn":`, `"action":"rollback","version":1,"previous":2`,
		`"version":1,"alias":"production","outputs"`, `"valid":true`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("walkthrough output lacks %s:\n%s", want, out)
		}
	}
}

// tarGz writes files into a .tar.gz by hand, as another toolchain would.
func tarGz(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}
