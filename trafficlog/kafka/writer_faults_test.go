package kafka

// Tests from a review of the Kafka traffic log: a comment that tells a
// defect tells what the test found (in the code it ran against), now fixed.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/infergate/infergate/internal/kafkatest"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trafficlog"
)

// faultCluster starts a kfake cluster with topic "traffic" of the given
// partitions.
func faultCluster(t *testing.T, partitions int32, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, "traffic")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func openWith(t *testing.T, brokers []string, mod func(*Config)) (*Writer, *metrics.Set) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic = brokers, "traffic"
	cfg.Metrics = metrics.NewSet()
	cfg.Logf = t.Logf
	if mod != nil {
		mod(&cfg)
	}
	w, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		w.Close(ctx)
	})
	return w, cfg.Metrics
}

// within runs f and fails the test unless it returns within d; it returns
// f's error and how long it took.
func within(t *testing.T, d time.Duration, what string, f func() error) (error, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err, time.Since(start)
	case <-time.After(d):
		t.Fatalf("%s still had not returned after %s", what, d)
		return nil, 0
	}
}

// TestAppendSyncHungBroker: a broker that takes the produce request
// and never answers. AppendSync must give up at SyncTimeout (the feedback
// handler answers 503 then); it waits on kgo's promise, which an
// idempotent producer cannot fail while its request is in flight.
func TestAppendSyncHungBroker(t *testing.T) {
	c := faultCluster(t, 1)
	w, _ := openWith(t, c.ListenAddrs(), func(cfg *Config) { cfg.SyncTimeout = 500 * time.Millisecond })
	if err := w.AppendSync(feedback(0)); err != nil { // producer id and metadata loaded
		t.Fatal(err)
	}
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, nil, true // taken, never answered
	})
	err, took := within(t, 5*time.Second, "AppendSync with SyncTimeout 500ms", func() error { return w.AppendSync(feedback(1)) })
	if !errors.Is(err, trafficlog.ErrSyncTimeout) {
		t.Fatalf("AppendSync: %v after %s; want ErrSyncTimeout", err, took)
	}
}

// TestAppendSyncBehindAppends: the brokers refuse produce requests
// (a retriable error: a leader election, say) while predictions are being
// appended. AppendSync must fail at SyncTimeout; kgo fails a partition's
// records on the context of its first batch's first record only, here an
// Append's (no deadline), so AppendSync waited for the delivery timeout
// the writer then gave kgo (8 s here).
func TestAppendSyncBehindAppends(t *testing.T) {
	c := faultCluster(t, 1)
	w, _ := openWith(t, c.ListenAddrs(), func(cfg *Config) { cfg.SyncTimeout = 500 * time.Millisecond })
	if err := w.AppendSync(feedback(0)); err != nil {
		t.Fatal(err)
	}
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotLeaderForPartition, Count: -1})
	if err := w.Append(prediction(1)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the prediction's batch goes first
	err, took := within(t, 15*time.Second, "AppendSync", func() error { return w.AppendSync(feedback(1)) })
	if took > 3*time.Second {
		t.Fatalf("AppendSync with SyncTimeout 500ms returned after %s: %v", took.Round(time.Millisecond), err)
	}
	if !errors.Is(err, trafficlog.ErrSyncTimeout) {
		t.Fatalf("AppendSync: %v; want ErrSyncTimeout", err)
	}
}

