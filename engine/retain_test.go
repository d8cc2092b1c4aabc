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

// TestNoCPUMemArenaGivesRunMemoryBack runs a graph whose intermediate
// tensor is 64 MiB, on buffers allocated beforehand, and reads the
// process's resident memory before and after: with the arena the
// intermediate stays with the session (checked, so that the test can
// tell), and with NoCPUMemArena it goes back when the run ends.
func TestNoCPUMemArenaGivesRunMemoryBack(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 256 MiB")
	}
	initORT(t)
	const rows, cols = 16384, 1024 // 64 MiB of FP32
	m := onnx.Model{Graph: onnx.Graph{
		Name:    "twoneg",
		Inputs:  []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{-1, cols}}},
		Outputs: []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Dims: []int64{-1, cols}}},
		Nodes: []onnx.Node{
			{OpType: "Neg", Name: "a", Inputs: []string{"x"}, Outputs: []string{"h"}},
			{OpType: "Neg", Name: "b", Inputs: []string{"h"}, Outputs: []string{"y"}},
		},
	}}
	model := m.Marshal()
	grown := func(opts Options) int64 {
		t.Helper()
		mod := load(t, model, opts)
		in := []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{rows, cols}, Data: make([]byte, rows*cols*4)}}
		dst := []oip.Tensor{{Data: make([]byte, rows*cols*4)}}
		for i := range in[0].Data { // touch every page
			in[0].Data[i] = 1
		}
		clear(dst[0].Data)
		before := rssBytes(t)
		out, err := mod.Run(context.Background(), in, nil, dst)
		if err != nil {
			t.Fatal(err)
		}
		after := rssBytes(t)
		if &out[0].Data[0] != &dst[0].Data[0] {
			t.Fatalf("the output was not written into the buffer given: the measure would count its allocation")
		}
		runtime.KeepAlive(in)
		return after - before
	}
	if g := grown(Options{}); g < 48<<20 {
		t.Fatalf("with the arena, a run of a 64 MiB intermediate grew resident memory by %d MiB; want about 64 (else this test measures nothing)", g>>20)
	}
	if g := grown(Options{NoCPUMemArena: true}); g > 16<<20 {
		t.Fatalf("with NoCPUMemArena, a run of a 64 MiB intermediate grew resident memory by %d MiB; want it given back (under 16)", g>>20)
	}
}
