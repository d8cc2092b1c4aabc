package gateway_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
)

// Triton's priority_queue_policy: priority 1 holds one waiting request and
// ignores requests' timeouts; priority 2 (the default) times out after its
// own 30 ms. A second priority-1 request is a 503 naming its level's bound,
// at once; a priority-2 one times out naming its level's timeout; the
// queued priority-1 one waits past its own 1 ms timeout and runs. The
// configuration view shows the policies, and loads back.
func TestPriorityQueuePolicy(t *testing.T) {
	b := newFakeBackend()
	cfg := gateway.DefaultConfig()
	cfg.RequestTimeout = time.Minute
	one, no, timeout := int64(1), false, int64(30000)
	s := startFake(t, b, cfg, registry.ModelConfig{Instances: 1, DynamicBatching: &registry.DynamicBatching{
		PriorityLevels: 2, DefaultPriorityLevel: 2,
		PriorityQueuePolicy: map[string]registry.QueuePolicy{
			"1": {MaxQueueSize: &one, AllowTimeoutOverride: &no},
			"2": {DefaultTimeoutMicroseconds: &timeout},
		},
	}})
	running := occupy(t, s, b)
	high := `{"parameters":{"priority":1,"timeout":1000},"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`
	queued := make(chan response, 1)
	go func() {
		r, err := s.send(fasthttp.MethodPost, fakeInfer, []byte(high))
		if err != nil {
			t.Error(err)
		}
		queued <- r
	}()
	select {
	case r := <-queued:
		t.Fatalf("priority 1 answered %s while the instance was busy; want it to wait past its 1 ms timeout parameter", r)
	case <-time.After(100 * time.Millisecond):
	}

	r := s.post(t, fakeInfer, []byte(high))
	checkError(t, r, fasthttp.StatusServiceUnavailable, `model "fake" version 1 has 1 requests of priority 1 queued, the max_queue_size of that priority in its dynamic_batching.priority_queue_policy`)
	checkRetryAfter(t, r)
	if r.took > 5*time.Second {
		t.Fatalf("the refusal took %s; want it at once", r.took)
	}

	r = s.post(t, fakeInfer, []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`))
	checkError(t, r, fasthttp.StatusServiceUnavailable, "timed out after 30ms waiting in the queue of model \"fake\" version 1 (1 instances busy), its dynamic_batching.priority_queue_policy's default_timeout_microseconds for priority 2")
	if r.took < 30*time.Millisecond {
		t.Fatalf("timed out after %s; want 30ms at least", r.took)
	}

	b.unblock()
	for _, ch := range []<-chan response{running, queued} {
		if r := <-ch; r.code != fasthttp.StatusOK {
			t.Fatalf("got %s; want 200", r)
		}
	}

	r = s.do(t, fasthttp.MethodGet, "/v2/models/fake/config", nil)
	if r.code != fasthttp.StatusOK {
		t.Fatalf("GET config: %s", r)
	}
	var view map[string]any
	if err := json.Unmarshal(r.body, &view); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(view["dynamic_batching"])
	const want = `{"default_priority_level":2,"priority_levels":2,"priority_queue_policy":{"1":{"allow_timeout_override":false,"max_queue_size":1},"2":{"default_timeout_microseconds":30000}}}`
	if string(got) != want {
		t.Fatalf("dynamic_batching in the view: %s; want %s", got, want)
	}
	delete(view, "version")
	delete(view, "sha256")
	text, _ := json.Marshal(view)
	body, _ := json.Marshal(map[string]any{"parameters": map[string]string{"config": string(text)}})
	if r := s.post(t, "/v2/repository/models/fake/load", body); r.code != fasthttp.StatusOK {
		t.Fatalf("loading the view back: %s", r)
	}
}

// A level whose policy sets only max_queue_size takes the model's
// default_queue_timeout_us, and a request of it that times out names that
// setting, not one its policy leaves out.
func TestLevelTimeoutNamesTheSettingThatApplied(t *testing.T) {
	b := newFakeBackend()
	cfg := gateway.DefaultConfig()
	cfg.RequestTimeout = time.Minute
	five := int64(5)
	s := startFake(t, b, cfg, registry.ModelConfig{Instances: 1, DynamicBatching: &registry.DynamicBatching{
		PriorityLevels: 2, DefaultPriorityLevel: 2,
		DefaultQueueTimeoutUS: 30000,
		PriorityQueuePolicy: map[string]registry.QueuePolicy{
			"2": {MaxQueueSize: &five},
		},
	}})
	running := occupy(t, s, b)
	r := s.post(t, fakeInfer, []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`))
	b.unblock()
	<-running
	checkError(t, r, fasthttp.StatusServiceUnavailable, "timed out after 30ms waiting in the queue of model \"fake\" version 1 (1 instances busy), its dynamic_batching.default_queue_timeout_us;")
}
