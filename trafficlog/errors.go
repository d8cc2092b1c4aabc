package trafficlog

import "errors"

var (
	// ErrClosed means the log is closed.
	ErrClosed = errors.New("the traffic log is closed")
	// ErrFull means the writer's queue is full: the disk is slower than
	// the traffic, or stuck.
	ErrFull = errors.New("the traffic log's write queue is full")
	// ErrSyncTimeout means AppendSync's events were not durable within
	// the sink's sync timeout: the disk, or the Kafka brokers, are stuck
	// or very slow. They may still be written.
	ErrSyncTimeout = errors.New("the traffic log did not confirm the write in time")
	// ErrTooLarge means an event encodes to more than Config.MaxRecordBytes.
	ErrTooLarge = errors.New("the event is larger than the traffic log's record limit")
	// ErrUnknownKind means an event's Kind is none of Prediction,
	// Feedback or Shadow.
	ErrUnknownKind = errors.New("unknown traffic log event kind")
	// ErrCorrupt means a record does not decode or fails its checksum.
	ErrCorrupt = errors.New("damaged traffic log record")
	// ErrNotRecord means a read asked for a position inside a record, or
	// one the frames before it do not lead to: not a position a read gave.
	ErrNotRecord = errors.New("no traffic log record starts at position")
	// ErrPosition means a read asked for a position the log does not have:
	// deleted by retention, or beyond its end. *PositionError says which.
	ErrPosition = errors.New("no such traffic log position")
	// ErrLocked means another Log, in this process or another, has the
	// directory open: two writers would overwrite each other's records.
	ErrLocked = errors.New("the traffic log directory is in use by another traffic log")
)

// PositionError is a read from a position before the log's first record
// (deleted to keep the log within its byte budget) or after its end.
type PositionError struct {
	Position    int64 // what was asked for
	First, Next int64 // the oldest record's position, and the end
}

func (e *PositionError) Error() string {
	if e.Position < e.First {
		return "traffic log position " + itoa(e.Position) + " was deleted (to keep the log within its byte budget, or by hand); the oldest record is at " + itoa(e.First)
	}
	return "traffic log position " + itoa(e.Position) + " is beyond the log's end, " + itoa(e.Next)
}

// Unwrap makes errors.Is(err, ErrPosition) hold.
func (e *PositionError) Unwrap() error { return ErrPosition }
