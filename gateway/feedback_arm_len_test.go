package gateway_test

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/registry"
)

// TestFeedbackArmLength: an arm name of 64 bytes, which no experiment
// can have (1 to 63), is refused (found by a reviewing helper: the check
// was off by one).
func TestFeedbackArmLength(t *testing.T) {
	s, _, _ := startTraffic(t, 100, registry.ModelConfig{})
	r := s.post(t, "/v2/models/ctr/feedback", []byte(`{"id":"a","label":1,"arm":"`+strings.Repeat("a", 64)+`"}`))
	checkError(t, r, fasthttp.StatusBadRequest, "arm names have at most 63")
}
