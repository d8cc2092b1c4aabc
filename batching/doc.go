// Package batching turns concurrent inference requests for one model
// version into batches, the way a GPU or a vectorised CPU kernel wants
// them, without making a lone request wait.
//
// A Batcher owns one worker goroutine per model instance. Workers pull from
// a bounded, prioritised queue: a worker that is idle takes what is queued
// at once (a lone request runs immediately, alone), while all workers are
// busy requests gather, and the next worker to free up takes as many as fit
// in MaxBatchSize rows. This adaptive dispatch needs no delay to form large
// batches under load; MaxQueueDelay only lets an idle worker wait briefly to
// fill a preferred batch size, which pays on GPUs where a batch of 8 costs
// what a batch of 1 does.
//
// Requests carrying several rows are packed whole, never split. A request
// whose deadline passes while it waits is answered ErrTimeout before it
// costs any compute. A full queue refuses at once with ErrQueueFull.
//
// Inputs are copied into per-worker batch buffers that are reused from batch
// to batch; outputs are scattered back by row into each request's own
// buffers. A batch of one request runs on the request's buffers directly.
//
// The package uses only the standard library and oip's tensor type; the
// Backend (engine.Model in production) does the compute.
package batching
