package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitExit waits up to d for s to exit and returns its error and whether
// it exited.
func (s *server) waitExit(d time.Duration) (error, bool) {
	select {
	case err := <-s.done:
		s.done <- err
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// bigRankerRequest is a ranker request of 4,096 rows in binary tensors: a
// tenth of a second or more of compute on one instance.
func bigRankerRequest() ([]byte, map[string]string) {
	const rows = 4096
	header := fmt.Sprintf(`{"inputs":[{"name":"features","datatype":"FP32","shape":[%d,256],"parameters":{"binary_data_size":%d}}]}`, rows, rows*256*4)
	body := append([]byte(header), make([]byte, rows*256*4)...)
	return body, map[string]string{"Inference-Header-Content-Length": fmt.Sprint(len(header))}
}

// Every wait of the shutdown path is bounded by --shutdown-timeout, the
// wait for a repository poll that hangs too (a model's config.json on a
// stalled network filesystem, here a FIFO nobody writes): before, serve
// waited for it forever.
func TestSIGTERMWhilePollHangs(t *testing.T) {
	repo := demoRepo(t)
	s := startServer(t, "--models", repo, "--load", "*", "--poll-interval", "100ms", "--shutdown-timeout", "2s")
	addHungModel(t, repo, "hang")
	time.Sleep(500 * time.Millisecond) // a poll is now stuck reading it
	t0 := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	// Three --shutdown-timeouts (HTTP, models) and some slack.
	if err, exited := s.waitExit(10 * time.Second); !exited {
		t.Errorf("serve --shutdown-timeout 2s still running %s after SIGTERM while a repository poll hangs; want an exit (1, saying what was left) within the timeout; log tail:\n%s",
			time.Since(t0).Round(time.Second), tail(s.stderr.String(), 4))
	} else {
		t.Logf("exit %v after %s", err, time.Since(t0))
	}
}

// SIGHUP, from a closed terminal or a habitual "reload", is ignored: the
// requests in flight are answered (Go's default killed the process at
// once, cutting them off).
func TestSIGHUPIgnored(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--load", "ranker", "--instances", "1")
	body, hdr := bigRankerRequest()
	res := make(chan string, 6)
	for range 6 {
		go func() {
			c, b, _ := s.do(t, "POST", "/v2/models/ranker/infer", body, hdr)
			res <- fmt.Sprintf("%d %.90s", c, b)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	s.cmd.Process.Signal(syscall.SIGHUP)
	var failed []string
	for range 6 {
		if r := <-res; !strings.HasPrefix(r, "200 ") {
			failed = append(failed, r)
		}
	}
	err, exited := s.waitExit(5 * time.Second)
	if len(failed) > 0 {
		t.Errorf("SIGHUP with 6 requests in flight: %d lost (process exited %v: %v); want SIGHUP ignored or a drain like SIGTERM:\n  %s",
			len(failed), exited, err, strings.Join(failed, "\n  "))
	}
}

// Requests still in flight after --shutdown-timeout are cut off and the
// process exits 1 saying so (README), on a SIGTERM while the initial
// models load too: that path exited 0 and said nothing.
func TestSIGTERMDuringInitialLoadSaysWhatWasCut(t *testing.T) {
	src := demoRepo(t)
	repo := t.TempDir()
	for i := range 60 { // many models make the initial load last
		if err := os.Symlink(filepath.Join(src, "ranker"), filepath.Join(repo, fmt.Sprintf("r%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	cmd, done, log := startServeUntil(t, `loaded model "r00"`, "--models", repo, "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--shutdown-timeout", "1s")
	addr := servingLine.FindStringSubmatch(log.String())[2]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A request to r00, which serves already, whose body is still coming
	// (a slow client) when SIGTERM arrives, and until after the timeout.
	body, _ := inferBody(1, 256, 1)
	fmt.Fprintf(c, "POST /v2/models/r00/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	c.Write(body[:len(body)/2])
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(2500 * time.Millisecond)
	c.Write(body[len(body)/2:])
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, _ := io.ReadAll(c)
	var exitErr error
	select {
	case exitErr = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30s after SIGTERM; log tail:\n%s", tail(log.String(), 5))
	}
	if strings.Contains(log.String(), "initial models loaded") {
		t.Skip("the initial load finished before SIGTERM arrived; make it slower")
	}
	if len(resp) == 0 && (exitErr == nil || !strings.Contains(log.String(), "cut off")) {
		t.Errorf("SIGTERM during the initial load, a request in flight past --shutdown-timeout 1s: it got no response, and serve exited with %v, logging nothing about it; want exit 1 saying requests were cut off (as after the initial load); log tail:\n%s",
			exitErr, tail(log.String(), 4))
	}
}

// A --cluster address whose port is taken is refused before any model
// loads, like the control plane's other refusals (it was found only once
// every model had loaded and the HTTP port had taken traffic).
func TestRaftPortTakenRefusedFirst(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	code, out := runServeFor(t, 60*time.Second, "--models", demoRepo(t), "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--cluster", taken.Addr().String())
	if code == 0 {
		t.Fatalf("serve with --cluster on a taken port exited 0:\n%s", out)
	}
	if strings.Contains(out, "loaded model") {
		t.Errorf("serve --cluster %s (port taken): exit %d only after loading every model; want the refusal before any model loads; output:\n%s",
			taken.Addr(), code, out)
	}
}

// Requests queued for a batch (--max-queue-delay) at SIGTERM run at once
// and are answered: the batchers stop waiting to fill batches when the
// shutdown begins (they waited out the delay, and with a delay longer
// than --shutdown-timeout the requests were dropped).
func TestQueuedBatchRunsAtShutdown(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--load", "ranker", "--instances", "1",
		"--max-queue-delay", "3s", "--shutdown-timeout", "1s")
	body, _ := inferBody(2, 256, 3)
	res := make(chan string, 4)
	for range 4 {
		go func() {
			c, b, _ := s.post(t, "/v2/models/ranker/infer", body)
			res <- fmt.Sprintf("%d %.80s", c, b)
		}()
	}
	time.Sleep(300 * time.Millisecond) // queued, gathering for the batch
	t0 := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	var failed []string
	for range 4 {
		if r := <-res; !strings.HasPrefix(r, "200 ") {
			failed = append(failed, r)
		}
	}
	err, _ := s.waitExit(20 * time.Second)
	if len(failed) > 0 || err != nil {
		t.Errorf("SIGTERM with 4 requests queued for a batch (--max-queue-delay 3s, --shutdown-timeout 1s, instance idle): %d dropped, exit %v after %s; want them run at once and answered, exit 0:\n  %s\nlog tail:\n%s",
			len(failed), err, time.Since(t0).Round(time.Millisecond), strings.Join(failed, "\n  "), tail(s.stderr.String(), 5))
	}
}
