package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/infergate/infergate/trafficlog"
)

// TestTrafficLogSurvivesSIGTERM: serve's traffic flags end to end:
// feedback, and the predictions after it (handed to the log's writer,
// most likely not fsynced yet when the signal comes), are all in the log
// after an orderly stop, in order, and decode.
func TestTrafficLogSurvivesSIGTERM(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "traffic")
	s := startServer(t, "--models", demoRepo(t), "--load", "ctr", "--traffic-percent", "100", "--traffic-dir", dir)
	if code, resp, _ := s.post(t, "/v2/models/ctr/feedback", []byte(`{"id":"req-3","reward":2}`)); code != 200 {
		t.Fatalf("feedback: %d %s", code, resp)
	}
	for i := range 5 {
		body, _ := inferBody(1, 64, uint64(i))
		if code, resp, _ := s.post(t, "/v2/models/ctr/infer", body); code != 200 {
			t.Fatalf("infer: %d %s", code, resp)
		}
	}
	s.stop(t)
	l, err := trafficlog.Open(trafficlog.Config{Dir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var got []string
	if _, err := l.Read(0, 1<<20, func(_ int64, rec []byte) bool {
		var e trafficlog.Event
		if _, err := trafficlog.Decode(rec, &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s", e.Kind, e.ID))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want := "[feedback req-3 prediction req-0 prediction req-1 prediction req-2 prediction req-3 prediction req-4]"
	if fmt.Sprint(got) != want {
		t.Fatalf("the log after SIGTERM: %v; want %s", got, want)
	}
}
