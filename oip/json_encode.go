package oip

import (
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// AppendResponse appends the encoded resp to dst and returns the result and
// the length of its JSON header: outputs with Binary set have a
// "binary_data_size" parameter instead of "data", and their bytes follow the
// JSON in order. A server sets the Inference-Header-Content-Length header
// to headerLen only when some output is binary; otherwise out is JSON only.
// The "id" member is left out when resp.ID is empty.
//
// Floats are written as the shortest decimals that parse back to the same
// value (FP32 at 32 bits), NaN and infinities as the strings "NaN",
// "Infinity" and "-Infinity", and BYTES elements as JSON strings, with
// bytes that are not UTF-8 replaced by U+FFFD (ask for binary outputs to get
// such bytes as they are). AppendResponse does not check resp: it writes
// the whole elements that Data holds, whatever Shape says; check model
// outputs with Tensor.CheckData where they may disagree.
//
// AppendResponse does not allocate when dst has room.
func AppendResponse(dst []byte, resp *InferResponse) (out []byte, headerLen int) {
	start := len(dst)
	dst = append(dst, `{"model_name":`...)
	dst = appendString(dst, resp.ModelName)
	dst = append(dst, `,"model_version":`...)
	dst = appendString(dst, resp.ModelVersion)
	if resp.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, resp.ID)
	}
	dst = append(dst, `,"outputs":[`...)
	for i := range resp.Outputs {
		if i > 0 {
			dst = append(dst, ',')
		}
		o := &resp.Outputs[i]
		if o.SharedMemory.Region != "" {
			dst = appendSharedTensor(dst, o)
			continue
		}
		dst = appendTensor(dst, &o.Tensor, o.Binary)
	}
	dst = append(dst, "]}"...)
	headerLen = len(dst) - start
	for i := range resp.Outputs {
		if o := &resp.Outputs[i]; o.Binary && o.SharedMemory.Region == "" {
			dst = append(dst, o.Data...)
		}
	}
	return dst, headerLen
}

// appendSharedTensor appends the object of output o, whose data went to
// shared memory: its name, datatype and shape alone, as Triton answers
// (its clients take "parameters" on an output to mean binary data).
func appendSharedTensor(dst []byte, o *OutputTensor) []byte {
	dst = appendTensorHead(dst, &o.Tensor)
	return append(dst, '}')
}

