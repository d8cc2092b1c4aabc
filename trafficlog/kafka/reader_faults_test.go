package kafka

// Tests from a review of the Kafka traffic log: a comment that tells a
// defect tells what the test found (in the code it ran against), now fixed.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/infergate/infergate/trafficlog"
)

// produceTo writes events to one partition, one Kafka record each, and
// waits for the acks.
func produceTo(t *testing.T, brokers []string, partition int32, es ...*trafficlog.Event) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("traffic"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, e := range es {
		recs = append(recs, &kgo.Record{Partition: partition, Value: trafficlog.AppendRecord(nil, e)})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func newTestReader(t *testing.T, brokers []string) *Reader {
	t.Helper()
	r, err := NewReader(t.Context(), brokers, "traffic", Security{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// readIDs reads once and returns the ids read, Read's error and how
// long it took.
func readIDs(ctx context.Context, r *Reader) (map[string]int, error, time.Duration) {
	got := map[string]int{}
	start := time.Now()
	err := r.Read(ctx, func(e *trafficlog.Event) { got[e.ID]++ })
	return got, err, time.Since(start)
}

func predictions(from, n int) []*trafficlog.Event {
	var es []*trafficlog.Event
	for i := from; i < from+n; i++ {
		es = append(es, prediction(i))
	}
	return es
}

// TestReadCanceledKeepsRecords: a Read whose context ends (a
// deadline, the trainer stopping) just as PollFetches hands it records
// drops them: the client has moved past them, r.next has not, and no
// later Read returns them (each later Read waits out quietPoll for them
// and returns nil). The hook cancels the context at that instant.
func TestReadCanceledKeepsRecords(t *testing.T) {
	c := faultCluster(t, 1)
	brokers := c.ListenAddrs()
	produceTo(t, brokers, 0, predictions(0, 50)...)
	var cancel context.CancelFunc
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics("traffic"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.WithHooks(cancelOnPoll{&cancel}),
	)
	if err != nil {
		t.Fatal(err)
	}
	r := &Reader{topic: "traffic", cl: cl, adm: kadm.NewClient(cl), next: map[int32]int64{}, known: map[int32]bool{}}
	defer r.Close()
	var ctx context.Context
	ctx, cancel = context.WithCancel(t.Context())
	first, err, _ := readIDs(ctx, r)
	t.Logf("first Read: %d events, %v", len(first), err)
	cancel = func() {}
	second, err, took := readIDs(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(first) + len(second); n != 50 {
		t.Fatalf("a canceled Read then a whole one returned %d of the 50 events (the second in %s); the rest are lost", n, took.Round(time.Millisecond))
	}
}

// cancelOnPoll cancels *c when PollFetches hands out a record.
type cancelOnPoll struct{ c *context.CancelFunc }

func (h cancelOnPoll) OnFetchRecordUnbuffered(*kgo.Record, bool) { (*h.c)() }

// TestReadNewPartition: a partition added to the topic after the
// reader started (kafka-topics.sh --alter --partitions) holds records at
// the call, which Read must return; the consuming client has not seen
// the partition (its metadata is up to 5 minutes old; nothing calls
// ForceMetadataRefresh), so Read waits out quietPoll and returns nil
// without them.
func TestReadNewPartition(t *testing.T) {
	c := faultCluster(t, 1)
	brokers := c.ListenAddrs()
	produceTo(t, brokers, 0, predictions(0, 5)...)
	r := newTestReader(t, brokers)
	if got, err, _ := readIDs(t.Context(), r); err != nil || len(got) != 5 {
		t.Fatalf("first Read: %d events, %v", len(got), err)
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreatePartitions(t.Context(), 2, "traffic"); err != nil {
		t.Fatal(err)
	}
	produceTo(t, brokers, 1, predictions(100, 5)...)
	produceTo(t, brokers, 0, predictions(200, 5)...)
	// Past kgo's MetadataMinAge (5s), so that ListEndOffsets sees the
	// new partition; the consumer does not for up to MetadataMaxAge (5
	// minutes): no Read returns its records until then, and each waits
	// out quietPoll for them.
	time.Sleep(6 * time.Second)
	got, err, took := readIDs(t.Context(), r)
	if err != nil || len(got) != 10 {
		t.Fatalf("Read after a partition was added: %d events of 10 (those in the new partition: %d), %v, in %s", len(got), countFrom(got, 100, 5), err, took.Round(time.Millisecond))
	}
}

func countFrom(got map[string]int, from, n int) int {
	k := 0
	for i := from; i < from+n; i++ {
		if got[fmt.Sprint("req-", i)] > 0 {
			k++
		}
	}
	return k
}

// TestReadEndOffsetError: ListOffsets fails for one partition
// (LEADER_NOT_AVAILABLE: a leader election, routine in Kafka). Read ignores partitions whose end
// offset came back with an error (behind skips o.Err != nil) and returns
// nil without their events: its caller cannot tell a whole read from a
// partial one.
func TestReadEndOffsetError(t *testing.T) {
	c := faultCluster(t, 2)
	brokers := c.ListenAddrs()
	produceTo(t, brokers, 0, predictions(0, 5)...)
	produceTo(t, brokers, 1, predictions(100, 5)...)
	r := newTestReader(t, brokers)
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets}, Topic: "traffic", Partitions: []int32{1}, Err: kerr.LeaderNotAvailable, Count: -1})
	got, err, took := readIDs(t.Context(), r)
	if err == nil && countFrom(got, 100, 5) < 5 {
		t.Fatalf("Read returned nil in %s with %d of 10 events (partition 1's: %d)", took.Round(time.Millisecond), len(got), countFrom(got, 100, 5))
	}
}
