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
// that a typo does not create one no trainer reads; brokers that cannot be
// reached at the start are no error (a node serves while Kafka is down).
// Records are kept within the topic's max.message.bytes. The brokers are
// reached over plain TCP, or over TLS and with SASL as Security says.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/trafficlog"
)

// Config says where the log is and how much a Writer holds back.
type Config struct {
	// Brokers are seed brokers, host:port; Topic the topic, which must
	// exist.
	Brokers []string
	Topic   string
	// Security is how the brokers are reached: TLS, SASL.
	Security Security
	// MaxRecordBytes bounds one Kafka record (Append's event, or
	// AppendSync's events together); keep it within the topic's
	// max.message.bytes (1 MB by default).
	MaxRecordBytes int
	// BufferBytes bounds what waits to be sent, in memory (a record's
	// value and some 250 bytes more), and nothing else does: a
	// record waits, however long, while the brokers cannot be reached or
	// refuse it with an error that may clear (a leader election, too few
	// replicas); past BufferBytes Append drops the new ones (counted as
	// queue_full) and AppendSync refuses with trafficlog.ErrFull. A
	// record the brokers refuse for good is dropped at once (write_error),
	// and Close drops what is left when its context ends (closed).
	BufferBytes int64
	// SyncTimeout bounds AppendSync's wait for the brokers' ack; past it
	// it fails with trafficlog.ErrSyncTimeout (the events may still be
	// written). Records that wait as long with no ack are logged, with
	// why, at most once a minute.
	SyncTimeout time.Duration
	// Metrics receives the writer's series; nil makes a set of its own.
	Metrics *metrics.Set
	// Logf logs what an operator should know; nil discards.
	Logf func(format string, args ...any)
}

// DefaultConfig returns the defaults: records of up to 1,000,000 bytes, a
// 64 MiB buffer, 10 s for AppendSync.
func DefaultConfig() Config {
	return Config{MaxRecordBytes: 1_000_000, BufferBytes: 64 << 20, SyncTimeout: 10 * time.Second}
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
	case c.SyncTimeout <= 0:
		return fmt.Errorf("sync timeout %s: must be positive", c.SyncTimeout)
	}
	if err := c.Security.Validate(); err != nil {
		return err
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
	cfg Config
	cl  *kgo.Client
	// maxRecord is the largest record taken: MaxRecordBytes, or less
	// when the topic's max.message.bytes is smaller.
	maxRecord int
	closed    atomic.Bool
	// pending counts the records handed to the producer whose outcome
	// has not come back: Close waits for them, so that they are counted.
	pending atomic.Int64
	// held is what the records pending cost in memory (recordMemory
	// each, and their values' capacity), bounded by BufferBytes.
	held atomic.Int64

	c         *trafficlog.Counters
	loggedErr atomic.Int64 // unix seconds of the last logged error
	// loggedFull is unix seconds of the last logged drop of a full buffer.
	loggedFull atomic.Int64
	// waitingSince is unix nanoseconds since the records pending have
	// waited with no ack: set just before pending rises from 0, and at
	// each ack.
	waitingSince atomic.Int64
	// loggedStall is unix seconds of the last logged stall (stalled).
	loggedStall atomic.Int64
	// kgoErr keeps the last error kgo logged since the last ack: why the
	// brokers take nothing, in the log of a stall.
	kgoErr kgoErrLogger
	// stop ends watchStalls, which wg waits for.
	stop chan struct{}
	wg   sync.WaitGroup
}

// recordMemory is what kgo and the writer hold for a buffered record
// besides its value (the kgo.Record, its place in a batch, the closure
// that counts its outcome): 250 bytes measured, rounded up.
const recordMemory = 256

// recordOverhead is what a Kafka record batch adds to its records' values.
const recordOverhead = 1024

