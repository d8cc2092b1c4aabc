package oip

import "strconv"

// DataType is the element type of a tensor, as the Open Inference Protocol
// names it ("FP32", "INT64", ...). The zero value is InvalidType.
type DataType uint8

// The tensor data types of the protocol.
const (
	InvalidType DataType = iota
	BOOL
	UINT8
	UINT16
	UINT32
	UINT64
	INT8
	INT16
	INT32
	INT64
	FP16
	FP32
	FP64
	BYTES
	numTypes
)

var typeNames = [numTypes]string{
	InvalidType: "INVALID",
	BOOL:        "BOOL",
	UINT8:       "UINT8",
	UINT16:      "UINT16",
	UINT32:      "UINT32",
	UINT64:      "UINT64",
	INT8:        "INT8",
	INT16:       "INT16",
	INT32:       "INT32",
	INT64:       "INT64",
	FP16:        "FP16",
	FP32:        "FP32",
	FP64:        "FP64",
	BYTES:       "BYTES",
}

var typeSizes = [numTypes]int{
	BOOL: 1, UINT8: 1, UINT16: 2, UINT32: 4, UINT64: 8,
	INT8: 1, INT16: 2, INT32: 4, INT64: 8,
	FP16: 2, FP32: 4, FP64: 8,
}

// String returns the protocol name of d, such as "FP32".
func (d DataType) String() string {
	if d < numTypes {
		return typeNames[d]
	}
	return "DataType(" + strconv.Itoa(int(d)) + ")"
}

// Size returns the number of bytes of one element of d, or 0 for BYTES
// (variable length) and InvalidType.
func (d DataType) Size() int {
	if d < numTypes {
		return typeSizes[d]
	}
	return 0
}

// ParseDataType returns the DataType named s ("FP32", ...), or InvalidType
// and false when s names none.
func ParseDataType(s string) (DataType, bool) {
	for i := BOOL; i < numTypes; i++ {
		if typeNames[i] == s {
			return i, true
		}
	}
	return InvalidType, false
}

// Tensor is one named input or output tensor.
//
// Data holds the elements in row-major order exactly as the Triton binary
// tensor extension lays them out: little-endian fixed-size elements, BOOL as
// one byte (0 or 1) per element, and BYTES as, for each element, a 4-byte
// little-endian length followed by that many bytes. A Tensor owns Data: it
// never aliases a request buffer that may be reused.
type Tensor struct {
	Name     string
	Datatype DataType
	Shape    []int64
	Data     []byte
}

// NumElements returns the product of t.Shape (1 for a scalar).
func (t *Tensor) NumElements() int64 {
	return ShapeElements(t.Shape)
}

// ShapeElements returns the product of the dimensions of shape, or -1 when
// a dimension is negative or the product overflows int64. A shape with a 0
// is 0 elements, whatever its other dimensions.
func ShapeElements(shape []int64) int64 {
	zero := false
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		zero = zero || d == 0
	}
	if zero {
		return 0
	}
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		if d != 0 && n > (1<<62)/d {
			return -1
		}
		n *= d
	}
	return n
}

// RequestedOutput is one entry of the "outputs" list of an infer request.
type RequestedOutput struct {
	Name string
	// Binary is the output's "binary_data" parameter; it is meaningful only
	// when HasBinary is set, otherwise the request-level default applies.
	Binary    bool
	HasBinary bool
	// Classification is the output's "classification" parameter: return
	// its that many highest-valued elements per batch entry in place of
	// its values (see Classify); 0 means the values.
	Classification int64
	// SharedMemory, when it names a region, asks for the output's data
	// there rather than in the response.
	SharedMemory SharedMemoryRef
}

// SharedMemoryRef places a tensor's data in a system shared memory region
// that the client registered (Triton's shared memory extension): ByteSize
// bytes from Offset in region Region, as its parameters
// "shared_memory_region", "shared_memory_offset" and
// "shared_memory_byte_size" say. The zero value (no Region) places it
// nowhere.
type SharedMemoryRef struct {
	Region   string
	Offset   int64
	ByteSize int64
}

// SharedInput is an input of a request whose data is in shared memory:
// Inputs[Index] has no data until the server reads it from Ref.
type SharedInput struct {
	Index int
	Ref   SharedMemoryRef
}

