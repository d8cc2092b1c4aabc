package kafka

// Tests from a review of the Kafka traffic log: a comment that tells a
// defect tells what the test found (in the code it ran against), now fixed.

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/infergate/infergate/internal/kafkatest"
	"github.com/infergate/infergate/trafficlog"
)

// These pass on the current code; kept as guards.

// TestReaderAcrossRestart: the brokers restart (same ports, state
// on disk) between two Reads and while a writer appends: the reader
// returns every acknowledged event once.
func TestReaderAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "traffic"), kfake.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.ListenAddrs()
	_, portStr, _ := net.SplitHostPort(addrs[0])
	port, _ := strconv.Atoi(portStr)
	w, set := openWith(t, addrs, nil)
	for i := range 50 {
		w.Append(prediction(i))
	}
	if err := w.cl.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := newTestReader(t, addrs)
	first, err, _ := readIDs(t.Context(), r)
	if err != nil || len(first) != 50 {
		t.Fatalf("first Read: %d, %v", len(first), err)
	}
	c.Close()
	time.Sleep(200 * time.Millisecond)
	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	for i := 50; i < 100; i++ {
		w.Append(prediction(i))
	}
	if err := w.AppendSync(feedback(1)); err != nil {
		t.Fatal(err)
	}
	if err := w.cl.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var second map[string]int
	for range 10 { // a Read right after the restart may end before the client reconnects
		got, err, _ := readIDs(t.Context(), r)
		if err != nil {
			t.Logf("Read: %v", err)
		}
		if second == nil {
			second = got
		} else {
			for k, v := range got {
				second[k] += v
			}
		}
		if len(second) >= 51 {
			break
		}
	}
	for id, n := range second {
		if n != 1 || first[id] != 0 && !strings.HasPrefix(id, "req-1") {
			t.Fatalf("event %s read %d times (first Read: %d)", id, n, first[id])
		}
	}
	if len(second) != 51 {
		t.Fatalf("after the restart: %d events; want 51", len(second))
	}
	var sb strings.Builder
	set.WritePrometheus(&sb)
	if !strings.Contains(sb.String(), `infergate_traffic_events_total{kind="prediction"} 100`) {
		t.Fatalf("metrics:\n%s", sb.String())
	}
}

// TestConcurrentAppendsCounted: many goroutines Append and
// AppendSync at once (with -race), then Close: every event is either
// counted as written and read back, or counted as dropped.
func TestConcurrentAppendsCounted(t *testing.T) {
	c := faultCluster(t, 3)
	w, set := openWith(t, c.ListenAddrs(), func(cfg *Config) { cfg.BufferBytes = 1 << 20; cfg.MaxRecordBytes = 1 << 20 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	synced := 0
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				w.Append(prediction(g*100000 + i))
				if i%100 == 0 {
					if err := w.AppendSync(feedback(g*100000 + i)); err == nil {
						mu.Lock()
						synced++
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := newTestReader(t, c.ListenAddrs())
	got := map[string]int{}
	if err := r.Read(t.Context(), func(e *trafficlog.Event) { got[e.Kind.String()+e.ID]++ }); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	set.WritePrometheus(&sb)
	text := sb.String()
	metric := func(name string) int {
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, name+" ") {
				n, _ := strconv.Atoi(l[len(name)+1:])
				return n
			}
		}
		return -1
	}
	written := metric(`infergate_traffic_events_total{kind="prediction"}`) + metric(`infergate_traffic_events_total{kind="feedback"}`)
	dropped, _ := droppedTotal(set)
	total := 8*2000 + 8*20
	if len(got) != written || written+dropped != total {
		t.Fatalf("read %d, counted written %d, dropped %d; want read = written and written+dropped = %d\n%s", len(got), written, dropped, total, text)
	}
	for k, n := range got {
		if n != 1 {
			t.Fatalf("%s read %d times", k, n)
		}
	}
	if metric(`infergate_traffic_events_total{kind="feedback"}`) != synced {
		t.Fatalf("feedback counted %d; AppendSync returned nil %d times", metric(`infergate_traffic_events_total{kind="feedback"}`), synced)
	}
}

// TestReadPartitionUnreadable: the leader of one partition refuses
// its fetches; Read returns the error after quietPoll.
func TestReadPartitionUnreadable(t *testing.T) {
	c := faultCluster(t, 2)
	brokers := c.ListenAddrs()
	produceTo(t, brokers, 0, predictions(0, 5)...)
	produceTo(t, brokers, 1, predictions(100, 5)...)
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "traffic", Partitions: []int32{1}, Err: kerr.UnknownServerError, Count: -1})
	r := newTestReader(t, brokers)
	got, err, took := readIDs(t.Context(), r)
	if err == nil {
		t.Fatalf("Read returned nil in %s with %d of 10 events (partition 1's: %d)", took.Round(time.Millisecond), len(got), countFrom(got, 100, 5))
	}
}