// TestCloseAccounting: Close with records the brokers never took
// returns by its context's deadline (good), but what it reports races
// with kgo failing those records on another goroutine: its error, which
// serve logs at shutdown, reads BufferedProduceBytes after kgo's Close,
// often once the records are failed ("0 bytes not sent"); and when it
// returns, the records are often not yet counted dropped (the process
// then exits with them in neither series). Repeated, since each outcome
// is a race; one clean round in ten would be luck.
func TestCloseAccounting(t *testing.T) {
	for round := range 10 {
		c := faultCluster(t, 1)
		w, set := openWith(t, c.ListenAddrs(), nil)
		if err := w.AppendSync(feedback(0)); err != nil {
			t.Fatal(err)
		}
		c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			return nil, nil, true // taken, never answered
		})
		for i := range 10 {
			w.Append(prediction(i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err, took := within(t, 10*time.Second, "Close with a 300ms context", func() error { return w.Close(ctx) })
		cancel()
		if took > 2*time.Second {
			t.Fatalf("Close with a 300ms context took %s", took)
		}
		if err == nil {
			t.Fatal("Close: nil; want the records not sent")
		}
		var sb strings.Builder
		set.WritePrometheus(&sb)
		if !strings.Contains(sb.String(), `infergate_traffic_dropped_total{reason="closed"} 10`) {
			t.Fatalf("round %d: when Close returned (%v), the 10 predictions it gave up on were not counted dropped:\n%s", round, err, sb.String())
		}
		if strings.Contains(err.Error(), ": 0 bytes not sent") {
			t.Fatalf("round %d: Close with 10 predictions unsent: %q", round, err)
		}
	}
}

// bigPrediction is prediction i with an input of about n bytes.
func bigPrediction(i, n int) *trafficlog.Event {
	e := prediction(i)
	data := make([]byte, n/4*4)
	rand.Read(data) // incompressible: the producer compresses batches
	e.Inputs = []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, int64(n / 4)}, Data: data}}
	return e
}

// smallTopic starts a cluster with topic "traffic" whose max.message.bytes
// is 64 KiB (a topic an operator set up with a lower limit than the
// writer's 1,000,000-byte default; serve has no flag for MaxRecordBytes).
func smallTopic(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.CreateTopic("traffic", 1, map[string]string{"max.message.bytes": "65536"}); err != nil {
		t.Fatal(err)
	}
	return c.ListenAddrs()
}

// TestTopicMessageLimitSync: feedback over the topic's
// max.message.bytes is refused by the broker (MESSAGE_TOO_LARGE), and
// AppendSync reports it as a write error (the gateway: 503 "retry
// later", forever) instead of trafficlog.ErrTooLarge (413 "send fewer").
func TestTopicMessageLimitSync(t *testing.T) {
	w, _ := openWith(t, smallTopic(t), nil)
	err := w.AppendSync(bigPrediction(1, 100_000))
	if !errors.Is(err, trafficlog.ErrTooLarge) {
		t.Fatalf("AppendSync of 100 KB into a topic of max.message.bytes 64 KiB: %v; want ErrTooLarge", err)
	}
}

