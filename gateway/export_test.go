package gateway

import (
	"encoding/hex"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// CacheReserved reports whether s's response cache has taken its memory;
// for the tests of package gateway_test.
func CacheReserved(s *Server) bool { return s.cache != nil && s.cache.Reserved() }

// HelpTexts gives the external tests (alert_rules_test.go) the families
// /metrics may carry, serve's own (TLS, disk) among them, which no
// in-process test server exports.
var HelpTexts = helpTexts

// OTLPSpan is a span of an OTLP export request, as the tests of package
// gateway_test look at it.
type OTLPSpan struct {
	Name, TraceID, SpanID, ParentID, TraceState, Status string
	Attrs                                               map[string]string
}

// OTLPSpans decodes the spans of an OTLP ExportTraceServiceRequest.
func OTLPSpans(t *testing.T, body []byte) []OTLPSpan {
	_, _, spans := otlpSpans(t, body)
	var out []OTLPSpan
	for _, s := range spans {
		h := func(n protowire.Number) string {
			if len(s[n]) == 0 {
				return ""
			}
			return hex.EncodeToString(s[n][0].([]byte))
		}
		sp := OTLPSpan{Name: s.str(5), TraceID: h(1), SpanID: h(2), ParentID: h(4), Attrs: s.attrs(t, 9)}
		if s[3] != nil {
			sp.TraceState = s.str(3)
		}
		if s[15] != nil {
			sp.Status = s.msg(t, 15).str(2)
		}
		out = append(out, sp)
	}
	return out
}

// SetOTelDelay sets how long spans wait for more, and returns a function
// that puts it back.
func SetOTelDelay(d time.Duration) func() {
	old := otelDelay
	otelDelay = d
	return func() { otelDelay = old }
}
