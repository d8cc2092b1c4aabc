package main

import (
	"flag"
	"io"
	"testing"
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
