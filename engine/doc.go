// Package engine runs ONNX models with ONNX Runtime: one Model per loaded
// model version, holding a fixed number of sessions (instances) that run
// inferences in parallel. It is the only package of infergate that uses
// cgo (through github.com/yalue/onnxruntime_go); the rest of the gateway
// sees plain oip.Tensor values.
//
// # Life cycle
//
// Init loads the shared library once per process (ResolveLibPath says
// where it is looked for). Load reads a model's inputs and outputs,
// creates its sessions and warms each one up with a batch-1 inference, so
// a Model is ready to serve when Load returns; Close destroys it. Run
// takes a free instance, waiting while all are busy, so at most
// Options.Instances inferences of a model run at once; queueing and
// batching are the batching package's job.
//
// # Data
//
// Tensors cross the boundary as raw little-endian bytes in both
// directions: Run hands each input's Data to ONNX Runtime in place, and
// where an output's shape is known before the run (fixed, or [batch,
// fixed...] with batch taken from the inputs) ONNX Runtime writes straight
// into the Data of the result, which may be a buffer the caller passes back
// for reuse. Other outputs are allocated by ONNX Runtime and copied out.
// Each instance keeps the ONNX Runtime values that wrap the buffers of its
// last run and reuses them while the caller passes the same buffers (a
// batcher's reused batch buffer, the previous result as dst), so such a Run
// allocates only what onnxruntime_go itself does.
// Load infers which outputs follow the batch and checks that with a second
// warm-up at batch 2; if a run shows the inference wrong (ONNX Runtime
// refuses the buffer), Run runs again letting ONNX Runtime allocate, and
// after repeated misses of an output it stops preallocating that output.
// Options.MaxOutputBytes bounds the outputs of a Run: preallocated ones are
// checked before they are allocated.
//
// Supported element types are BOOL, INT8-64, UINT8-64, FP16, FP32 and FP64,
// in tensors of rank 1 or more (Load refuses scalars). FP16 outputs must have a fixed or [batch,
// fixed...] shape, because onnxruntime_go v1.27.0 cannot copy out FP16
// tensors that ONNX Runtime allocates: one declared [batch, fixed...] that
// does not follow the batch at the warm-up's batch 2 is refused too. A
// model that every warm-up at batch 1 refuses the same way loads when it
// takes 2 rows (it may want several, as a top 2 of the batch does); one
// that refuses both is broken.
//
// # Errors
//
// Errors match the sentinels of errors.go with errors.Is. Those of Run say
// whose fault a failure is: ErrInvalidInput and ErrUnknownOutput for a
// request that does not fit the model's declared inputs and outputs,
// ErrInputRejected for one that fits but that an operator fails on (an
// index past an embedding table), ErrOutputTooLarge for one whose outputs
// exceed Options.MaxOutputBytes, and ErrRunFailed for the rest (memory,
// device, bugs).
//
// # Resources
//
// Each instance is a full session with its own copy of the weights (as
// ONNX Runtime prepacks them) and, with IntraOpThreads above 1, its own
// thread pool; with Options.ShareSession the instances run on one
// session instead, which holds the weights once. The defaults (one instance, one thread) suit a small box
// that serves several models: parallelism comes from batching and from
// Instances, not from threads inside an operator.
//
// # Devices
//
// Options.Device "cuda:N" appends ONNX Runtime's CUDA execution provider
// for GPU N. That needs a CUDA build of ONNX Runtime with
// libonnxruntime_providers_cuda.so beside the library; the CPU-only build
// that `make setup` fetches makes Load fail with ErrDeviceUnavailable.
package engine
