// Package gateway is infergate's front door: a fasthttp server speaking the
// Open Inference Protocol v2 REST API (the protocol of KServe and Triton),
// with the Triton binary tensor extension, the model repository API,
// Prometheus metrics on /metrics and a status page on /.
//
// Handlers return errors; one adapter (writeError) maps them to a status
// code and the JSON body {"error": "..."}. Nothing a client sends can make
// a handler panic out: each request recovers, answers 500 and logs.
//
// A RequestCtx and its byte slices are dead once a handler returns: the
// decoder copies tensors out of the body, and nothing keeps ctx.
package gateway
