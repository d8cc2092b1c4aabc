package oip

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The protocol's gRPC service, inference.GRPCInferenceService (KServe's
// grpc_predict_v2.proto; Triton's grpc_service.proto is a superset with the
// same field numbers), in protobuf's wire format. The messages are coded
// here by hand over protowire rather than generated: a request's tensors
// go straight into the Tensor layout the rest of infergate uses (raw
// contents are that layout already), and no protoc is needed to build.

// GRPCService is the full name of the protocol's gRPC service.
const GRPCService = "inference.GRPCInferenceService"

// Field numbers of the messages, as the protocol's .proto files give them.
const (
	// ModelInferRequest.
	fInferModelName = 1
	fInferModelVer  = 2
	fInferID        = 3
	fInferParams    = 4
	fInferInputs    = 5
	fInferOutputs   = 6
	fInferRaw       = 7 // raw_input_contents, raw_output_contents is 6

	// InferInputTensor and InferOutputTensor.
	fTensorName     = 1
	fTensorDatatype = 2
	fTensorShape    = 3
	fTensorParams   = 4
	fTensorContents = 5

	// InferRequestedOutputTensor.
	fOutputName   = 1
	fOutputParams = 2

	// ModelInferResponse.
	fRespOutputs = 5
	fRespRaw     = 6

	// A map entry; InferParameter's oneof.
	fMapKey       = 1
	fMapValue     = 2
	fParamBool    = 1
	fParamInt64   = 2
	fParamString  = 3
	fParamDouble  = 4 // Triton's
	fParamUint64  = 5 // Triton's
	numContentsFs = 8
)

// contentsFields names InferTensorContents' fields by number.
var contentsFields = [numContentsFs + 1]string{
	1: "bool_contents", 2: "int_contents", 3: "int64_contents", 4: "uint_contents",
	5: "uint64_contents", 6: "fp32_contents", 7: "fp64_contents", 8: "bytes_contents",
}

// contentsField returns the InferTensorContents field that carries dt's
// elements, or 0 for a type that has none (FP16 goes only as raw bytes).
func contentsField(dt DataType) protowire.Number {
	switch dt {
	case BOOL:
		return 1
	case INT8, INT16, INT32:
		return 2
	case INT64:
		return 3
	case UINT8, UINT16, UINT32:
		return 4
	case UINT64:
		return 5
	case FP32:
		return 6
	case FP64:
		return 7
	case BYTES:
		return 8
	}
	return 0
}

// grpcRequest is the decoding state of one ModelInferRequest kept in an
// InferRequest between uses: the views of the input contents until every
// field has been read.
type grpcRequest struct {
	raw      [][]byte // raw_input_contents, in order
	contents [][]byte // each input's InferTensorContents (nil: none)
}

