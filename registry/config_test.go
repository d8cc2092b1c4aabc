package registry

import (
	"reflect"
	"strings"
	"testing"
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
	f(`{"instances":"two"}`, "cannot unmarshal")
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
