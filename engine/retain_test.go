package engine

import (
	"context"
	"runtime"
	"testing"
	"weak"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// TestLargeBuffersAreNotKept: once Run returns, the engine keeps no
// reference to an input or output buffer over maxBoundBytes, so a large
// request's memory goes back when its caller drops it; before, the
// instance kept the last run's buffers wrapped (and pinned) until a run of
// other buffers, and an idle server held its largest request for good. A
// small buffer is still kept, for the next run that passes it.
func TestLargeBuffersAreNotKept(t *testing.T) {
	initORT(t)
	const cols = 1024
	m := load(t, oneNode("Identity", onnx.Float, onnx.Float, []int64{-1, cols}, []int64{-1, cols}), Options{})
	run := func(rows int) (in, out weak.Pointer[byte]) {
		t.Helper()
		data := make([]byte, rows*cols*4)
		res, err := m.Run(context.Background(), []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{int64(rows), cols}, Data: data}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return weak.Make(&data[0]), weak.Make(&res[0].Data[0])
	}
	gone := func(p weak.Pointer[byte]) bool {
		runtime.GC()
		runtime.GC()
		return p.Value() == nil
	}

	in, out := run(1024) // 4 MiB each
	if !gone(in) {
		t.Errorf("a 4 MiB input is still reachable after Run returned and its caller dropped it")
	}
	if !gone(out) {
		t.Errorf("a 4 MiB output is still reachable after its caller dropped it")
	}

	in, out = run(8) // 32 KiB each
	if gone(in) || gone(out) {
		t.Errorf("a 32 KiB input or output was let go (input gone %v, output gone %v); want both kept for the next run that passes them", gone(in), gone(out))
	}

	// The instance still runs after dropping, on new buffers of either size.
	for _, rows := range []int{1024, 8, 1024} {
		run(rows)
	}
}
