package gateway

import (
	"math"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// rawRequest fills req from a raw binary request, Triton's form of the
// binary tensor extension for a model of one input: the header
// Inference-Header-Content-Length is 0 and the whole body is that input's
// data. The datatype and shape are the model's, with batch 1 for a model
// that batches and at most one other variable dimension, which the body's
// length fills; every output is returned as binary data.
func rawRequest(req *oip.InferRequest, v *registry.Version, body []byte) error {
	req.Reset()
	if len(v.Inputs) != 1 {
		return badRequest("a raw binary request (%s: 0, the body all tensor data) is for a model of one input; model %q has %d: send a JSON header that names them", headerInferenceLen, v.Model, len(v.Inputs))
	}
	meta := &v.Inputs[0]
	if meta.Datatype == oip.BYTES {
		return badRequest("a raw binary request (%s: 0) cannot carry input %q of datatype BYTES, whose elements need their lengths: send a JSON header with binary_data_size", headerInferenceLen, meta.Name)
	}
	if len(body) == 0 {
		return badRequest("the body is empty; a raw binary request (%s: 0) carries input %q's data", headerInferenceLen, meta.Name)
	}
	size := meta.Datatype.Size()
	if len(body)%size != 0 {
		return badRequest("the body's %d bytes are not a whole number of %s elements of input %q (%d bytes each)", len(body), meta.Datatype, meta.Name, size)
	}
	elems := int64(len(body) / size)
	req.Inputs = append(req.Inputs[:0], oip.Tensor{})
	in := &req.Inputs[0]
	in.Name = meta.Name
	in.Datatype = meta.Datatype
	in.Shape = append(in.Shape[:0], meta.Shape...)
	first := 0
	if v.Batchable {
		in.Shape[0] = 1
		first = 1
	}
	known, unknown := int64(1), -1
	for i := first; i < len(in.Shape); i++ {
		if d := in.Shape[i]; d >= 0 {
			if d > 0 && known > math.MaxInt64/d {
				// known*d would wrap around, perhaps to the body's size.
				return badRequest("input %q has shape %s, too large for any body: a raw binary request (%s: 0) cannot fill it; check the model's input dimensions", meta.Name, oip.FormatShape(meta.Shape), headerInferenceLen)
			}
			known *= d
			continue
		}
		if unknown >= 0 {
			return badRequest("input %q has shape %s, with more than one variable dimension besides the batch: a raw binary request (%s: 0) cannot say their sizes; send a JSON header with the shape", meta.Name, oip.FormatShape(meta.Shape), headerInferenceLen)
		}
		unknown = i
	}
	switch {
	case unknown >= 0 && known > 0 && elems%known == 0:
		in.Shape[unknown] = elems / known
	case unknown < 0 && elems == known:
	default:
		return badRequest("the body holds %d %s elements, which do not fill input %q of shape %s at batch 1; a raw binary request (%s: 0) carries one row", elems, meta.Datatype, meta.Name, oip.FormatShape(meta.Shape), headerInferenceLen)
	}
	// Copied, as the decoder copies binary tensors: the request and its
	// buffers are pooled across requests, the body is the context's.
	in.Data = append(in.Data[:0], body...)
	req.BinaryDataOutput = true
	return nil
}
