package engine

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// convModel is x FP32 [batch,1,H,W] -> y = Conv(x, w) with a 3x3 kernel and
// no padding: y [batch,1,H-2,W-2]. dims gives x's declared shape.
func convModel(xDims []int64) []byte {
	yDims := []int64{-1, 1, -1, -1}
	if xDims[2] > 0 {
		yDims = []int64{xDims[0], 1, xDims[2] - 2, xDims[3] - 2}
	}
	w := make([]float32, 9)
	for i := range w {
		w[i] = 1
	}
	mo := onnx.Model{Graph: onnx.Graph{
		Name:         "conv",
		Inputs:       []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: xDims}},
		Outputs:      []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Dims: yDims}},
		Nodes:        []onnx.Node{{OpType: "Conv", Name: "conv", Inputs: []string{"x", "w"}, Outputs: []string{"y"}, Attrs: []onnx.Attr{onnx.AttrInts("kernel_shape", []int64{3, 3})}}},
		Initializers: []onnx.Tensor{{Name: "w", Type: onnx.Float, Dims: []int64{1, 1, 3, 3}, Floats: w}},
	}}
	return mo.Marshal()
}

// A 3x3 convolution over an image of any height and width ([batch,1,-1,-1],
// the usual export of a CNN) serves any image of 3x3 or more, as the same
// graph with the size fixed at 5x5 does: Load does not refuse it because
// its warm-up picked 1x1 for the height and width.
func TestDynamicSpatialDimsLoad(t *testing.T) {
	initORT(t)
	fixed := load(t, convModel([]int64{-1, 1, 5, 5}), Options{})
	x := make([]float32, 25)
	for i := range x {
		x[i] = 1
	}
	in := []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, 1, 5, 5}, Data: f32Bytes(x)}}
	out, err := fixed.Run(context.Background(), in, nil, nil)
	if err != nil || oip.FormatShape(out[0].Shape) != "[1,1,3,3]" || bytesF32(out[0].Data)[0] != 9 {
		t.Fatalf("fixed 5x5 model: got %v, %v; want [1,1,3,3] of 9s", out, err)
	}

	m, err := Load(convModel([]int64{-1, 1, -1, -1}), Options{})
	if err != nil {
		t.Fatalf("Load of a valid 3x3 Conv over [batch,1,H,W]: %v\nwant it loaded: a 5x5 image is a fine request", err)
	}
	defer m.Close()
	out, err = m.Run(context.Background(), in, nil, nil)
	if err != nil || oip.FormatShape(out[0].Shape) != "[1,1,3,3]" || bytesF32(out[0].Data)[0] != 9 {
		t.Fatalf("dynamic model, 5x5 image: got %v, %v; want [1,1,3,3] of 9s", out, err)
	}
}

// noOutputModel is a valid ONNX graph with one input and no graph outputs
// (its one node's result is not an output).
func noOutputModel() []byte {
	mo := onnx.Model{Graph: onnx.Graph{
		Name:   "noout",
		Inputs: []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{-1, 2}}},
		Nodes:  []onnx.Node{{OpType: "Relu", Name: "r", Inputs: []string{"x"}, Outputs: []string{"y"}}},
	}}
	return mo.Marshal()
}

// Load of a model without outputs returns an error rather than panicking
// in the warm-up, and leaves no pinned buffer behind for the runtime to
// end the process over at the next collection (in a child process, which
// such a crash would kill).
func TestLoadNoOutputs(t *testing.T) {
	const name = "TestLoadNoOutputs"
	if os.Getenv("ENGINE_TEST_CHILD") == name {
		initORT(t)
		func() {
			defer func() {
				if p := recover(); p != nil {
					fmt.Printf("CHILD: Load panicked: %v\n", p)
				}
			}()
			m, err := Load(noOutputModel(), Options{})
			fmt.Printf("CHILD: Load returned %v, %v\n", m, err)
		}()
		for range 5 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		fmt.Println("CHILD: survived GC")
		return
	}
	out, err := inChild(t, name)
	if err != nil || !strings.Contains(string(out), "CHILD: Load returned <nil>, ") {
		t.Fatalf("Load of a model without outputs (child exit %v):\n%s\nwant an error from Load, no panic, no crash", err, out)
	}
}
