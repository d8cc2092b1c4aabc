package main

// Tests of serve's start and stop at their edges: flags refused before
// anything starts, signals at any time, failures that leave nothing open,
// and exit statuses that say what happened; and of what the admin commands
// tell a person on an answer whose outcome is unknown.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// runServeFor runs `infergate serve args...` to its end (or kills it after
// limit) and returns its exit code (-1: killed by a signal) and output.
func runServeFor(t *testing.T, limit time.Duration, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"serve", "--ort-lib", testenv.ORTLib(t)}, args...)...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("serve %v still running after %s; log:\n%s", args, limit, out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// Cluster flags that the control plane refuses are refused by --dry-run,
// and by serve before it loads any model.
func TestClusterFlagsRefusedFirst(t *testing.T) {
	repo := demoRepo(t)
	for _, args := range [][]string{
		{"--max-voters", "0"},
		{"--cluster", "localhost:7000"},
		{"--http", "0.0.0.0:8080"},
		{"--advertise-http", "not-a-url"},
	} {
		t.Run(strings.Join(args, "="), func(t *testing.T) {
			code, out := runServeFor(t, 30*time.Second, append([]string{"--dry-run", "--models", repo, "--data", t.TempDir()}, args...)...)
			if code == 0 {
				t.Errorf("serve --dry-run %v: exit 0 (%s); want an error, since serve refuses it", args, strings.TrimSpace(out))
			}
		})
	}
	// The real start refuses it before it loads any model.
	code, out := runServeFor(t, 60*time.Second, "--models", repo, "--data", t.TempDir(), "--http", "127.0.0.1:0", "--max-voters", "0")
	if code == 0 {
		t.Fatalf("serve --max-voters 0 exited 0:\n%s", out)
	}
	if strings.Contains(out, "loaded model") {
		t.Errorf("serve --max-voters 0 loaded models before refusing a flag; log:\n%s", out)
	}
}

// A --node-id the cluster refuses is refused before anything is written:
// the data directory stays usable.
func TestRefusedNodeIDLeavesDataDir(t *testing.T) {
	repo, data := demoRepo(t), t.TempDir()
	long := strings.Repeat("n", 129)
	code, out := runServeFor(t, 60*time.Second, "--models", repo, "--data", data, "--http", "127.0.0.1:0", "--load", "ctr", "--node-id", long)
	if code == 0 || !strings.Contains(out, "use at most 128 bytes") {
		t.Fatalf("serve with a 129-byte --node-id: exit %d; want the refusal of the id; log:\n%s", code, out)
	}
	if strings.Contains(out, "loaded model") {
		t.Fatalf("serve loaded models before refusing the --node-id; log:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(data, "node-id")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("DATA/node-id after the refusal: %v; want none written", err)
	}
	s := startServer(t, "--models", repo, "--data", data, "--load", "ctr", "--node-id", "node-a")
	if code, body, _ := s.get(t, "/v2/models/ctr/ready"); code != 200 {
		t.Fatalf("serve --node-id node-a on the same --data: ctr ready %d %s", code, body)
	}
}

// SIGTERM while the initial models load shuts down in order and exits 0,
// without loading the models not started yet.
func TestSIGTERMDuringInitialLoad(t *testing.T) {
	src := demoRepo(t)
	repo := t.TempDir()
	// Many models (symbolic links to ranker) make the initial load last.
	for i := range 60 {
		if err := os.Symlink(filepath.Join(src, "ranker"), filepath.Join(repo, fmt.Sprintf("r%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	cmd, done, log := startServeUntil(t, `loaded model "r00"`, "--models", repo, "--data", t.TempDir(), "--http", "127.0.0.1:0")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit within 60s of SIGTERM; log:\n%s", log.String())
	}
	if strings.Contains(log.String(), "initial models loaded") {
		t.Skip("the initial load finished before SIGTERM arrived; make it slower")
	}
	if err != nil || !strings.Contains(log.String(), "while loading the initial models; shutting down") {
		t.Errorf("SIGTERM during the initial model load: %v; want exit 0 after an orderly shutdown; log tail:\n%s", err, tail(log.String(), 5))
	}
	if strings.Contains(log.String(), `loaded model "r59"`) {
		t.Errorf("the last model loaded after SIGTERM; want the load to stop; log tail:\n%s", tail(log.String(), 5))
	}
}

// startServeUntil starts `infergate serve args...` and returns once its log
// has a line holding mark, with the command, its exit and its log; the
// process is killed at the end of the test.
func startServeUntil(t *testing.T, mark string, args ...string) (*exec.Cmd, <-chan error, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"serve", "--ort-lib", testenv.ORTLib(t)}, args...)...)
	pr, pw := io.Pipe()
	log := &syncBuffer{}
	cmd.Stderr = io.MultiWriter(pw, log)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); done <- err }()
	t.Cleanup(func() { cmd.Process.Kill() })
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), mark) {
				close(seen)
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case <-seen:
	case <-time.After(60 * time.Second):
		t.Fatalf("serve logged no line with %q; log:\n%s", mark, log.String())
	}
	return cmd, done, log
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Polling loads every model in the repository, so --load with a list is
// refused beside it; a model unloaded through the repository API stays
// unloaded through polls until the API loads it again.
func TestPollAndUnload(t *testing.T) {
	repo := demoRepo(t)
	code, out := runServeFor(t, 30*time.Second, "--dry-run", "--models", repo, "--load", "ctr", "--poll-interval", "100ms")
	if code == 0 || !strings.Contains(out, "use --load '*' with polling") {
		t.Fatalf("serve --load ctr --poll-interval 100ms: exit %d; want the refusal; log:\n%s", code, out)
	}
	s := startServer(t, "--models", repo, "--poll-interval", "100ms")
	if code, body, _ := s.post(t, "/v2/repository/models/ctr/unload", nil); code != 200 {
		t.Fatalf("unload ctr: %d %s", code, body)
	}
	time.Sleep(time.Second)
	if code, _, _ := s.get(t, "/v2/models/ctr/ready"); code == 200 {
		t.Fatal("ctr, unloaded through the repository API, is ready again after 1s of polls")
	}
	if code, _, _ := s.get(t, "/v2/models/ranker/ready"); code != 200 {
		t.Fatalf("ranker ready: %d; polls must go on for the others", code)
	}
	if code, body, _ := s.post(t, "/v2/repository/models/ctr/load", nil); code != 200 {
		t.Fatalf("load ctr: %d %s", code, body)
	}
	if code, _, _ := s.get(t, "/v2/models/ctr/ready"); code != 200 {
		t.Fatalf("ctr ready after the API loaded it: %d", code)
	}
}

