package registry

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/batching"
)

// priority_queue_policy, in config.pbtxt (integer keys, a map written as
// repeated entries or in brackets) and in Triton's JSON (string keys,
// integers as strings), gives the batcher each level's bound and timeout;
// what a level's policy leaves out takes the model's settings.
func TestPriorityQueuePolicyParsed(t *testing.T) {
	text := `
dynamic_batching {
  priority_levels: 3
  default_queue_policy { default_timeout_microseconds: 1000 allow_timeout_override: false }
  priority_queue_policy { key: 1 value { max_queue_size: 2 allow_timeout_override: true } }
  priority_queue_policy [ { key: 3, value { timeout_action: REJECT default_timeout_microseconds: 0 } } ]
}`
	js := `{"dynamic_batching": {"priority_levels": "3",
  "default_queue_policy": {"default_timeout_microseconds": "1000", "allow_timeout_override": false},
  "priority_queue_policy": {"1": {"max_queue_size": "2", "allow_timeout_override": true},
    "3": {"timeout_action": "REJECT", "default_timeout_microseconds": "0"}}}}`
	fromText, err := ParseModelConfigText([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := ParseModelConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromText, fromJSON) {
		t.Fatalf("config.pbtxt gives\n%+v\nTriton's JSON\n%+v", fromText.DynamicBatching, fromJSON.DynamicBatching)
	}
	d := fromJSON.DynamicBatching
	for level, want := range map[int]bool{1: true, 2: false, 3: false} {
		if got := d.TimeoutOverride(level); got != want {
			t.Errorf("TimeoutOverride(%d) = %v; want %v", level, got, want)
		}
	}
	bc := batcherConfig(fromJSON, true)
	want := map[int]batching.LevelPolicy{
		1: {MaxQueueSize: 2, DefaultTimeout: time.Millisecond}, // the model's timeout
		3: {},                                                  // its own: none
	}
	if !reflect.DeepEqual(bc.LevelPolicies, want) || bc.DefaultTimeout != time.Millisecond {
		t.Fatalf("batcher's level policies %+v, default timeout %s; want %+v, 1ms", bc.LevelPolicies, bc.DefaultTimeout, want)
	}
	if _, err := batching.New(nil, bc); err != nil {
		t.Fatalf("the batcher refuses the configuration: %v", err)
	}
}

func TestPriorityQueuePolicyRefused(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		_, err := ParseModelConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v; want an error containing %q", in, err, want)
		}
	}
	keys := `its keys are priority levels, 1 to priority_levels (2)`
	f(`{"dynamic_batching":{"priority_levels":2,"priority_queue_policy":{"3":{}}}}`, `a policy for priority "3"; `+keys)
	f(`{"dynamic_batching":{"priority_levels":2,"priority_queue_policy":{"0":{}}}}`, `a policy for priority "0"; `+keys)
	f(`{"dynamic_batching":{"priority_levels":2,"priority_queue_policy":{"01":{}}}}`, `a policy for priority "01"; `+keys)
	f(`{"dynamic_batching":{"priority_levels":2,"priority_queue_policy":{"high":{}}}}`, `a policy for priority "high"; `+keys)
	f(`{"dynamic_batching":{"priority_queue_policy":{"1":{"timeout_action":"DELAY"}}}}`, `dynamic_batching.priority_queue_policy.1.timeout_action "DELAY": infergate refuses a request whose queue time runs out (REJECT); DELAY is not supported`)
	f(`{"dynamic_batching":{"priority_queue_policy":{"1":{"max_queue_size":-1}}}}`, `dynamic_batching.priority_queue_policy.1.max_queue_size must be between 0 (no bound of the level's own) and 1048576, got -1`)
	f(`{"dynamic_batching":{"priority_queue_policy":{"1":{"default_timeout_microseconds":"3600000001"}}}}`, `dynamic_batching.priority_queue_policy.1.default_timeout_microseconds must be between 0 and 3600000000 (1 h), got 3600000001`)
	f(`{"dynamic_batching":{"priority_queue_policy":{"1":{"max_queue":3}}}}`, `unknown field "max_queue" in dynamic_batching.priority_queue_policy.1`)

	_, err := ParseModelConfigText([]byte("dynamic_batching { priority_queue_policy { key: 1.5 value { } } }"))
	if want := "config.pbtxt line 1: each entry of dynamic_batching.priority_queue_policy is a message of a key (a string or an integer)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a key that is no integer: got %v; want an error containing %q", err, want)
	}
}
