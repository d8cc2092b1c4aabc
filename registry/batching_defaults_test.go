package registry

import (
	"testing"
	"time"
)

// A model whose config.json has a dynamic_batching block that leaves
// max_queue_delay_us out takes the node's --max-queue-delay, as every
// field left out takes the serve flags' value (README, "Model
// repository"); the block as a whole does not replace the node's.
func TestDynamicBatchingLeavesDelayToNode(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{MaxBatchSize: 16, DynamicBatching: &DynamicBatching{MaxQueueDelayUS: new(int64(500))}})
	writeModel(t, dir, "m", 1, "m1")
	writeConfig(t, dir, "m", `{"dynamic_batching":{"preferred_batch_sizes":[8]}}`)
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 1)
	defer v.Release()
	if got := v.Batcher.Config().MaxQueueDelay; got != 500*time.Microsecond {
		t.Fatalf("max queue delay %s; want the node's 500µs (config.json leaves max_queue_delay_us out)", got)
	}
}

// One that gives max_queue_delay_us 0 dispatches at once, whatever the
// node's delay.
func TestDynamicBatchingExplicitZeroDelay(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{MaxBatchSize: 16, DynamicBatching: &DynamicBatching{MaxQueueDelayUS: new(int64(500))}})
	writeModel(t, dir, "m", 1, "m1")
	writeConfig(t, dir, "m", `{"dynamic_batching":{"max_queue_delay_us":0,"preferred_batch_sizes":[8]}}`)
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 1)
	defer v.Release()
	if got := v.Batcher.Config().MaxQueueDelay; got != 0 {
		t.Fatalf("max queue delay %s; want 0, as config.json gives it", got)
	}
	if got := v.Config.DynamicBatching.MaxQueueDelayUS; got == nil || *got != 0 {
		t.Fatalf("the version's config gives max_queue_delay_us %v; want an explicit 0, which GET .../config shows", got)
	}
}
