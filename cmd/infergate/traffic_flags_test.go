package main

import (
	"flag"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/testenv"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestTrafficSegmentBytesBelowRecordLimit: --traffic-segment-bytes from
// the documented 64 KiB up is taken, records then bounded by the segment
// (found by a reviewing helper: everything below 4 MiB, the record limit
// that no flag sets, was refused).
func TestTrafficSegmentBytesBelowRecordLimit(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := serveFlags(fs)
	if err := fs.Parse([]string{"--data", t.TempDir(), "--traffic-percent", "5",
		"--traffic-segment-bytes", "1048576", "--traffic-max-bytes", "16777216"}); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil {
		t.Fatalf("--traffic-segment-bytes 1 MiB (above the documented 64 KiB minimum) with a 16 MiB budget: %v", err)
	}
}

// TestTrafficKafkaFlags: the Kafka log needs a sampling percent, excludes
// --traffic-dir, and wants host:port brokers; a topic the brokers lack
// stops serve before it serves, naming the topic.
func TestTrafficKafkaFlags(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c := serveFlags(fs)
		if err := fs.Parse(append([]string{"--data", t.TempDir()}, args...)); err != nil {
			t.Fatal(err)
		}
		err := c.validate()
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Fatalf("serve %q: %v; want %q", args, err, want)
		}
	}
	f("needs --traffic-percent above 0", "--traffic-kafka-brokers", "127.0.0.1:9092")
	f("drop one", "--traffic-percent", "5", "--traffic-kafka-brokers", "127.0.0.1:9092", "--traffic-dir", "/tmp/x")
	f(`broker "kafka": want host:port`, "--traffic-percent", "5", "--traffic-kafka-brokers", "kafka")
	f("the topic's own retention", "--traffic-percent", "5", "--traffic-kafka-brokers", "127.0.0.1:9092", "--traffic-max-bytes", "1000000000")
	f("", "--traffic-percent", "5", "--traffic-kafka-brokers", "127.0.0.1:9092,127.0.0.2:9092")

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "traffic"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, err := exec.Command(binPath, "serve", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--models", t.TempDir(), "--ort-lib", testenv.ORTLib(t),
		"--traffic-percent", "5", "--traffic-kafka-brokers", c.ListenAddrs()[0], "--traffic-kafka-topic", "trafic").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `topic "trafic" does not exist`) {
		t.Fatalf("serve with a topic the brokers lack: %v\n%s", err, out)
	}
}

// TestTrafficReadRefusesANegativeFrom: --from below 0 is no position; it
// read the whole log from its oldest record, as if --from were not given,
// and exited 0.
func TestTrafficReadRefusesANegativeFrom(t *testing.T) {
	f := func(from string) {
		t.Helper()
		checkExit(t, 2, "--from "+from+" is not a position", "traffic", "read", "--addr", "127.0.0.1:1", "--from", from)
	}
	f("-5")
	f("-1")
}

// A --max-bytes the node would refuse is named as the flag, not as the
// node's max_bytes parameter.
func TestTrafficReadMaxBytesBound(t *testing.T) {
	checkExit(t, 2, "--max-bytes 1 to 67108864", "traffic", "read", "--addr", "127.0.0.1:1", "--max-bytes", "67108865")
	checkExit(t, 2, "--max-bytes 1 to 67108864", "traffic", "read", "--addr", "127.0.0.1:1", "--max-bytes", "0")
}
