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
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/httpapi"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

const benchSecret = "bench-admin-secret-0123456789"

// BenchmarkGetOnlineFeatures_1x10 measures the whole online read path over
// a real loopback connection: fasthttp, the middleware (request id,
// metrics, auth), request parsing, the bbolt read and the Feast response.
// The client is net/http with keep-alive on the same two cores, so the
// figure is a floor for the server, useful for comparing changes.
// app.Test is not used: it builds a connection per request and costs more
// than the handler.
func BenchmarkGetOnlineFeatures_1x10(b *testing.B) {
	const entities, batch, features = 100_000, 10_000, 10
	ctx := context.Background()
	s := storetest.Open(b, store.Options{})
	if _, err := s.BootstrapAdmin(ctx, benchSecret); err != nil {
		b.Fatal(err)
	}
	if _, err := s.CreateEntity(ctx, &appliance.Entity{Name: "user", JoinKeys: []string{"user_id"}, ValueType: appliance.EntityString}); err != nil {
		b.Fatal(err)
	}
	fs := make([]appliance.Feature, features)
	refs := make([]string, features)
	for f := range fs {
		dt := appliance.DTypeFloat64
		if f%2 == 1 {
			dt = appliance.DTypeInt64
		}
		fs[f] = appliance.Feature{Name: fmt.Sprintf("f%d", f), Dtype: dt}
		refs[f] = "v1x10:" + fs[f].Name
	}
	view, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "v1x10", Entities: []string{"user"}, Features: fs})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).UnixMicro()
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

	srv := httpapi.New(httpapi.Config{}, httpapi.Services{Registry: s, Features: s, Tokens: s, Audit: s})
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

	// Request bodies for random entities, built outside the timer.
	rng := rand.New(rand.NewPCG(3, 4))
	bodies := make([][]byte, 4096)
	featureList := `["` + refs[0]
	for _, r := range refs[1:] {
		featureList += `","` + r
	}
	featureList += `"]`
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"features":%s,"entities":{"user_id":["u%07d"]}}`, featureList, rng.IntN(entities))
	}

	for _, conns := range []int{1, 2, 32} {
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
			procs := max(1, conns/runtime.GOMAXPROCS(0))
			b.SetParallelism(procs)
			b.ReportAllocs()
			b.ResetTimer()
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
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			got := lat[:min(int(done.Load()), nlat)]
			got = slices.DeleteFunc(got, func(x int64) bool { return x == 0 })
			if len(got) > 0 {
				slices.Sort(got)
				b.ReportMetric(float64(got[len(got)/2]), "p50-ns")
				b.ReportMetric(float64(got[len(got)*99/100]), "p99-ns")
			}
		})
	}
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
