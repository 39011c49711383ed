package routing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mlnode/mlnode/appliance"
	"github.com/mlnode/mlnode/appliance/routing"
)

// oneExperiment is an ExperimentStore holding fixed experiments.
type oneExperiment struct {
	appliance.ExperimentStore
	list []*appliance.Experiment
}

func (s oneExperiment) Experiments(context.Context) ([]*appliance.Experiment, error) {
	return s.list, nil
}

// BenchmarkRoute is the routing step of predict inside a running two-arm
// experiment: the unit from the request's entities, the assignment, the
// route.
func BenchmarkRoute(b *testing.B) {
	e := &appliance.Experiment{Name: "bench", Model: "churn", Unit: "user_id", State: appliance.ExperimentRunning, Coverage: 1,
		Arms: []appliance.Arm{{Name: "control", Version: 1, Weight: 0.5}, {Name: "treatment", Version: 2, Weight: 0.5}}}
	r := &routing.Router{Store: oneExperiment{list: []*appliance.Experiment{e}}}
	reqs := make([]*appliance.PredictRequest, 1024)
	for i := range reqs {
		reqs[i] = &appliance.PredictRequest{Model: "churn", Entities: map[string]json.RawMessage{"user_id": json.RawMessage(fmt.Sprintf(`"u%d"`, i))}}
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := reqs[i%len(reqs)]
		if _, ok, err := r.Route(ctx, "churn", req, req.Attributes); err != nil || !ok {
			b.Fatal(err, ok)
		}
		i++
	}
}
