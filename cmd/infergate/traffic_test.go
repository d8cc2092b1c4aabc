package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
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
	// The CLI reads it over HTTP: all of it, then from a line's position.
	addr := "http://" + s.addr
	checkExit(t, 0, " bytes in 1 segment; logging 100% of the predictions and all feedback", "traffic", "stats", "--addr", addr)
	// The predictions are readable once fsynced, within a second.
	var lines []string
	testenv.CheckFor(t, 5*time.Second, func() error {
		all, err := exec.Command(binPath, "traffic", "read", "--addr", addr, "--max-bytes", "300").Output()
		if err != nil {
			return fmt.Errorf("traffic read: %v", err)
		}
		lines = strings.Split(strings.TrimSpace(string(all)), "\n")
		if len(lines) != 6 || !strings.Contains(lines[0], `"kind":"feedback","time"`) || !strings.Contains(lines[5], `"id":"req-4"`) {
			return fmt.Errorf("traffic read, 300 bytes a request: %d lines:\n%s", len(lines), all)
		}
		return nil
	})
	var third struct{ Position int64 }
	if err := json.Unmarshal([]byte(lines[3]), &third); err != nil {
		t.Fatal(err)
	}
	tail, err := exec.Command(binPath, "traffic", "read", "--addr", addr, "--from", strconv.FormatInt(third.Position, 10)).Output()
	if err != nil || strings.Count(string(tail), "\n") != 3 || !strings.HasPrefix(string(tail), lines[3]+"\n") {
		t.Fatalf("traffic read --from %d: %v\n%s", third.Position, err, tail)
	}
	checkExit(t, 1, "no traffic log record starts at position 1", "traffic", "read", "--addr", addr, "--from", "1")
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

// TestDemoModelsSeed: --seed writes the demo models' shapes with other
// weights, the same for the same seed, served like the demo ones.
func TestDemoModelsSeed(t *testing.T) {
	base, a, b := t.TempDir(), t.TempDir(), t.TempDir()
	for _, c := range [][]string{{"--out", base}, {"--out", a, "--seed", "7"}, {"--out", b, "--seed", "7"}} {
		if out, err := exec.Command(binPath, append([]string{"demo-models"}, c...)...).CombinedOutput(); err != nil {
			t.Fatalf("demo-models %v: %v\n%s", c, err, out)
		}
	}
	read := func(dir string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, "ranker", "1", "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if bytes.Equal(read(base), read(a)) || !bytes.Equal(read(a), read(b)) {
		t.Fatal("--seed 7 must give other weights than the demo's, and the same twice")
	}
	s := startServer(t, "--models", a, "--load", "ranker")
	body, _ := inferBody(1, 256, 3)
	if code, resp, _ := s.post(t, "/v2/models/ranker/infer", body); code != 200 {
		t.Fatalf("the seeded ranker: %d %s", code, resp)
	}
}

// traffic read --follow on a node whose log is made anew (its data wiped
// or replaced) and grows past the position it had read to: it reads the
// new log from its oldest record, saying so, where it went on from the
// old position and never printed the records before it.
func TestTrafficReadFollowsALogMadeAnew(t *testing.T) {
	var mu sync.Mutex
	logID, records := "aaaaaaaaaaaaaaaa", []string{"a0", "a1"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		from, _ := strconv.Atoi(r.URL.Query().Get("from"))
		var b strings.Builder
		for i, id := range records {
			if i*10 >= from {
				fmt.Fprintf(&b, "{\"position\":%d,\"id\":%q}\n", i*10, id)
			}
		}
		end := strconv.Itoa(len(records) * 10)
		w.Header().Set("X-Traffic-Log", logID)
		w.Header().Set("X-Traffic-First", "0")
		w.Header().Set("X-Traffic-Next", end)
		w.Header().Set("X-Traffic-End", end)
		io.WriteString(w, b.String())
		if logID == "aaaaaaaaaaaaaaaa" && from == 20 {
			// The reader is at the old log's end: the log is made
			// anew, and grows past it.
			logID, records = "bbbbbbbbbbbbbbbb", []string{"b0", "b1", "b2"}
		}
	}))
	defer srv.Close()
	cmd := exec.Command(binPath, "traffic", "read", "--follow", "--poll", "20ms", "--addr", srv.URL)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !strings.Contains(stdout.String(), `"b2"`) {
			return fmt.Errorf("stdout %q; want b2 in it", stdout.String())
		}
		return nil
	})
	var ids []string
	for line := range strings.Lines(stdout.String()) {
		var e struct{ ID string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ids = append(ids, e.ID)
	}
	if got := strings.Join(ids, ","); got != "a0,a1,b0,b1,b2" {
		t.Fatalf("printed %s; want a0,a1,b0,b1,b2: the new log from its oldest record", got)
	}
	if !strings.Contains(stderr.String(), "started over (it is log bbbbbbbbbbbbbbbb, no longer aaaaaaaaaaaaaaaa)") {
		t.Fatalf("stderr %q; want it to say the log started over", stderr.String())
	}
}
