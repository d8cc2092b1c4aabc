// Package batching turns concurrent inference requests for one model
// version into batches, the way a GPU or a vectorised CPU kernel wants
// them, without making a lone request wait.
//
// A Batcher owns one worker goroutine per model instance and a count of
// free instances. A request that finds an instance free and nobody waiting
// runs at once on its own goroutine: no hand-off, no delay. It may first
// yield the processor once (runtime.Gosched) so that requests ready at the
// same instant queue behind it and join its run: at every such request
// while requests have lately queued, else after gaps that double up to 64
// idle hits, which is how a process with one processor batches at all.
// While every instance is busy, requests gather in a bounded, prioritised
// queue, and the next instance to free up is taken by a worker with as many
// of them as fit in MaxBatchSize rows. This adaptive dispatch needs no delay
// to form large batches under load; MaxQueueDelay only lets an idle worker
// wait briefly to fill a preferred batch size, which pays on GPUs where a
// batch of 8 costs what a batch of 1 does.
//
// Requests carrying several rows are packed whole, never split. A request
// whose deadline passes while it waits is answered ErrTimeout before it
// costs any compute. A full queue refuses at once with ErrQueueFull, unless
// it holds a request of lower priority than the newcomer: then the newest of
// the lowest priority gives up its place and is answered ErrDisplaced, so
// that a queue full of low-priority work never refuses a high-priority
// request. A request already past its deadline displaces nobody.
//
// Inputs are copied into per-worker batch buffers that are reused from batch
// to batch; outputs are scattered back by row into each request's own
// buffers. A batch of one request runs on the request's buffers directly.
//
// The package uses only the standard library and oip's tensor type; the
// Backend (engine.Model in production) does the compute.
package batching
