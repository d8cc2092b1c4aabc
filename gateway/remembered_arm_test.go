package gateway_test

import (
	"fmt"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trafficlog"
)

// TestRememberedArmCountsOnlyForItsExperiment: feedback for a prediction
// this node remembers answering as arm "treatment" of experiment exp1
// (version 2) is not counted for exp2's "treatment" (version 1) once the
// model runs exp2 (found by a reviewing helper: the arm's name alone was
// matched against the current experiment).
func TestRememberedArmCountsOnlyForItsExperiment(t *testing.T) {
	s := startTwoVersions(t)
	s.repo.SetExperiment("ctr", &route.Experiment{Name: "exp1", Arms: []route.Arm{{Name: "control", Version: 1, Weight: 1}, {Name: "treatment", Version: 2, Weight: 1}}})
	id := ""
	for i := 0; id == ""; i++ {
		r := s.post(t, "/v2/models/ctr/infer", ctrRequest(features(1, 1, 64), 1), gateway.HeaderUnitID, fmt.Sprint("user-", i))
		if r.header[gateway.HeaderExperimentArm] == "treatment" && r.header["X-Model-Version"] == "2" {
			id = decodeInfer(t, r).ID
		}
	}
	s.repo.SetExperiment("ctr", &route.Experiment{Name: "exp2", Arms: []route.Arm{{Name: "control", Version: 2, Weight: 1}, {Name: "treatment", Version: 1, Weight: 1}}})
	r := s.post(t, "/v2/models/ctr/feedback", []byte(fmt.Sprintf(`{"id":%q,"reward":7}`, id)))
	if r.code != 200 {
		t.Fatalf("feedback: %s", r)
	}
	text := s.metricsText(t)
	if v, err := metricValue(text, `infergate_experiment_reward_sum{model="ctr",experiment="exp2",arm="treatment",version="1"}`); err == nil && v != 0 {
		t.Fatalf("feedback for a prediction version 2 made as exp1's treatment (answer %s) counted as exp2's treatment, version 1: reward sum %v", r.body, v)
	}
}