// DecodeModelInferRequest decodes b, a ModelInferRequest message, into
// req, and returns the model name and version it names (views of b; the
// version is empty when the request names none). Tensor data is copied:
// req does not keep b. Parameters are read as DecodeRequest reads them
// from JSON (timeout, priority, cache_bypass, unit_id; "classification"
// on a requested output), from int64, uint64 or bool values as fits;
// others are ignored. Inputs may carry their data in raw_input_contents
// (one entry per input, in order) or each in its typed contents, not both;
// an input whose shared memory parameters name a region has neither (it
// is listed in req.SharedInputs, and takes no raw_input_contents entry).
//
// The error is an *Error naming the field at fault.
func DecodeModelInferRequest(req *InferRequest, b []byte) (model, version []byte, err error) {
	g := &req.grpc
	g.raw = g.raw[:0]
	g.contents = g.contents[:0]
	defer func() {
		clear(g.raw[:cap(g.raw)])
		clear(g.contents[:cap(g.contents)])
	}()
	err = eachField(b, "ModelInferRequest", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num > fInferRaw {
			return nil // a field of a later protocol
		}
		if typ != protowire.BytesType {
			return errorf("ModelInferRequest field %d has wire type %d; the protocol's is length-delimited", num, typ)
		}
		switch num {
		case fInferModelName:
			model = v
		case fInferModelVer:
			version = v
		case fInferID:
			// The answer carries it back, and a client's protobuf library
			// refuses a string field that is not UTF-8, the whole answer
			// with it: refuse it here, as that library would.
			if !utf8.Valid(v) {
				return errorf("the request's id is not valid UTF-8 (a protobuf string must be)")
			}
			req.ID = string(v)
		case fInferParams:
			return decodeRequestParam(req, v)
		case fInferInputs:
			if len(req.Inputs) == MaxTensors {
				return errorf("the request has more than %d inputs", MaxTensors)
			}
			var t *Tensor
			req.Inputs, t = nextTensor(req.Inputs)
			contents, err := decodeInputTensor(req, t, v, len(req.Inputs)-1)
			if err != nil {
				return err
			}
			g.contents = append(g.contents, contents)
		case fInferOutputs:
			if len(req.Outputs) == MaxTensors {
				return errorf("the request asks for more than %d outputs", MaxTensors)
			}
			return decodeRequestedOutput(req, v)
		case fInferRaw:
			if len(g.raw) == MaxTensors {
				return errorf("the request has more than %d raw_input_contents", MaxTensors)
			}
			g.raw = append(g.raw, v)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if model, version, err = checkModelFields(model, version, "model_name", "model_version"); err != nil {
		return nil, nil, err
	}
	// Inputs in shared memory take no raw_input_contents: the others take
	// them in order.
	shared := req.SharedInputs
	inline := len(req.Inputs) - len(shared)
	if len(g.raw) > 0 {
		if len(g.raw) != inline {
			return nil, nil, errorf("the request has %d raw_input_contents for %s not in shared memory; send one per such input, in the order of inputs", len(g.raw), plural(int64(inline), "input"))
		}
		for i, c := range g.contents {
			if c != nil {
				return nil, nil, errorf("input %q has contents, and the request raw_input_contents; send every input's data one way", req.Inputs[i].Name)
			}
		}
		k := 0
		for i := range req.Inputs {
			if len(shared) > 0 && shared[0].Index == i {
				shared = shared[1:]
				continue
			}
			req.Inputs[i].Data = append(req.Inputs[i].Data[:0], g.raw[k]...)
			k++
		}
		return model, version, nil
	}
	for i := range req.Inputs {
		if len(shared) > 0 && shared[0].Index == i {
			shared = shared[1:]
			continue
		}
		if err := decodeContents(&req.Inputs[i], g.contents[i]); err != nil {
			return nil, nil, err
		}
	}
	return model, version, nil
}

// wireError describes a protowire parse error n in message msg.
func wireError(msg string, n int) error {
	return errorf("the %s message is malformed: %v", msg, protowire.ParseError(n))
}

// decodeInputTensor decodes InferInputTensor b, input index of req, into
// t, all but its data: it returns the view of its contents, nil if none.
func decodeInputTensor(req *InferRequest, t *Tensor, b []byte, index int) (contents []byte, err error) {
	t.Name, t.Datatype, t.Shape, t.Data = "", InvalidType, t.Shape[:0], t.Data[:0]
	var dt []byte
	var params [][]byte // only when it has some: few inputs do
	err = eachField(b, "InferInputTensor", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case fTensorParams:
			if typ != protowire.BytesType {
				return errorf("input %d: parameters has wire type %d", index, typ)
			}
			params = append(params, v)
		case fTensorName:
			if typ != protowire.BytesType {
				return errorf("input %d: name has wire type %d", index, typ)
			}
			t.Name = req.names.get(v)
		case fTensorDatatype:
			if typ != protowire.BytesType {
				return errorf("input %d: datatype has wire type %d", index, typ)
			}
			dt = v
		case fTensorShape:
			var err error
			if t.Shape, err = appendPBShape(t.Shape, typ, v, x); err != nil {
				return errorf("input %d: shape: %s", index, err.Error())
			}
		case fTensorContents:
			if typ != protowire.BytesType {
				return errorf("input %d: contents has wire type %d", index, typ)
			}
			contents = v
			if contents == nil {
				contents = []byte{} // present, though empty
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	name := t.Name
	if name == "" {
		return nil, errorf("input %d has no name", index)
	}
	if t.Datatype = lookupDataType(dt); t.Datatype == InvalidType {
		return nil, errorf("input %q has datatype %q; it must be one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES", name, dt)
	}
	if n := ShapeElements(t.Shape); n < 0 || n > MaxElements {
		return nil, errorf("input %q: shape %s has a negative dimension or more than %d elements", name, FormatShape(t.Shape), MaxElements)
	}
	if len(params) > 0 {
		var ref SharedMemoryRef
		var seen uint8
		for _, p := range params {
			key, val, err := decodeParamEntry(p)
			if err != nil {
				return nil, errorf("input %q: %s", name, err.Error())
			}
			if _, err := sharedMemoryParamPB(key, val, &ref, &seen, "input", name); err != nil {
				return nil, err
			}
		}
		if err := checkSharedMemory(seen, &where{kind: "input", name: name}); err != nil {
			return nil, err
		}
		if ref.Region != "" {
			if contents != nil {
				return nil, errorf("input %q has parameter \"shared_memory_region\" and also contents; send its data one way", name)
			}
			req.SharedInputs = append(req.SharedInputs, SharedInput{Index: index, Ref: ref})
		}
	}
	return contents, nil
}

// decodeContents fills t's data from InferTensorContents b (nil: the
// input had none).
func decodeContents(t *Tensor, b []byte) error {
	want := contentsField(t.Datatype)
	if want == 0 {
		return errorf("input %q is %s, which the protocol sends only in raw_input_contents", t.Name, t.Datatype)
	}
	if b == nil {
		return errorf("input %q has no data: send it in contents.%s or in raw_input_contents", t.Name, contentsFields[want])
	}
	size := t.Datatype.Size()
	// The elements are held to what the shape says as they are read: a
	// one-byte varint makes eight bytes of INT64, and a message of them
	// would otherwise hold eight times its size before any check.
	limit, n := ShapeElements(t.Shape), int64(0)
	more := func(k int64) error {
		if n += k; n > limit {
			return errorf("input %q: contents.%s holds more than the %d elements of shape %s", t.Name, contentsFields[want], limit, FormatShape(t.Shape))
		}
		return nil
	}
	return eachField(b, "InferTensorContents", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		if num != want {
			if num >= 1 && num <= numContentsFs {
				return errorf("input %q is %s, whose data goes in contents.%s, not %s", t.Name, t.Datatype, contentsFields[want], contentsFields[num])
			}
			return nil
		}
		switch {
		case t.Datatype == BYTES:
			if typ != protowire.BytesType {
				return errorf("input %q: bytes_contents has wire type %d", t.Name, typ)
			}
			if err := more(1); err != nil {
				return err
			}
			t.Data = AppendBytesElement(t.Data, v)
			return nil
		case t.Datatype == FP32 || t.Datatype == FP64:
			// Little-endian fixed-size values, as the tensor holds them.
			wt := protowire.Fixed32Type
			if size == 8 {
				wt = protowire.Fixed64Type
			}
			switch typ {
			case protowire.BytesType:
				if len(v)%size != 0 {
					return errorf("input %q: packed %s of %d bytes is not whole elements", t.Name, contentsFields[want], len(v))
				}
				if err := more(int64(len(v) / size)); err != nil {
					return err
				}
				t.Data = append(t.Data, v...)
			case wt:
				if err := more(1); err != nil {
					return err
				}
				if size == 4 {
					t.Data = binary.LittleEndian.AppendUint32(t.Data, uint32(x))
				} else {
					t.Data = binary.LittleEndian.AppendUint64(t.Data, x)
				}
			default:
				return errorf("input %q: %s has wire type %d", t.Name, contentsFields[want], typ)
			}
			return nil
		}
		// Varints: one, or a packed run.
		put := func(x uint64) error {
			if err := more(1); err != nil {
				return err
			}
			var ok bool
			if t.Data, ok = appendVarintElement(t.Data, t.Datatype, x); !ok {
				return errorf("input %q: %s value %d is out of range for %s", t.Name, contentsFields[want], int64(int32(x)), t.Datatype)
			}
			return nil
		}
		switch typ {
		case protowire.VarintType:
			return put(x)
		case protowire.BytesType:
			for len(v) > 0 {
				x, n := protowire.ConsumeVarint(v)
				if n < 0 {
					return errorf("input %q: packed %s is malformed: %v", t.Name, contentsFields[want], protowire.ParseError(n))
				}
				v = v[n:]
				if err := put(x); err != nil {
					return err
				}
			}
			return nil
		}
		return errorf("input %q: %s has wire type %d", t.Name, contentsFields[want], typ)
	})
}

// appendVarintElement appends x, a varint of a typed contents field, as
// an element of dt, and reports whether it fits dt.
func appendVarintElement(dst []byte, dt DataType, x uint64) ([]byte, bool) {
	switch dt {
	case BOOL:
		// Any value but 0 is true, as protobuf reads a bool.
		if x != 0 {
			x = 1
		}
		return append(dst, byte(x)), true
	case INT8, INT16, INT32:
		// An int32 field's value is its varint cut to 32 bits, as
		// protobuf reads it (negative ones go sign-extended to 64); the
		// narrower types then take what fits them.
		v := int64(int32(x))
		bits := uint(8 * dt.Size())
		if v < -1<<(bits-1) || v >= 1<<(bits-1) {
			return dst, false
		}
		return appendLE(dst, uint64(v), dt.Size()), true
	case UINT8, UINT16, UINT32:
		x = uint64(uint32(x)) // a uint32 field's value, as protobuf reads it
		bits := uint(8 * dt.Size())
		if x >= 1<<bits {
			return dst, false
		}
		return appendLE(dst, x, dt.Size()), true
	case INT64, UINT64:
		return binary.LittleEndian.AppendUint64(dst, x), true
	}
	return dst, false
}

// appendLE appends the low size bytes of x, little-endian.
func appendLE(dst []byte, x uint64, size int) []byte {
	for i := range size {
		dst = append(dst, byte(x>>(8*i)))
	}
	return dst
}

// decodeRequestedOutput decodes InferRequestedOutputTensor b into a new
// entry of req.Outputs.
func decodeRequestedOutput(req *InferRequest, b []byte) error {
	index := len(req.Outputs)
	req.Outputs = append(req.Outputs, RequestedOutput{})
	o := &req.Outputs[index]
	var params [][]byte
	err := eachField(b, "InferRequestedOutputTensor", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			if num == fOutputName || num == fOutputParams {
				return errorf("requested output %d: field %d has wire type %d", index, num, typ)
			}
			return nil
		}
		switch num {
		case fOutputName:
			o.Name = req.names.get(v)
		case fOutputParams:
			params = append(params, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if o.Name == "" {
		return errorf("requested output %d has no name", index)
	}
	var seen uint8
	for _, p := range params {
		key, val, err := decodeParamEntry(p)
		if err != nil {
			return errorf("requested output %q: %s", o.Name, err.Error())
		}
		if ok, err := sharedMemoryParamPB(key, val, &o.SharedMemory, &seen, "output", o.Name); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if string(key) != "classification" {
			continue
		}
		n, ok := val.nonNegative()
		if !ok || n == 0 {
			return errorf("requested output %q: parameter \"classification\" is %s; it must be a positive integer, the number of top classes", o.Name, val)
		}
		o.Classification = n
	}
	if err := checkSharedMemory(seen, &where{kind: "output", name: o.Name}); err != nil {
		return err
	}
	if o.SharedMemory.Region != "" && o.Classification > 0 {
		return errorf("output %q asks for classification into shared memory; ask for one or the other", o.Name)
	}
	return nil
}

// sharedMemoryParamPB reads parameter key of value val into ref when key
// is one of the shared memory parameters (ok), recording it in seen;
// kind and name name the tensor for messages.
func sharedMemoryParamPB(key []byte, val paramValue, ref *SharedMemoryRef, seen *uint8, kind, name string) (ok bool, err error) {
	bit := shmParamBit(key)
	if bit == 0 {
		return false, nil
	}
	if *seen&bit != 0 {
		return true, errorf("%s %q has two %q parameters", kind, name, key)
	}
	*seen |= bit
	if bit == shmRegion {
		if val.kind != fParamString || len(val.s) == 0 || !utf8.Valid(val.s) {
			return true, errorf("%s %q: parameter %q is %s; it must be a string_param naming a registered shared memory region", kind, name, key, val)
		}
		ref.Region = string(val.s)
		return true, nil
	}
	n, isInt := val.nonNegative()
	if !isInt {
		return true, errorf("%s %q: parameter %q is %s; it must be a non-negative int64_param", kind, name, key, val)
	}
	if bit == shmOffset {
		ref.Offset = n
	} else {
		ref.ByteSize = n
	}
	return true, nil
}

// decodeRequestParam decodes one entry of ModelInferRequest's parameters
// map into req.
func decodeRequestParam(req *InferRequest, b []byte) error {
	key, val, err := decodeParamEntry(b)
	if err != nil {
		return err
	}
	switch string(key) {
	case "timeout", "priority":
		n, ok := val.nonNegative()
		if !ok {
			return errorf("parameter %q is %s; it must be a non-negative integer", key, val)
		}
		if string(key) == "timeout" {
			req.TimeoutMicros = n
		} else {
			req.Priority = n
		}
	case "cache_bypass":
		if val.kind != fParamBool {
			return errorf("parameter \"cache_bypass\" is %s; it must be bool_param", val)
		}
		req.CacheBypass = val.x != 0
	case "unit_id":
		if val.kind != fParamString {
			return errorf("parameter \"unit_id\" is %s; it must be string_param", val)
		}
		req.UnitID = string(val.s)
	}
	return nil
}

// paramValue is a decoded InferParameter: which of its oneof was set, and
// its value.
type paramValue struct {
	kind protowire.Number // 0: none set
	x    uint64           // bool, int64, uint64, or a double's bits
	s    []byte
}

// nonNegative returns v as a non-negative integer, if it is one.
func (v paramValue) nonNegative() (int64, bool) {
	switch v.kind {
	case fParamInt64:
		return int64(v.x), int64(v.x) >= 0
	case fParamUint64:
		return int64(v.x), v.x <= math.MaxInt64
	}
	return 0, false
}

// String describes v for an error message.
func (v paramValue) String() string {
	switch v.kind {
	case fParamBool:
		if v.x != 0 {
			return "bool_param true"
		}
		return "bool_param false"
	case fParamInt64:
		return "int64_param " + strconv.FormatInt(int64(v.x), 10)
	case fParamUint64:
		return "uint64_param " + strconv.FormatUint(v.x, 10)
	case fParamString:
		return "a string_param"
	case fParamDouble:
		return "a double_param"
	}
	return "not set"
}

// mapEntry splits b, an entry of a map<string, message> field, into its
// key and its value's message.
func mapEntry(b []byte) (key, value []byte, err error) {
	err = eachField(b, "parameters entry", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fMapKey:
			key = v
		case fMapValue:
			value = v
		}
		return nil
	})
	return key, value, err
}

// decodeParamEntry decodes one map<string, InferParameter> entry.
func decodeParamEntry(b []byte) (key []byte, val paramValue, err error) {
	key, pv, err := mapEntry(b)
	if err != nil {
		return nil, val, err
	}
	err = eachField(pv, "InferParameter", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case (num == fParamBool || num == fParamInt64 || num == fParamUint64) && typ == protowire.VarintType,
			num == fParamDouble && typ == protowire.Fixed64Type:
			val = paramValue{kind: num, x: x}
		case num == fParamString && typ == protowire.BytesType:
			val = paramValue{kind: num, s: v}
		}
		return nil
	})
	return key, val, err
}

// eachField calls f with each field of message b: its number, wire type,
// and value (v for length-delimited fields, x for the others' bits).
// Groups are refused; msg names the message for errors.
func eachField(b []byte, msg string, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireError(msg, n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n >= 0 {
				return errorf("the %s message has a group (field %d); the protocol has none", msg, num)
			}
		}
		if n < 0 {
			return wireError(msg, n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// appendPBShape appends the dimensions of a shape field (repeated int64:
// one varint, or a packed run) to dst, refusing more than MaxRank
// dimensions, as the JSON decoder does, before it holds them. A negative
// dimension is kept: metadata has them, and checks refuse them in
// requests.
func appendPBShape(dst []int64, typ protowire.Type, v []byte, x uint64) ([]int64, error) {
	add := func(d int64) error {
		if len(dst) == MaxRank {
			return errorf("more than %d dimensions", MaxRank)
		}
		dst = append(dst, d)
		return nil
	}
	switch typ {
	case protowire.VarintType:
		return dst, add(int64(x))
	case protowire.BytesType:
		for len(v) > 0 {
			x, n := protowire.ConsumeVarint(v)
			if n < 0 {
				return dst, protowire.ParseError(n)
			}
			if err := add(int64(x)); err != nil {
				return dst, err
			}
			v = v[n:]
		}
		return dst, nil
	}
	return dst, errorf("wire type %d", typ)
}

// AppendModelInferResponse appends r as a ModelInferResponse message:
// each output's name, datatype and shape, and its data in
// raw_output_contents, as Triton answers. Binary is ignored: gRPC data is
// always binary.
func AppendModelInferResponse(dst []byte, r *InferResponse) []byte {
	dst = appendPBString(dst, 1, r.ModelName)
	dst = appendPBString(dst, 2, r.ModelVersion)
	dst = appendPBString(dst, 3, r.ID)
	for i := range r.Outputs {
		t := &r.Outputs[i].Tensor
		dst = protowire.AppendTag(dst, fRespOutputs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(tensorMetadataSize(t.Name, t.Datatype, t.Shape)))
		dst = appendPBTensorMetadata(dst, t.Name, t.Datatype, t.Shape)
	}
	for i := range r.Outputs {
		// An output in shared memory keeps its place with no bytes, as
		// clients find raw contents by the output's index.
		var data []byte
		if o := &r.Outputs[i]; o.SharedMemory.Region == "" {
			data = o.Data
		}
		dst = protowire.AppendTag(dst, fRespRaw, protowire.BytesType)
		dst = protowire.AppendBytes(dst, data)
	}
	return dst
}

// appendPBString appends string field num unless s is empty (proto3's
// default, which is never sent), made valid UTF-8 (pbString).
func appendPBString(dst []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendString(dst, pbString(s))
}

// pbString returns s, with each byte of no valid UTF-8 sequence made
// U+FFFD: a protobuf string must be UTF-8, and a client's protobuf library
// refuses a whole message with one that is not. What the server sends
// may come from disk (a model's tensor names, which ONNX does not hold
// to UTF-8; a path in a load's failure) as well as from requests (which
// the decoders refuse when not UTF-8). Every string the gRPC encoders
// write, and every size they count ahead, goes through it.
func pbString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// tensorMetadataSize is the encoded size of appendPBTensorMetadata's fields.
func tensorMetadataSize(name string, dt DataType, shape []int64) int {
	n := 0
	if name != "" {
		n += 1 + protowire.SizeBytes(len(pbString(name)))
	}
	if s := dt.String(); dt != InvalidType {
		n += 1 + protowire.SizeBytes(len(s))
	}
	if len(shape) > 0 {
		n += 1 + protowire.SizeBytes(packedSize(shape))
	}
	return n
}

// appendPBTensorMetadata appends the name (1), datatype (2) and packed shape
// (3) fields that InferOutputTensor and TensorMetadata share.
func appendPBTensorMetadata(dst []byte, name string, dt DataType, shape []int64) []byte {
	dst = appendPBString(dst, 1, name)
	if dt != InvalidType {
		dst = appendPBString(dst, 2, dt.String())
	}
	if len(shape) > 0 {
		dst = protowire.AppendTag(dst, 3, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(packedSize(shape)))
		for _, d := range shape {
			dst = protowire.AppendVarint(dst, uint64(d))
		}
	}
	return dst
}

// packedSize is the size of shape as packed varints.
func packedSize(shape []int64) int {
	n := 0
	for _, d := range shape {
		n += protowire.SizeVarint(uint64(d))
	}
	return n
}

// DecodeModelRequest decodes a ModelReadyRequest or ModelMetadataRequest
// (both name = 1, version = 2), returning views of b.
func DecodeModelRequest(b []byte) (name, version []byte, err error) {
	err = eachField(b, "model request", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			name = v
		case 2:
			version = v
		}
		return nil
	})
	if err == nil {
		name, version, err = checkModelFields(name, version, "name", "version")
	}
	return name, version, err
}

// AppendBoolMessage appends a message whose field 1 is the bool v:
// ServerLiveResponse, ServerReadyResponse, ModelReadyResponse.
func AppendBoolMessage(dst []byte, v bool) []byte {
	if !v {
		return dst // false is proto3's default: nothing is sent
	}
	dst = protowire.AppendTag(dst, 1, protowire.VarintType)
	return protowire.AppendVarint(dst, 1)
}

// AppendServerMetadataResponse appends md as a ServerMetadataResponse.
func AppendServerMetadataResponse(dst []byte, md *ServerMetadata) []byte {
	dst = appendPBString(dst, 1, md.Name)
	dst = appendPBString(dst, 2, md.Version)
	for _, e := range md.Extensions {
		dst = protowire.AppendTag(dst, 3, protowire.BytesType)
		dst = protowire.AppendString(dst, pbString(e))
	}
	return dst
}

// AppendModelMetadataResponse appends md as a ModelMetadataResponse.
func AppendModelMetadataResponse(dst []byte, md *ModelMetadata) []byte {
	dst = appendPBString(dst, 1, md.Name)
	for _, v := range md.Versions {
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendString(dst, pbString(v))
	}
	dst = appendPBString(dst, 3, md.Platform)
	for _, list := range [...]struct {
		num protowire.Number
		ts  []TensorMetadata
	}{{4, md.Inputs}, {5, md.Outputs}} {
		for i := range list.ts {
			t := &list.ts[i]
			dst = protowire.AppendTag(dst, list.num, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(tensorMetadataSize(t.Name, t.Datatype, t.Shape)))
			dst = appendPBTensorMetadata(dst, t.Name, t.Datatype, t.Shape)
		}
	}
	return dst
}

// AppendModelInferRequest appends req as a ModelInferRequest for model
// and version ("" for the model's default): its inputs' data in
// raw_input_contents, as Triton's clients send it, and the parameters
// that DecodeModelInferRequest reads (timeout, priority, cache_bypass,
// unit_id; per output, classification) where set.
func AppendModelInferRequest(dst []byte, model, version string, req *InferRequest) []byte {
	dst = appendPBString(dst, fInferModelName, model)
	dst = appendPBString(dst, fInferModelVer, version)
	dst = appendPBString(dst, fInferID, req.ID)
	if req.TimeoutMicros > 0 {
		dst = appendIntParam(dst, fInferParams, "timeout", req.TimeoutMicros)
	}
	if req.Priority > 0 {
		dst = appendIntParam(dst, fInferParams, "priority", req.Priority)
	}
	if req.CacheBypass {
		dst = appendParam(dst, fInferParams, "cache_bypass", fParamBool, 1, "")
	}
	if req.UnitID != "" {
		dst = appendParam(dst, fInferParams, "unit_id", fParamString, 0, req.UnitID)
	}
	for i := range req.Inputs {
		t := &req.Inputs[i]
		dst = protowire.AppendTag(dst, fInferInputs, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(tensorMetadataSize(t.Name, t.Datatype, t.Shape)))
		dst = appendPBTensorMetadata(dst, t.Name, t.Datatype, t.Shape)
	}
	for i := range req.Outputs {
		o := &req.Outputs[i]
		var entry []byte
		entry = appendPBString(entry, fOutputName, o.Name)
		if o.Classification > 0 {
			entry = appendIntParam(entry, fOutputParams, "classification", o.Classification)
		}
		dst = protowire.AppendTag(dst, fInferOutputs, protowire.BytesType)
		dst = protowire.AppendBytes(dst, entry)
	}
	for i := range req.Inputs {
		dst = protowire.AppendTag(dst, fInferRaw, protowire.BytesType)
		dst = protowire.AppendBytes(dst, req.Inputs[i].Data)
	}
	return dst
}

// appendIntParam appends a parameters map entry key of int64_param x as
// field num.
func appendIntParam(dst []byte, num protowire.Number, key string, x int64) []byte {
	return appendParam(dst, num, key, fParamInt64, uint64(x), "")
}

// appendParam appends a parameters map entry key as field num, holding
// the InferParameter whose oneof field kind is x (varint kinds) or s
// (string_param).
func appendParam(dst []byte, num protowire.Number, key string, kind protowire.Number, x uint64, s string) []byte {
	// Written in place, sizes first: no buffer for the entry or its
	// value (a stream's every answer carries one).
	key = pbString(key)
	var val int
	if kind == fParamString {
		s = pbString(s)
		val = protowire.SizeTag(kind) + protowire.SizeBytes(len(s))
	} else {
		val = protowire.SizeTag(kind) + protowire.SizeVarint(x)
	}
	entry := protowire.SizeTag(fMapValue) + protowire.SizeBytes(val)
	if key != "" {
		entry += protowire.SizeTag(fMapKey) + protowire.SizeBytes(len(key))
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(entry))
	dst = appendPBString(dst, fMapKey, key)
	dst = protowire.AppendTag(dst, fMapValue, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(val))
	if kind == fParamString {
		dst = protowire.AppendTag(dst, kind, protowire.BytesType)
		return protowire.AppendString(dst, s)
	}
	dst = protowire.AppendTag(dst, kind, protowire.VarintType)
	return protowire.AppendVarint(dst, x)
}

// DecodeModelInferResponse decodes b, a ModelInferResponse, into resp:
// each output's name, datatype, shape and data, from raw_output_contents
// or its typed contents. Data is copied: resp does not keep b. Every
// output comes back with Binary set.
func DecodeModelInferResponse(resp *InferResponse, b []byte) error {
	resp.Reset()
	var raw, contents [][]byte
	err := eachField(b, "ModelInferResponse", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			resp.ModelName = resp.names.get(v)
		case 2:
			resp.ModelVersion = resp.names.get(v)
		case 3:
			resp.ID = string(v)
		case fRespOutputs:
			if len(resp.Outputs) == MaxTensors {
				return errorf("the response has more than %d outputs", MaxTensors)
			}
			var o *OutputTensor
			if len(resp.Outputs) < cap(resp.Outputs) {
				resp.Outputs = resp.Outputs[:len(resp.Outputs)+1]
			} else {
				resp.Outputs = append(resp.Outputs, OutputTensor{})
			}
			o = &resp.Outputs[len(resp.Outputs)-1]
			o.reset()
			o.Binary = true
			var dt []byte
			var c []byte
			err := eachField(v, "InferOutputTensor", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch num {
				case fTensorName:
					o.Name = resp.names.get(v)
				case fTensorDatatype:
					dt = v
				case fTensorShape:
					var err error
					if o.Shape, err = appendPBShape(o.Shape, typ, v, x); err != nil {
						return errorf("output %q: shape: %s", o.Name, err.Error())
					}
				case fTensorContents:
					if c = v; c == nil {
						c = []byte{}
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if o.Datatype = lookupDataType(dt); o.Datatype == InvalidType {
				return errorf("output %q has datatype %q", o.Name, dt)
			}
			contents = append(contents, c)
		case fRespRaw:
			if len(raw) == MaxTensors {
				return errorf("the response has more than %d raw_output_contents", MaxTensors)
			}
			raw = append(raw, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(raw) > 0 {
		if len(raw) != len(resp.Outputs) {
			return errorf("the response has %d raw_output_contents for %s", len(raw), plural(int64(len(resp.Outputs)), "output"))
		}
		for i, r := range raw {
			resp.Outputs[i].Data = append(resp.Outputs[i].Data[:0], r...)
		}
		return nil
	}
	for i := range resp.Outputs {
		if err := decodeContents(&resp.Outputs[i].Tensor, contents[i]); err != nil {
			return err
		}
	}
	return nil
}

// PeekModelInferRequest returns the model and version a ModelInferRequest
// message b names, and its unit_id parameter (views of b; empty when
// absent), reading its top-level fields and parameters only, not its
// tensors: enough to pick the version, and to refuse a request before
// the work of decoding it. DecodeModelInferRequest checks the rest.
func PeekModelInferRequest(b []byte) (model, version, unit []byte, err error) {
	err = eachField(b, "ModelInferRequest", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil // DecodeModelInferRequest says what is wrong
		}
		switch num {
		case fInferModelName:
			model = v
		case fInferModelVer:
			version = v
		case fInferParams:
			key, val, err := decodeParamEntry(v)
			if err != nil {
				return err
			}
			if string(key) == "unit_id" && val.kind == fParamString {
				unit = val.s
			}
		}
		return nil
	})
	if err == nil {
		model, version, err = checkModelFields(model, version, "model_name", "model_version")
	}
	return model, version, unit, err
}

// Bounds on the names a request gives, which errors echo back: a model
// name (registry.CheckName allows 128 bytes) and a version number.
const (
	maxModelNameLen = 256
	maxVersionLen   = 32
)

// checkModelFields checks the model name and version fields of a request
// (nameField and versionField name them): a name is needed, neither may
// be long, and an empty version, which proto3 takes for unset, is nil.
func checkModelFields(name, version []byte, nameField, versionField string) ([]byte, []byte, error) {
	switch {
	case len(name) == 0:
		return nil, nil, errorf("the request names no model: set %s", nameField)
	case len(name) > maxModelNameLen:
		return nil, nil, errorf("%s has %d bytes; a model name has at most %d", nameField, len(name), maxModelNameLen)
	case len(version) > maxVersionLen:
		return nil, nil, errorf("%s has %d bytes; a version is a number", versionField, len(version))
	case !utf8.Valid(name):
		return nil, nil, errorf("%s is not valid UTF-8 (a protobuf string must be)", nameField)
	case !utf8.Valid(version):
		return nil, nil, errorf("%s is not valid UTF-8 (a protobuf string must be)", versionField)
	}
	if len(version) == 0 {
		version = nil
	}
	return name, version, nil
}
