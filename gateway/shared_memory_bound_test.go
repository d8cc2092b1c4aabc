package gateway_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/valyala/fasthttp"
)

// TestSharedMemoryInputsBoundedByMaxBody: the bytes a request has the
// server copy out of shared memory are bounded as its body is, and
// refused before any is copied. Before, a body of a few KiB naming one
// 1 MiB region under 64 inputs had the server copy 64 MiB (and up to
// MaxTensors x MaxElements x 8 bytes, terabytes) before it found that
// the model has no such inputs.
func TestSharedMemoryInputsBoundedByMaxBody(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.MaxBodyBytes = 1 << 20
	s := startShm(t, cfg)
	const rows = 1 << 16 // [rows,4] FP32: 1 MiB
	key := shmObject(t, "big", make([]byte, rows*4*4))
	if r := s.post(t, "/v2/systemsharedmemory/region/big/register", []byte(fmt.Sprintf(`{"key":%q,"byte_size":%d}`, key, rows*4*4))); r.code != 200 {
		t.Fatalf("register: %s", r)
	}
	var ins []string
	for i := range 64 {
		name := "x"
		if i > 0 {
			name = fmt.Sprintf("u%d", i)
		}
		ins = append(ins, fmt.Sprintf(`{"name":%q,"datatype":"FP32","shape":[%d,4],"parameters":{"shared_memory_region":"big","shared_memory_byte_size":%d}}`, name, rows, rows*4*4))
	}
	body := []byte(`{"inputs":[` + strings.Join(ins, ",") + `]}`)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := s.post(t, fakeInfer, body)
	runtime.ReadMemStats(&after)
	checkError(t, r, fasthttp.StatusRequestEntityTooLarge, "--max-body")
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Fatalf("the refused request allocated %d MiB; want it refused before copying", n>>20)
	}
}
