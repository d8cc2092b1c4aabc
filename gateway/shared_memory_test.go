package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// shmObject creates a POSIX shared memory object (a file in /dev/shm,
// where shm_open makes them) holding data, removed when the test ends,
// and returns its key.
func shmObject(t *testing.T, suffix string, data []byte) string {
	t.Helper()
	key := fmt.Sprintf("infergate-test-%d-%s-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"), suffix)
	path := filepath.Join("/dev/shm", key)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return "/" + key
}

// shmRead returns the first n bytes of object key.
func shmRead(t *testing.T, key string, n int) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/dev/shm", key))
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

func startShm(t *testing.T, cfg gateway.Config) *testServer {
	cfg.SharedMemory = true
	return startFake(t, newFakeBackend(), cfg, registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
}

// Triton's system shared memory over HTTP: regions registered, listed and
// unregistered; an input read from one and an output written to another,
// with the response saying where; every mistake a 4xx that names it.
func TestSharedMemoryHTTP(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.InferenceToken = "tok"
	s := startShm(t, cfg)
	auth := []string{"Authorization", "Bearer tok"}
	post := func(uri, body string) response {
		t.Helper()
		return s.post(t, uri, []byte(body), auth...)
	}
	in := shmObject(t, "in", f32Bytes([]float32{1, 2, 3, 4}))
	out := shmObject(t, "out", make([]byte, 8))
	if r := post("/v2/systemsharedmemory/region/in/register", `{"key":"`+in+`","offset":0,"byte_size":16}`); r.code != 200 {
		t.Fatalf("register in: %s", r)
	}
	if r := post("/v2/systemsharedmemory/region/out/register", `{"key":"`+out+`","offset":4,"byte_size":4}`); r.code != 200 {
		t.Fatalf("register out: %s", r)
	}
	checkError(t, post("/v2/systemsharedmemory/region/out/register", `{"key":"`+out+`","byte_size":4}`), fasthttp.StatusConflict, `"out"; unregister it first`)
	checkError(t, post("/v2/systemsharedmemory/region/x/register", `{"key":"/nope-`+fmt.Sprint(os.Getpid())+`","byte_size":4}`), fasthttp.StatusBadRequest, "no shared memory object")
	checkError(t, post("/v2/systemsharedmemory/region/x/register", `{"key":"`+in+`"}`), fasthttp.StatusBadRequest, `"key" and "byte_size"`)
	checkError(t, post("/v2/systemsharedmemory/region/x/register", `{"key":"`+in+`","byte_size":17}`), fasthttp.StatusBadRequest, "has 16 bytes")
	checkError(t, s.do(t, "GET", "/v2/systemsharedmemory/status", nil), fasthttp.StatusUnauthorized, "inference token")
	r := s.do(t, "GET", "/v2/systemsharedmemory/status", nil, auth...)
	want := fmt.Sprintf(`[{"name":"in","key":%q,"offset":0,"byte_size":16},{"name":"out","key":%q,"offset":4,"byte_size":4}]`, in, out)
	if r.code != 200 || string(r.body) != want {
		t.Fatalf("status: got %s; want %s", r, want)
	}
	checkError(t, s.do(t, "GET", "/v2/systemsharedmemory/region/nope/status", nil, auth...), fasthttp.StatusNotFound, `"nope"`)
	text := s.metricsText(t)
	checkMetric(t, text, "infergate_shared_memory_regions", 2)
	checkMetric(t, text, "infergate_shared_memory_bytes", 16+8) // out is mapped from its start
	if r := s.do(t, "GET", "/v2", nil); !strings.Contains(string(r.body), `"system_shared_memory"`) {
		t.Fatalf("GET /v2 does not list the extension: %s", r.body)
	}

	shmReq := func(inSize, outSize int) string {
		return fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"parameters":{"shared_memory_region":"in","shared_memory_byte_size":%d}}],`+
			`"outputs":[{"name":"y","parameters":{"shared_memory_region":"out","shared_memory_byte_size":%d}}]}`, inSize, outSize)
	}
	r = post(fakeInfer, shmReq(16, 4))
	// As Triton answers: Triton's clients take "parameters" on an output
	// to mean binary data after the JSON.
	const wantResp = `{"model_name":"fake","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[1,1]}]}`
	if r.code != 200 || string(r.body) != wantResp {
		t.Fatalf("infer: got %s; want 200 %s", r, wantResp)
	}
	if got := bytesF32(shmRead(t, out[1:], 8)); got[0] != 0 || got[1] != 10 {
		t.Fatalf("out holds %v; want [0 10] (the sum at offset 4)", got)
	}
	// New inputs under the same request bytes: read anew, not replayed
	// from the cache of byte-identical requests.
	os.WriteFile(filepath.Join("/dev/shm", in[1:]), f32Bytes([]float32{1, 1, 1, 1}), 0o600)
	if r := post(fakeInfer, shmReq(16, 4)); r.code != 200 || r.header["X-Cache"] == "hit" {
		t.Fatalf("infer with new inputs: %s", r)
	}
	if got := bytesF32(shmRead(t, out[1:], 8)); got[1] != 4 {
		t.Fatalf("out holds %v after new inputs; want 4 at offset 4", got)
	}
	// The same inputs again: the cache of values answers, and the output
	// still goes to the region.
	os.WriteFile(filepath.Join("/dev/shm", out[1:]), make([]byte, 8), 0o600)
	waitCache(t, s)
	if r := post(fakeInfer, shmReq(16, 4)); r.code != 200 || r.header["X-Cache"] != "hit" {
		t.Fatalf("infer from the cache: %s", r)
	}
	if got := bytesF32(shmRead(t, out[1:], 8)); got[1] != 4 {
		t.Fatalf("out holds %v after a cache hit; want 4 at offset 4", got)
	}
	// A v2 JSON answer for an input read from shared memory.
	r = post(fakeInfer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"parameters":{"shared_memory_region":"in","shared_memory_byte_size":16}}]}`)
	checkFakeAnswerValue(t, r, 4)

	checkError(t, post(fakeInfer, shmReq(12, 4)), fasthttp.StatusBadRequest, "shared_memory_byte_size is 12, but FP32 of shape [1,4] takes 16 bytes")
	checkError(t, post(fakeInfer, strings.Replace(shmReq(16, 4), `"shared_memory_byte_size":16`, `"shared_memory_byte_size":16,"shared_memory_offset":4`, 1)),
		fasthttp.StatusBadRequest, `shared_memory_offset 4 and shared_memory_byte_size 16 reach past region "in", of 16 bytes`)
	checkError(t, post(fakeInfer, shmReq(16, 2)), fasthttp.StatusBadRequest, "the output has 4 bytes but shared_memory_byte_size gives it 2")
	checkError(t, post(fakeInfer, strings.Replace(shmReq(16, 4), `"out"`, `"gone"`, 1)), fasthttp.StatusBadRequest, `output "y"`)
	checkError(t, post(fakeInfer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"parameters":{"shared_memory_region":"in"}}]}`),
		fasthttp.StatusBadRequest, `has parameter "shared_memory_region" alone; give shared_memory_region and shared_memory_byte_size together`)
	checkError(t, post(fakeInfer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4],"parameters":{"shared_memory_region":"in","shared_memory_byte_size":16}}]}`),
		fasthttp.StatusBadRequest, "send its data one way")

	if r := post("/v2/systemsharedmemory/region/in/unregister", ""); r.code != 200 {
		t.Fatalf("unregister in: %s", r)
	}
	checkError(t, post(fakeInfer, shmReq(16, 4)), fasthttp.StatusBadRequest, `"in"; register it first`)
	if r := post("/v2/systemsharedmemory/unregister", ""); r.code != 200 {
		t.Fatalf("unregister all: %s", r)
	}
	if r := s.do(t, "GET", "/v2/systemsharedmemory/status", nil, auth...); string(r.body) != "[]" {
		t.Fatalf("status after unregistering all: %s", r)
	}
}

// checkFakeAnswerValue checks that r is a 200 JSON answer of the fake
// model with one row, y = want.
func checkFakeAnswerValue(t *testing.T, r response, want float32) {
	t.Helper()
	resp := decodeInfer(t, r)
	if got := bytesF32(resp.Outputs[0].Data); len(got) != 1 || got[0] != want {
		t.Fatalf("y: got %v; want [%v]", got, want)
	}
}

// Off, as by default: the endpoints and the parameters say how to turn
// it on, and GET /v2 does not list the extension.
func TestSharedMemoryOff(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	checkError(t, s.do(t, "GET", "/v2/systemsharedmemory/status", nil), fasthttp.StatusNotFound, "start it with serve --shared-memory")
	checkError(t, s.post(t, "/v2/systemsharedmemory/region/a/register", []byte(`{"key":"/a","byte_size":1}`)), fasthttp.StatusNotFound, "--shared-memory")
	checkError(t, s.post(t, fakeInfer, []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"parameters":{"shared_memory_region":"in","shared_memory_byte_size":16}}]}`)),
		fasthttp.StatusBadRequest, "this server does not take shared memory")
	if r := s.do(t, "GET", "/v2", nil); strings.Contains(string(r.body), "shared_memory") {
		t.Fatalf("GET /v2 lists the extension while it is off: %s", r.body)
	}
}

