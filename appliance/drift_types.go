package appliance

import (
	"context"
	"time"
)

// DriftWindow is one drift computation for one model version: each input
// and output compared with its reference over a window of live traffic.
type DriftWindow struct {
	Model    string         `json:"model"`
	Version  int            `json:"version"`
	Start    time.Time      `json:"window_start"`
	End      time.Time      `json:"window_end"`
	Requests int64          `json:"requests"`
	Features []FeatureDrift `json:"features"`
	Drifted  int            `json:"drifted"` // features that drifted or crossed the PSI alert
}

// FeatureDrift is one input's or output's drift in a window.
type FeatureDrift struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"` // input | output
	Reference string   `json:"reference"`
	Method    string   `json:"method,omitempty"`
	Statistic float64  `json:"statistic"`
	PValue    *float64 `json:"p_value,omitempty"`
	Threshold float64  `json:"threshold"`
	Drifted   bool     `json:"drifted"`
	PSI       float64  `json:"psi"`
	PSIAlert  bool     `json:"psi_alert"`
	Current   int64    `json:"current_count"`
	Note      string   `json:"note,omitempty"` // why there is no comparison
}

// Alert is something an operator should look at: drift, a guardrail.
type Alert struct {
	ID      uint64         `json:"id"`
	Time    time.Time      `json:"time"`
	Type    string         `json:"type"` // an event type, e.g. drift.alert
	Subject string         `json:"subject"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data,omitempty"`
}

// DriftStore keeps drift windows, output baselines and alerts.
type DriftStore interface {
	PutDriftWindow(ctx context.Context, w *DriftWindow) error
	DriftWindows(ctx context.Context, model string, limit int) ([]*DriftWindow, error)
	// DriftBaseline returns a stored baseline (nil if none); PutDriftBaseline
	// stores one the first time only and returns what is stored.
	DriftBaseline(ctx context.Context, key string) ([]byte, error)
	PutDriftBaseline(ctx context.Context, key string, data []byte) ([]byte, error)
	PutAlert(ctx context.Context, a *Alert) error
	Alerts(ctx context.Context, limit int) ([]*Alert, error)
}
