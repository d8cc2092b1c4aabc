package registry

import (
	"reflect"
	"strings"
	"testing"

	"github.com/infergate/infergate/oip"
)

func TestParseModelConfig(t *testing.T) {
	f := func(in, wantErr string) {
		t.Helper()
		_, err := ParseModelConfig([]byte(in))
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("ParseModelConfig(%s): unexpected error %s", in, err)
		case wantErr != "" && err == nil:
			t.Fatalf("ParseModelConfig(%s): got no error; want one containing %q", in, wantErr)
		case wantErr != "" && !strings.Contains(err.Error(), wantErr):
			t.Fatalf("ParseModelConfig(%s): got %q; want it to contain %q", in, err, wantErr)
		}
	}
	f(``, "")
	f(`{}`, "")
	f(`{"version_policy":{"latest":{"num_versions":2}},"instances":2,"device":"cuda:0"}`, "")
	f(`{"version_policy":{"all":{}}}`, "")
	f(`{"version_policy":{"specific":{"versions":[1,3]}}}`, "")
	f(`{"instance":2}`, `unknown field "instance"`)
	f(`{"version_policy":{"latest":{"num_versions":0}}}`, "num_versions must be at least 1")
	f(`{"version_policy":{"specific":{"versions":[]}}}`, "specific.versions is empty")
	f(`{"version_policy":{"specific":{"versions":[0]}}}`, "versions are positive integers")
	f(`{"version_policy":{"all":{},"latest":{"num_versions":1}}}`, "more than one of latest, all, specific")
	f(`{"instances":-1}`, "instances must be between 1 and 64")
	f(`{"device":"gpu"}`, `device "gpu": use "cpu" or "cuda:N"`)
	f(`{"max_batch_size":-3}`, "max_batch_size must be between 1 and 65536")
	f(`{"max_batch_size":64,"dynamic_batching":{"max_queue_delay_us":500,"preferred_batch_sizes":[8,64],"priority_levels":2,"default_priority_level":2}}`, "")
	f(`{"dynamic_batching":{"enabled":false}}`, "")
	f(`{"dynamic_batching":{"max_queue_delay_us":-1}}`, "max_queue_delay_us must be between 0 and")
	f(`{"max_batch_size":8,"dynamic_batching":{"preferred_batch_sizes":[16]}}`, "preferred_batch_sizes holds 16")
	f(`{"dynamic_batching":{"priority_levels":2,"default_priority_level":3}}`, "default_priority_level must be between 1 and priority_levels (2)")
	f(`{"dynamic_batching":{"max_delay":5}}`, `unknown field "max_delay"`)
	f(`{"response_cache":{"enable":true}}`, "")
	f(`{} {}`, "trailing data")
	f(`{"instances":"two"}`, "instances takes an integer, not a string")
	f(`{"max_queue":1048576}`, "")
	f(`{"max_queue":1048577}`, "max_queue must be between 1 and 1048576")
	f(`{"max_queue":9223372036854775807}`, "max_queue must be between 1 and 1048576")
	f(`{"dynamic_batching":{"default_queue_timeout_us":3600000000}}`, "")
	f(`{"dynamic_batching":{"default_queue_timeout_us":3600000001}}`, "default_queue_timeout_us must be between 0 and 3600000000 (1 h)")
	f(`{"dynamic_batching":{"default_queue_timeout_us":18446744073709552}}`, "default_queue_timeout_us must be between 0 and")
}

func TestSelectVersions(t *testing.T) {
	f := func(p VersionPolicy, disk, want []int64) {
		t.Helper()
		got := selectVersions(p, disk)
		if len(got) == 0 && len(want) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("selectVersions(%+v, %v): got %v; want %v", p, disk, got, want)
		}
	}
	f(VersionPolicy{}, []int64{1, 2, 5}, []int64{5})
	f(VersionPolicy{}, nil, nil)
	f(VersionPolicy{Latest: &LatestPolicy{NumVersions: 2}}, []int64{1, 2, 5}, []int64{2, 5})
	f(VersionPolicy{Latest: &LatestPolicy{NumVersions: 9}}, []int64{1, 2}, []int64{1, 2})
	f(VersionPolicy{All: &struct{}{}}, []int64{1, 2, 5}, []int64{1, 2, 5})
	f(VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{5, 7, 1}}}, []int64{1, 2, 5}, []int64{1, 5})
}

