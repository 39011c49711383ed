package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

const benchSecret = "bench-admin-secret-0123456789"

// benchServer is a node with the sizing case loaded: an entity "user"
// keyed by a string, a view v10 of 10 features and a view v50 of 50
// (float64 and int64), 100,000 entities in each.
func benchServer(b *testing.B) *httpapi.Server {
	b.Helper()
	const entities, batch = 100_000, 10_000
	ctx := context.Background()
	s := storetest.Open(b, store.Options{})
	if _, err := s.BootstrapAdmin(ctx, benchSecret); err != nil {
		b.Fatal(err)
	}
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: appliance.EntityString}); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).UnixMicro()
	for _, features := range []int{10, 50} {
		fs := make([]appliance.Feature, features)
		for f := range fs {
			dt := appliance.DTypeFloat64
			if f%2 == 1 {
				dt = appliance.DTypeInt64
			}
			fs[f] = appliance.Feature{Name: fmt.Sprintf("f%02d", f), Dtype: dt}
		}
		view, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: fmt.Sprintf("v%d", features), Entities: []string{"user"}, Features: fs})
		if err != nil {
			b.Fatal(err)
		}
		rows := make([]appliance.Row, batch)
		for n := range entities / batch {
			for j := range rows {
				e := n*batch + j
				vals := make([]appliance.Value, features)
				for f := range vals {
					if f%2 == 1 {
						vals[f] = appliance.Int64Value(int64(e * f))
					} else {
						vals[f] = appliance.Float64Value(float64(e) / float64(f+1))
					}
				}
				rows[j] = appliance.Row{Key: appliance.AppendEntityKeyPart(nil, appliance.StringValue(fmt.Sprintf("u%07d", e))), EventTime: t0, Values: vals}
			}
			if _, err := s.WriteRows(ctx, &appliance.WriteRequest{View: view, Rows: rows}); err != nil {
				b.Fatal(err)
			}
		}
	}
	return httpapi.New(httpapi.Config{}, httpapi.Services{Registry: s, Features: s, Tokens: s, Audit: s})
}

// benchBodies are Feast requests of every feature of view vN for random
// entities.
func benchBodies(features int) [][]byte {
	refs := make([]string, features)
	for f := range refs {
		refs[f] = fmt.Sprintf("%q", fmt.Sprintf("v%d:f%02d", features, f))
	}
	list := "[" + strings.Join(refs, ",") + "]"
	rng := rand.New(rand.NewPCG(3, uint64(features)))
	bodies := make([][]byte, 4096)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"features":%s,"entities":{"user_id":["u%07d"]}}`, list, rng.IntN(100_000))
	}
	return bodies
}

// BenchmarkGetOnlineFeatures_1x10 measures the whole online read path over
// a real loopback connection: fasthttp, the middleware (request id,
// metrics, auth), request parsing, the bbolt read and the Feast response.
// The client is net/http with keep-alive on the same two cores, so the
// figure is a floor for the server, useful for comparing changes.
// app.Test is not used: it builds a connection per request and costs more
// than the handler.
func BenchmarkGetOnlineFeatures_1x10(b *testing.B) {
	srv := benchServer(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.App().Listener(ln) }()
	b.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	})
	url := "http://" + ln.Addr().String() + "/get-online-features"
	bodies := benchBodies(10)

	for _, conns := range []int{32} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
			}}
			defer client.CloseIdleConnections()
			// One request to check the setup before timing.
			if err := post(client, url, bodies[0]); err != nil {
				b.Fatal(err)
			}
			const nlat = 1 << 20
			lat := make([]int64, nlat)
			var walkers, done atomic.Int64
			b.SetParallelism(max(1, conns/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				i := int(walkers.Add(1) * 613) // a different walk through the bodies per goroutine
				for pb.Next() {
					start := time.Now()
					if err := post(client, url, bodies[i&(len(bodies)-1)]); err != nil {
						b.Error(err)
						return
					}
					lat[(done.Add(1)-1)&(nlat-1)] = int64(time.Since(start))
					i++
				}
			})
			b.StopTimer()
			// Client and server share the process and the cores.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			got := lat[:min(int(done.Load()), nlat)]
			if len(got) > 0 {
				slices.Sort(got)
				b.ReportMetric(float64(got[len(got)/2]), "p50-ns")
				b.ReportMetric(float64(got[len(got)*99/100]), "p99-ns")
			}
		})
	}
}

// BenchmarkGetOnlineFeatures_Handler is the server's CPU cost of one
// request without the network: the fiber app's handler called on a
// fasthttp.RequestCtx, one goroutine. bare_fiber is a handler that answers
// a fixed 200-byte JSON, the floor of any fiber route. Allocations here are
// the server's alone.
func BenchmarkGetOnlineFeatures_Handler(b *testing.B) {
	srv := benchServer(b)
	bare := fiber.New(fiber.Config{DisableStartupMessage: true})
	fixed := bytes.Repeat([]byte("x"), 200)
	bare.Post("/get-online-features", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(fixed)
	})
	cases := []struct {
		name     string
		app      *fiber.App
		features int
	}{
		{"mlnode_1x10", srv.App(), 10},
		{"mlnode_1x50", srv.App(), 50},
		{"bare_fiber", bare, 10},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			h := tc.app.Handler()
			bodies := benchBodies(tc.features)
			var req fasthttp.Request
			req.Header.SetMethod(fasthttp.MethodPost)
			req.SetRequestURI("/get-online-features")
			req.Header.SetContentType("application/json")
			req.Header.Set("Authorization", "Bearer "+benchSecret)
			var fctx fasthttp.RequestCtx
			b.ReportAllocs()
			i := 0
			var cpu0 time.Duration
			for b.Loop() {
				if i == 0 {
					cpu0 = processCPU()
				}
				req.SetBodyRaw(bodies[i&(len(bodies)-1)])
				fctx.Init(&req, nil, nil)
				h(&fctx)
				if code := fctx.Response.StatusCode(); code != http.StatusOK {
					b.Fatalf("status %d: %s", code, fctx.Response.Body())
				}
				i++
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(i), "cpu-ns/op")
		})
	}
}

// processCPU is the user and system CPU time of this process: on a shared
// machine, CPU per op moves less than wall time per op when other work
// competes for the cores.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

func post(client *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+benchSecret)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	return nil
}
