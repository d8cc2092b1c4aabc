package bench

import "testing"

// Triton runs a group's count on each GPU it lists:
// {"count":2,"kind":"KIND_GPU","gpus":[0,1]} is 4 instances.
func TestParseServedConfigCountsPerGPU(t *testing.T) {
	sc := parseServedConfig([]byte(`{"instance_group":[{"count":2,"kind":"KIND_GPU","gpus":[0,1]}]}`))
	if sc == nil || sc.Instances != 4 {
		t.Fatalf("Triton instance_group count 2 on gpus [0,1]: got %+v; want 4 instances (count per listed GPU)", sc)
	}
}