func TestCheckName(t *testing.T) {
	f := func(name string, ok bool) {
		t.Helper()
		if err := CheckName(name); (err == nil) != ok {
			t.Fatalf("CheckName(%q): got %v; want ok=%v", name, err, ok)
		}
	}
	f("ctr", true)
	f("ranker-v2.onnx_x", true)
	f("A1", true)
	f("", false)
	f("..", false)
	f("a..b", false)
	f("../etc", false)
	f("a/b", false)
	f(".hidden", false)
	f("-x", false)
	f("sp ace", false)
	f(strings.Repeat("a", 128), true)
	f(strings.Repeat("a", 129), false)
}

func TestParseVersion(t *testing.T) {
	f := func(s string, want int64, ok bool) {
		t.Helper()
		got, gotOK := parseVersion(s)
		if got != want || gotOK != ok {
			t.Fatalf("parseVersion(%q): got %d, %v; want %d, %v", s, got, gotOK, want, ok)
		}
	}
	f("1", 1, true)
	f("42", 42, true)
	f("0", 0, false)
	f("01", 0, false)
	f("-1", 0, false)
	f("1a", 0, false)
	f("", 0, false)
	f("1234567890123456789", 0, false)
}

// A configuration in the JSON form of Triton's, 64-bit fields as strings,
// folds into infergate's own fields.
func TestParseTritonConfig(t *testing.T) {
	c, err := ParseModelConfig([]byte(`{
		"name": "ctr", "platform": "onnxruntime_onnx", "backend": "onnxruntime",
		"max_batch_size": 32,
		"input": [{"name": "features", "data_type": "TYPE_FP32", "dims": ["64"]}],
		"output": [{"name": "score", "data_type": "TYPE_FP32", "dims": [1]}],
		"instance_group": [{"name": "ctr_0", "count": 2, "kind": "KIND_GPU", "gpus": [1]}],
		"dynamic_batching": {
			"preferred_batch_size": [8, 16],
			"max_queue_delay_microseconds": "100",
			"priority_levels": 2,
			"default_queue_policy": {"timeout_action": "REJECT", "default_timeout_microseconds": "5000",
				"allow_timeout_override": true, "max_queue_size": "64"}
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	d := c.DynamicBatching
	got := []any{c.Instances, c.Device, c.MaxBatchSize, c.MaxQueue, c.InstanceGroup == nil,
		d.PreferredBatchSizes, *d.MaxQueueDelayUS, d.DefaultQueueTimeoutUS, d.PriorityLevels,
		d.PreferredBatchSize == nil, d.MaxQueueDelayMicroseconds == nil, d.DefaultQueuePolicy == nil,
		c.Input[0].Dims}
	want := []any{2, "cuda:1", int64(32), 64, true,
		[]int{8, 16}, int64(100), int64(5000), 2,
		true, true, true,
		[]int64{64}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
}

func TestParseTritonConfigErrors(t *testing.T) {
	f := func(in, wantErr string) {
		t.Helper()
		_, err := ParseModelConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("ParseModelConfig(%s): got %v; want an error containing %q", in, err, wantErr)
		}
	}
	f(`{"platform":"tensorrt_plan"}`, `platform "tensorrt_plan": infergate serves ONNX models`)
	f(`{"backend":"python"}`, `backend "python"`)
	f(`{"input":[{"data_type":"TYPE_FP32","dims":[1]}]}`, "input[0] has no name")
	f(`{"output":[{"name":"y","data_type":"FP32","dims":[1]}]}`, `data_type "FP32" is not a Triton type`)
	f(`{"input":[{"name":"x","data_type":"TYPE_BYTES","dims":[1]}]}`, `data_type "TYPE_BYTES"`)
	f(`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[1]},{"name":"x","data_type":"TYPE_FP32","dims":[1]}]}`, `input lists "x" twice`)
	f(`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":["1.5"]}]}`, "input[0].dims[0] takes an integer, not a string")
	f(`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[1],"reshape":{"shape":[1]}}]}`, `unknown field "reshape" in input[0]`)
	f(`{"instance_group":[{"count":1},{"count":1}]}`, "instance_group has 2 groups")
	f(`{"instance_group":[{"count":-1}]}`, "count must be between 1 and 64")
	f(`{"instance_group":[{"count":65}]}`, "instance_group's count must be between 1 and 64, got 65")
	f(`{"instance_group":[{"kind":"KIND_CPU","gpus":[0]}]}`, "KIND_CPU lists gpus")
	f(`{"instance_group":[{"kind":"KIND_GPU","gpus":[0,1]}]}`, "list one")
	f(`{"instance_group":[{"kind":"KIND_GPU","gpus":[-1]}]}`, "GPUs are numbered 0 to 999")
	f(`{"instance_group":[{"kind":"KIND_MODEL"}]}`, `kind "KIND_MODEL"`)
	f(`{"instances":3,"instance_group":[{"count":2}]}`, "instances is 3 but instance_group's count is 2")
	f(`{"device":"cpu","instance_group":[{"kind":"KIND_GPU"}]}`, `device is "cpu" but instance_group's kind is KIND_GPU; give one of them`)
	f(`{"max_batch_size":8,"dynamic_batching":{"preferred_batch_size":[16]}}`, "dynamic_batching.preferred_batch_size holds 16")
	f(`{"dynamic_batching":{"preferred_batch_size":[4],"preferred_batch_sizes":[8]}}`, "give one of them")
	f(`{"dynamic_batching":{"max_queue_delay_us":5,"max_queue_delay_microseconds":6}}`, "give one of them")
	f(`{"dynamic_batching":{"max_queue_delay_microseconds":"-1"}}`, "dynamic_batching.max_queue_delay_microseconds must be between 0 and")
	f(`{"dynamic_batching":{"default_queue_policy":{"timeout_action":"DELAY"}}}`, "DELAY is not supported")
	f(`{"dynamic_batching":{"allow_timeout_override":true,"default_queue_policy":{"allow_timeout_override":false}}}`, "gives allow_timeout_override true and default_queue_policy.allow_timeout_override false; give one of them")
	f(`{"dynamic_batching":{"default_queue_timeout_us":7,"default_queue_policy":{"default_timeout_microseconds":8}}}`, "give one of them")
	f(`{"dynamic_batching":{"default_queue_policy":{"max_queue_size":2000000}}}`, "max_queue_size must be between 1 and 1048576")
	f(`{"max_queue":5,"dynamic_batching":{"default_queue_policy":{"max_queue_size":6}}}`, "max_queue is 5 but")
	f(`{"dynamic_batching":{"default_queue_policy":{"max_queue":6}}}`, `unknown field "max_queue"`)

	// Two spellings that agree, and Triton's unbounded queue (0), load.
	for _, in := range []string{
		`{"instances":2,"device":"cuda:0","instance_group":[{"count":2,"kind":"KIND_GPU","gpus":[0]}]}`,
		`{"dynamic_batching":{"preferred_batch_sizes":[4],"preferred_batch_size":[4]}}`,
		`{"max_queue":5,"dynamic_batching":{"default_queue_policy":{"max_queue_size":"0"}}}`,
	} {
		if _, err := ParseModelConfig([]byte(in)); err != nil {
			t.Fatalf("ParseModelConfig(%s): %v", in, err)
		}
	}
}