// TestTopicMessageLimitBatch: predictions of 8 KB each, every one
// within the topic's 64 KiB max.message.bytes, are lost: the producer
// batches up to MaxRecordBytes+1024 per partition, and the broker refuses
// the whole batch.
func TestTopicMessageLimitBatch(t *testing.T) {
	w, set := openWith(t, smallTopic(t), nil)
	for i := range 20 {
		if err := w.Append(bigPrediction(i, 8_000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.cl.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	set.WritePrometheus(&sb)
	if !strings.Contains(sb.String(), `infergate_traffic_events_total{kind="prediction"} 20`+"\n") {
		t.Fatalf("20 predictions of 8 KB (each within the topic's 64 KiB limit) were not all written:\n%s", sb.String())
	}
}

// downCluster starts a cluster whose brokers takeDown takes down.
func downCluster(t *testing.T, partitions int32) (c *kfake.Cluster, takeDown func(...int32)) {
	return kafkatest.Cluster(t, "traffic", partitions)
}

// TestAppendSyncBrokersDown: the brokers go down mid-run (their
// connections closed, new ones refused), the writer idle. AppendSync
// must fail at SyncTimeout; kgo never fails a record on a dial error
// (canFail is false there), so it waits until the brokers are back.
func TestAppendSyncBrokersDown(t *testing.T) {
	c, down := downCluster(t, 3)
	w, _ := openWith(t, c.ListenAddrs(), func(cfg *Config) { cfg.SyncTimeout = 500 * time.Millisecond })
	if err := w.AppendSync(feedback(0)); err != nil {
		t.Fatal(err)
	}
	down()
	err, took := within(t, 5*time.Second, "AppendSync with SyncTimeout 500ms and the brokers down", func() error { return w.AppendSync(feedback(1)) })
	if !errors.Is(err, trafficlog.ErrSyncTimeout) {
		t.Fatalf("AppendSync: %v after %s; want ErrSyncTimeout", err, took)
	}
}

// droppedTotal sums infergate_traffic_dropped_total over its reasons.
func droppedTotal(set *metrics.Set) (int, string) {
	var sb strings.Builder
	set.WritePrometheus(&sb)
	n := 0
	for _, line := range strings.Split(sb.String(), "\n") {
		if strings.HasPrefix(line, "infergate_traffic_dropped_total{") {
			var k int
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &k)
			n += k
		}
	}
	return n, sb.String()
}

// TestSyncTimeoutIsCounted: the brokers refuse the write (a
// retriable error) past SyncTimeout: AppendSync fails with ErrSyncTimeout,
// and the events, which the producer goes on trying to send, are
// accounted for once the brokers take writes again: written and counted
// so, or counted dropped (found by a review: they were counted nowhere).
func TestSyncTimeoutIsCounted(t *testing.T) {
	c := faultCluster(t, 1)
	w, set := openWith(t, c.ListenAddrs(), func(cfg *Config) { cfg.SyncTimeout = 300 * time.Millisecond })
	if err := w.AppendSync(feedback(0)); err != nil {
		t.Fatal(err)
	}
	f := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	err, took := within(t, 15*time.Second, "AppendSync", func() error { return w.AppendSync(feedback(1), feedback(2)) })
	t.Logf("AppendSync: %v after %s", err, took)
	if !errors.Is(err, trafficlog.ErrSyncTimeout) {
		t.Fatalf("AppendSync: %v; want ErrSyncTimeout", err)
	}
	f.Remove()
	written := func() int {
		var sb strings.Builder
		set.WritePrometheus(&sb)
		var n int
		for _, line := range strings.Split(sb.String(), "\n") {
			if strings.HasPrefix(line, `infergate_traffic_events_total{kind="feedback"} `) {
				fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n)
			}
		}
		return n
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		dropped, text := droppedTotal(set)
		if written()+dropped == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 feedback events: %d counted written, %d dropped:\n%s", written(), dropped, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r, rerr := NewReader(t.Context(), c.ListenAddrs(), "traffic", Security{})
	if rerr != nil {
		t.Fatal(rerr)
	}
	defer r.Close()
	if got := readAll(t, r); len(got) != written() {
		t.Fatalf("the topic holds %d events; %d counted written", len(got), written())
	}
}

// TestSyncTimeoutKeepsPredictions: a feedback call's AppendSync
// times out during a short broker hiccup (a retriable error); kgo fails
// every record buffered for the partition on the context of the first
// (AppendSync's), so the predictions appended behind it are dropped after
// SyncTimeout, not after the delivery timeout the writer then gave kgo
// (30s), though the brokers are back well within that.
func TestSyncTimeoutKeepsPredictions(t *testing.T) {
	c := faultCluster(t, 1)
	w, set := openWith(t, c.ListenAddrs(), func(cfg *Config) { cfg.SyncTimeout = 300 * time.Millisecond })
	if err := w.AppendSync(feedback(0)); err != nil {
		t.Fatal(err)
	}
	f := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	done := make(chan error, 1)
	go func() { done <- w.AppendSync(feedback(1)) }()
	time.Sleep(50 * time.Millisecond)
	for i := range 5 {
		w.Append(prediction(i))
	}
	err := <-done
	t.Logf("AppendSync: %v", err)
	f.Remove()
	if err := w.cl.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	set.WritePrometheus(&sb)
	if !strings.Contains(sb.String(), `infergate_traffic_events_total{kind="prediction"} 5`+"\n") {
		t.Fatalf("5 predictions appended during a short hiccup were not written:\n%s", sb.String())
	}
}

// TestUndecodableEventRefused: an event with more dimensions (or
// tensors) than trafficlog.Decode takes is refused by the embedded log
// (decodable: ErrTooLarge, counted too_large); the Kafka writer checks
// the kind only, so it sends it and counts it written, and every reader
// then skips the record as "not infergate's events".
func TestUndecodableEventRefused(t *testing.T) {
	c := faultCluster(t, 1)
	w, set := openWith(t, c.ListenAddrs(), nil)
	e := prediction(1)
	e.Inputs[0].Shape = make([]int64, 65)
	for i := range e.Inputs[0].Shape {
		e.Inputs[0].Shape[i] = 1
	}
	err := w.AppendSync(e)
	r, rerr := NewReader(t.Context(), c.ListenAddrs(), "traffic", Security{})
	if rerr != nil {
		t.Fatal(rerr)
	}
	defer r.Close()
	got := readAll(t, r)
	var sb strings.Builder
	set.WritePrometheus(&sb)
	if !errors.Is(err, trafficlog.ErrTooLarge) {
		t.Fatalf("AppendSync of a 65-dimension tensor: %v; want ErrTooLarge as the embedded log says; the reader then got %d events and skipped %d records; events_total counts it written: %v",
			err, len(got), r.Skipped(), strings.Contains(sb.String(), `infergate_traffic_events_total{kind="prediction"} 1`))
	}
}

// outage is how long TestRecordsWaitOutOutage keeps the brokers down.
const outage = 3 * time.Second

// TestRecordsWaitOutOutage: the brokers are down (connections refused)
// while predictions are appended, then come back. Every prediction must
// be written: they wait in the buffer, which holds them all. The writer
// gave kgo a delivery timeout (30 s), which kgo enforces on a batch it
// has not yet tried to send, and then fails every record buffered for
// the partition, however new: the records past a partition's first batch
// (1 MB) that had waited longer were dropped when the brokers came back
// (a 40 s outage at 169 predictions/s dropped 6,141 of 9,270 as
// write_error against a real broker, the buffer at 1.9 MB of 64 MiB).
// The outage here is shorter than 30 s, so the test asks kgo first that
// it has no delivery timeout; with the old one, an outage of 35 s
// (instead of 3) dropped 204 of these 300 predictions.
func TestRecordsWaitOutOutage(t *testing.T) {
	c, brokers := kafkatest.Start(t, "traffic", 3)
	w, set := openWith(t, c.ListenAddrs(), nil)
	if got := w.cl.OptValue(kgo.RecordDeliveryTimeout); got != time.Duration(0) {
		t.Fatalf("kgo's record delivery timeout: got %v; want 0 (none)", got)
	}
	if err := w.AppendSync(feedback(0)); err != nil { // producer id and metadata loaded
		t.Fatal(err)
	}
	brokers.TakeDown()
	// 3 MB in all, more than a partition's batch holds: the first batch
	// is tried and fails to connect, the others wait untried.
	const n = 300
	for i := range n {
		if err := w.Append(bigPrediction(i, 10_000)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(outage / n)
	}
	brokers.BringUp()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := w.cl.Flush(ctx); err != nil {
		t.Fatalf("the brokers back, the buffer was not sent in 20s: %v", err)
	}
	if dropped, text := droppedTotal(set); dropped != 0 || !strings.Contains(text, fmt.Sprintf(`infergate_traffic_events_total{kind="prediction"} %d`+"\n", n)) {
		t.Fatalf("%d predictions appended during an outage of %s: %d dropped; want all written:\n%s", n, outage, dropped, text)
	}
	r := newTestReader(t, c.ListenAddrs())
	if got := readAll(t, r); len(got) != n+1 {
		t.Fatalf("the topic holds %d events; want the %d predictions and the feedback", len(got), n)
	}
}

// TestOutageFillsBuffer: while the brokers are down, the buffer bounds
// what waits: the predictions past it are dropped and counted as
// queue_full, the log says so (once), and the rest are written when the
// brokers are back. Nothing was logged during an outage once the
// delivery timeout that logged write errors was gone.
func TestOutageFillsBuffer(t *testing.T) {
	c, brokers := kafkatest.Start(t, "traffic", 1)
	var logged logLines
	w, set := openWith(t, c.ListenAddrs(), func(cfg *Config) {
		cfg.MaxRecordBytes, cfg.BufferBytes = 100_000, 200_000
		cfg.Logf = logged.logf
	})
	if err := w.AppendSync(feedback(0)); err != nil {
		t.Fatal(err)
	}
	brokers.TakeDown()
	const n = 100 // 1 MB, five times the buffer
	for i := range n {
		w.Append(bigPrediction(i, 10_000))
	}
	brokers.BringUp()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := w.cl.Flush(ctx); err != nil {
		t.Fatalf("the brokers back, the buffer was not sent in 20s: %v", err)
	}
	var sb strings.Builder
	set.WritePrometheus(&sb)
	var written, full, dropped int
	for _, line := range strings.Split(sb.String(), "\n") {
		v := line[strings.LastIndexByte(line, ' ')+1:]
		switch {
		case strings.HasPrefix(line, `infergate_traffic_events_total{kind="prediction"} `):
			fmt.Sscan(v, &written)
		case strings.HasPrefix(line, `infergate_traffic_dropped_total{reason="queue_full"} `):
			fmt.Sscan(v, &full)
		}
	}
	dropped, _ = droppedTotal(set)
	if written+full != n || dropped != full || full == 0 || written == 0 {
		t.Fatalf("%d predictions of 10 KB into a buffer of 200 KB, brokers down: %d written, %d dropped as queue_full, %d dropped in all; want some written, the rest queue_full:\n%s", n, written, full, dropped, sb.String())
	}
	if k := strings.Count(logged.all(), "is full"); k != 1 {
		t.Fatalf("logged %d times that the buffer is full; want once:\n%s", k, logged.all())
	}
}

// TestCloseWhileBrokersCannotTake: records wait for the brokers with no
// time limit, so Close is what ends their wait at shutdown: with the
// brokers down, or up and refusing every write with an error that may
// clear, Close returns by its context's deadline, and every record left
// is counted dropped (closed).
func TestCloseWhileBrokersCannotTake(t *testing.T) {
	f := func(t *testing.T, cantTake func(*kfake.Cluster, *kafkatest.Brokers)) {
		c, brokers := kafkatest.Start(t, "traffic", 3)
		w, set := openWith(t, c.ListenAddrs(), nil)
		if err := w.AppendSync(feedback(0)); err != nil {
			t.Fatal(err)
		}
		cantTake(c, brokers)
		for i := range 20 {
			w.Append(prediction(i))
		}
		time.Sleep(200 * time.Millisecond) // tried and failed at least once
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err, took := within(t, 10*time.Second, "Close with a 300ms context", func() error { return w.Close(ctx) })
		if took > 2*time.Second || err == nil {
			t.Fatalf("Close with a 300ms context: %v after %s; want an error by then", err, took.Round(time.Millisecond))
		}
		var sb strings.Builder
		set.WritePrometheus(&sb)
		if !strings.Contains(sb.String(), `infergate_traffic_dropped_total{reason="closed"} 20`+"\n") {
			t.Fatalf("when Close returned (%v), the 20 predictions were not counted dropped (closed):\n%s", err, sb.String())
		}
	}
	t.Run("down", func(t *testing.T) {
		f(t, func(_ *kfake.Cluster, b *kafkatest.Brokers) { b.TakeDown() })
	})
	t.Run("refusing", func(t *testing.T) {
		f(t, func(c *kfake.Cluster, _ *kafkatest.Brokers) {
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
		})
	})
}

// TestStallLogged: the brokers refuse every write with an error that may
// clear (here NOT_ENOUGH_REPLICAS, as from a topic whose
// min.insync.replicas exceeds its live replicas), or cannot be reached.
// Records wait without a time limit, so nothing was logged until the
// buffer filled (at 64 MiB, hours of light traffic), and then without
// the brokers' reason; with the delivery timeout, the log said "cannot
// write ...: NOT_ENOUGH_REPLICAS" after 30 s. Once records have waited
// SyncTimeout with no ack, the log must say so, and why.
// A quiet writer (quiet: no event after the first few of the outage) must
// say so too: its records wait as long.
func TestStallLogged(t *testing.T) {
	f := func(t *testing.T, bufferBytes int64, cantTake func(*kfake.Cluster, *kafkatest.Brokers), why string, quiet bool) {
		c, brokers := kafkatest.Start(t, "traffic", 1)
		var logged logLines
		w, _ := openWith(t, c.ListenAddrs(), func(cfg *Config) {
			cfg.SyncTimeout = time.Second
			cfg.MaxRecordBytes, cfg.BufferBytes = min(1_000_000, int(bufferBytes)), bufferBytes
			cfg.Logf = logged.logf
		})
		if err := w.AppendSync(feedback(0)); err != nil {
			t.Fatal(err)
		}
		cantTake(c, brokers)
		all := logged.all
		for i := 0; !strings.Contains(all(), why); i++ {
			if i == 400 { // 20 s, past SyncTimeout and reasonGrace
				t.Fatalf("records waited 20s with no ack (SyncTimeout 1s); the log does not say %q:\n%s", why, all())
			}
			if !quiet || i < 3 {
				w.Append(prediction(i))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if k := strings.Count(all(), "no write acknowledged"); k != 1 {
			t.Fatalf("logged %d times that no write was acknowledged; want once (a minute apart):\n%s", k, all())
		}
	}
	t.Run("refusing", func(t *testing.T) {
		f(t, 64<<20, func(c *kfake.Cluster, _ *kafkatest.Brokers) {
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
		}, "NOT_ENOUGH_REPLICAS", false)
	})
	t.Run("down", func(t *testing.T) {
		f(t, 64<<20, func(_ *kfake.Cluster, b *kafkatest.Brokers) { b.TakeDown() }, "connection refused", false)
	})
	t.Run("down-quiet", func(t *testing.T) {
		f(t, 64<<20, func(_ *kfake.Cluster, b *kafkatest.Brokers) { b.TakeDown() }, "connection refused", true)
	})
	t.Run("refusing-quiet", func(t *testing.T) {
		f(t, 64<<20, func(c *kfake.Cluster, _ *kafkatest.Brokers) {
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
		}, "NOT_ENOUGH_REPLICAS", true)
	})
	// The buffer full within SyncTimeout (some 10 predictions): every
	// Append after is refused, and the log must say why still.
	t.Run("full", func(t *testing.T) {
		f(t, 4_000, func(_ *kfake.Cluster, b *kafkatest.Brokers) { b.TakeDown() }, "connection refused", false)
	})
}

// TestBufferBoundsMemory: while the brokers are down, what the buffer
// holds in memory stays within BufferBytes. kgo's MaxBufferedBytes
// counts record values only, and kgo and the writer hold about 250 bytes
// more for each record: 8 MiB of small predictions took 39 MB of heap
// (at the 325 bytes of the README's predictions, 1.8 times the buffer).
func TestBufferBoundsMemory(t *testing.T) {
	c, brokers := kafkatest.Start(t, "traffic", 3)
	const buffer = 8 << 20
	w, set := openWith(t, c.ListenAddrs(), func(cfg *Config) { cfg.BufferBytes = buffer })
	if err := w.AppendSync(feedback(0)); err != nil {
		t.Fatal(err)
	}
	brokers.TakeDown()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 200_000 // of 64 bytes: over 12 MiB of values
	for i := range n {
		w.Append(prediction(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	dropped, text := droppedTotal(set)
	if grew > buffer*5/4 || dropped == 0 {
		t.Fatalf("%d predictions appended, brokers down, into a buffer of %d bytes: the heap grew %d bytes (%.1f times the buffer), %d dropped; want at most 1.25 times, some dropped:\n%s",
			n, buffer, grew, float64(grew)/buffer, dropped, text)
	}
}

// logLines collects a writer's log lines; its methods may be called from
// any goroutine.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// all returns the lines so far, one a line.
func (l *logLines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
