package main

import (
	"errors"
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
