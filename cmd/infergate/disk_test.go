package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A node with less free disk than --min-free-disk keeps serving
// predictions, and refuses what would grow its disk: uploads and
// feedback get 507 saying what to do, sampled predictions are dropped
// from the traffic log and counted; /metrics and the status page show
// the free space of --data and of a --traffic-dir elsewhere.
func TestLowDiskRefusesWhatGrowsIt(t *testing.T) {
	demo := demoRepo(t)
	data, traffic := t.TempDir(), filepath.Join(t.TempDir(), "traffic")
	const min = 1 << 62 // more than any machine has free
	s := startServer(t, "--models", demo, "--load", "ctr", "--data", data, "--traffic-percent", "100", "--traffic-dir", traffic,
		"--min-free-disk", strconv.Itoa(min))
	body, _ := inferBody(1, 64, 1)
	if code, b, _ := s.post(t, "/v2/models/ctr/infer", body); code != 200 {
		t.Fatalf("infer with the disk low: %d %s; want 200", code, b)
	}
	if code, b, _ := s.post(t, "/v2/models/ctr/feedback", []byte(`{"id":"x","label":1}`)); code != 507 || !strings.Contains(string(b), "disk is nearly full") {
		t.Fatalf("feedback: %d %s; want 507 saying the disk is nearly full", code, b)
	}
	onnx, err := os.ReadFile(filepath.Join(demo, "ctr", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if code, b, _ := s.do(t, "POST", "/v1/models/other/versions", onnx, nil); code != 507 || !strings.Contains(string(b), "--min-free-disk") || !strings.Contains(string(b), data) {
		t.Fatalf("upload: %d %s; want 507 naming --data and --min-free-disk", code, b)
	}
	if _, err := os.Stat(filepath.Join(data, "blobs", "sha256")); err == nil {
		entries, _ := os.ReadDir(filepath.Join(data, "blobs", "sha256"))
		if len(entries) > 0 {
			t.Fatalf("the refused upload left %d blobs", len(entries))
		}
	}

	code, metricsBody, _ := s.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	text := string(metricsBody)
	for _, dir := range []string{data, traffic} {
		re := regexp.MustCompile(`infergate_disk_free_bytes\{path="` + regexp.QuoteMeta(dir) + `"\} ([0-9.e+]+)`)
		if mm := re.FindStringSubmatch(text); mm == nil || mm[1] == "0" {
			t.Fatalf("no free space for %s in /metrics:\n%s", dir, grepLines(text, "infergate_disk"))
		}
		if !strings.Contains(text, `infergate_disk_free_min_bytes{path="`+dir+`"} 4611686018427387904`) {
			t.Fatalf("no minimum for %s in /metrics:\n%s", dir, grepLines(text, "infergate_disk"))
		}
	}
	if re := regexp.MustCompile(`infergate_traffic_dropped_total\{reason="disk_low"\} ([0-9]+)`); re.FindStringSubmatch(text) == nil || re.FindStringSubmatch(text)[1] == "0" {
		t.Fatalf("the sampled prediction is not counted dropped:\n%s", grepLines(text, "infergate_traffic_dropped"))
	}
	_, page, _ := s.get(t, "/")
	for _, want := range []string{"in " + data + ", under the 4096 PiB the node keeps: it refuses uploads and blob pulls",
		"in " + traffic + ", under the 4096 PiB the node keeps: it refuses the traffic log&#39;s records"} {
		if !strings.Contains(string(page), want) {
			t.Fatalf("the status page does not say %q:\n%s", want, grepLines(string(page), "free in"))
		}
	}
}

// grepLines returns the lines of text that contain sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
