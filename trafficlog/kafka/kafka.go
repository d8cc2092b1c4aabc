// Package kafka keeps a traffic log in a Kafka topic instead of a node's
// disk: every node of a cluster writes to one topic, and the trainer reads
// the whole cluster's traffic from it.
//
// A Kafka record's value holds one or more of the log's framed records
// (trafficlog.AppendRecord), exactly as a segment file does: Writer's
// AppendSync puts the events it is given in one Kafka record, so they are
// written all or none. Records carry no key; the trainer joins events by
// their ids, whatever partition they land in.
//
// The topic must exist: Open refuses to start without it, naming it, so
// that a typo does not create one no trainer reads. Plain TCP only for now
// (no TLS, no SASL).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/infergate/infergate/trafficlog"
)

// Config says where the log is and how much a Writer holds back.
type Config struct {
	// Brokers are seed brokers, host:port; Topic the topic, which must
	// exist.
	Brokers []string
	Topic   string
	// MaxRecordBytes bounds one Kafka record (Append's event, or
	// AppendSync's events together); keep it within the topic's
	// max.message.bytes (1 MB by default).
	MaxRecordBytes int
	// BufferBytes bounds what waits to be sent: past it Append drops (and
	// counts) and AppendSync refuses with trafficlog.ErrFull.
	BufferBytes int64
	// SyncTimeout bounds AppendSync's wait for the brokers' ack; past it
	// it fails with trafficlog.ErrSyncTimeout (the events may still be
	// written).
	SyncTimeout time.Duration
	// DeliveryTimeout bounds how long a record Append buffered may take
	// to be acknowledged before it is dropped (counted as write_error).
	DeliveryTimeout time.Duration
	// Metrics receives the writer's series; nil makes a set of its own.
	Metrics *metrics.Set
	// Logf logs what an operator should know; nil discards.
	Logf func(format string, args ...any)
}

// DefaultConfig returns the defaults: records of up to 1,000,000 bytes, a
// 64 MiB buffer, 10 s for AppendSync, 30 s for a buffered record.
func DefaultConfig() Config {
	return Config{MaxRecordBytes: 1_000_000, BufferBytes: 64 << 20, SyncTimeout: 10 * time.Second, DeliveryTimeout: 30 * time.Second}
}

// Validate reports settings that cannot work.
func (c *Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("name the Kafka brokers (host:port, comma-separated)")
	case c.Topic == "":
		return errors.New("name the Kafka topic")
	case c.MaxRecordBytes < 1024:
		return fmt.Errorf("record limit %d: use 1024 bytes or more", c.MaxRecordBytes)
	case c.BufferBytes < int64(c.MaxRecordBytes):
		return fmt.Errorf("buffer of %d bytes: must hold one record of %d", c.BufferBytes, c.MaxRecordBytes)
	case c.SyncTimeout <= 0 || c.DeliveryTimeout <= 0:
		return errors.New("the sync and delivery timeouts must be positive")
	}
	for _, b := range c.Brokers {
		if b == "" || !strings.Contains(b, ":") {
			return fmt.Errorf("broker %q: want host:port", b)
		}
	}
	return nil
}

// Writer appends a node's events to the topic. It is a trafficlog.Sink,
// safe for concurrent use.
type Writer struct {
	cfg    Config
	cl     *kgo.Client
	closed atomic.Bool

	events                                     [3]*metrics.Counter // by kind-1
	dropFull, dropLarge, dropWrite, dropClosed *metrics.Counter
	writeErrors                                *metrics.Counter
	loggedErr                                  atomic.Int64 // unix seconds of the last logged error
}

// Open connects to the brokers and checks that the topic exists.
func Open(ctx context.Context, cfg Config) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ProducerBatchMaxBytes(int32(cfg.MaxRecordBytes)+1024),
		kgo.MaxBufferedBytes(int(cfg.BufferBytes)),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka traffic log: %w", err)
	}
	if err := checkTopic(ctx, cl, cfg.Topic); err != nil {
		cl.Close()
		return nil, err
	}
	w := &Writer{cfg: cfg, cl: cl}
	set := cfg.Metrics
	for i := range w.events {
		w.events[i] = set.GetOrCreateCounter(`infergate_traffic_events_total{kind="` + trafficlog.Kind(i+1).String() + `"}`)
	}
	w.dropFull = set.GetOrCreateCounter(`infergate_traffic_dropped_total{reason="queue_full"}`)
	w.dropLarge = set.GetOrCreateCounter(`infergate_traffic_dropped_total{reason="too_large"}`)
	w.dropWrite = set.GetOrCreateCounter(`infergate_traffic_dropped_total{reason="write_error"}`)
	w.dropClosed = set.GetOrCreateCounter(`infergate_traffic_dropped_total{reason="closed"}`)
	w.writeErrors = set.GetOrCreateCounter(`infergate_traffic_write_errors_total`)
	set.GetOrCreateGauge(`infergate_traffic_queued_bytes`, func() float64 { return float64(cl.BufferedProduceBytes()) })
	return w, nil
}