// AppendRequest appends the encoded req to dst and returns the result and
// the length of its JSON header. With binaryInputs, every input is sent as
// a binary tensor after the JSON, and the caller sets the
// Inference-Header-Content-Length header to headerLen; otherwise every
// input has "data" and out is JSON only. Parameters at their zero values
// are left out. Elements are written as AppendResponse writes them.
//
// AppendRequest does not allocate when dst has room.
func AppendRequest(dst []byte, req *InferRequest, binaryInputs bool) (out []byte, headerLen int) {
	start := len(dst)
	dst = append(dst, '{')
	if req.ID != "" {
		dst = append(dst, `"id":`...)
		dst = appendString(dst, req.ID)
		dst = append(dst, ',')
	}
	if req.BinaryDataOutput || req.TimeoutMicros != 0 || req.Priority != 0 || req.CacheBypass || req.UnitID != "" {
		dst = append(dst, `"parameters":{`...)
		comma := false
		sep := func(dst []byte) []byte {
			if comma {
				dst = append(dst, ',')
			}
			comma = true
			return dst
		}
		if req.BinaryDataOutput {
			dst = append(sep(dst), `"binary_data_output":true`...)
		}
		if req.TimeoutMicros != 0 {
			dst = append(sep(dst), `"timeout":`...)
			dst = strconv.AppendInt(dst, req.TimeoutMicros, 10)
		}
		if req.Priority != 0 {
			dst = append(sep(dst), `"priority":`...)
			dst = strconv.AppendInt(dst, req.Priority, 10)
		}
		if req.CacheBypass {
			dst = append(sep(dst), `"cache_bypass":true`...)
		}
		if req.UnitID != "" {
			dst = append(sep(dst), `"unit_id":`...)
			dst = appendString(dst, req.UnitID)
		}
		dst = append(dst, "},"...)
	}
	dst = append(dst, `"inputs":[`...)
	shared := req.SharedInputs
	for i := range req.Inputs {
		if i > 0 {
			dst = append(dst, ',')
		}
		t := &req.Inputs[i]
		if len(shared) > 0 && shared[0].Index == i {
			dst = appendTensorHead(dst, t)
			dst = append(dst, `,"parameters":{`...)
			dst = appendSharedRef(dst, &shared[0].Ref)
			dst = append(dst, "}}"...)
			shared = shared[1:]
			continue
		}
		dst = appendTensor(dst, t, binaryInputs)
	}
	dst = append(dst, ']')
	if len(req.Outputs) > 0 {
		dst = append(dst, `,"outputs":[`...)
		for i := range req.Outputs {
			o := &req.Outputs[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = appendString(dst, o.Name)
			if o.HasBinary || o.Classification > 0 || o.SharedMemory.Region != "" {
				dst = append(dst, `,"parameters":{`...)
				comma := false
				if o.HasBinary {
					dst = append(dst, `"binary_data":`...)
					dst = strconv.AppendBool(dst, o.Binary)
					comma = true
				}
				if o.Classification > 0 {
					if comma {
						dst = append(dst, ',')
					}
					dst = append(dst, `"classification":`...)
					dst = strconv.AppendInt(dst, o.Classification, 10)
					comma = true
				}
				if o.SharedMemory.Region != "" {
					if comma {
						dst = append(dst, ',')
					}
					dst = appendSharedRef(dst, &o.SharedMemory)
				}
				dst = append(dst, '}')
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, '}')
	headerLen = len(dst) - start
	if binaryInputs {
		shared := req.SharedInputs
		for i := range req.Inputs {
			if len(shared) > 0 && shared[0].Index == i {
				shared = shared[1:]
				continue
			}
			dst = append(dst, req.Inputs[i].Data...)
		}
	}
	return dst, headerLen
}

// appendSharedRef appends the shared memory parameters of ref as members
// of a "parameters" object.
func appendSharedRef(dst []byte, ref *SharedMemoryRef) []byte {
	dst = append(dst, `"shared_memory_region":`...)
	dst = appendString(dst, ref.Region)
	dst = append(dst, `,"shared_memory_byte_size":`...)
	dst = strconv.AppendInt(dst, ref.ByteSize, 10)
	if ref.Offset != 0 {
		dst = append(dst, `,"shared_memory_offset":`...)
		dst = strconv.AppendInt(dst, ref.Offset, 10)
	}
	return dst
}

// AppendError appends the error body {"error":"msg"} to dst.
func AppendError(dst []byte, msg string) []byte {
	dst = append(dst, `{"error":`...)
	dst = appendString(dst, msg)
	return append(dst, '}')
}

// appendTensor appends a tensor object; with binaryData it has a
// "binary_data_size" parameter instead of "data".
func appendTensor(dst []byte, t *Tensor, binaryData bool) []byte {
	dst = appendTensorHead(dst, t)
	if binaryData {
		dst = append(dst, `,"parameters":{"binary_data_size":`...)
		dst = strconv.AppendInt(dst, int64(len(t.Data)), 10)
		return append(dst, "}}"...)
	}
	dst = append(dst, `,"data":`...)
	dst = appendData(dst, t.Datatype, t.Data)
	return append(dst, '}')
}

// appendTensorHead opens a tensor object with its name, datatype and
// shape.
func appendTensorHead(dst []byte, t *Tensor) []byte {
	dst = append(dst, `{"name":`...)
	dst = appendString(dst, t.Name)
	dst = append(dst, `,"datatype":"`...)
	dst = append(dst, t.Datatype.String()...)
	dst = append(dst, `","shape":`...)
	return appendShape(dst, t.Shape)
}

// appendShape appends a shape as a JSON array.
func appendShape(dst []byte, shape []int64) []byte {
	dst = append(dst, '[')
	for i, d := range shape {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, d, 10)
	}
	return append(dst, ']')
}

// appendData appends data, laid out as Tensor.Data documents, as a flat
// JSON array of elements of type dt. A partial element at the end is left
// out.
func appendData(dst []byte, dt DataType, data []byte) []byte {
	dst = append(dst, '[')
	if dt == BYTES {
		for i := 0; len(data) > 0; i++ {
			elem, rest, ok := nextBytesElement(data)
			if !ok {
				break
			}
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, unsafeString(elem))
			data = rest
		}
		return append(dst, ']')
	}
	size := dt.Size()
	if size == 0 {
		return append(dst, ']')
	}
	n := len(data) / size
	for i := 0; i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		e := data[i*size : i*size+size]
		if dt == FP32 {
			// The common case, without the call.
			dst = appendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(e))), 32)
			continue
		}
		dst = appendElement(dst, dt, e)
	}
	return append(dst, ']')
}