// Open connects to the brokers and checks that the topic exists. Brokers
// that cannot be reached are no error (a node must serve while Kafka is
// down): it says so, and the writer holds what it is given (up to
// BufferBytes) until they can be. A topic the brokers do not have is one.
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
	w := &Writer{cfg: cfg, maxRecord: cfg.MaxRecordBytes, stop: make(chan struct{})}
	w.kgoErr.w = w
	var batchMax atomic.Int32
	batchMax.Store(int32(cfg.MaxRecordBytes + recordOverhead))
	sec, err := cfg.Security.opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(sec,
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ProducerBatchMaxBytesFn(func(string) int32 { return batchMax.Load() }),
		// Bytes bound the buffer, not the number of records.
		kgo.MaxBufferedRecords(1<<24),
		kgo.MaxBufferedBytes(int(cfg.BufferBytes)),
		// And nothing bounds the wait but the buffer: no
		// kgo.RecordDeliveryTimeout, which kgo enforces on a
		// partition's first batch not yet tried, failing every record
		// buffered for the partition, however new (as the brokers come
		// back, too). kgo's record retries are unlimited.
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.WithLogger(&w.kgoErr),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka traffic log: %w", err)
	}
	limit, err := checkTopic(ctx, cl, cfg.Topic)
	var unreachable *unreachableError
	switch {
	case errors.As(err, &unreachable):
		cfg.Logf(logging.Warning+"traffic log: %v; going on: events wait for the brokers (up to %d bytes), then are dropped and counted", err, cfg.BufferBytes)
	case err != nil:
		cl.Close()
		return nil, err
	case limit > 0 && limit < cfg.MaxRecordBytes+recordOverhead:
		if limit <= 2*recordOverhead {
			cl.Close()
			return nil, fmt.Errorf("kafka traffic log: topic %q takes messages of %d bytes at most (max.message.bytes); too small for the traffic log's records", cfg.Topic, limit)
		}
		w.maxRecord = limit - recordOverhead
		batchMax.Store(int32(limit))
	}
	w.cl = cl
	set := cfg.Metrics
	w.c = trafficlog.NewCounters(set)
	set.GetOrCreateGauge(`infergate_traffic_queued_bytes`, func() float64 { return float64(w.held.Load()) })
	w.wg.Go(w.watchStalls)
	return w, nil
}

// unreachableError is brokers that could not be reached.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return "cannot reach the Kafka brokers: " + e.err.Error() }

func (e *unreachableError) Unwrap() error { return e.err }

// checkTopic fails unless the brokers know topic, and returns its
// max.message.bytes (0 when it does not say).
func checkTopic(ctx context.Context, cl *kgo.Client, topic string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(ctx, topic)
	if err != nil {
		if refused(err) {
			return 0, fmt.Errorf("kafka traffic log: the brokers and this client do not accept each other: %w; check the TLS and SASL settings", err)
		}
		return 0, &unreachableError{err}
	}
	if !topics.Has(topic) || topics[topic].Err != nil {
		return 0, &noTopicError{topic}
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return 0, nil // the topic's limit unknown: the writer's own applies
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" && c.Value != nil {
				if n, err := strconv.Atoi(*c.Value); err == nil && n > 0 {
					return n, nil
				}
			}
		}
	}
	return 0, nil
}

// MaxRecordBytes is the largest record (events together) the writer takes.
func (w *Writer) MaxRecordBytes() int { return w.maxRecord }

// encode checks es and encodes them as one record.
func (w *Writer) encode(es []*trafficlog.Event) ([]byte, error) {
	var recs []byte
	for _, e := range es {
		if err := trafficlog.Check(e); err != nil {
			return nil, err
		}
		recs = trafficlog.AppendRecord(recs, e)
	}
	if len(recs) > w.maxRecord {
		return nil, fmt.Errorf("%w: %d events take %d bytes, over %d", trafficlog.ErrTooLarge, len(es), len(recs), w.maxRecord)
	}
	return recs, nil
}

// produce hands rec, holding events of kinds, to the producer; the
// outcome is counted when it comes, and passed to done when not nil.
func (w *Writer) produce(rec []byte, kinds []trafficlog.Kind, done func(error)) {
	// The buffer holds what its records cost in memory, not their
	// values alone (kgo's MaxBufferedBytes): a record alone always fits.
	cost := int64(cap(rec)) + recordMemory
	if held := w.held.Add(cost); held > w.cfg.BufferBytes && held != cost {
		w.held.Add(-cost)
		w.c.DropFull.Add(len(kinds))
		w.bufferFull()
		if done != nil {
			done(kgo.ErrMaxBuffered)
		}
		return
	}
	// The wait starts before the record counts as pending: watchStalls,
	// seeing it pending, must not read the time of an ack long past.
	if w.pending.Load() == 0 {
		w.waitingSince.Store(time.Now().UnixNano())
	}
	w.pending.Add(1)
	w.cl.TryProduce(context.Background(), &kgo.Record{Value: rec}, func(_ *kgo.Record, err error) {
		n := len(kinds)
		switch {
		case err == nil:
			w.waitingSince.Store(time.Now().UnixNano())
			w.kgoErr.reset()
			for _, k := range kinds {
				w.c.Written(k, 1)
			}
		case errors.Is(err, kgo.ErrMaxBuffered):
			w.c.DropFull.Add(n)
			w.bufferFull()
		case errors.Is(err, kgo.ErrClientClosed):
			w.c.DropClosed.Add(n)
		case errors.Is(err, kerr.MessageTooLarge):
			w.c.DropLarge.Add(n)
		default:
			w.c.DropWrite.Add(n)
			w.writeFailed(err)
		}
		w.held.Add(-cost)
		w.pending.Add(-1)
		if done != nil {
			done(err)
		}
	})
}

