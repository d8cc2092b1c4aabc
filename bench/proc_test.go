package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	f := func(stat string, want float64, wantOK bool) {
		t.Helper()
		got, ok := parseProcStatCPU(stat)
		if ok != wantOK || got != want {
			t.Fatalf("parseProcStatCPU(%q) = %v, %v; want %v, %v", stat, got, ok, want, wantOK)
		}
	}
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime ...
	f("1234 (infergate) S 1 1234 1234 0 -1 4194560 9000 0 12 0 250 75 0 0 20 0 9 0", 3.25, true)
	// A command name with spaces and parentheses.
	f("77 (a) b (c)) R 1 77 77 0 -1 0 0 0 0 0 1 2 3 4", 0.03, true)
	f("", 0, false)
	f("12 (x) S 1 2", 0, false)
	f("12 (x) S 1 2 3 4 5 6 7 8 9 10 nan 4", 0, false)
}

func TestServerCPU(t *testing.T) {
	at := time.Unix(1000, 0)
	before := &serverSnapshot{cpu: 10, cpuOK: true, at: at}
	after := &serverSnapshot{cpu: 12.5, cpuOK: true, at: at.Add(5 * time.Second)}
	r := Run{Requests: 100_000}
	serverCPU(&r, before, after)
	if r.ServerCPU != 0.5 || r.ServerCPUPerRequestUS != 25 {
		t.Fatalf("got %v cores, %v µs per request; want 0.5 and 25", r.ServerCPU, r.ServerCPUPerRequestUS)
	}
	// Open-loop requests never sent cost the server nothing.
	r = Run{Requests: 100_000, ErrorKinds: map[string]int64{ErrKindNotSent: 50_000}}
	serverCPU(&r, before, after)
	if r.ServerCPUPerRequestUS != 50 {
		t.Fatalf("with half the requests not sent: got %v µs per request; want 50", r.ServerCPUPerRequestUS)
	}
	// Repeated, the median leaves out the repetitions that could not
	// read the server's CPU.
	sum := summarize([]Run{{ServerCPU: 0.5, ServerCPUPerRequestUS: 20}, {}, {ServerCPU: 0.7, ServerCPUPerRequestUS: 30}})
	if sum.ServerCPU != 0.6 || sum.ServerCPUPerRequestUS != 25 {
		t.Fatalf("summarized: got %v cores, %v µs; want 0.6 and 25", sum.ServerCPU, sum.ServerCPUPerRequestUS)
	}
	// Without the CPU time on either side, nothing is set.
	r = Run{Requests: 100}
	serverCPU(&r, &serverSnapshot{at: at}, after)
	if r.ServerCPU != 0 || r.ServerCPUPerRequestUS != 0 {
		t.Fatalf("without a reading before: got %v, %v; want nothing", r.ServerCPU, r.ServerCPUPerRequestUS)
	}
	if v, ok := processCPUOf([]Sample{{Name: "go_goroutines", Value: 9}, {Name: metricProcessCPU, Value: 4.5}}); !ok || v != 4.5 {
		t.Fatalf("processCPUOf: got %v, %v; want 4.5", v, ok)
	}
	if _, ok := processCPUOf(nil); ok {
		t.Fatal("processCPUOf(nil) found a value")
	}
}

func TestHTMLShowsServerCPU(t *testing.T) {
	r := &Report{Runs: []Run{
		{Name: "gateway-batched/ctr@c64", Kind: KindGateway, Model: "ctr", Mode: ModeClosed, Concurrency: 64, Requests: 10, ThroughputRPS: 38626, ServerCPU: 0.99, ServerCPUPerRequestUS: 26},
		{Name: "http-floor/ctr@c64", Kind: KindHTTPFloor, Model: "ctr", Mode: ModeClosed, Concurrency: 64, Requests: 10, ThroughputRPS: 39419},
	}}
	var b strings.Builder
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"CPU/req", `<td class="num sep">0.99</td><td class="num">` + latency(26) + `</td>`, `<td class="num sep">—</td><td class="num">—</td>`} {
		if !strings.Contains(page, want) {
			t.Fatalf("the runs table lacks %q", want)
		}
	}
}

func TestWriteCPUPerRequest(t *testing.T) {
	run := func(name, kind string, batching, cache bool, c int, perReq float64) Run {
		return Run{Name: name, Kind: kind, Model: "ctr", Mode: ModeClosed, Concurrency: c, RowsPerRequest: 1, Batching: batching, Cache: cache, Requests: 10, ServerCPUPerRequestUS: perReq}
	}
	r := &Report{Runs: []Run{
		run("http-floor/ctr@c64", KindHTTPFloor, false, false, 64, 20),
		run("http-floor/ctr@c1", KindHTTPFloor, false, false, 1, 40),
		run("gateway/ctr@c64", KindGateway, false, false, 64, 70),
		run("gateway-batched/ctr@c64", KindGateway, true, false, 64, 25),
		run("gateway-batched/ctr@c1", KindGateway, true, false, 1, 80),
		run("gateway-cached/ctr@c64", KindGateway, false, true, 64, 22),
	}}
	var b strings.Builder
	writeCPUPerRequest(&b, r)
	want := "\nserver CPU per request, gateway ÷ http-floor:\n" +
		"  ctr: 25µs ÷ 20µs = 1.25 (gateway-batched/ctr@c64 ÷ http-floor/ctr@c64)\n" +
		"  ctr: 22µs ÷ 20µs = 1.10 (gateway-cached/ctr@c64 ÷ http-floor/ctr@c64)\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	// Without the floor's CPU (an in-process floor), nothing.
	r.Runs[0].ServerCPUPerRequestUS, r.Runs[1].ServerCPUPerRequestUS = 0, 0
	b.Reset()
	writeCPUPerRequest(&b, r)
	if b.Len() != 0 {
		t.Fatalf("without the floor's CPU: got %q; want nothing", b.String())
	}
}
