package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/infergate/infergate/trafficlog"
)

// Reader reads the topic from its oldest records on, in steps: each Read
// returns what the topic held when it was called. One goroutine uses it.
type Reader struct {
	topic string
	cl    *kgo.Client
	adm   *kadm.Client
	// next is, per partition, the offset after the last record read;
	// known the partitions the consumer was told of.
	next  map[int32]int64
	known map[int32]bool
	// skipped counts the records whose value did not decode.
	skipped int
}

// Skipped returns how many Kafka records Read skipped because their value
// was not the traffic log's framed records (another writer's, or
// damaged).
func (r *Reader) Skipped() int { return r.skipped }

// NewReader connects to the brokers, as sec says, and checks that the
// topic exists.
func NewReader(ctx context.Context, brokers []string, topic string, sec Security) (*Reader, error) {
	if len(brokers) == 0 || topic == "" {
		return nil, errors.New("name the Kafka brokers and topic")
	}
	opts, err := sec.opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
		// What it fetches ahead between Reads stays small.
		kgo.FetchMaxBytes(16<<20),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka traffic log: %w", err)
	}
	if _, err := checkTopic(ctx, cl, topic); err != nil {
		cl.Close()
		return nil, err
	}
	return &Reader{topic: topic, cl: cl, adm: kadm.NewClient(cl), next: map[int32]int64{}, known: map[int32]bool{}}, nil
}

// Permanent reports whether err, from NewReader or Read, is one that
// waiting does not mend: brokers and this client that do not accept each
// other (certificates, credentials), a topic the brokers do not have, a
// broker name that does not resolve. Other errors (brokers that cannot be
// reached, or are restarting; a leader election) may clear by themselves,
// and a Read after them goes on where the Reader was.
func Permanent(err error) bool {
	var nt *noTopicError
	var dns *net.DNSError
	return refused(err) || errors.As(err, &nt) || (errors.As(err, &dns) && dns.IsNotFound)
}

// noTopicError is a topic the brokers do not have.
type noTopicError struct{ topic string }

func (e *noTopicError) Error() string {
	return fmt.Sprintf("kafka traffic log: topic %q does not exist on the brokers; create it (kafka-topics.sh --create --topic %s) or name another", e.topic, e.topic)
}

// Close disconnects.
func (r *Reader) Close() { r.cl.Close() }

// quietPoll is how long Read waits for more of the records its end
// offsets promise before it returns with what it has (a partition whose
// last offsets hold no data records; a broker that does not answer,
// whose error it then returns).
const quietPoll = 2 * time.Second

// Read calls fn with every event the topic held when Read was called that
// an earlier Read did not return (fn's event is valid only during the
// call). A Kafka record whose value does not decode is skipped (from its
// first bad event on) and counted (Skipped).
func (r *Reader) Read(ctx context.Context, fn func(*trafficlog.Event)) error {
	ends, err := r.endOffsets(ctx)
	if err != nil {
		return err
	}
	// Records retention deleted are not waited for: a partition emptied
	// so has nothing to read.
	starts, err := r.adm.ListStartOffsets(ctx, r.topic)
	if err != nil {
		return fmt.Errorf("kafka traffic log: cannot list topic %q's start offsets: %w", r.topic, err)
	}
	for p, o := range starts[r.topic] {
		if o.Err == nil && r.next[p] < o.Offset {
			r.next[p] = o.Offset
		}
	}
	behind := func() bool {
		for p, o := range ends[r.topic] {
			if r.next[p] < o.Offset {
				return true
			}
		}
		return false
	}
	var e trafficlog.Event
	var fetchErr error // the last, reported if the records never come
	quiet := time.Now().Add(quietPoll)
	for behind() {
		if time.Now().After(quiet) {
			// The end offsets promised records that did not come (the
			// partition's last offsets hold no data records, say).
			return fetchErr
		}
		pctx, cancel := context.WithDeadline(ctx, quiet)
		fs := r.cl.PollFetches(pctx)
		cancel()
		if fs.IsClientClosed() {
			return errors.New("kafka traffic log: the reader is closed")
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = fmt.Errorf("kafka traffic log: topic %q partition %d: %w", t, p, err)
			}
		})
		fs.EachRecord(func(rec *kgo.Record) {
			quiet = time.Now().Add(quietPoll)
			r.next[rec.Partition] = rec.Offset + 1
			for b := rec.Value; len(b) > 0; {
				k, err := trafficlog.Decode(b, &e)
				if err != nil {
					r.skipped++
					return
				}
				fn(&e)
				b = b[k:]
			}
		})
		// Only once the records polled are read: the consumer has moved
		// past them.
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// endOffsets lists the topic's partitions' end offsets. A partition whose
// offset cannot be listed (a leader election) is asked again once, then
// is an error: a Read must not return part of the topic as all of it. A
// partition the consumer has not been told of makes it refresh its
// metadata, so that Read reads it.
func (r *Reader) endOffsets(ctx context.Context) (kadm.ListedOffsets, error) {
	var ends kadm.ListedOffsets
	var bad error
	for try := 0; try < 2; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		var err error
		ends, err = r.adm.ListEndOffsets(ctx, r.topic)
		if err != nil {
			return nil, fmt.Errorf("kafka traffic log: cannot list topic %q's end offsets: %w", r.topic, err)
		}
		bad = nil
		for p, o := range ends[r.topic] {
			if o.Err != nil {
				bad = fmt.Errorf("kafka traffic log: cannot list the end offset of topic %q partition %d: %w", r.topic, p, o.Err)
			}
		}
		if bad == nil {
			break
		}
	}
	if bad != nil {
		return nil, bad
	}
	first, fresh := len(r.known) == 0, false
	for p := range ends[r.topic] {
		if !r.known[p] {
			r.known[p], fresh = true, true
		}
	}
	if fresh && !first {
		r.cl.ForceMetadataRefresh()
	}
	return ends, nil
}
