package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/store"
	"github.com/mlnode/mlnode/store/storetest"
)

// xorCodec stands in for encryption: what it seals does not show its plain
// bytes.
type xorCodec struct{}

func (xorCodec) Seal(dst, plain []byte) []byte {
	dst = append(dst, 7)
	for _, c := range plain {
		dst = append(dst, c^0x5a)
	}
	return dst
}

func (xorCodec) Open(dst, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 || sealed[0] != 7 {
		return nil, errors.New("not sealed by xorCodec")
	}
	for _, c := range sealed[1:] {
		dst = append(dst, c^0x5a)
	}
	return dst, nil
}

func statsRecord(v *appliance.FeatureView, seq uint64, state string) *appliance.FeatureStatsRecord {
	return &appliance.FeatureStatsRecord{View: v.Name, Version: v.Version, ThroughSeq: seq, Rows: int64(seq),
		ComputedAt: time.Date(2026, 6, 1, 12, 0, 0, 123000, time.UTC), State: []byte(state)}
}

func TestStats_PutAndRead(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(ctx, dir, store.Options{Codec: xorCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	v := mustCreateUserView(t, s)
	if _, err := s.Stats(ctx, v); appliance.ErrorCode(err) != appliance.ENOTFOUND || !strings.Contains(err.Error(), "run the statistics job") {
		t.Fatalf("statistics before any: %v", err)
	}
	if err := s.PutStats(ctx, v, statsRecord(v, 42, "state: sketches and counters")); err != nil {
		t.Fatal(err)
	}
	want := statsRecord(v, 50, "newer state")
	if err := s.PutStats(ctx, v, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.OpenDir(t, dir, store.Options{Codec: xorCodec{}})
	got, err := s.Stats(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if got.View != want.View || got.Version != want.Version || got.ThroughSeq != 50 || got.Rows != 50 ||
		!got.ComputedAt.Equal(want.ComputedAt) || string(got.State) != "newer state" {
		t.Fatalf("read %+v, want %+v", got, want)
	}
	file, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(file, []byte("newer state")) || bytes.Contains(file, []byte("sketches and counters")) {
		t.Fatal("statistics are stored unsealed")
	}
}

func TestStats_VersionsAreSeparate(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v1 := mustCreateUserView(t, s)
	v2, created, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: "user_stats", Entities: []string{"user"},
		Features: []appliance.Feature{{Name: "clicks", Dtype: "int64"}}})
	if err != nil || !created {
		t.Fatalf("version 2: %v %v", created, err)
	}
	if err := s.PutStats(ctx, v1, statsRecord(v1, 1, "one")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stats(ctx, v2); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("version 2 has version 1's statistics: %v", err)
	}
	if err := s.PutStats(ctx, v2, statsRecord(v2, 2, "two")); err != nil {
		t.Fatal(err)
	}
	for v, want := range map[*appliance.FeatureView]string{v1: "one", v2: "two"} {
		if got, err := s.Stats(ctx, v); err != nil || string(got.State) != want {
			t.Fatalf("%s: %v %v", v.Key(), got, err)
		}
	}
}

func TestStats_Refused(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	other := *v
	other.Version = 2
	tests := []struct {
		name string
		view *appliance.FeatureView
		rec  *appliance.FeatureStatsRecord
		code string
	}{
		{"record of another version", v, statsRecord(&other, 1, "x"), appliance.EINTERNAL},
		{"version that does not exist", &other, statsRecord(&other, 1, "x"), appliance.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.PutStats(ctx, tt.view, tt.rec); appliance.ErrorCode(err) != tt.code {
				t.Fatalf("put: %v, want %s", err, tt.code)
			}
		})
	}
}

// A view deleted and created again under the same name starts at version 1
// again; it must not show the statistics of the view it replaces.
func TestStats_RecreatedViewStartsEmpty(t *testing.T) {
	s := storetest.Open(t, store.Options{})
	v := mustCreateUserView(t, s)
	if err := s.PutStats(ctx, v, statsRecord(v, 1, "old")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFeatureView(ctx, v.Name, true); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStats(ctx, v, statsRecord(v, 2, "late")); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("statistics of a deleted view stored: %v", err)
	}
	time.Sleep(time.Millisecond) // the new version's creation time must differ
	again, _, err := s.ApplyFeatureView(ctx, &appliance.FeatureView{Name: v.Name, Entities: v.Entities, Features: v.Features})
	if err != nil || again.Version != 1 {
		t.Fatalf("recreate: %v %v", again, err)
	}
	if _, err := s.Stats(context.Background(), again); appliance.ErrorCode(err) != appliance.ENOTFOUND {
		t.Fatalf("the new view shows the old one's statistics: %v", err)
	}
}