// InferRequest is a decoded infer request.
//
// The zero value is an empty request; Reset makes a used one empty again
// while keeping its buffers for reuse, which DecodeRequest fills. A used
// request must not be copied by value: the copies would share buffers.
type InferRequest struct {
	ID      string
	Inputs  []Tensor
	Outputs []RequestedOutput
	// SharedInputs lists the inputs whose data is in shared memory, in
	// the order of Inputs; empty for most requests.
	SharedInputs []SharedInput

	// BinaryDataOutput is the request-level "binary_data_output" parameter:
	// outputs not listed in Outputs (or listed without their own
	// "binary_data") are returned as binary data.
	BinaryDataOutput bool
	// TimeoutMicros is the "timeout" parameter in microseconds; 0 means none.
	TimeoutMicros int64
	// Priority is the "priority" parameter; 0 means the model's default.
	Priority int64
	// CacheBypass is the "cache_bypass" parameter: do not answer from, or
	// store into, the response cache.
	CacheBypass bool
	// UnitID is the "unit_id" parameter. The gateway picks an experiment arm
	// before it reads the body, from the X-Unit-Id header, so it does not
	// use this one.
	UnitID string

	// names, scratch and grpc are kept across Reset for the decoders to
	// reuse.
	names   internTable
	scratch []byte
	grpc    grpcRequest
}

// RetainedBytes returns the bytes r keeps reachable for reuse: every
// tensor buffer up to the slices' capacity and the decoder's scratch. A
// pool uses it to drop requests that a large or hostile body grew.
func (r *InferRequest) RetainedBytes() int {
	n := cap(r.scratch) + 24*cap(r.Outputs) + 24*(cap(r.grpc.raw)+cap(r.grpc.contents))
	for _, in := range r.Inputs[:cap(r.Inputs)] {
		n += cap(in.Data) + 8*cap(in.Shape) + len(in.Name)
	}
	return n
}

// Reset empties r and keeps its slices for reuse.
func (r *InferRequest) Reset() {
	for i := range r.Inputs {
		in := &r.Inputs[i]
		in.Name = ""
		in.Datatype = InvalidType
		in.Shape = in.Shape[:0]
		in.Data = in.Data[:0]
	}
	r.Inputs = r.Inputs[:0]
	r.Outputs = r.Outputs[:0]
	r.SharedInputs = r.SharedInputs[:0]
	r.ID = ""
	r.BinaryDataOutput = false
	r.TimeoutMicros = 0
	r.Priority = 0
	r.CacheBypass = false
	r.UnitID = ""
}

// OutputTensor is one output of an infer response, with how it is sent.
type OutputTensor struct {
	Tensor
	// Binary sends the tensor's data after the JSON header instead of as a
	// JSON "data" array.
	Binary bool
	// SharedMemory, when it names a region, says that the data was written
	// there: the response carries the tensor's name, datatype and shape
	// alone (and over gRPC an empty raw_output_contents entry).
	SharedMemory SharedMemoryRef
}

// reset empties o and keeps its buffers for reuse.
func (o *OutputTensor) reset() {
	o.Name = ""
	o.Datatype = InvalidType
	o.Shape = o.Shape[:0]
	o.Data = o.Data[:0]
	o.Binary = false
	o.SharedMemory = SharedMemoryRef{}
}

// InferResponse is an infer response before encoding, or after decoding.
//
// The zero value is an empty response; Reset makes a used one empty again
// while keeping its buffers for reuse, which DecodeResponse fills. A used
// response must not be copied by value: the copies would share buffers.
type InferResponse struct {
	ModelName    string
	ModelVersion string
	ID           string
	Outputs      []OutputTensor

	// names and scratch are kept across Reset for the decoder to reuse.
	names   internTable
	scratch []byte
}

// Reset empties r and keeps its slices for reuse.
func (r *InferResponse) Reset() {
	for i := range r.Outputs {
		r.Outputs[i].reset()
	}
	r.Outputs = r.Outputs[:0]
	r.ModelName = ""
	r.ModelVersion = ""
	r.ID = ""
}

// TensorMetadata describes one input or output of a model. A negative
// dimension in Shape is variable (-1 is the dynamic batch dimension).
type TensorMetadata struct {
	Name     string
	Datatype DataType
	Shape    []int64
}

// ModelMetadata is the body of GET /v2/models/{name}[/versions/{v}].
type ModelMetadata struct {
	Name     string
	Versions []string
	Platform string
	Inputs   []TensorMetadata
	Outputs  []TensorMetadata
}

// ServerMetadata is the body of GET /v2.
type ServerMetadata struct {
	Name       string
	Version    string
	Extensions []string
}