// The same over gRPC: register, infer with an input in shared memory
// (which takes no raw_input_contents entry) and an output written there
// (whose raw_output_contents entry is empty), status, unregister.
func TestSharedMemoryGRPC(t *testing.T) {
	s := startShm(t, gateway.DefaultConfig())
	c := s.serveGRPC(t)
	ctx := context.Background()
	in := shmObject(t, "in", f32Bytes([]float32{1, 2, 3, 4, 5, 5, 5, 5}))
	out := shmObject(t, "out", make([]byte, 8))
	register := func(name, key string, offset, size uint64) error {
		m := pbtest.New("SystemSharedMemoryRegisterRequest")
		fs := m.Descriptor().Fields()
		m.Set(fs.ByName("name"), protoreflect.ValueOfString(name))
		m.Set(fs.ByName("key"), protoreflect.ValueOfString(key))
		m.Set(fs.ByName("offset"), protoreflect.ValueOfUint64(offset))
		m.Set(fs.ByName("byte_size"), protoreflect.ValueOfUint64(size))
		_, err := c.call(ctx, "SystemSharedMemoryRegister", m, "SystemSharedMemoryRegisterResponse")
		return err
	}
	if err := register("in", in, 16, 16); err != nil {
		t.Fatal(err)
	}
	if err := register("out", out, 0, 8); err != nil {
		t.Fatal(err)
	}
	checkCode(t, register("out", out, 0, 8), codes.AlreadyExists, `"out"`)
	checkCode(t, register("x", out, 0, 9), codes.InvalidArgument, "has 8 bytes")

	st, err := c.call(ctx, "SystemSharedMemoryStatus", pbtest.New("SystemSharedMemoryStatusRequest"), "SystemSharedMemoryStatusResponse")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(protoJSON(t, st, false))
	want := fmt.Sprintf(`{"regions":{"in":{"byte_size":16,"key":%q,"name":"in","offset":16},"out":{"byte_size":8,"key":%q,"name":"out"}}}`, in, out)
	if string(got) != want {
		t.Fatalf("status: got %s; want %s", got, want)
	}

	str := func(s string) *string { return &s }
	i64 := func(x int64) *int64 { return &x }
	req := pbtest.InferRequest("fake", "", "", []pbtest.Tensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, Params: map[string]pbtest.Param{
			"shared_memory_region": {String: str("in")}, "shared_memory_byte_size": {Int64: i64(16)}}},
	}, nil, nil, map[string]map[string]pbtest.Param{
		"y": {"shared_memory_region": {String: str("out")}, "shared_memory_byte_size": {Int64: i64(4)}, "shared_memory_offset": {Int64: i64(4)}},
	})
	resp, err := c.infer(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 1 || resp.Outputs[0].Name != "y" || len(resp.Outputs[0].Raw) != 0 {
		t.Fatalf("outputs: %+v; want y with an empty raw_output_contents entry", resp.Outputs)
	}
	if got := bytesF32(shmRead(t, out[1:], 8)); got[1] != 20 {
		t.Fatalf("out holds %v; want 20 at offset 4", got)
	}
	// An input with raw contents beside one in shared memory is refused.
	bad := pbtest.InferRequest("fake", "", "", []pbtest.Tensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, Params: map[string]pbtest.Param{
			"shared_memory_region": {String: str("in")}, "shared_memory_byte_size": {Int64: i64(16)}}},
	}, [][]byte{f32Bytes([]float32{1, 2, 3, 4})}, nil, nil)
	_, err = c.infer(ctx, bad, nil)
	checkCode(t, err, codes.InvalidArgument, "1 raw_input_contents for 0 inputs not in shared memory")

	u := pbtest.New("SystemSharedMemoryUnregisterRequest")
	if _, err := c.call(ctx, "SystemSharedMemoryUnregister", u, "SystemSharedMemoryUnregisterResponse"); err != nil {
		t.Fatal(err)
	}
	_, err = c.infer(ctx, req, nil)
	checkCode(t, err, codes.InvalidArgument, `"in"; register it first`)
	if st, _ := s.httpStatusOf(t); !bytes.Equal(st, []byte("[]")) {
		t.Fatalf("status after unregistering all: %s", st)
	}
}

