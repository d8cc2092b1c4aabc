package registry

import (
	"strings"
	"testing"
)

// TestCPUMemArenaSetting: config.json's cpu_mem_arena and Triton's
// enable_mem_arena parameter, in config.json and config.pbtxt, say the
// same thing; a value Triton's backend would not read, or one that
// disagrees with the configuration's own, is refused naming both.
func TestCPUMemArenaSetting(t *testing.T) {
	f := func(in string, want *bool) {
		t.Helper()
		c, err := ParseModelConfig([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if (c.CPUMemArena == nil) != (want == nil) || want != nil && *c.CPUMemArena != *want {
			t.Fatalf("%s: CPUMemArena %v; want %v", in, fmtBool(c.CPUMemArena), fmtBool(want))
		}
		if c.Parameters != nil {
			t.Fatalf("%s: parameters left after folding: %v", in, c.Parameters)
		}
	}
	off, on := false, true
	f(`{}`, nil)
	f(`{"cpu_mem_arena":false}`, &off)
	f(`{"cpu_mem_arena":true}`, &on)
	f(`{"parameters":{"enable_mem_arena":{"string_value":"0"}}}`, &off)
	f(`{"parameters":{"enable_mem_arena":{"string_value":"1"}}}`, &on)
	f(`{"parameters":{"enable_mem_arena":{"string_value":"false"}}}`, &off)
	f(`{"cpu_mem_arena":false,"parameters":{"enable_mem_arena":{"string_value":"0"}}}`, &off)

	c, err := ParseModelConfigText([]byte(`parameters { key: "enable_mem_arena" value { string_value: "0" } }`))
	if err != nil || c.CPUMemArena == nil || *c.CPUMemArena {
		t.Fatalf("config.pbtxt enable_mem_arena 0: CPUMemArena %v, error %v; want false", fmtBool(c.CPUMemArena), err)
	}

	for in, want := range map[string]string{
		`{"parameters":{"enable_mem_arena":{"string_value":"off"}}}`:                    `parameters: enable_mem_arena must be a string_value of "1" or "0", got "off"`,
		`{"cpu_mem_arena":true,"parameters":{"enable_mem_arena":{"string_value":"0"}}}`: `parameters: enable_mem_arena is "0" but the configuration's own cpu_mem_arena is true; give one of them`,
		`{"cpu_mem_arena":"no"}`: `cpu_mem_arena`,
		`{"parameters":{"memory.enable_memory_arena_shrinkage":{"string_value":"cpu:0"}}}`: `"memory.enable_memory_arena_shrinkage" is not one infergate reads; it reads intra_op_thread_count, inter_op_thread_count, share_session_between_instances and enable_mem_arena`,
	} {
		if _, err := ParseModelConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v; want an error containing %q", in, err, want)
		}
	}
}

func fmtBool(b *bool) string {
	if b == nil {
		return "nil"
	}
	if *b {
		return "true"
	}
	return "false"
}
