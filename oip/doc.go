// Package oip speaks the Open Inference Protocol v2, the REST protocol of
// KServe and Triton: it decodes and encodes infer requests and responses as
// JSON and with the Triton binary tensor extension, encodes and decodes model
// and server metadata, checks requests against a model's metadata, and has a
// small client over fasthttp.
//
// The codec is written for a server that pools its requests. DecodeRequest
// fills an InferRequest in place, reusing the slices that Reset keeps, so
// that a pooled request decodes a steady stream of requests with no
// allocations beyond the ID and unit id strings. Decoded tensors own their
// bytes: nothing aliases the body, which the server may reuse.
//
// Tensor data are held as Tensor.Data documents: little-endian elements in
// row-major order, exactly as the binary extension sends them, so binary
// tensors are copied and JSON tensors are converted once.
//
// # JSON
//
// The decoder is a scanner specialised for the protocol's schema rather than
// a general JSON library. json_timing_test.go measures it against
// encoding/json, goccy/go-json and a pooled valyala/fastjson parser on 64
// and 4,096 FP32 elements: it is about 8 times as fast as encoding/json and
// 4 times as fast as fastjson, and a little faster than goccy/go-json, with
// no allocations where goccy makes three. It also parses every number
// exactly as strconv.ParseFloat does at the tensor's precision, where
// goccy/go-json parses float64 and rounds again, which is wrong for some
// inputs, and it decodes any datatype without a second pass. It accepts
// strict JSON (RFC 8259) in UTF-8, with one extension, below.
//
// JSON numbers cannot be NaN or infinite. The encoders write such floating
// point elements as the strings "NaN", "Infinity" and "-Infinity", as the
// protobuf JSON mapping does, and the decoders accept these strings for
// FP16, FP32 and FP64 tensors. The request decoder also takes them bare
// (NaN, Infinity, -Infinity), as Triton does: its Python and C++ clients
// write them so.
//
// # Errors
//
// Every complaint about the bytes a peer sent is an *Error whose message is
// written for that peer; a server answers it with 400 Bad Request and the
// body AppendError writes. The client turns answers other than 2xx into a
// *StatusError.
//
// # Limits
//
// MaxElements, MaxRank, MaxTensors and MaxDepth bound what a request may
// claim; the decoders never allocate more than the bytes actually present
// justify, whatever a shape or a binary_data_size says.
//
// The package imports no server code and no ONNX Runtime.
package oip
