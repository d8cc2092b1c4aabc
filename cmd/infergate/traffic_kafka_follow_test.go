package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/infergate/infergate/internal/kafkatest"
	"github.com/infergate/infergate/trafficlog"
)

// produceFeedback writes feedback events from, from+1, ... (ids fb-N) to
// topic "traffic", one Kafka record each, and waits for the acks.
func produceFeedback(t *testing.T, brokers []string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("traffic"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		e := &trafficlog.Event{Kind: trafficlog.Feedback, Time: time.Unix(1700000000, 0).UTC(), ID: fmt.Sprint("fb-", i), Model: "ctr", Label: 1, HasLabel: true}
		recs = append(recs, &kgo.Record{Value: trafficlog.AppendRecord(nil, e)})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// traffic read --follow of a Kafka topic goes on through brokers that go
// away and come back on the same address, saying so, and prints every
// event once: it exited 1 about a second after the brokers went away
// ("cannot list topic ... end offsets: unable to dial"). Without
// --follow, brokers that cannot be reached are an error still.
func TestTrafficFollowKafkaRidesOutBrokerOutage(t *testing.T) {
	c, brokers := kafkatest.Start(t, "traffic", 2)
	addrs := c.ListenAddrs()
	produceFeedback(t, addrs, 0, 5)
	p := startFollow(t, "--follow", "--poll", "50ms", "--kafka-brokers", addrs[0], "--kafka-topic", "traffic")
	exited, stderr := p.exited, &p.stderr
	ids := make(chan string, 16)
	go func() {
		for line := range p.lines {
			var e struct{ ID string }
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				ids <- "bad line: " + line
				continue
			}
			ids <- e.ID
		}
	}()
	seen := map[string]int{}
	// readUntil takes lines until n distinct events are seen, or fails.
	readUntil := func(n int) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for len(seen) < n {
			select {
			case id := <-ids:
				seen[id]++
			case <-exited:
				t.Fatalf("traffic read --follow ended (%v) with %d of %d events; stderr:\n%s", p.err, len(seen), n, stderr.String())
			case <-deadline:
				t.Fatalf("traffic read --follow printed %d of %d events in 20s; stderr:\n%s", len(seen), n, stderr.String())
			}
		}
	}
	// waitFor waits until stderr says want, or fails.
	waitFor := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stderr.String(), want); time.Sleep(20 * time.Millisecond) {
			select {
			case <-exited:
				t.Fatalf("traffic read --follow ended (%v) before saying %q; stderr:\n%s", p.err, want, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("traffic read --follow did not say %q in 20s; stderr:\n%s", want, stderr.String())
			}
		}
	}
	readUntil(5)
	brokers.TakeDown()
	waitFor("trying again every 50ms")
	checkExit(t, 1, "cannot reach the Kafka brokers", "traffic", "read", "--kafka-brokers", addrs[0], "--kafka-topic", "traffic")
	time.Sleep(time.Second) // a few tries while the brokers are down
	brokers.BringUp()
	produceFeedback(t, addrs, 5, 5)
	readUntil(10)
	waitFor("reached the Kafka brokers again; going on")
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show
	for len(ids) > 0 {
		seen[<-ids]++
	}
	for i := range 10 {
		if id := fmt.Sprint("fb-", i); seen[id] != 1 {
			t.Errorf("event %s printed %d times; want once", id, seen[id])
		}
	}
	if len(seen) != 10 {
		t.Errorf("printed %d distinct lines: %v; want the 10 events", len(seen), seen)
	}
	if n := strings.Count(stderr.String(), "trying again"); n != 1 {
		t.Errorf("said %d times that it is trying again; want once:\n%s", n, stderr.String())
	}
}

// A --follow of a topic the brokers do not have ends with the error, as
// without --follow: waiting does not create it.
func TestTrafficFollowKafkaEndsOnAMissingTopic(t *testing.T) {
	c, _ := kafkatest.Start(t, "traffic", 1)
	checkFollowEnds(t, `topic "trafic" does not exist`, "--follow", "--poll", "50ms", "--kafka-brokers", c.ListenAddrs()[0], "--kafka-topic", "trafic")
}
