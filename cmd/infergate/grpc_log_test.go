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
	}
	g.Errorln("[transport] cannot write", "status")
	g.Error("[core] ", "failed")
	want := []string{
		"WARNING: grpc: [core] Server.Serve failed to create ServerTransport: conn 0",
		"WARNING: grpc: [transport] closing 127.0.0.1:40000",
		"ERROR: grpc: [transport] cannot write status",
		"ERROR: grpc: [core] failed",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("logged\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