// TestReadRetention: records deleted under the reader (retention,
// DeleteRecords) are skipped without an error or a stall, and the rest
// read once; an empty topic reads at once.
func TestReadRetention(t *testing.T) {
	c := faultCluster(t, 1)
	brokers := c.ListenAddrs()
	r := newTestReader(t, brokers)
	if got, err, took := readIDs(t.Context(), r); err != nil || len(got) != 0 || took > time.Second {
		t.Fatalf("empty topic: %d events, %v, in %s", len(got), err, took)
	}
	produceTo(t, brokers, 0, predictions(0, 10)...)
	if got, err, _ := readIDs(t.Context(), r); err != nil || len(got) != 10 {
		t.Fatalf("first Read: %d, %v", len(got), err)
	}
	produceTo(t, brokers, 0, predictions(10, 10)...)
	if err := c.DeleteRecords("traffic", 0, 15); err != nil {
		t.Fatal(err)
	}
	produceTo(t, brokers, 0, predictions(20, 10)...)
	got, err, took := readIDs(t.Context(), r)
	// 10 to 14 may have been fetched before they were deleted.
	if err != nil || countFrom(got, 15, 15) != 15 || took > time.Second {
		t.Fatalf("after retention: %d events (%v), %v, in %s", len(got), got, err, took)
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("%s read %d times", id, n)
		}
	}
}

var _ = fmt.Sprint

// TestReadEmptiedPartition: a partition whose records retention
// deleted entirely (end offset above 0, nothing to fetch) does not make
// Read wait for them (it cost every Read quietPoll, 2 s, before).
func TestReadEmptiedPartition(t *testing.T) {
	c := faultCluster(t, 2)
	brokers := c.ListenAddrs()
	produceTo(t, brokers, 1, predictions(0, 10)...)
	if err := c.DeleteRecords("traffic", 1, 10); err != nil {
		t.Fatal(err)
	}
	produceTo(t, brokers, 0, predictions(100, 10)...)
	r := newTestReader(t, brokers)
	for i := range 3 {
		got, err, took := readIDs(t.Context(), r)
		t.Logf("Read %d: %d events, %v, in %s", i, len(got), err, took.Round(time.Millisecond))
		if want := map[int]int{0: 10}[i]; err != nil || len(got) != want || took >= quietPoll {
			t.Fatalf("Read %d: %d events, %v, in %s; want %d at once", i, len(got), err, took, want)
		}
	}
}

// TestReadBrokerDown: of two brokers, the one leading partition 1
// is down (connections refused): Read fails at once (ListEndOffsets
// cannot reach it).
func TestReadBrokerDown(t *testing.T) {
	c, takeDown := kafkatest.Cluster(t, "traffic", 2, kfake.NumBrokers(2))
	brokers := c.ListenAddrs()
	produceTo(t, brokers, 0, predictions(0, 5)...)
	produceTo(t, brokers, 1, predictions(100, 5)...)
	leader1 := c.LeaderFor("traffic", 1)
	if c.LeaderFor("traffic", 0) == leader1 {
		if err := c.MoveTopicPartition("traffic", 0, 1-leader1); err != nil {
			t.Fatal(err)
		}
	}
	r := newTestReader(t, brokers)
	takeDown(leader1)
	got, err, took := readIDs(t.Context(), r)
	if err == nil {
		t.Fatalf("Read returned nil in %s with %d of 10 events (partition 1's: %d)", took.Round(time.Millisecond), len(got), countFrom(got, 100, 5))
	}
	t.Logf("Read: %d events, %v, in %s", len(got), err, took)
}
