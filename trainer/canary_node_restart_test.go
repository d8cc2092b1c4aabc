package trainer

import (
	"testing"
)

// TestCanaryFailuresAcrossANodeRestart: the canary's failures are the
// candidate version's failure counters less what they held when the
// shadow stage passed (State.CanaryFailuresBefore), summed over the
// nodes. A node that restarts during the canary starts its counters at
// 0, and the baseline, taken from its counters of before, is still
// subtracted from them: its shadow-stage failures hide the canary's. Here
// the shadow failed 90 of 10,000 copies (0.9%, within the 1% allowed);
// the node restarted (process_start_time_seconds says so) and the canary
// arm then failed 20 of its 1,000 requests (2%): 20 - 90 counted as none,
// and the candidate was promoted.
func TestCanaryFailuresAcrossANodeRestart(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.uploadCandidate(l)
	w.f.metrics = `process_start_time_seconds 1764331200
infergate_shadow_requests_total{model="ctr",version="2",result="compared"} 9910
infergate_shadow_requests_total{model="ctr",version="2",result="failed"} 90
infergate_inference_request_failure_total{model="ctr",version="2",reason="internal"} 90
`
	w.traffic(60, 1, "", coin, knows, 2)
	w.step(l)
	w.wantWrites("PUT /experiment", "DELETE /shadow")
	w.wantLast("canary", 2, "better: ")
	// The node restarted during the canary: its counters count from then.
	w.f.mu.Lock()
	w.f.metrics = `process_start_time_seconds 1764335000
infergate_inference_request_failure_total{model="ctr",version="2",reason="internal"} 20
infergate_experiment_requests_total{model="ctr",experiment="trainer-v2",arm="candidate",version="2"} 1000
`
	w.f.mu.Unlock()
	for range 3 {
		w.traffic(20, 1, "control", coin, nil, 0)
		w.traffic(20, 2, "candidate", knows, nil, 0)
	}
	w.step(l)
	if d := lastDecision(l); d.Action != "roll back" {
		t.Fatalf("20 of the canary arm's 1000 requests failed after the node restarted (2%%, max %g%%), yet the loop decided %q: %s",
			100*w.cfg.Policy.MaxFailureRate, d.Action, d.Reason)
	}
	w.wantWrites("DELETE /experiment", "DELETE /versions/2")
}
