package trafficlog

// Sink takes a node's events: the embedded Log, or a Kafka topic
// (trafficlog/kafka). Append never blocks (an event the sink cannot take
// is dropped and counted); AppendSync writes its events all or none and
// waits until they are durable (fsynced, or acknowledged by the brokers).
type Sink interface {
	Append(e *Event) error
	AppendSync(es ...*Event) error
	// MaxRecordBytes bounds one Append's event, or AppendSync's events
	// together, encoded.
	MaxRecordBytes() int
}

var _ Sink = (*Log)(nil)
