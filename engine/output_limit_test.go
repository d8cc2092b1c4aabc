package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// gatherModel is a lookup in a table of 10 rows of dim FP32 values: ids
// INT64 of idsDims -> emb FP32 of idsDims plus dim. With idsDims [-1] Run
// preallocates emb; with [-1,-1] ONNX Runtime allocates it. Each 8-byte id
// becomes 4*dim bytes of output. With withIDs the model also returns the
// ids as output "ids_out".
func gatherModel(idsDims []int64, dim int64, withIDs bool) []byte {
	g := onnx.Graph{
		Name:         "gather",
		Inputs:       []onnx.ValueInfo{{Name: "ids", Type: onnx.Int64, Dims: idsDims}},
		Outputs:      []onnx.ValueInfo{{Name: "emb", Type: onnx.Float, Dims: append(append([]int64(nil), idsDims...), dim)}},
		Nodes:        []onnx.Node{{OpType: "Gather", Name: "gather", Inputs: []string{"table", "ids"}, Outputs: []string{"emb"}}},
		Initializers: []onnx.Tensor{{Name: "table", Type: onnx.Float, Dims: []int64{10, dim}, Floats: make([]float32, 10*dim)}},
	}
	if withIDs {
		g.Outputs = append(g.Outputs, onnx.ValueInfo{Name: "ids_out", Type: onnx.Int64, Dims: idsDims})
		g.Nodes = append(g.Nodes, onnx.Node{OpType: "Identity", Name: "id", Inputs: []string{"ids"}, Outputs: []string{"ids_out"}})
	}
	mo := onnx.Model{Graph: g}
	return mo.Marshal()
}

// ids returns n ids 0, 1, ... 9, 0, 1, ... of shape.
func ids(shape ...int64) oip.Tensor {
	n := oip.ShapeElements(shape)
	b := make([]byte, 0, 8*n)
	for i := range n {
		b = binary.LittleEndian.AppendUint64(b, uint64(i%10))
	}
	return oip.Tensor{Name: "ids", Datatype: oip.INT64, Shape: shape, Data: b}
}

// TestMaxOutputBytes sends small requests for large outputs: 4096 ids of 8
// bytes make 1 MiB of output from a table of 64 FP32 values a row.
func TestMaxOutputBytes(t *testing.T) {
	initORT(t)
	const limit = 1 << 20
	opts := Options{MaxOutputBytes: limit}
	f := func(t *testing.T, m *Model, in oip.Tensor, want string) {
		t.Helper()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		out, err := m.Run(context.Background(), []oip.Tensor{in}, nil, nil)
		runtime.ReadMemStats(&after)
		if want == "" {
			if err != nil {
				t.Fatalf("Run of ids %v: %s", in.Shape, err)
			}
			if n := len(out[0].Data); n != 64*4*int(oip.ShapeElements(in.Shape)) {
				t.Fatalf("Run of ids %v: got %d bytes of emb", in.Shape, n)
			}
			return
		}
		if !errors.Is(err, ErrOutputTooLarge) || err.Error() != want {
			t.Fatalf("Run of ids %v:\ngot  %v\nwant ErrOutputTooLarge %q", in.Shape, err, want)
		}
		if m.out[0].rule == ruleBatch {
			// The refusal comes before the output is allocated.
			if grown := after.TotalAlloc - before.TotalAlloc; grown > limit/4 {
				t.Fatalf("a refused Run allocated %d bytes; want the refusal before the %d-byte output", grown, limit)
			}
		}
	}

	t.Run("preallocated", func(t *testing.T) {
		m := load(t, gatherModel([]int64{-1}, 64, false), opts)
		if m.out[0].rule != ruleBatch {
			t.Fatalf("output rule %d; want ruleBatch", m.out[0].rule)
		}
		f(t, m, ids(4096), "")
		f(t, m, ids(4097), `output "emb" would be FP32 [4097,64], 1048832 bytes, over the limit of 1048576 bytes on the outputs of a request; send fewer rows per request, or raise max_output_bytes`)
		f(t, m, ids(3), "")
	})
	t.Run("allocated", func(t *testing.T) {
		m := load(t, gatherModel([]int64{-1, -1}, 64, false), opts)
		if m.out[0].rule != ruleDynamic {
			t.Fatalf("output rule %d; want ruleDynamic", m.out[0].rule)
		}
		f(t, m, ids(2, 2048), "")
		f(t, m, ids(1, 4097), `output "emb" would be FP32 [1,4097,64], 1048832 bytes, over the limit of 1048576 bytes on the outputs of a request; send fewer rows per request, or raise max_output_bytes`)
		f(t, m, ids(3, 1), "")
	})
	t.Run("total", func(t *testing.T) {
		// ids_out counts too, though not asked for.
		for _, dims := range [][]int64{{-1}, {-1, -1}} {
			m := load(t, gatherModel(dims, 64, true), opts)
			shape := []int64{4096}
			want := `output "emb" would be FP32 [4096,64], 1048576 bytes, which brings the outputs of the request to 1081344 bytes, over the limit of 1048576; send fewer rows per request, or raise max_output_bytes`
			if len(dims) == 2 {
				shape = []int64{1, 4096}
				want = `output "emb" would be FP32 [1,4096,64], 1048576 bytes, which brings the outputs of the request to 1081344 bytes, over the limit of 1048576; send fewer rows per request, or raise max_output_bytes`
			}
			_, err := m.Run(context.Background(), []oip.Tensor{ids(shape...)}, []string{"emb"}, nil)
			if !errors.Is(err, ErrOutputTooLarge) || err.Error() != want {
				t.Fatalf("ids %v:\ngot  %v\nwant ErrOutputTooLarge %q", dims, err, want)
			}
		}
	})
}

// TestMaxOutputBytesLoad checks the limit against the warm-up: a model
// whose outputs at batch 1 exceed it cannot serve anything, and one whose
// outputs at batch 2 exceed it keeps its preallocated outputs.
func TestMaxOutputBytesLoad(t *testing.T) {
	initORT(t)
	model := gatherModel([]int64{-1}, 64, false) // 256 bytes a row
	_, err := Load(model, Options{MaxOutputBytes: 255})
	if !errors.Is(err, ErrInvalidModel) || !errors.Is(err, ErrOutputTooLarge) {
		t.Fatalf("Load with a limit under one row: got %v; want ErrInvalidModel and ErrOutputTooLarge", err)
	}
	m := load(t, model, Options{MaxOutputBytes: 256})
	if m.out[0].rule != ruleBatch {
		t.Fatalf("limit of one row: output rule %d; want ruleBatch", m.out[0].rule)
	}
	if _, err := m.Run(context.Background(), []oip.Tensor{ids(2)}, nil, nil); !errors.Is(err, ErrOutputTooLarge) {
		t.Fatalf("two rows with a limit of one: got %v; want ErrOutputTooLarge", err)
	}
	if m := load(t, model, Options{}); m.maxOutputBytes != DefaultMaxOutputBytes {
		t.Fatalf("Options{} gives a limit of %d; want %d", m.maxOutputBytes, DefaultMaxOutputBytes)
	}
}
