package main

import (
	"strings"
	"testing"
)

// A report records the command line, but never the bearer tokens in it:
// their values are replaced, in either form of the flags.
func TestBenchTokenNotInReport(t *testing.T) {
	const secret = "infer-secret-4d1f"
	s := startServer(t, "--models", demoRepo(t), "--load", "ctr", "--inference-token", secret)
	args := []string{"bench", "--target", "http://" + s.addr, "--model", "ctr", "--concurrency", "1",
		"--duration", "200ms", "--warmup", "50ms", "--token", secret, "--admin-token", "admin-secret-9c2e"}
	output, rep := runBenchCommand(t, args...)
	if strings.Contains(output, secret) {
		t.Errorf("bench's output holds the token: %s", output)
	}
	if strings.Contains(rep.Env.Command, secret) || strings.Contains(rep.Env.Command, "admin-secret-9c2e") {
		t.Fatalf("the report's env.command holds the tokens: %q", rep.Env.Command)
	}
}