func TestCheckModel(t *testing.T) {
	in := []oip.TensorMetadata{{Name: "features", Datatype: oip.FP32, Shape: []int64{-1, 64}}, {Name: "ids", Datatype: oip.BYTES, Shape: []int64{-1, -1}}}
	out := []oip.TensorMetadata{{Name: "score", Datatype: oip.FP32, Shape: []int64{-1, 1}}}
	fixed := []oip.TensorMetadata{{Name: "x", Datatype: oip.FP32, Shape: []int64{3, 4}}}
	f := func(config string, in, out []oip.TensorMetadata, wantErr string) {
		t.Helper()
		c, err := ParseModelConfig([]byte(config))
		if err != nil {
			t.Fatal(err)
		}
		err = c.CheckModel("ctr", in, out)
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("%s: %v", config, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("%s: got %v; want an error containing %q", config, err, wantErr)
		}
	}
	f(`{}`, in, out, "")
	// A model that batches: dims leave the batch dimension out, with
	// max_batch_size above 0 or left out (the node's default).
	f(`{"name":"ctr","input":[{"name":"ids","data_type":"TYPE_STRING","dims":[-1]}],"output":[{"name":"score","data_type":"TYPE_FP32","dims":[1]}]}`, in, out, "")
	f(`{"max_batch_size":8,"input":[{"name":"features","data_type":"TYPE_FP32","dims":[64]}]}`, in, out, "")
	f(`{"input":[{"name":"features","data_type":"TYPE_FP32","dims":[-1,64]}]}`, in, out,
		`has dims [64] in the model (its shape [-1,64] without the batch dimension, which dims leave out when max_batch_size is above 0), not [-1,64]`)
	// max_batch_size 0, as Triton says it: no batch dimension, whole shapes.
	f(`{"max_batch_size":0,"input":[{"name":"features","data_type":"TYPE_FP32","dims":[-1,64]}]}`, in, out, "")
	f(`{"max_batch_size":"0","input":[{"name":"features","data_type":"TYPE_FP32","dims":["-1","64"]}]}`, in, out, "")
	f(`{"max_batch_size":0,"input":[{"name":"features","data_type":"TYPE_FP32","dims":[64]}]}`, in, out,
		`has dims [-1,64] in the model (its whole shape: max_batch_size 0 says the model has no batch dimension), not [64]`)
	// A model that cannot batch: whole shapes either way.
	f(`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[3,4]}]}`, fixed, fixed, "")
	f(`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[4]}]}`, fixed, fixed, `has dims [3,4] in the model, not [4]`)
	// A dimension the model leaves variable may not be fixed: requests are
	// checked against the model.
	f(`{"input":[{"name":"ids","data_type":"TYPE_STRING","dims":[128]}]}`, in, out,
		`input "ids" has dims [-1] in the model; [128] fixes a dimension it leaves variable (-1), which infergate would not check requests against: write -1 there`)
	f(`{"name":"rank"}`, in, out, `names model "rank", but it is loaded as "ctr"`)
	f(`{"input":[{"name":"feature","data_type":"TYPE_FP32","dims":[64]}]}`, in, out, `input "feature" is not one of the model's; its inputs are features, ids`)
	f(`{"output":[{"name":"score","data_type":"TYPE_FP16","dims":[1]}]}`, in, out, `output "score" is TYPE_FP32 in the model, not TYPE_FP16`)

	c, err := ParseModelConfig([]byte(`{"max_batch_size":0}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Batched(in, out) || batcherConfig(c.withDefaults(ModelConfig{MaxBatchSize: 64}), c.Batched(in, out)).MaxBatchSize != 1 {
		t.Fatalf("max_batch_size 0 batches")
	}
}

// FuzzParseModelConfig: any body of the load API is a configuration that
// validates, or an error.
func FuzzParseModelConfig(f *testing.F) {
	f.Add([]byte(`{"max_batch_size":"8","input":[{"name":"x","data_type":"TYPE_FP32","dims":["-1"]}],"instance_group":[{"kind":"KIND_GPU"}]}`))
	f.Add([]byte(`{"max_batch_size":0,"dynamic_batching":{"default_queue_policy":{"max_queue_size":"0"}}}`))
	f.Add([]byte(`[1, {"a": null}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseModelConfig(data)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("%q parsed into a configuration that fails Validate: %v", data, verr)
			}
		}
	})
}