// Append sends e without waiting: it returns once e is encoded and
// buffered. An event the buffer cannot take, or the brokers refuse, is
// dropped and counted.
func (w *Writer) Append(e *trafficlog.Event) error {
	if w.closed.Load() {
		w.c.DropClosed.Inc()
		return trafficlog.ErrClosed
	}
	rec, err := w.encode([]*trafficlog.Event{e})
	if err != nil {
		w.c.DropLarge.Inc()
		return err
	}
	w.produce(rec, []trafficlog.Kind{e.Kind}, nil)
	return nil
}

// AppendSync sends es as one Kafka record, all or none, and waits for the
// brokers' ack, at most SyncTimeout: then it fails with
// trafficlog.ErrSyncTimeout, and the record may still be written (its
// outcome is counted when it comes).
func (w *Writer) AppendSync(es ...*trafficlog.Event) error {
	if w.closed.Load() {
		w.c.DropClosed.Add(len(es))
		return trafficlog.ErrClosed
	}
	rec, err := w.encode(es)
	if err != nil {
		w.c.DropLarge.Add(len(es))
		return err
	}
	kinds := make([]trafficlog.Kind, len(es))
	for i, e := range es {
		kinds[i] = e.Kind
	}
	done := make(chan error, 1)
	w.produce(rec, kinds, func(err error) { done <- err })
	timeout := time.NewTimer(w.cfg.SyncTimeout)
	defer timeout.Stop()
	select {
	case err = <-done:
	case <-timeout.C:
		return fmt.Errorf("%w: no ack from the Kafka brokers within %s", trafficlog.ErrSyncTimeout, w.cfg.SyncTimeout)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kgo.ErrMaxBuffered):
		return trafficlog.ErrFull
	case errors.Is(err, kgo.ErrClientClosed):
		return trafficlog.ErrClosed
	case errors.Is(err, kerr.MessageTooLarge):
		return fmt.Errorf("%w: topic %q refuses a message of %d bytes", trafficlog.ErrTooLarge, w.cfg.Topic, len(rec))
	}
	return fmt.Errorf("cannot write to Kafka topic %q: %w", w.cfg.Topic, err)
}

// writeFailed counts a record the brokers did not take and logs why, at
// most once a minute.
func (w *Writer) writeFailed(err error) {
	w.c.WriteErrors.Inc()
	now := time.Now().Unix()
	if last := w.loggedErr.Load(); now-last >= 60 && w.loggedErr.CompareAndSwap(last, now) {
		w.cfg.Logf(logging.Error+"traffic log: cannot write to Kafka topic %q: %v", w.cfg.Topic, err)
	}
}

// stallCheckEvery is how often watchStalls looks at the records pending;
// a variable for tests.
var stallCheckEvery = time.Second

// watchStalls calls stalled every stallCheckEvery while records are
// pending, until Close: on its own goroutine, so that records left
// waiting when events stop coming are logged too, and Append does not
// pay for the check.
func (w *Writer) watchStalls() {
	t := time.NewTicker(stallCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			if w.pending.Load() > 0 {
				w.stalled(now)
			}
		}
	}
}

