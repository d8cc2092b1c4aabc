package batching

import "errors"

var (
	// ErrQueueFull means the queue holds MaxQueueSize requests already.
	ErrQueueFull = errors.New("batching: queue full")
	// ErrLevelFull means the queue holds as many requests of the
	// request's priority as that level's LevelPolicy allows.
	ErrLevelFull = errors.New("batching: the queue of this priority is full")
	// ErrDisplaced means a queued request gave its place in a full queue
	// to one of higher priority.
	ErrDisplaced = errors.New("batching: displaced from a full queue by a request of higher priority")
	// ErrTimeout means the request's deadline passed before it ran.
	ErrTimeout = errors.New("batching: request timed out in the queue")
	// ErrStopped means the Batcher was stopped.
	ErrStopped = errors.New("batching: stopped")
	// ErrBadPriority means a negative priority.
	ErrBadPriority = errors.New("batching: priority out of range")
	// ErrBadRequest means a request the batcher cannot carry: no rows, or
	// inputs without the batch dimension it claims.
	ErrBadRequest = errors.New("batching: malformed request")
)
