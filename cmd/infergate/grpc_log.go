package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/grpclog"

	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/internal/loglimit"
)

// grpcLog is grpc-go's logger for serve: its warnings and errors become
// the server's WARNING and ERROR lines, in --log-file with the rest and
// counted in infergate_log_lines_total, each kind at most once a minute
// (a client sending metadata grpc-go cannot decode, say, would
// otherwise write a line a connection). Its INFO lines are left out,
// as grpc-go's own logger leaves them, unless GRPC_GO_LOG_SEVERITY_LEVEL
// is info: they are then INFO lines, and GRPC_GO_LOG_VERBOSITY_LEVEL
// is V's level, as grpc-go reads them.
type grpcLog struct {
	logf  func(string, ...any)
	limit *loglimit.Limiter[string]
	// info passes INFO lines; verbosity is V's level.
	info      bool
	verbosity int
}

// routeGRPCLog sends grpc-go's log to logf, once a process: serve calls
// it before it makes its gRPC server (grpclog.SetLoggerV2 must come
// before gRPC runs, as it takes no lock).
func routeGRPCLog(logf func(string, ...any)) {
	grpcLogOnce.Do(func() {
		g := grpcLog{logf: logf, limit: loglimit.New[string](time.Minute, 256)}
		g.info = strings.EqualFold(os.Getenv("GRPC_GO_LOG_SEVERITY_LEVEL"), "info")
		g.verbosity, _ = strconv.Atoi(os.Getenv("GRPC_GO_LOG_VERBOSITY_LEVEL"))
		grpclog.SetLoggerV2(g)
	})
}

var grpcLogOnce sync.Once

// grpcLogMax bounds a gRPC line's message: grpc-go quotes a client's
// header in some (a -bin header it cannot decode), of a header list it
// takes up to 16 MiB of.
const grpcLogMax = 1024

func (g grpcLog) line(level, key, msg string) {
	// grpc-go's component loggers give the line whole (Warningln), its
	// numbers (addresses, ports) in it: they key it by its shape.
	key = loglimit.Shape(key)
	if len(key) > 80 {
		key = key[:80]
	}
	if more, ok := g.limit.Allow(level + key); ok {
		msg = strings.TrimSpace(msg)
		if len(msg) > grpcLogMax {
			msg = strings.ToValidUTF8(msg[:grpcLogMax], "") + "..."
		}
		g.logf(level+"grpc: %s%s", msg, more)
	}
}

func (g grpcLog) Info(args ...any) {
	if g.info {
		s := fmt.Sprint(args...)
		g.line("", s, s)
	}
}

func (g grpcLog) Infoln(args ...any) {
	if g.info {
		s := fmt.Sprintln(args...)
		g.line("", s, s)
	}
}
func (g grpcLog) Infof(format string, args ...any) {
	if g.info {
		g.line("", format, fmt.Sprintf(format, args...))
	}
}

func (g grpcLog) V(l int) bool          { return l <= g.verbosity }
func (g grpcLog) Warning(args ...any)   { s := fmt.Sprint(args...); g.line(logging.Warning, s, s) }
func (g grpcLog) Warningln(args ...any) { s := fmt.Sprintln(args...); g.line(logging.Warning, s, s) }
func (g grpcLog) Warningf(format string, args ...any) {
	g.line(logging.Warning, format, fmt.Sprintf(format, args...))
}
func (g grpcLog) Error(args ...any)   { s := fmt.Sprint(args...); g.line(logging.Error, s, s) }
func (g grpcLog) Errorln(args ...any) { s := fmt.Sprintln(args...); g.line(logging.Error, s, s) }
func (g grpcLog) Errorf(format string, args ...any) {
	g.line(logging.Error, format, fmt.Sprintf(format, args...))
}
func (g grpcLog) Fatal(args ...any) {
	g.logf(logging.Error+"grpc: %s", fmt.Sprint(args...))
	os.Exit(1)
}
func (g grpcLog) Fatalln(args ...any) {
	g.logf(logging.Error+"grpc: %s", strings.TrimSpace(fmt.Sprintln(args...)))
	os.Exit(1)
}
func (g grpcLog) Fatalf(format string, args ...any) {
	g.logf(logging.Error+"grpc: "+format, args...)
	os.Exit(1)
}
