package oip

// Headers of the protocol and of infergate.
const (
	// HeaderInferenceHeaderContentLength is the length of the JSON at the
	// start of a body that binary tensors follow.
	HeaderInferenceHeaderContentLength = "Inference-Header-Content-Length"
	// HeaderModelVersion names the model version that answered.
	HeaderModelVersion = "X-Model-Version"
)

// Limits on what a request or response may claim. The decoders check them
// before they allocate, so a hostile shape cannot make them reserve memory.
const (
	// MaxElements bounds the number of elements of one tensor, and each of
	// its dimensions.
	MaxElements = 1 << 28
	// MaxRank bounds the number of dimensions of a shape.
	MaxRank = 32
	// MaxTensors bounds the number of inputs, and of outputs, of one
	// request or response.
	MaxTensors = 1024
	// MaxDepth bounds how deeply JSON arrays and objects may nest, nested
	// "data" arrays included.
	MaxDepth = 64
)
