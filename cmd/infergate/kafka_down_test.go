package main

// Tests from a review of the Kafka traffic log: a comment that tells a
// defect tells what the test found (in the code it ran against), now fixed.

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// TestServeKafkaDownAtStart: a node restarted while its Kafka
// brokers are unreachable must still serve predictions (the traffic log
// is a side channel: predictions are dropped and counted, feedback gets
// 503). kafka.Open's topic check fails after 10s and serve exits, so a
// Kafka outage takes down every gateway node that restarts meanwhile.
func TestServeKafkaDownAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	cmd := exec.Command(binPath, "serve", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--models", demoRepo(t),
		"--ort-lib", testenv.ORTLib(t), "--traffic-percent", "5", "--traffic-kafka-brokers", dead)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	deadline := time.After(25 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("serve with its Kafka brokers down exited (%v) instead of serving predictions:\n%s", err, tail(out.String(), 4))
		case <-deadline:
			t.Fatalf("serve with its Kafka brokers down is not serving after 25s:\n%s", tail(out.String(), 4))
		case <-time.After(100 * time.Millisecond):
		}
		if m := servingLine.FindStringSubmatch(out.String()); m != nil && strings.Contains(out.String(), "ready") {
			return
		}
	}
}