// A 503 whose outcome is unknown (the write may have been applied; the
// server sends no Retry-After) is not printed with "retry later", but with
// what to check first.
func TestUnknownOutcomeHint(t *testing.T) {
	onnxFile := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(onnxFile, []byte("ONNX-BYTES"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runAdmin(t, modelsGroup, fakeCall{
		method: "POST", uri: "/v1/models/ctr/versions", body: "ONNX-BYTES", status: 503,
		answer: `{"error":"the write may or may not have been applied: leadership lost; read the state back (GET with ?consistent=1) before retrying"}`,
		header: map[string]string{"X-Infergate-Error-Kind": "unknown-outcome"},
	}, "upload", "--token", adminToken, "ctr", onnxFile)
	if code != 1 || stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, stdout)
	}
	if strings.Contains(stderr, "retry later") || !strings.Contains(stderr, "--consistent) before retrying") {
		t.Errorf("stderr %q: want no \"retry later\" for a write that may have been applied, and what to read first", stderr)
	}
	if n := strings.Count(stderr, "read the state back"); n != 1 {
		t.Errorf("stderr %q says to read the state back %d times; want once", stderr, n)
	}
}

// --device cuda:N without a CUDA build of ONNX Runtime fails the start,
// and --dry-run, with the message that says why.
func TestUnavailableDevice(t *testing.T) {
	lib := testenv.ORTLib(t)
	if _, err := os.Stat(filepath.Join(filepath.Dir(lib), "libonnxruntime_providers_cuda.so")); err == nil {
		t.Skip("this ONNX Runtime has the CUDA provider")
	}
	for _, dry := range []bool{true, false} {
		args := []string{"--models", demoRepo(t), "--data", t.TempDir(), "--http", "127.0.0.1:0", "--device", "cuda:0"}
		if dry {
			args = append(args, "--dry-run")
		}
		code, out := runServeFor(t, 30*time.Second, args...)
		if code == 0 || !strings.Contains(out, "has no CUDA execution provider") || strings.Contains(out, "loaded model") {
			t.Errorf("serve %v without CUDA: exit %d; want a failed start naming the missing provider; log:\n%s", args, code, out)
		}
	}
}

// When serve fails partway through starting (--pprof-addr taken), it
// leaves its --http address free again.
func TestServeErrorFreesListener(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := probe.Addr().String()
	probe.Close()
	err = runServe([]string{"--ort-lib", testenv.ORTLib(t), "--models", demoRepo(t), "--data", t.TempDir(),
		"--http", httpAddr, "--pprof-addr", taken.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "--pprof-addr") {
		t.Fatalf("runServe: %v; want the --pprof-addr error", err)
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		var se syscall.Errno
		if errors.As(err, &se) && se == syscall.EADDRINUSE {
			t.Errorf("after runServe failed, its --http %s is still bound: %v", httpAddr, err)
		} else {
			t.Skipf("cannot listen on %s again: %v", httpAddr, err)
		}
		return
	}
	ln.Close()
}

// When --shutdown-timeout passes with requests still in flight, those are
// cut off, and the process exits with a failure status that says so.
func TestShutdownTimeoutFails(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--load", "ranker", "--instances", "1", "--shutdown-timeout", "1ms")
	const rows = 4096
	header := fmt.Sprintf(`{"inputs":[{"name":"features","datatype":"FP32","shape":[%d,256],"parameters":{"binary_data_size":%d}}]}`, rows, rows*256*4)
	body := append([]byte(header), make([]byte, rows*256*4)...)
	hdr := map[string]string{"Inference-Header-Content-Length": fmt.Sprint(len(header))}
	codes := make(chan int, 8)
	for range 8 {
		go func() {
			c, _, _ := s.do(t, "POST", "/v2/models/ranker/infer", body, hdr)
			codes <- c
		}()
	}
	time.Sleep(300 * time.Millisecond)
	s.cmd.Process.Signal(syscall.SIGTERM)
	failed := 0
	for range 8 {
		if c := <-codes; c != 200 {
			failed++
		}
	}
	err := <-s.done
	s.done <- err
	t.Logf("%d of 8 in-flight requests failed; exit: %v", failed, err)
	if failed > 0 && (err == nil || !strings.Contains(s.stderr.String(), "were cut off")) {
		t.Errorf("%d requests in flight at SIGTERM were lost after --shutdown-timeout, and serve exited with %v; want a failure that says so; log tail:\n%s", failed, err, tail(s.stderr.String(), 8))
	}
}
