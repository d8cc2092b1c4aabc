package logging

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestLevels(t *testing.T) {
	f := func(s Settings, want string) {
		t.Helper()
		var out bytes.Buffer
		l := New(&out, s)
		l.Logf("loaded %s", "ctr")
		l.Logf(Warning+"disk %d%% full", 95)
		l.Logf(Error+"cannot write %s", "x")
		l.Verbosef(1, "request %d", 1)
		l.Verbosef(2, "request %d, in detail", 1)
		msg := []byte("built line")
		l.VerboseLine(1, msg)
		msg[0] = 'B' // written already: the line keeps what it was given
		l.VerboseLine(2, []byte("built line, in detail"))
		stamp := regexp.MustCompile(`(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} `)
		if got := stamp.ReplaceAllString(out.String(), ""); got != want {
			t.Fatalf("settings %+v: got\n%s; want\n%s", s, got, want)
		}
	}
	all := DefaultSettings()
	f(all, "INFO loaded ctr\nWARNING disk 95% full\nERROR cannot write x\n")
	s := all
	s.Info = false
	f(s, "WARNING disk 95% full\nERROR cannot write x\n")
	s = all
	s.Warning, s.Error = false, false
	f(s, "INFO loaded ctr\n")
	s = all
	s.VerboseLevel = 1
	f(s, "INFO loaded ctr\nWARNING disk 95% full\nERROR cannot write x\nVERBOSE request 1\nVERBOSE built line\n")
	s.VerboseLevel = 2
	f(s, "INFO loaded ctr\nWARNING disk 95% full\nERROR cannot write x\nVERBOSE request 1\nVERBOSE request 1, in detail\n"+
		"VERBOSE built line\nVERBOSE built line, in detail\n")
}

func TestFormats(t *testing.T) {
	var out bytes.Buffer
	l := New(&out, DefaultSettings())
	l.Logf("a")
	s := l.Settings()
	s.Format = FormatISO8601
	l.Set(s)
	l.Logf("b\n") // a line ending in a newline gets no second one
	lines := strings.Split(out.String(), "\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("got %q; want two lines", out.String())
	}
	if !regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} INFO a$`).MatchString(lines[0]) {
		t.Fatalf("default format: got %q", lines[0])
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z INFO b$`).MatchString(lines[1]) {
		t.Fatalf("ISO8601 format: got %q", lines[1])
	}
	bad := Settings{Format: "iso"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `"ISO8601"`) {
		t.Fatalf("format iso: got %v; want an error naming the formats", err)
	}
}

// Lines from many goroutines come out whole, one each.
func TestConcurrentLines(t *testing.T) {
	var out bytes.Buffer
	l := New(&out, DefaultSettings())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				l.Logf(Warning+"goroutine %d line %d %s", g, i, strings.Repeat("x", 100))
			}
		})
	}
	wg.Wait()
	line := regexp.MustCompile(`^\S+ \S+ WARNING goroutine \d line \d+ x{100}$`)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("got %d lines; want 1600", len(lines))
	}
	for _, s := range lines {
		if !line.MatchString(s) {
			t.Fatalf("a torn line: %q", s)
		}
	}
}

// Lines counts every line of a level, written or left out by the
// settings; verbose lines only when written.
func TestLines(t *testing.T) {
	var out bytes.Buffer
	s := DefaultSettings()
	s.Error, s.Info = false, false
	l := New(&out, s)
	l.Logf("a")
	l.Logf(Error + "b")
	l.Logf(Error + "c")
	l.Logf(Warning + "d")
	l.Verbosef(1, "e")
	l.VerboseLine(1, []byte("f"))
	f := func(lv Level, want uint64) {
		t.Helper()
		if got := l.Lines(lv); got != want {
			t.Fatalf("%s lines: got %d; want %d", lv, got, want)
		}
	}
	f(LevelInfo, 1)
	f(LevelError, 2)
	f(LevelWarning, 1)
	f(LevelVerbose, 0)
	if out.Len() == 0 || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("wrote %q; want the WARNING line alone", out.String())
	}
}

// Two Sets at once leave one of them in force, whole: the verbose level
// a request looks at (Verbose) is the one the settings give, which GET
// /v2/logging answers. With a store for each, they could be left
// crossed: verbose on while the settings said off, or the reverse.
func TestSetWhole(t *testing.T) {
	l := New(io.Discard, DefaultSettings())
	on, off := DefaultSettings(), DefaultSettings()
	on.VerboseLevel = 1
	for i := range 20000 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() { <-start; l.Set(on) })
		wg.Go(func() { <-start; l.Set(off) })
		close(start)
		wg.Wait()
		if v, s := l.Verbose(), l.Settings().VerboseLevel; v != s {
			t.Fatalf("round %d: after two Sets at once, Verbose %d; the settings' verbose level %d", i, v, s)
		}
	}
}
