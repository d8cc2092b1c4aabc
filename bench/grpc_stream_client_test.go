package bench

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/infergate/infergate/oip"
)

// TestStreamAnswerErrKind: an answer of a stream that holds an error is
// classified by its error_code and retry_after as a call's status and
// trailer are.
func TestStreamAnswerErrKind(t *testing.T) {
	f := func(shedding bool, code string, retry int64, want string) {
		t.Helper()
		b := oip.AppendModelInferResponse(nil, &oip.InferResponse{ModelName: "ctr", ID: "1"})
		if code != "" {
			b = oip.AppendResponseStringParam(b, oip.ParamErrorCode, code)
		}
		if retry != 0 {
			b = oip.AppendResponseIntParam(b, oip.ParamRetryAfter, retry)
		}
		if got := streamAnswerErrKind(b, shedding); got != want {
			t.Fatalf("shedding %v, code %q, retry_after %d: got %q; want %q", shedding, code, retry, got, want)
		}
	}
	f(true, "RESOURCE_EXHAUSTED", 1, outcomeShed)
	f(true, "UNAVAILABLE", 1, outcomeShed)
	f(true, "DEADLINE_EXCEEDED", 1, outcomeShed)
	f(true, "UNAVAILABLE", 0, ErrKindShedWithoutRetryAfter)
	f(false, "UNAVAILABLE", 1, "grpc_Unavailable")
	f(false, "DEADLINE_EXCEEDED", 0, ErrKindTimeout)
	f(true, "NOT_FOUND", 0, "grpc_NotFound")
	f(false, "INVALID_ARGUMENT", 0, "grpc_InvalidArgument")
	f(false, "", 0, ErrKindBadBody)
	f(false, "NO_SUCH_CODE", 0, ErrKindBadBody)
}

// TestGRPCCodeNames: every code has the specification's name.
func TestGRPCCodeNames(t *testing.T) {
	f := func(name string, want codes.Code) {
		t.Helper()
		if got, ok := grpcCodeByName[name]; !ok || got != want {
			t.Fatalf("%s: got %v (%v); want %v", name, got, ok, want)
		}
	}
	f("OK", codes.OK)
	f("CANCELLED", codes.Canceled)
	f("INVALID_ARGUMENT", codes.InvalidArgument)
	f("DEADLINE_EXCEEDED", codes.DeadlineExceeded)
	f("RESOURCE_EXHAUSTED", codes.ResourceExhausted)
	f("FAILED_PRECONDITION", codes.FailedPrecondition)
	f("OUT_OF_RANGE", codes.OutOfRange)
	f("DATA_LOSS", codes.DataLoss)
	f("UNAUTHENTICATED", codes.Unauthenticated)
	// Each name is Go's for its number, but for the underscores (and
	// Go's spelling of CANCELLED).
	for c, name := range oip.StatusCodeNames {
		goName := strings.ToUpper(codes.Code(c).String())
		if plain := strings.ReplaceAll(name, "_", ""); plain != goName && name != "CANCELLED" {
			t.Fatalf("code %d is %s; Go calls it %s", c, name, codes.Code(c))
		}
	}
	if len(oip.StatusCodeNames) != int(codes.Unauthenticated)+1 {
		t.Fatalf("%d names; want %d", len(oip.StatusCodeNames), codes.Unauthenticated+1)
	}
}
