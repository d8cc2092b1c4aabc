package oip

import "google.golang.org/protobuf/encoding/protowire"

// Triton's streaming method, ModelStreamInfer: a stream of
// ModelInferRequest messages one way and of ModelStreamInferResponse
// messages the other, each of which holds an error_message (1) or an
// infer_response (2), a ModelInferResponse whose parameters (4) say more
// of the answer.

// Field numbers of ModelStreamInferResponse, and of the parameters of
// ModelInferResponse.
const (
	fStreamError    = 1
	fStreamResponse = 2
	fRespParams     = 4
)

// Parameters of ModelInferResponse that a stream's answers carry.
const (
	// ParamFinalResponse (bool) is true on a request's last answer; every
	// request of a model that is not decoupled has one answer, so it is
	// always true, as Triton sends it.
	ParamFinalResponse = "triton_final_response"
	// ParamExperimentArm (string) is the experiment arm that answered,
	// which a unary call gets in the x-experiment-arm metadata.
	ParamExperimentArm = "experiment_arm"
	// ParamCacheHit (bool) is set when the response cache answered.
	ParamCacheHit = "cache_hit"
	// ParamErrorCode (string) is the gRPC status code of a failed
	// request, such as "RESOURCE_EXHAUSTED", which Triton's
	// error_message alone does not give.
	ParamErrorCode = "error_code"
	// ParamRetryAfter (int64) is the seconds a client should wait before
	// sending a request that was shed again, as the retry-after trailer
	// of a unary call says.
	ParamRetryAfter = "retry_after"
)

// StatusCodeNames are gRPC's status codes, indexed by number, as its
// specification spells them: the values of ParamErrorCode.
var StatusCodeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// AppendResponseBoolParam appends to dst, a ModelInferResponse, the
// parameter key holding v.
func AppendResponseBoolParam(dst []byte, key string, v bool) []byte {
	x := uint64(0)
	if v {
		x = 1
	}
	return appendParam(dst, fRespParams, key, fParamBool, x, "")
}

// AppendResponseIntParam appends to dst, a ModelInferResponse, the
// parameter key holding the int64 x.
func AppendResponseIntParam(dst []byte, key string, x int64) []byte {
	return appendIntParam(dst, fRespParams, key, x)
}

// AppendResponseStringParam appends to dst, a ModelInferResponse, the
// parameter key holding s.
func AppendResponseStringParam(dst []byte, key, s string) []byte {
	return appendParam(dst, fRespParams, key, fParamString, 0, s)
}

// ModelStreamInferResponseSize is the size of the ModelStreamInferResponse
// that AppendModelStreamInferResponse appends for errMsg and an
// infer_response of size n.
func ModelStreamInferResponseSize(errMsg string, n int) int {
	size := 1 + protowire.SizeBytes(n)
	if errMsg != "" {
		size += 1 + protowire.SizeBytes(len(errMsg))
	}
	return size
}

// AppendModelStreamInferResponse appends a ModelStreamInferResponse of
// errMsg ("" for none) and inner, an encoded ModelInferResponse (sent
// even when empty, as Triton sends one with an error to name its
// request).
func AppendModelStreamInferResponse(dst []byte, errMsg string, inner []byte) []byte {
	dst = appendPBString(dst, fStreamError, errMsg)
	dst = protowire.AppendTag(dst, fStreamResponse, protowire.BytesType)
	return protowire.AppendBytes(dst, inner)
}

// DecodeModelStreamInferResponse decodes b, a ModelStreamInferResponse,
// into its error_message and its infer_response (a view of b, for
// DecodeModelInferResponse and DecodeResponseParams).
func DecodeModelStreamInferResponse(b []byte) (errMsg string, inner []byte, err error) {
	err = eachField(b, "ModelStreamInferResponse", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fStreamError:
			errMsg = string(v)
		case fStreamResponse:
			inner = v
		}
		return nil
	})
	return errMsg, inner, err
}

// ResponseParam is a parameter of a ModelInferResponse: one of Bool, Int
// and String is set, as Kind says (ParamBool, ParamInt, ParamString).
type ResponseParam struct {
	Kind   ParamKind
	Bool   bool
	Int    int64
	String string
}

// ParamKind says which value of an InferParameter is set.
type ParamKind int

// The kinds of an InferParameter that DecodeResponseParams reads; others
// (Triton's double and uint64) read as ParamOther.
const (
	ParamOther ParamKind = iota
	ParamBool
	ParamInt
	ParamString
)

// DecodeResponseParams calls f with each parameter of b, a
// ModelInferResponse.
func DecodeResponseParams(b []byte, f func(key string, v ResponseParam)) error {
	return eachField(b, "ModelInferResponse", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fRespParams || typ != protowire.BytesType {
			return nil
		}
		key, val, err := decodeParamEntry(v)
		if err != nil {
			return err
		}
		p := ResponseParam{}
		switch val.kind {
		case fParamBool:
			p.Kind, p.Bool = ParamBool, val.x != 0
		case fParamInt64:
			p.Kind, p.Int = ParamInt, int64(val.x)
		case fParamString:
			p.Kind, p.String = ParamString, string(val.s)
		}
		f(string(key), p)
		return nil
	})
}

// ModelInferRequestID returns the id of b, a ModelInferRequest, or
// whatever of it reads before b turns out malformed: for naming a
// request whose answer is an error.
func ModelInferRequestID(b []byte) string {
	var id []byte
	_ = eachField(b, "ModelInferRequest", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num == fInferID && typ == protowire.BytesType {
			id = v
		}
		return nil
	})
	return string(id)
}
