package gateway

import (
	"math/bits"
	"testing"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// FuzzRawRequest fills a request from a raw binary body (Inference-
// Header-Content-Length: 0) for an input of mutated datatype and shape.
// An accepted body is the data of exactly the shape the request gets:
// every dimension at least 0, their product (without overflow) times the
// element size its length.
func FuzzRawRequest(f *testing.F) {
	f.Add(uint8(0), int64(-1), int64(64), int64(0), uint8(2), true, uint32(256))
	f.Add(uint8(0), int64(-1), int64(-1), int64(3), uint8(3), true, uint32(48))
	f.Add(uint8(3), int64(2), int64(3), int64(0), uint8(2), false, uint32(48))
	types := []oip.DataType{oip.FP32, oip.FP16, oip.UINT8, oip.INT64, oip.INT32, oip.BOOL, oip.FP64, oip.BYTES}
	f.Fuzz(func(t *testing.T, dt uint8, d0, d1, d2 int64, rank uint8, batchable bool, bodyLen uint32) {
		shape := []int64{d0, d1, d2}[:1+int(rank)%3]
		datatype := types[int(dt)%len(types)]
		v := &registry.Version{Model: "m", Batchable: batchable, Inputs: []oip.TensorMetadata{{Name: "x", Datatype: datatype, Shape: shape}}}
		body := make([]byte, bodyLen%(1<<16))
		var req oip.InferRequest
		if err := rawRequest(&req, v, body); err != nil {
			if _, ok := err.(*httpError); !ok {
				t.Fatalf("error %T: %v; want a 4xx", err, err)
			}
			return
		}
		in := &req.Inputs[0]
		n := uint64(datatype.Size())
		for _, d := range in.Shape {
			if d < 0 {
				t.Fatalf("shape %v (model's %v, %d bytes): a negative dimension", in.Shape, shape, len(body))
			}
			hi, lo := bits.Mul64(n, uint64(d))
			if hi != 0 {
				t.Fatalf("shape %v (model's %v) of %s overflows; taken for %d bytes", in.Shape, shape, datatype, len(body))
			}
			n = lo
		}
		if n != uint64(len(body)) || len(in.Data) != len(body) {
			t.Fatalf("shape %v (model's %v) of %s holds %d bytes; the body has %d, the tensor %d", in.Shape, shape, datatype, n, len(body), len(in.Data))
		}
	})
}
