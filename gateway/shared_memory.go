package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/infergate/infergate/gateway/shm"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// errShmOff is the message for a shared memory call or parameter when
// Config.SharedMemory is off.
const errShmOff = "this server does not take shared memory: start it with serve --shared-memory, for clients on its host that may read and write its /dev/shm"

// sharedMemory serves Triton's system shared memory extension: GET
// .../status and POST .../unregister for every region (name nil) or one,
// and POST /v2/systemsharedmemory/region/{name}/register with
// {"key", "offset", "byte_size"}.
func (s *Server) sharedMemory(ctx *fasthttp.RequestCtx, name, action []byte) error {
	if s.shm == nil {
		return notFound("%s", errShmOff)
	}
	switch string(action) {
	case "status":
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		st, err := s.shm.Status(string(name))
		if err != nil {
			return shmError(err)
		}
		return writeJSON(ctx, st)
	case "unregister":
		if err := allow(ctx, fasthttp.MethodPost); err != nil {
			return err
		}
		s.shm.Unregister(string(name))
		ctx.SetContentType("application/json")
		return nil
	case "register":
		if name == nil {
			break
		}
		if err := allow(ctx, fasthttp.MethodPost); err != nil {
			return err
		}
		var q struct {
			Key      *string `json:"key"`
			Offset   int64   `json:"offset"`
			ByteSize *int64  `json:"byte_size"`
		}
		if err := s.readJSON(ctx, &q); err != nil {
			return err
		}
		if q.Key == nil || q.ByteSize == nil {
			return badRequest(`the body must give the region's "key" and "byte_size" (and "offset" if not 0): {"key": "/name", "offset": 0, "byte_size": N}`)
		}
		if err := s.shm.Register(string(name), *q.Key, q.Offset, *q.ByteSize); err != nil {
			return shmError(err)
		}
		ctx.SetContentType("application/json")
		return nil
	}
	return notFound("no such endpoint %q; the system shared memory extension has GET /v2/systemsharedmemory[/region/{name}]/status, POST /v2/systemsharedmemory/region/{name}/register and POST /v2/systemsharedmemory[/region/{name}]/unregister", ctx.Path())
}

// errNoCudaShm is the message for a CUDA shared memory region.
const errNoCudaShm = "infergate has no CUDA shared memory; pass tensors through system shared memory (/v2/systemsharedmemory) on the server's host, or in the request"

// cudaSharedMemory answers Triton's CUDA shared memory calls, with shared
// memory on, as a server that has none registered: the status lists none,
// unregistering is done, and registering is refused. Triton's clients
// clean up both kinds of region when they end (perf_analyzer's
// --shared-memory system among them), and would fail on a 404.
func (s *Server) cudaSharedMemory(ctx *fasthttp.RequestCtx, name, action []byte) error {
	if s.shm == nil {
		return notFound("%s", errShmOff)
	}
	switch string(action) {
	case "status":
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		if name != nil {
			return notFound("CUDA shared memory region %q is not registered: %s", name, errNoCudaShm)
		}
		ctx.SetContentType("application/json")
		ctx.SetBodyString("[]")
		return nil
	case "unregister":
		if err := allow(ctx, fasthttp.MethodPost); err != nil {
			return err
		}
		ctx.SetContentType("application/json")
		return nil
	case "register":
		if name != nil {
			return badRequest("%s", errNoCudaShm)
		}
	}
	return notFound("no such endpoint %q", ctx.Path())
}

// shmError maps an error of the region table to its answer.
func shmError(err error) error {
	switch {
	case errors.Is(err, shm.ErrNotFound):
		return notFound("%s", err)
	case errors.Is(err, shm.ErrExists):
		return &httpError{code: fasthttp.StatusConflict, msg: err.Error(), err: err, reason: registry.ReasonBadRequest}
	case errors.Is(err, shm.ErrInvalid):
		return badRequest("%s", err)
	}
	return err
}

// usesSharedMemory reports whether req has an input or asks for an output
// in shared memory.
func usesSharedMemory(req *oip.InferRequest) bool {
	if len(req.SharedInputs) > 0 {
		return true
	}
	for i := range req.Outputs {
		if req.Outputs[i].SharedMemory.Region != "" {
			return true
		}
	}
	return false
}

