package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// serve's log gives every line its level, in the format --log-format
// asks; --log-verbose 1 logs each request, and /v2/logging changes it
// while the server runs.
func TestServeLogLevels(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--load", "ctr", "--log-verbose", "1", "--log-format", "ISO8601")
	stamp := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z`
	line := regexp.MustCompile(`^` + stamp + ` (INFO|WARNING|ERROR|VERBOSE) \S`)
	body := []byte(`{"inputs":[{"name":"features","datatype":"FP32","shape":[1,64],"data":[` + strings.Repeat("0.5,", 63) + `0.5]}]}`)
	if code, resp, _ := s.post(t, "/v2/models/ctr/infer", body); code != 200 {
		t.Fatalf("infer: %d %s", code, resp)
	}
	verbose := regexp.MustCompile(`(?m)^` + stamp + ` VERBOSE request: 127\.0\.0\.1:\d+ POST /v2/models/ctr/infer 200 in \S+, 330 bytes in, \d+ out version 1$`)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !verbose.MatchString(s.stderr.String()) {
			return errors.New("no verbose line of the infer request")
		}
		return nil
	})
	// No --admin-token: a WARNING says so.
	if !strings.Contains(s.stderr.String(), " WARNING cluster: no --admin-token;") {
		t.Fatalf("the log has no WARNING line about the missing admin token:\n%s", s.stderr)
	}
	for _, l := range strings.Split(strings.TrimSuffix(s.stderr.String(), "\n"), "\n") {
		if !line.MatchString(l) {
			t.Fatalf("a line without its ISO 8601 stamp and level: %q", l)
		}
	}
	code, resp, _ := s.post(t, "/v2/logging", []byte(`{"log_verbose_level":0,"log_format":"default"}`))
	if want := `{"log_file":"","log_info":true,"log_warning":true,"log_error":true,"log_verbose_level":0,"log_format":"default"}`; code != 200 || string(resp) != want {
		t.Fatalf("POST /v2/logging: %d %s; want 200 %s", code, resp, want)
	}
	before := len(s.stderr.String())
	s.post(t, "/v2/models/ctr/infer", body)
	s.stop(t)
	after := s.stderr.String()[before:]
	if strings.Contains(after, "VERBOSE") || !regexp.MustCompile(`(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} INFO models unloaded in`).MatchString(after) {
		t.Fatalf("after verbose 0 and the default format, the log went on with\n%s\nwant no VERBOSE line, default stamps", after)
	}
}

// serve --log-file appends the log to the file, not standard error;
// /v2/logging reports it as log_file and will not move it; a dry run
// creates nothing.
func TestServeLogFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "serve.log")
	if err := os.WriteFile(file, []byte("an earlier line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dry := filepath.Join(dir, "dry.log")
	checkExit(t, 0, "", "serve", "--dry-run", "--models", demoRepo(t), "--load", "ctr", "--ort-lib", testenv.ORTLib(t), "--data", t.TempDir(), "--log-file", dry)
	if _, err := os.Stat(dry); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("serve --dry-run --log-file: %v; want the file not created", err)
	}
	checkExit(t, 1, "its directory does not exist", "serve", "--dry-run", "--models", demoRepo(t), "--ort-lib", testenv.ORTLib(t), "--data", t.TempDir(), "--log-file", filepath.Join(dir, "nope", "x.log"))
	// What the run would fail to open, the dry run refuses too.
	checkExit(t, 1, "is a directory", "serve", "--dry-run", "--models", demoRepo(t), "--ort-lib", testenv.ORTLib(t), "--data", t.TempDir(), "--log-file", dir)

	cmd := exec.Command(binPath, "serve", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--ort-lib", testenv.ORTLib(t),
		"--models", demoRepo(t), "--load", "ctr", "--log-file", file)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	var addr string
	testenv.CheckFor(t, 30*time.Second, func() error {
		b, _ := os.ReadFile(file)
		m := servingLine.FindStringSubmatch(string(b))
		if m == nil || !strings.Contains(string(b), " INFO ready\n") {
			return fmt.Errorf("the log file has no serving and ready lines:\n%s", b)
		}
		addr = m[2]
		return nil
	})
	s := &server{cmd: cmd, addr: addr, scheme: "http", stderr: &stderr, done: done}
	want := fmt.Sprintf(`{"log_file":%q,"log_info":true,"log_warning":true,"log_error":true,"log_verbose_level":0,"log_format":"default"}`, file)
	if code, body, _ := s.get(t, "/v2/logging"); code != 200 || string(body) != want {
		t.Fatalf("GET /v2/logging: %d %s; want 200 %s", code, body, want)
	}
	if code, body, _ := s.post(t, "/v2/logging", []byte(`{"log_file":"/tmp/elsewhere.log"}`)); code != 400 || !strings.Contains(string(body), "cannot move") {
		t.Fatalf("POST /v2/logging moving the file: %d %s; want 400 saying it cannot", code, body)
	}
	if code, body, _ := s.post(t, "/v2/logging", []byte(fmt.Sprintf(`{"log_file":%q,"log_verbose_level":0}`, file))); code != 200 {
		t.Fatalf("POST /v2/logging with the file it has: %d %s; want 200", code, body)
	}
	b, _ := os.ReadFile(file)
	if !strings.HasPrefix(string(b), "an earlier line\n") {
		t.Fatalf("the log file lost what it held before: %q", b[:min(len(b), 200)])
	}
	if stderr.String() != "" {
		t.Fatalf("with --log-file, standard error got\n%s", stderr.String())
	}
}

// A serve that fails once its log file is open says why in the file
// too, not only on the standard error that --log-file was to replace.
func TestServeLogFileHasTheExitError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	file := filepath.Join(t.TempDir(), "serve.log")
	checkExit(t, 1, "cannot listen on", "serve", "--http", taken.Addr().String(), "--data", t.TempDir(), "--ort-lib", testenv.ORTLib(t),
		"--models", demoRepo(t), "--log-file", file)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m) ERROR .*cannot listen on ` + regexp.QuoteMeta(taken.Addr().String())).Match(b) {
		t.Fatalf("the log file holds\n%s\nwant an ERROR line saying why serve stopped", b)
	}
}
