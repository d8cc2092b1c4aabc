package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
)

// --trace-config takes Triton's spelling of a command line's trace
// settings, and refuses what infergate does not have, naming it.
func TestTraceConfigFlag(t *testing.T) {
	var tc gateway.TraceConfig
	var res repeatedList
	f := traceConfigFlag{trace: &tc, resource: &res}
	for _, s := range []string{"mode=opentelemetry", "opentelemetry,url=localhost:4318/v1/traces", "opentelemetry,resource=service.name=gw",
		"opentelemetry,resource=team=ml", "rate=0", "level=TIMESTAMPS", "count=100", "triton,file=/tmp/t.json", "triton,log-frequency=50",
		"opentelemetry,bsp_max_queue_size=2048", "opentelemetry,url=https://otel:4318/v1/traces"} {
		if err := f.Set(s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	want := gateway.TraceConfig{Mode: "opentelemetry", OTelURL: "https://otel:4318/v1/traces", Level: "TIMESTAMPS", Rate: 0, Count: 100,
		File: "/tmp/t.json", LogFrequency: 50}
	if fmt.Sprint(tc) != fmt.Sprint(want) || strings.Join(res, " ") != "service.name=gw team=ml" {
		t.Fatalf("got %+v, resource %q; want %+v", tc, res, want)
	}
	if err := f.Set("opentelemetry,url=localhost:4318/v1/traces"); err != nil || tc.OTelURL != "http://localhost:4318/v1/traces" {
		t.Fatalf("Triton's host:port/path: %q, %v; want http:// before it", tc.OTelURL, err)
	}
	for in, fragment := range map[string]string{
		"rate":                                 "give SETTING=VALUE",
		"rate=-1":                              "at least 0",
		"count=x":                              "at least -1",
		"opentelemetry,bsp_schedule_delay=100": "fixed at Triton's defaults",
		"triton,url=x":                         "not a triton setting",
		"buffer=1":                             "not a setting infergate knows",
		"opentelemetry,resource=novalue":       "", // checked with the flags, by ParseOTelResource
		"opentelemetry,bsp_max_export_batch_size": "give SETTING=VALUE",
	} {
		err := f.Set(in)
		if fragment == "" {
			continue
		}
		if err == nil || !strings.Contains(err.Error(), fragment) {
			t.Errorf("Set(%q): %v; want an error with %q", in, err, fragment)
		}
	}
}

// serve takes trace rate 0 in OpenTelemetry mode alone (the callers'
// sampled requests only); in the trace file's mode it is refused, where
// it used to mean 1 in 1,000, TraceConfig's zero value.
func TestServeTraceRateZero(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c := serveFlags(fs)
		if err := fs.Parse(append([]string{"--data", t.TempDir()}, args...)); err != nil {
			t.Fatal(err)
		}
		err := c.validate()
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Fatalf("serve %q: %v; want %q", args, err, want)
		}
	}
	f("--trace-rate 0 traces only", "--trace-rate", "0")
	f("--trace-rate 0 traces only", "--trace-config", "rate=0")
	f("", "--trace-config", "mode=opentelemetry", "--trace-config", "rate=0")
	f("", "--trace-rate", "7")
}