// httpStatusOf returns GET /v2/systemsharedmemory/status's body.
func (s *testServer) httpStatusOf(t *testing.T) ([]byte, int) {
	r := s.do(t, "GET", "/v2/systemsharedmemory/status", nil)
	return r.body, r.code
}

// infergate has no CUDA shared memory, and says so; with shared memory on,
// it answers the cleanup calls of Triton's clients (which unregister both
// kinds) as a server with none registered.
func TestCudaSharedMemoryAnswersCleanups(t *testing.T) {
	s := startShm(t, gateway.DefaultConfig())
	if r := s.do(t, "GET", "/v2/cudasharedmemory/status", nil); r.code != 200 || string(r.body) != "[]" {
		t.Fatalf("status: %s", r)
	}
	if r := s.post(t, "/v2/cudasharedmemory/unregister", nil); r.code != 200 {
		t.Fatalf("unregister all: %s", r)
	}
	if r := s.post(t, "/v2/cudasharedmemory/region/a/unregister", nil); r.code != 200 {
		t.Fatalf("unregister a: %s", r)
	}
	checkError(t, s.post(t, "/v2/cudasharedmemory/region/a/register", []byte(`{}`)), fasthttp.StatusBadRequest, "infergate has no CUDA shared memory")
	checkError(t, s.do(t, "GET", "/v2/cudasharedmemory/region/a/status", nil), fasthttp.StatusNotFound, `"a" is not registered`)

	c := s.serveGRPC(t)
	ctx := context.Background()
	if _, err := c.call(ctx, "CudaSharedMemoryUnregister", pbtest.New("CudaSharedMemoryUnregisterRequest"), "CudaSharedMemoryUnregisterResponse"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.call(ctx, "CudaSharedMemoryStatus", pbtest.New("CudaSharedMemoryStatusRequest"), "CudaSharedMemoryStatusResponse"); err != nil {
		t.Fatal(err)
	}
	reg := pbtest.New("CudaSharedMemoryRegisterRequest")
	reg.Set(reg.Descriptor().Fields().ByName("raw_handle"), protoreflect.ValueOfBytes([]byte{0xff, 0xfe}))
	_, err := c.call(ctx, "CudaSharedMemoryRegister", reg, "CudaSharedMemoryRegisterResponse")
	checkCode(t, err, codes.InvalidArgument, "infergate has no CUDA shared memory")
}
