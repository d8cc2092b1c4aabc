package gateway_test

// Tests from a review of the Kafka traffic log: a comment that tells a
// defect tells what the test found (in the code it ran against), now fixed.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/kafkatest"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trafficlog/kafka"
)

// startKafkaTraffic starts the demo server logging every prediction to a
// kfake topic; it returns the cluster and a function that takes its
// brokers down.
func startKafkaTraffic(t *testing.T) (*testServer, *kfake.Cluster, func(...int32)) {
	t.Helper()
	c, takeDown := kafkatest.Cluster(t, "traffic", 3)
	kc := kafka.DefaultConfig()
	kc.Brokers, kc.Topic = c.ListenAddrs(), "traffic"
	kc.SyncTimeout = 500 * time.Millisecond
	kc.Metrics = metrics.NewSet()
	kc.Logf = t.Logf
	kw, err := kafka.Open(t.Context(), kc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.DefaultConfig()
	cfg.TrafficSink, cfg.TrafficPercent = kw, 100
	s := startServer(t, serverOptions{cfg: cfg, files: map[string][]byte{"ctr/1": ctrONNX()}})
	// Closed before the server shuts down (cleanups run last first), so
	// that a handler stuck in AppendSync returns.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		kw.Close(ctx)
	})
	return s, c, takeDown
}

// sendWithin sends a request and fails the test unless it is answered
// within d.
func sendWithin(t *testing.T, s *testServer, d time.Duration, method, uri string, body []byte) response {
	t.Helper()
	type result struct {
		r   response
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := s.send(method, uri, body, "Content-Type", "application/json")
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatal(res.err)
		}
		return res.r
	case <-time.After(d):
		t.Fatalf("%s %s still unanswered after %s", method, uri, d)
		return response{}
	}
}

// TestKafkaDownFeedbackAnswers503: with the Kafka brokers down
// mid-run, predictions are still served, and feedback must answer 503
// soon after the writer's SyncTimeout (500ms here): it hangs instead,
// for as long as the brokers are down, because AppendSync waits for a
// promise kgo never fails while it cannot dial.
func TestKafkaDownFeedbackAnswers503(t *testing.T) {
	s, _, down := startKafkaTraffic(t)
	x := features(1, 1, 64)
	if r := s.post(t, "/v2/models/ctr/infer", ctrRequest(x, 1)); r.code != 200 {
		t.Fatalf("infer: %s", r)
	}
	if r := s.post(t, "/v2/models/ctr/feedback", []byte(`{"id":"a","label":1}`)); r.code != 200 {
		t.Fatalf("feedback with the brokers up: %s", r)
	}
	down()
	for range 50 {
		if r := sendWithin(t, s, 2*time.Second, "POST", "/v2/models/ctr/infer", ctrRequest(x, 1)); r.code != 200 {
			t.Fatalf("infer with the brokers down: %s", r)
		}
	}
	r := sendWithin(t, s, 5*time.Second, "POST", "/v2/models/ctr/feedback", []byte(`{"id":"b","label":1}`))
	if r.code != fasthttp.StatusServiceUnavailable {
		t.Fatalf("feedback with the brokers down: %s; want 503", r)
	}
}

// TestKafkaFeedbackErrorNamesBrokers: a Kafka node whose brokers
// refuse the write answers feedback with a 503 that blames "the traffic
// log's disk" ("the server log says why"): the messages were written for
// the embedded log and send an operator to the wrong place.
func TestKafkaFeedbackErrorNamesBrokers(t *testing.T) {
	s, c, _ := startKafkaTraffic(t)
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.TopicAuthorizationFailed, Count: -1})
	r := sendWithin(t, s, 5*time.Second, "POST", "/v2/models/ctr/feedback", []byte(`{"id":"a","label":1}`))
	if r.code != fasthttp.StatusServiceUnavailable {
		t.Fatalf("feedback refused by the brokers: %s; want 503", r)
	}
	if strings.Contains(string(r.body), "disk") {
		t.Fatalf("a Kafka node's feedback error blames a disk: %s", r)
	}
}

var _ = registry.ModelConfig{}

// TestKafkaConcurrentStress (passes): predictions and feedback from
// 8 clients at once (run with -race) are all answered 200 and counted.
func TestKafkaConcurrentStress(t *testing.T) {
	s, _, _ := startKafkaTraffic(t)
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				x := features(uint64(g*1000+i), 1, 64)
				if r, err := s.send("POST", "/v2/models/ctr/infer", ctrRequest(x, 1), "Content-Type", "application/json"); err != nil || r.code != 200 {
					errs <- fmt.Sprint("infer: ", r, err)
					return
				}
				if i%10 == 0 {
					if r, err := s.send("POST", "/v2/models/ctr/feedback", fmt.Appendf(nil, `{"id":"g%d-%d","label":1}`, g, i), "Content-Type", "application/json"); err != nil || r.code != 200 {
						errs <- fmt.Sprint("feedback: ", r, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
