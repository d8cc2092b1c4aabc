package gateway_test

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/registry"
)

// TestFeedbackArrayMemory: a feedback body far over what the log takes at
// once is refused with 413 before it is decoded (found by a reviewing
// helper: it was decoded and encoded whole first, several hundred bytes
// of heap per 21-byte entry: over a gigabyte for a body near --max-body).
// The test sends 8 MiB and allows 8x the body.
func TestFeedbackArrayMemory(t *testing.T) {
	s, _, _ := startTraffic(t, 100, registry.ModelConfig{})
	const entry = `{"id":"a","label":1},`
	var b bytes.Buffer
	b.WriteByte('[')
	for b.Len() < 8<<20 {
		b.WriteString(entry)
	}
	body := b.Bytes()
	body[len(body)-1] = ']'
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := s.post(t, "/v2/models/ctr/feedback", body)
	runtime.ReadMemStats(&after)
	if r.code != fasthttp.StatusRequestEntityTooLarge {
		t.Fatalf("feedback of %d bytes: %s; want 413", len(body), r)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte feedback body (%d entries) answered %d after allocating %d MB", len(body), len(body)/len(entry), r.code, alloc>>20)
	if alloc > 8*uint64(len(body)) {
		t.Fatalf("refusing a %d-byte feedback array with 413 allocated %d bytes (%.0fx the body); the decode and the encode run to the end before the size check",
			len(body), alloc, float64(alloc)/float64(len(body)))
	}
}
