package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/loglimit"
)

// grpc-go's warnings and errors become the server's WARNING and ERROR
// lines, each kind once a minute; its INFO lines go nowhere.
func TestGRPCLog(t *testing.T) {
	var lines []string
	g := grpcLog{logf: func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) },
		limit: loglimit.New[string](time.Minute, 256)}
	g.Info("connected")
	g.Infof("picked %d", 1)
	if g.V(2) {
		t.Fatal("V(2): true; want false")
	}
	for i := range 3 {
		g.Warningf("[core] Server.Serve failed to create ServerTransport: conn %d", i)
		// As grpc-go's component loggers give a line: whole, its
		// numbers in it.
		g.Warningln(fmt.Sprintf("[transport] closing 127.0.0.1:%d", 40000+i))
		// As a connection's transport gives one (a PrefixLogger's
		// WarningDepth): its address in hex, other on each connection.
		g.Warningln("[transport]", fmt.Sprintf(`[server-transport %s] Failed to decode metadata header ("a-bin", "!"): illegal base64 data at input byte 0`, []string{"0xc000a2c1e0", "0xc0001f6b40", "0xc00042d0f8"}[i]))
	}
	g.Errorln("[transport] cannot write", "status")
	g.Error("[core] ", "failed")
	want := []string{
		"WARNING: grpc: [core] Server.Serve failed to create ServerTransport: conn 0",
		"WARNING: grpc: [transport] closing 127.0.0.1:40000",
		`WARNING: grpc: [transport] [server-transport 0xc000a2c1e0] Failed to decode metadata header ("a-bin", "!"): illegal base64 data at input byte 0`,
		"ERROR: grpc: [transport] cannot write status",
		"ERROR: grpc: [core] failed",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("logged\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// A line grpc-go quotes a client's header in is cut to grpcLogMax bytes:
// gRPC takes header lists of up to 16 MiB.
func TestGRPCLogLineBounded(t *testing.T) {
	var lines []string
	g := grpcLog{logf: func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) },
		limit: loglimit.New[string](time.Minute, 256)}
	g.Warningln("[transport]", fmt.Sprintf("[server-transport 0xc0001f6b40] Failed to decode metadata header (%q, %q): illegal base64 data at input byte 0", "a-bin", strings.Repeat("\x01", 1<<20)))
	if len(lines) != 1 || len(lines[0]) > grpcLogMax+100 || !strings.HasSuffix(lines[0], "...") {
		t.Fatalf("logged %d lines, the first %d bytes; want one of at most %d, ending in ...", len(lines), len(lines[0]), grpcLogMax+100)
	}
}

// With GRPC_GO_LOG_SEVERITY_LEVEL=info (info set), grpc-go's INFO lines
// are the server's INFO lines; V answers GRPC_GO_LOG_VERBOSITY_LEVEL.
func TestGRPCLogInfoWhenAsked(t *testing.T) {
	var lines []string
	g := grpcLog{logf: func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) },
		limit: loglimit.New[string](time.Minute, 256), info: true, verbosity: 2}
	g.Infof("[core] Server #%d created", 1)
	g.Infoln("[transport] closing")
	if strings.Join(lines, "\n") != "grpc: [core] Server #1 created\ngrpc: [transport] closing" || !g.V(2) || g.V(3) {
		t.Fatalf("logged %q, V(2) %v, V(3) %v; want both lines at INFO, V true up to 2", lines, g.V(2), g.V(3))
	}
}