// appendElement appends e, one element of fixed-size type dt, as JSON.
func appendElement(dst []byte, dt DataType, e []byte) []byte {
	switch dt {
	case FP32:
		dst = appendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(e))), 32)
	case FP64:
		dst = appendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(e)), 64)
	case FP16:
		h := binary.LittleEndian.Uint16(e)
		if h&0x7c00 == 0x7c00 {
			dst = appendFloat(dst, float64(halfToFloat32(h)), 32)
		} else {
			dst = appendHalf(dst, h)
		}
	case BOOL:
		dst = strconv.AppendBool(dst, e[0] != 0)
	case UINT8:
		dst = strconv.AppendUint(dst, uint64(e[0]), 10)
	case UINT16:
		dst = strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint16(e)), 10)
	case UINT32:
		dst = strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint32(e)), 10)
	case UINT64:
		dst = strconv.AppendUint(dst, binary.LittleEndian.Uint64(e), 10)
	case INT8:
		dst = strconv.AppendInt(dst, int64(int8(e[0])), 10)
	case INT16:
		dst = strconv.AppendInt(dst, int64(int16(binary.LittleEndian.Uint16(e))), 10)
	case INT32:
		dst = strconv.AppendInt(dst, int64(int32(binary.LittleEndian.Uint32(e))), 10)
	case INT64:
		dst = strconv.AppendInt(dst, int64(binary.LittleEndian.Uint64(e)), 10)
	}
	return dst
}

// appendFloat appends f as the shortest decimal that parses back to it at
// bitSize bits, or as a string when JSON has no number for it.
func appendFloat(dst []byte, f float64, bitSize int) []byte {
	switch {
	case f != f:
		return append(dst, `"NaN"`...)
	case f > math.MaxFloat64:
		return append(dst, `"Infinity"`...)
	case f < -math.MaxFloat64:
		return append(dst, `"-Infinity"`...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bitSize)
}

// unsafeString returns b as a string without copying; the string must not
// outlive b or be kept.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// jsonSafe marks the ASCII bytes a JSON string holds as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string. Control characters are
// escaped, as are U+2028 and U+2029 for JavaScript's sake, and bytes that
// are not UTF-8 become U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				const hex = "0123456789abcdef"
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, "89"[r-'\u2028'])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendTensorJSON appends t as a JSON object of the protocol, its data as
// a JSON array: {"name", "datatype", "shape", "data"}.
func AppendTensorJSON(dst []byte, t *Tensor) []byte {
	return appendTensor(dst, t, false)
}

// AppendJSONString appends s as a JSON string, escaped.
func AppendJSONString(dst []byte, s string) []byte {
	return appendString(dst, s)
}
