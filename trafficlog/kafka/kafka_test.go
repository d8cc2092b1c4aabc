package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trafficlog"
)

// broker starts an in-process Kafka cluster with topic "traffic" of three
// partitions.
func broker(t testing.TB) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "traffic"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func open(t testing.TB, brokers []string) (*Writer, *metrics.Set) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic = brokers, "traffic"
	cfg.Metrics = metrics.NewSet()
	cfg.Logf = t.Logf
	w, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w, cfg.Metrics
}

func prediction(i int) *trafficlog.Event {
	return &trafficlog.Event{Kind: trafficlog.Prediction, Time: time.Unix(1700000000, int64(i)).UTC(), ID: fmt.Sprint("req-", i),
		Model: "ctr", Version: 1, Arm: "control", Unit: "u",
		Inputs:  []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, 1}, Data: []byte{0, 0, 128, 63}}},
		Outputs: []oip.Tensor{{Name: "p", Datatype: oip.FP32, Shape: []int64{1, 1}, Data: []byte{0, 0, 0, 63}}}}
}

func feedback(i int) *trafficlog.Event {
	return &trafficlog.Event{Kind: trafficlog.Feedback, Time: time.Unix(1700000001, int64(i)).UTC(), ID: fmt.Sprint("req-", i),
		Model: "ctr", Label: 1, HasLabel: true, Reward: math.Pi, HasReward: true}
}

// readAll reads what the topic holds now, as events by id and kind.
func readAll(t *testing.T, r *Reader) map[string]trafficlog.Event {
	t.Helper()
	got := map[string]trafficlog.Event{}
	err := r.Read(t.Context(), func(e *trafficlog.Event) {
		c := *e
		c.Time = c.Time.UTC()
		for _, ts := range [][]oip.Tensor{c.Inputs, c.Outputs} {
			for i := range ts {
				ts[i].Data = bytes.Clone(ts[i].Data)
			}
		}
		got[c.Kind.String()+" "+c.ID] = c
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestWriteAndRead: events appended (without waiting, and waiting for the
// ack) read back as written, from every partition; each Read returns what
// came since the last; the series count them by kind.
func TestWriteAndRead(t *testing.T) {
	brokers := broker(t)
	w, set := open(t, brokers)
	want := map[string]*trafficlog.Event{}
	for i := range 30 {
		e := prediction(i)
		want["prediction "+e.ID] = e
		if err := w.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	fb := []*trafficlog.Event{feedback(1), feedback(2), feedback(3)}
	if err := w.AppendSync(fb...); err != nil {
		t.Fatal(err)
	}
	for _, e := range fb {
		want["feedback "+e.ID] = e
	}
	if err := w.cl.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(t.Context(), brokers, "traffic", Security{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := readAll(t, r)
	if len(got) != len(want) {
		t.Fatalf("read %d events; want %d", len(got), len(want))
	}
	for k, e := range want {
		if g := got[k]; !reflect.DeepEqual(&g, e) {
			t.Fatalf("%s read as %+v; want %+v", k, g, *e)
		}
	}
	if got := readAll(t, r); len(got) != 0 {
		t.Fatalf("a second Read gave %d events; want none new", len(got))
	}
	if err := w.AppendSync(prediction(99)); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 1 || got["prediction req-99"].ID != "req-99" {
		t.Fatalf("after one more: %v; want req-99 alone", got)
	}
	var sb strings.Builder
	set.WritePrometheus(&sb)
	for _, line := range []string{`infergate_traffic_events_total{kind="prediction"} 31`, `infergate_traffic_events_total{kind="feedback"} 3`} {
		if !strings.Contains(sb.String(), line+"\n") {
			t.Fatalf("metrics lack %q:\n%s", line, sb.String())
		}
	}
}

// TestAppendSyncIsOneRecord: AppendSync's events travel in one Kafka
// record, so they are written all or none; too many together are refused
// before anything is sent.
func TestAppendSyncIsOneRecord(t *testing.T) {
	brokers := broker(t)
	w, _ := open(t, brokers)
	if err := w.AppendSync(feedback(1), feedback(2), feedback(3)); err != nil {
		t.Fatal(err)
	}
	big := make([]*trafficlog.Event, 0, 20000)
	for i := range cap(big) {
		big = append(big, feedback(i))
	}
	if err := w.AppendSync(big...); !errors.Is(err, trafficlog.ErrTooLarge) {
		t.Fatalf("AppendSync of 20,000 events: %v; want ErrTooLarge", err)
	}
	if err := w.Append(&trafficlog.Event{Kind: 9}); !errors.Is(err, trafficlog.ErrUnknownKind) {
		t.Fatalf("Append of kind 9: %v; want ErrUnknownKind", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("traffic"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) == 0 && ctx.Err() == nil {
		// A poll may end with a fetch error alone (a partition not
		// ready yet): poll again.
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != 1 {
		t.Fatalf("%d Kafka records; want the 3 events in one", len(recs))
	}
	n := 0
	for b := recs[0].Value; len(b) > 0; n++ {
		var e trafficlog.Event
		k, err := trafficlog.Decode(b, &e)
		if err != nil {
			t.Fatal(err)
		}
		b = b[k:]
	}
	if n != 3 {
		t.Fatalf("the record holds %d events; want 3", n)
	}
}

// TestTopicMustExist: a topic the brokers do not have is refused at Open
// and by NewReader, naming it; so are settings that cannot work.
func TestTopicMustExist(t *testing.T) {
	brokers := broker(t)
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic = brokers, "trafic"
	if _, err := Open(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), `topic "trafic" does not exist`) {
		t.Fatalf("Open with a missing topic: %v", err)
	}
	if _, err := NewReader(t.Context(), brokers, "trafic", Security{}); err == nil || !strings.Contains(err.Error(), `topic "trafic" does not exist`) {
		t.Fatalf("NewReader with a missing topic: %v", err)
	}
	f := func(mod func(*Config), want string) {
		t.Helper()
		c := DefaultConfig()
		c.Brokers, c.Topic = brokers, "traffic"
		mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate: %v; want %q", err, want)
		}
	}
	f(func(c *Config) { c.Brokers = nil }, "name the Kafka brokers")
	f(func(c *Config) { c.Brokers = []string{"localhost"} }, `broker "localhost": want host:port`)
	f(func(c *Config) { c.Topic = "" }, "name the Kafka topic")
	f(func(c *Config) { c.BufferBytes = 10 }, "must hold one record")
}

// TestReaderSkipsForeignRecords: a record another writer put in the topic
// is skipped and counted; the events around it are read.
func TestReaderSkipsForeignRecords(t *testing.T) {
	brokers := broker(t)
	w, _ := open(t, brokers)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("traffic"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := w.AppendSync(feedback(1)); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Value: []byte(`{"not":"ours"}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := w.AppendSync(feedback(2)); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(t.Context(), brokers, "traffic", Security{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := readAll(t, r); len(got) != 2 || r.Skipped() != 1 {
		t.Fatalf("read %d events, skipped %d; want 2 and 1", len(got), r.Skipped())
	}
}
