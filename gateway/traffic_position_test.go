package gateway_test

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/infergate/infergate/registry"
)

// TestTrafficFromInsideZeros: GET /v1/traffic?from=P with P inside a run
// of zero bytes of a record (an all-zero input, common) is 400, as any
// position inside a record is (found by a reviewing helper: the zeros read
// as a record of length 0 with CRC 0, answered 500 as JSON lines and 200
// as binary, with X-Traffic-Next inside the record).
func TestTrafficFromInsideZeros(t *testing.T) {
	s, tl, _ := startTraffic(t, 100, registry.ModelConfig{})
	if r := s.post(t, "/v2/models/ctr/infer", ctrRequest(make([]float32, 64), 1)); r.code != 200 {
		t.Fatalf("infer: %s", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for tl.Stats().Next == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	rec := s.do(t, "GET", "/v1/traffic?format=binary", nil).body
	inside := bytes.Index(rec, make([]byte, 16))
	if inside <= 0 {
		t.Fatalf("no zero run in the record %x", rec)
	}
	from := "?from=" + strconv.Itoa(inside)
	j := s.do(t, "GET", "/v1/traffic"+from, nil)
	b := s.do(t, "GET", "/v1/traffic"+from+"&format=binary&max_bytes=1", nil)
	if j.code != 400 || b.code != 400 {
		t.Fatalf("from=%d, inside the record at 0 (%d bytes): jsonl %s; binary %s (body %x, X-Traffic-Next %s); want 400 for both",
			inside, len(rec), j, b, b.body, b.header["X-Traffic-Next"])
	}
}