// checkTopic fails unless the brokers know topic.
func checkTopic(ctx context.Context, cl *kgo.Client, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("kafka traffic log: cannot reach the brokers: %w", err)
	}
	if !topics.Has(topic) || topics[topic].Err != nil {
		return fmt.Errorf("kafka traffic log: topic %q does not exist on the brokers; create it (kafka-topics.sh --create --topic %s) or name another", topic, topic)
	}
	return nil
}

// MaxRecordBytes is the largest record (events together) the writer takes.
func (w *Writer) MaxRecordBytes() int { return w.cfg.MaxRecordBytes }

// Append sends e without waiting: it returns once e is encoded and
// buffered. An event the buffer cannot take is dropped and counted.
func (w *Writer) Append(e *trafficlog.Event) error {
	if w.closed.Load() {
		w.dropClosed.Inc()
		return trafficlog.ErrClosed
	}
	if !validKind(e.Kind) {
		w.dropLarge.Inc()
		return fmt.Errorf("%w: %d", trafficlog.ErrUnknownKind, e.Kind)
	}
	rec := trafficlog.AppendRecord(nil, e)
	if len(rec) > w.cfg.MaxRecordBytes {
		w.dropLarge.Inc()
		return fmt.Errorf("%w: %d bytes, over %d", trafficlog.ErrTooLarge, len(rec), w.cfg.MaxRecordBytes)
	}
	kind := e.Kind
	w.cl.TryProduce(context.Background(), &kgo.Record{Value: rec}, func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
			w.events[kind-1].Inc()
		case errors.Is(err, kgo.ErrMaxBuffered):
			w.dropFull.Inc()
		case errors.Is(err, kgo.ErrClientClosed):
			w.dropClosed.Inc()
		default:
			w.dropWrite.Inc()
			w.writeFailed(err)
		}
	})
	return nil
}

func validKind(k trafficlog.Kind) bool { return k >= trafficlog.Prediction && k <= trafficlog.Shadow }

// AppendSync sends es as one Kafka record, all or none, and waits for the
// brokers' ack, at most SyncTimeout.
func (w *Writer) AppendSync(es ...*trafficlog.Event) error {
	if w.closed.Load() {
		w.dropClosed.Add(len(es))
		return trafficlog.ErrClosed
	}
	var recs []byte
	for _, e := range es {
		if !validKind(e.Kind) {
			w.dropLarge.Add(len(es))
			return fmt.Errorf("%w: %d", trafficlog.ErrUnknownKind, e.Kind)
		}
		recs = trafficlog.AppendRecord(recs, e)
	}
	if len(recs) > w.cfg.MaxRecordBytes {
		w.dropLarge.Add(len(es))
		return fmt.Errorf("%w: %d events take %d bytes together, over %d", trafficlog.ErrTooLarge, len(es), len(recs), w.cfg.MaxRecordBytes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.SyncTimeout)
	defer cancel()
	done := make(chan error, 1)
	w.cl.TryProduce(ctx, &kgo.Record{Value: recs}, func(_ *kgo.Record, err error) { done <- err })
	err := <-done
	switch {
	case err == nil:
		for _, e := range es {
			w.events[e.Kind-1].Inc()
		}
		return nil
	case errors.Is(err, kgo.ErrMaxBuffered):
		w.dropFull.Add(len(es))
		return trafficlog.ErrFull
	case errors.Is(err, kgo.ErrClientClosed):
		w.dropClosed.Add(len(es))
		return trafficlog.ErrClosed
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: no ack from the Kafka brokers within %s", trafficlog.ErrSyncTimeout, w.cfg.SyncTimeout)
	}
	w.dropWrite.Add(len(es))
	w.writeFailed(err)
	return fmt.Errorf("cannot write to Kafka topic %q: %w", w.cfg.Topic, err)
}

// writeFailed counts a failed write and logs it, at most once a minute.
func (w *Writer) writeFailed(err error) {
	w.writeErrors.Inc()
	now := time.Now().Unix()
	if last := w.loggedErr.Load(); now-last >= 60 && w.loggedErr.CompareAndSwap(last, now) {
		w.cfg.Logf("traffic log: cannot write to Kafka topic %q: %v", w.cfg.Topic, err)
	}
}

// Close sends what is buffered (waiting up to ctx) and disconnects.
// Appends after Close are refused. It is idempotent.
func (w *Writer) Close(ctx context.Context) error {
	if w.closed.Swap(true) {
		return nil
	}
	err := w.cl.Flush(ctx)
	w.cl.Close()
	if err != nil {
		return fmt.Errorf("kafka traffic log: %d bytes not sent before the deadline: %w", w.cl.BufferedProduceBytes(), err)
	}
	return nil
}