// readSharedInputs reads the inputs of req whose data is in shared memory
// (req.SharedInputs) into their tensors, and checks that the outputs it
// asks for in shared memory name registered regions: before the model
// runs, so that it does not run for an answer that cannot be delivered.
func (s *Server) readSharedInputs(req *oip.InferRequest) error {
	if !usesSharedMemory(req) {
		return nil
	}
	if s.shm == nil {
		return badRequest("%s", errShmOff)
	}
	// The sizes are checked before anything is copied: a region may be
	// far larger than a request may be, and the bytes copied out of
	// shared memory count against --max-body as a body's would, all the
	// inputs together (every input may name the same region).
	total := int64(0)
	for _, si := range req.SharedInputs {
		t := &req.Inputs[si.Index]
		if size := t.Datatype.Size(); size > 0 {
			if want := t.NumElements() * int64(size); si.Ref.ByteSize != want {
				return badRequest("input %q: shared_memory_byte_size is %d, but %s of shape %s takes %d bytes", t.Name, si.Ref.ByteSize, t.Datatype, oip.FormatShape(t.Shape), want)
			}
		}
		// Each at most 1<<62 (decoded so, or checked above): no overflow.
		if total += min(si.Ref.ByteSize, 1<<62); total > int64(s.cfg.MaxBodyBytes) {
			return &httpError{code: fasthttp.StatusRequestEntityTooLarge, reason: registry.ReasonBadRequest,
				msg: fmt.Sprintf("input %q: the inputs' shared_memory_byte_size add up to %d bytes or more, over the %d bytes a request may carry; send less, or raise the server's --max-body", t.Name, total, s.cfg.MaxBodyBytes)}
		}
	}
	for _, si := range req.SharedInputs {
		t := &req.Inputs[si.Index]
		var err error
		if t.Data, err = s.shm.Read(t.Data[:0], si.Ref.Region, si.Ref.Offset, si.Ref.ByteSize); err != nil {
			return badRequest("input %q: %s", t.Name, err)
		}
		if err := t.CheckData(); err != nil {
			return badRequest("input %q: its %d bytes of shared memory (shared_memory_byte_size) do not fit: %s", t.Name, si.Ref.ByteSize, err)
		}
	}
	for i := range req.Outputs {
		if r := req.Outputs[i].SharedMemory.Region; r != "" {
			if _, err := s.shm.Status(r); err != nil {
				return badRequest("output %q: %s; register it first", req.Outputs[i].Name, err)
			}
		}
	}
	return nil
}

// writeSharedOutputs writes the outputs of resp that go to shared memory
// into their regions, all or none (shm.Table.WriteAll).
func (s *Server) writeSharedOutputs(sc *scratch, resp *oip.InferResponse) error {
	outs := sc.shmOut[:0]
	var names [4]string
	which := names[:0]
	for i := range resp.Outputs {
		o := &resp.Outputs[i]
		ref := &o.SharedMemory
		if ref.Region == "" {
			continue
		}
		if s.shm == nil {
			panic("BUG: an output in shared memory with shared memory off")
		}
		outs = append(outs, shm.Out{Region: ref.Region, Offset: ref.Offset, Size: ref.ByteSize, Data: o.Data})
		which = append(which, o.Name)
	}
	if len(outs) == 0 {
		return nil
	}
	i, err := s.shm.WriteAll(outs)
	clear(outs) // the outputs' data is the scratch's, or a cache entry's
	sc.shmOut = outs[:0]
	if err != nil {
		return badRequest("output %q: %s", which[i], err)
	}
	return nil
}

// grpcShmStatus answers SystemSharedMemoryStatus as GET
// /v2/systemsharedmemory[/region/{name}]/status does.
func (s *Server) grpcShmStatus(_ context.Context, sc *scratch) ([]byte, error) {
	if s.shm == nil {
		return nil, notFound("%s", errShmOff)
	}
	q, err := oip.DecodeSharedMemoryRequest(sc.in, "SystemSharedMemoryStatusRequest")
	if err != nil {
		return nil, err
	}
	st, err := s.shm.Status(q.Name)
	if err != nil {
		return nil, shmError(err)
	}
	return oip.AppendSharedMemoryStatusResponse(sc.buf[:0], st), nil
}

// grpcShmRegister answers SystemSharedMemoryRegister as POST
// /v2/systemsharedmemory/region/{name}/register does; the answer has no
// fields.
func (s *Server) grpcShmRegister(_ context.Context, sc *scratch) ([]byte, error) {
	if s.shm == nil {
		return nil, notFound("%s", errShmOff)
	}
	q, err := oip.DecodeSharedMemoryRequest(sc.in, "SystemSharedMemoryRegisterRequest")
	if err != nil {
		return nil, err
	}
	if err := s.shm.Register(q.Name, q.Key, q.Offset, q.ByteSize); err != nil {
		return nil, shmError(err)
	}
	return sc.buf[:0], nil
}

// grpcShmUnregister answers SystemSharedMemoryUnregister as POST
// /v2/systemsharedmemory[/region/{name}]/unregister does (an empty name:
// every region); the answer has no fields.
func (s *Server) grpcShmUnregister(_ context.Context, sc *scratch) ([]byte, error) {
	if s.shm == nil {
		return nil, notFound("%s", errShmOff)
	}
	q, err := oip.DecodeSharedMemoryRequest(sc.in, "SystemSharedMemoryUnregisterRequest")
	if err != nil {
		return nil, err
	}
	s.shm.Unregister(q.Name)
	return sc.buf[:0], nil
}

// grpcCudaShm answers Triton's CudaSharedMemoryStatus, Register and
// Unregister as cudaSharedMemory does over HTTP: no region, and none
// registered. Status answers an empty regions map, unregister nothing.
func (s *Server) grpcCudaShm(m grpcMethod) func(*Server, context.Context, *scratch) ([]byte, error) {
	return func(s *Server, _ context.Context, sc *scratch) ([]byte, error) {
		if s.shm == nil {
			return nil, notFound("%s", errShmOff)
		}
		if m == grpcCudaShmRegister {
			return nil, badRequest("%s", errNoCudaShm)
		}
		// The status and unregister requests: a name alone.
		q, err := oip.DecodeSharedMemoryRequest(sc.in, grpcMethods[m]+"Request")
		if err != nil {
			return nil, err
		}
		if m == grpcCudaShmStatus && q.Name != "" {
			return nil, notFound("CUDA shared memory region %q is not registered: %s", q.Name, errNoCudaShm)
		}
		return sc.buf[:0], nil
	}
}
