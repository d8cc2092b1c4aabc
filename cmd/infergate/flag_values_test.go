package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve's count and size flags refuse 0 and negative values, naming the
// flag, where 0 (and for the traffic log's sizes, any value below 1) used
// to be taken silently for the default: --intra-op-threads 0, ONNX
// Runtime's "every core" in Triton, ran one thread; --traffic-max-bytes 0
// or -1 kept 1 GiB.
func TestServeFlagsRefuseZero(t *testing.T) {
	repo := demoRepo(t)
	f := func(flag, value, want string) {
		t.Helper()
		args := []string{"--dry-run", "--models", repo, "--data", t.TempDir(), "--traffic-percent", "1", flag, value}
		code, out := runServeFor(t, 30*time.Second, args...)
		if code != 1 || !strings.Contains(out, want) || strings.Contains(out, "configuration is valid") {
			t.Errorf("serve %s %s: exit %d:\n%s\nwant exit 1 and %q", flag, value, code, out, want)
		}
	}
	// The release before took 0 (the traffic sizes: any value below 1)
	// for the default: a command line carried over in an upgrade is told
	// how to keep what it ran with.
	f("--instances", "0", "--instances 0: use 1 or more, or leave the flag out for its default, 1 (earlier releases took 0 for it)")
	f("--instances", "-2", "--instances -2: use 1 or more, or leave the flag out for its default, 1")
	f("--intra-op-threads", "0", "--intra-op-threads 0: use 1 or more, or leave the flag out for its default, 1 (earlier releases took 0 for it)")
	f("--inter-op-threads", "0", "--inter-op-threads 0: use 1 or more, or leave the flag out for its default, 1")
	f("--max-batch-size", "0", "--max-batch-size 0: use 1 or more, or leave the flag out for its default, 64")
	f("--max-output-bytes", "0", "--max-output-bytes 0: use 1 or more, or leave the flag out for its default, 268435456")
	f("--traffic-max-bytes", "0", "--traffic-max-bytes 0: use 1 or more, or leave the flag out for its default, 1073741824")
	f("--traffic-max-bytes", "-1", "--traffic-max-bytes -1: use 1 or more, or leave the flag out for its default, 1073741824")
	f("--traffic-segment-bytes", "-1", "--traffic-segment-bytes -1: use 1 or more, or leave the flag out for its default, ")
}

// A duration flag that is out of range is named with its value.
func TestServeDurationFlagsNamed(t *testing.T) {
	f := func(flag, value, want string) {
		t.Helper()
		code, out := runServeFor(t, 30*time.Second, "--dry-run", "--models", t.TempDir(), "--data", t.TempDir(), flag, value)
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("serve %s %s: exit %d:\n%s\nwant exit 1 and %q", flag, value, code, out, want)
		}
	}
	f("--idle-timeout", "-1s", "idle timeout -1s must be positive")
	f("--write-timeout", "0", "write timeout 0s must be positive")
	f("--shutdown-timeout", "0", "--shutdown-timeout 0s must be positive")
	f("--shutdown-delay", "-2s", "--shutdown-delay -2s is negative")
}

// A duration given without its unit (--request-timeout 10, as Triton's
// seconds) is refused saying what a duration looks like, where the flag
// package says only "parse error"; in every command, and help still
// names the flags' type.
func TestDurationWithoutUnit(t *testing.T) {
	const want = "want a duration with its unit, like 10s, 500ms or 2m"
	checkExit(t, 2, `invalid value "10" for flag -request-timeout: `+want, "serve", "--request-timeout", "10")
	checkExit(t, 2, `invalid value "5" for flag -timeout: `+want, "models", "list", "--timeout", "5")
	checkExit(t, 2, `invalid value "1" for flag -poll: `+want, "traffic", "read", "--poll", "1")
	checkExit(t, 2, `invalid value "3" for flag -duration: `+want, "bench", "--duration", "3")
	checkExit(t, 0, "-idle-timeout duration", "serve", "--help")
	checkExit(t, 0, "-timeout duration", "models", "list", "--help")
}

// A --data that is a file is refused by the dry run and by serve, naming
// the flag, where serve said "open FILE/node-id: not a directory" and the
// dry run passed it.
func TestServeDataIsAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "--data " + file + " is a file; give a directory for this node's state"
	for _, dry := range []string{"--dry-run", "--dry-run=false"} {
		code, out := runServeFor(t, 30*time.Second, dry, "--models", t.TempDir(), "--data", file, "--http", "127.0.0.1:0")
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("serve %s --data FILE: exit %d:\n%s\nwant exit 1 and %q", dry, code, out, want)
		}
	}
}
