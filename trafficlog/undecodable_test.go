package trafficlog

import (
	"errors"
	"testing"

	"github.com/infergate/infergate/oip"
)

// TestUndecodableEventIsRefused: an event Decode would refuse (here 1025
// output tensors, more than it reads back) is refused by Append and
// AppendSync, and a restart keeps every acknowledged record (found by a
// reviewing helper: the record was written, and the next Open took it
// for a torn tail and cut it off with the feedback fsynced after it).
func TestUndecodableEventIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	l := open(t, cfg)
	odd := prediction(0)
	odd.Outputs = make([]oip.Tensor, maxTensors+1)
	for i := range odd.Outputs {
		odd.Outputs[i] = fp32("o", []int64{1}, 1)
	}
	if err := l.Append(odd); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of %d outputs: %v; want ErrTooLarge", len(odd.Outputs), err)
	}
	if err := l.AppendSync(feedback(1), odd); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("AppendSync with it: %v; want ErrTooLarge", err)
	}
	if err := l.AppendSync(feedback(2)); err != nil {
		t.Fatal(err)
	}
	synced := l.Stats().Next
	l.Close()
	if st := open(t, cfg).Stats(); st.Next != synced || synced == 0 {
		t.Fatalf("after a restart the log ends at %d; AppendSync had acknowledged records up to %d", st.Next, synced)
	}
}