// stalled logs, at most once a minute, that the records pending have
// waited SyncTimeout or longer with no ack, and the last error kgo
// logged: records wait with no time limit, and until the buffer is full
// nothing else says that the brokers take nothing, or why.
func (w *Writer) stalled(now time.Time) {
	since := w.waitingSince.Load()
	waited := time.Duration(now.UnixNano() - since)
	why := w.kgoErr.why()
	if waited < w.cfg.SyncTimeout || why == nil && waited < w.cfg.SyncTimeout+reasonGrace {
		return // or no reason yet: kgo's next try may tell it
	}
	if last := w.loggedStall.Load(); now.Unix()-last < 60 || !w.loggedStall.CompareAndSwap(last, now.Unix()) {
		return
	}
	reason := "the client logged no error"
	if why != nil {
		reason = "the last error: " + *why
	}
	w.cfg.Logf(logging.Warning+"traffic log: no write acknowledged by the Kafka brokers of topic %q for %s; events wait in the buffer (%d of %d bytes), and are dropped once it is full; %s",
		w.cfg.Topic, waited.Round(100*time.Millisecond), w.held.Load(), w.cfg.BufferBytes, reason)
}

// kgoErrLogger is a kgo.Logger that keeps the last error kgo logs and
// logs nothing: an "err" value, or, while records wait past slowAck
// (when it asks kgo for debug lines), the partitions a produce answer
// left to retry, with the brokers' error, which kgo says at no other
// level. kgo's goroutines call it.
type kgoErrLogger struct {
	w *Writer
	// answer is the brokers' last answer that left records to retry;
	// last the last error kgo logged (often its own, after an answer).
	answer, last atomic.Pointer[string]
}

// why returns the brokers' last answer that left records to retry, or
// else the last error kgo logged, or nil.
func (l *kgoErrLogger) why() *string {
	if s := l.answer.Load(); s != nil {
		return s
	}
	return l.last.Load()
}

// reset forgets the errors: the brokers took a write.
func (l *kgoErrLogger) reset() {
	if l.answer.Load() != nil || l.last.Load() != nil {
		l.answer.Store(nil)
		l.last.Store(nil)
	}
}

// slowAck is how long records wait for an ack before kgoErrLogger asks
// kgo for debug lines: far longer than the brokers take when they take
// writes, and short of SyncTimeout, so that a stall's log has its reason.
const slowAck = 200 * time.Millisecond

// reasonGrace is how much longer than SyncTimeout a stall's log waits for
// its reason: kgo tries a partition the brokers refused again after a
// metadata refresh, which comes at most every 5 s (kgo.MetadataMinAge).
const reasonGrace = 10 * time.Second

func (l *kgoErrLogger) Level() kgo.LogLevel {
	if w := l.w; w.pending.Load() > 0 && time.Now().UnixNano()-w.waitingSince.Load() >= int64(slowAck) {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelInfo
}

func (l *kgoErrLogger) Log(_ kgo.LogLevel, msg string, keyvals ...any) {
	for i := 0; i+1 < len(keyvals); i += 2 {
		switch v := keyvals[i+1].(type) {
		case error:
			if keyvals[i] == "err" && v != nil {
				s := v.Error()
				l.last.Store(&s)
			}
		case string:
			if msg == "produced" && keyvals[i] == "to" && strings.Contains(v, "retrying") {
				s := "the brokers answered " + v
				l.answer.Store(&s)
			}
		}
	}
}

// bufferFull logs, at most once a minute, that events are dropped
// because the buffer is full.
func (w *Writer) bufferFull() {
	now := time.Now().Unix()
	if last := w.loggedFull.Load(); now-last >= 60 && w.loggedFull.CompareAndSwap(last, now) {
		w.cfg.Logf(logging.Warning+"traffic log: dropping events: the buffer of %d bytes for Kafka topic %q is full (the brokers are not taking writes, or not as fast as they come)", w.cfg.BufferBytes, w.cfg.Topic)
	}
}

// Close sends what is buffered (waiting up to ctx) and disconnects; what
// could not be sent by then is dropped and counted before it returns.
// Appends after Close are refused. It is idempotent.
func (w *Writer) Close(ctx context.Context) error {
	if w.closed.Swap(true) {
		return nil
	}
	close(w.stop)
	w.wg.Wait()
	err := w.cl.Flush(ctx)
	unsent, records := w.cl.BufferedProduceBytes(), w.pending.Load()
	w.cl.Close()
	// The producer fails what it still held on its own goroutine: wait
	// for those outcomes (counted dropped) a little.
	for deadline := time.Now().Add(time.Second); w.pending.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("kafka traffic log: %d records (%d bytes) not sent before the deadline, dropped: %w", records, unsent, err)
	}
	return nil
}
