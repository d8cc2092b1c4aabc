// Package logging writes a server's log lines, each with its level, and
// keeps which levels are written and how, settable while the server runs
// (Triton's logging extension: GET and POST /v2/logging).
//
// Components log through a plain func(format string, args ...any) (their
// configs' Logf). A line's level travels at the start of its format
// (Warning, Error), so that it reads the same in a test's t.Logf and no
// component imports a logger type; a format without either is info.
package logging

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Warning and Error, put at the start of a log format, give its line
// that level: logf(logging.Warning+"cluster: cannot %s", what). Warning
// is for what degrades the service or will, with what to do; Error for a
// failure of the server's own (a request it failed, a panic, a write
// that lost data).
const (
	Warning = "WARNING: "
	Error   = "ERROR: "
)

// Level is a line's level.
type Level uint8

// The levels, as a line names them.
const (
	LevelInfo Level = iota
	LevelWarning
	LevelError
	LevelVerbose
)

var levelNames = [...]string{LevelInfo: "INFO", LevelWarning: "WARNING", LevelError: "ERROR", LevelVerbose: "VERBOSE"}

func (l Level) String() string { return levelNames[l] }

// The formats of a line's time stamp (Settings.Format).
const (
	// FormatDefault stamps local time as 2006/01/02 15:04:05.000000.
	FormatDefault = "default"
	// FormatISO8601 stamps UTC as 2006-01-02T15:04:05.000000Z.
	FormatISO8601 = "ISO8601"
)

// Settings say which lines a Logger writes, and how.
type Settings struct {
	// Info, Warning and Error write the lines of those levels.
	Info, Warning, Error bool
	// VerboseLevel writes the lines of Verbosef at that level or below:
	// 0 writes none, 1 a line a request.
	VerboseLevel uint32
	// Format is FormatDefault or FormatISO8601.
	Format string
}

// DefaultSettings writes every level but verbose, in FormatDefault.
func DefaultSettings() Settings {
	return Settings{Info: true, Warning: true, Error: true, Format: FormatDefault}
}

// Validate says what is wrong with s.
func (s *Settings) Validate() error {
	if s.Format != FormatDefault && s.Format != FormatISO8601 {
		return fmt.Errorf("log format %q: use %q or %q", s.Format, FormatDefault, FormatISO8601)
	}
	return nil
}

func (s *Settings) writes(l Level) bool {
	switch l {
	case LevelWarning:
		return s.Warning
	case LevelError:
		return s.Error
	case LevelVerbose:
		return s.VerboseLevel > 0
	}
	return s.Info
}

// Logger writes log lines to an io.Writer: the time, the level, the
// message. Its methods may be called from any goroutine; lines are
// written whole, one Write each.
type Logger struct {
	// settings is read on every line, and by Verbose on every request,
	// without a lock; Set replaces it. One pointer holds them all, so
	// that the verbose level a request sees is never another Set's than
	// the rest (two stores, one for each, could be left crossed by two
	// Sets at once).
	settings atomic.Pointer[Settings]
	// lines counts the lines of each level logged, written or not.
	lines [len(levelNames)]atomic.Uint64

	// mu protects w and buf, and orders the writes.
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// New returns a Logger writing to w with settings s, which must be
// valid.
func New(w io.Writer, s Settings) *Logger {
	if err := s.Validate(); err != nil {
		panic("BUG: logging.New: " + err.Error())
	}
	l := &Logger{w: w}
	l.Set(s)
	return l
}

// Settings returns the settings in force.
func (l *Logger) Settings() Settings { return *l.settings.Load() }

// Set replaces the settings; s must be valid (Settings.Validate).
func (l *Logger) Set(s Settings) {
	l.settings.Store(&s)
}

// Verbose returns the verbose level in force: a caller that would build
// a verbose line looks at it first.
func (l *Logger) Verbose() uint32 { return l.settings.Load().VerboseLevel }

// Lines returns how many lines of level lv were logged, whether the
// settings let them be written or not (verbose lines: those written), so
// that an alert on ERROR lines does not go quiet with log_errors false.
func (l *Logger) Lines(lv Level) uint64 { return l.lines[lv].Load() }

// Logf writes a line of the level its format begins with (Warning,
// Error, else info), unless the settings leave that level out.
func (l *Logger) Logf(format string, args ...any) {
	level := LevelInfo
	if f, ok := strings.CutPrefix(format, Warning); ok {
		level, format = LevelWarning, f
	} else if f, ok := strings.CutPrefix(format, Error); ok {
		level, format = LevelError, f
	}
	l.logf(level, format, args)
}

// Verbosef writes a verbose line when the verbose level is v or more.
func (l *Logger) Verbosef(v uint32, format string, args ...any) {
	if l.settings.Load().VerboseLevel >= v {
		l.logf(LevelVerbose, format, args)
	}
}

// VerboseLine writes msg as a verbose line when the verbose level is v
// or more: for a caller that builds its line without fmt (a line for
// each request, where fmt's allocations and time under the lock show).
// msg is copied; it may be reused once VerboseLine returns.
func (l *Logger) VerboseLine(v uint32, msg []byte) {
	s := l.settings.Load()
	if s.VerboseLevel < v {
		return
	}
	l.lines[LevelVerbose].Add(1)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.write(append(l.begin(s, LevelVerbose, now), msg...))
}

func (l *Logger) logf(level Level, format string, args []any) {
	l.lines[level].Add(1)
	s := l.settings.Load()
	if !s.writes(level) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.write(fmt.Appendf(l.begin(s, level, now), format, args...))
}

// begin returns l.buf holding a line's time and level, as s writes them.
// l.mu is held.
func (l *Logger) begin(s *Settings, level Level, now time.Time) []byte {
	b := appendStamp(l.buf[:0], s.Format, now)
	b = append(b, ' ')
	b = append(b, levelNames[level]...)
	return append(b, ' ')
}

// write writes line b, begun by begin, ending it with a newline. l.mu is
// held.
func (l *Logger) write(b []byte) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	l.w.Write(b) // nowhere to say that the log cannot be written
	if cap(b) > 64<<10 {
		b = nil // a stack trace's buffer is not kept
	}
	l.buf = b
}

// appendStamp appends t as format stamps it.
func appendStamp(b []byte, format string, t time.Time) []byte {
	if format == FormatISO8601 {
		return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	}
	return t.AppendFormat(b, "2006/01/02 15:04:05.000000")
}
