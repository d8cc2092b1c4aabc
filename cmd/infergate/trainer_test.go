package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testcerts"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/trainer"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/valyala/fasthttp"
)

// world sends a real gateway traffic for model ctr, and the labels of a
// rule the demo model does not know (x2 > x3, one label in ten flipped),
// in batches of 20 predictions and their feedback, until stopped.
// Shifted moves features 10 to 19 by +1: drift the label rule ignores.
type world struct {
	addr    string
	shifted atomic.Bool
	sent    atomic.Int64
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	err     error
}

func startWorld(addr string) *world {
	w := &world{addr: addr, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *world) run() {
	defer close(w.done)
	r := rand.New(rand.NewPCG(7, 7))
	var fb []string
	for n := 0; ; n++ {
		select {
		case <-w.stop:
			return
		default:
		}
		x := make([]float32, 64)
		for k := range x {
			x[k] = float32(r.Float64()*2 - 1)
			if w.shifted.Load() && k >= 10 && k < 20 {
				x[k]++
			}
		}
		id := fmt.Sprint("w-", n)
		body, _ := json.Marshal(map[string]any{"id": id, "inputs": []map[string]any{{
			"name": "features", "datatype": "FP32", "shape": []int{1, 64}, "data": x}}})
		if err := w.post("/v2/models/ctr/infer", body); err != nil {
			w.fail(err)
			return
		}
		y := 0
		if x[2] > x[3] {
			y = 1
		}
		if r.IntN(10) == 0 {
			y = 1 - y
		}
		fb = append(fb, fmt.Sprintf(`{"id":%q,"label":%d}`, id, y))
		if len(fb) == 20 {
			if err := w.post("/v2/models/ctr/feedback", []byte("["+strings.Join(fb, ",")+"]")); err != nil {
				w.fail(err)
				return
			}
			fb = fb[:0]
			w.sent.Add(20)
		}
	}
}

func (w *world) post(path string, body []byte) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + w.addr + path)
	req.Header.SetMethod("POST")
	req.SetBody(body)
	if err := client.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != 200 {
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode(), resp.Body())
	}
	return nil
}

func (w *world) fail(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

func (w *world) close(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		t.Fatalf("the traffic: %v", w.err)
	}
}

// TestTrainerPromotesOnEvidence: the sidecar trainer against a real
// gateway. While the inputs keep to their reference it does nothing; once
// ten features drift it trains on the labeled traffic, uploads a candidate
// that beats production on the holdout, shadows it, finds it better on the
// same requests, runs it as a canary arm, finds it better on its own
// requests, and promotes it; the state file records each step.
func TestTrainerPromotesOnEvidence(t *testing.T) {
	t.Run("node-logs", func(t *testing.T) { promoteOnEvidence(t, nil, nil) })
	// The same with the traffic in a Kafka topic (an in-process broker
	// that takes TLS and SCRAM only): the gateway writes it, the trainer
	// reads it.
	t.Run("kafka", func(t *testing.T) {
		dir := t.TempDir()
		ca := testcerts.NewCA(t, dir, "ca")
		bc, bk := ca.Issue(t, "broker", time.Time{}, "127.0.0.1")
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "traffic"),
			kfake.TLS(&tls.Config{Certificates: []tls.Certificate{testcerts.KeyPair(t, bc, bk)}}),
			kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "infergate", "kafka-secret"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		t.Setenv("INFERGATE_KAFKA_PASSWORD", "kafka-secret")
		brokers := strings.Join(c.ListenAddrs(), ",")
		secure := func(prefix string) []string {
			return []string{"--" + prefix + "ca", ca.File, "--" + prefix + "sasl", "SCRAM-SHA-512", "--" + prefix + "sasl-user", "infergate"}
		}
		s := promoteOnEvidence(t, append([]string{"--traffic-kafka-brokers", brokers, "--traffic-kafka-topic", "traffic"}, secure("traffic-kafka-")...),
			append([]string{"--kafka-brokers", brokers, "--kafka-topic", "traffic"}, secure("kafka-")...))
		if code, body, _ := s.get(t, "/v1/traffic"); code != 404 || !strings.Contains(string(body), "logs its traffic to Kafka") {
			t.Fatalf("GET /v1/traffic of a node logging to Kafka: %d %s; want 404 saying where the log is", code, body)
		}
		out, err := exec.Command(binPath, append([]string{"traffic", "read", "--kafka-brokers", brokers, "--kafka-topic", "traffic"}, secure("kafka-")...)...).Output()
		if err != nil {
			t.Fatalf("traffic read: %v", err)
		}
		kinds := map[string]int{}
		for line := range strings.Lines(string(out)) {
			var e struct{ Kind string }
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			kinds[e.Kind]++
		}
		if kinds["prediction"] < 1000 || kinds["feedback"] < 1000 || kinds["shadow"] < 100 {
			t.Fatalf("traffic read of the topic gave %v; want predictions, feedback and the shadow's lines", kinds)
		}
	})
}

// promoteOnEvidence is TestTrainerPromotesOnEvidence with more arguments
// for serve and the trainer; it returns the server.
func promoteOnEvidence(t *testing.T, serveArgs, trainerArgs []string) *server {
	s := startServer(t, append([]string{"--models", demoRepo(t), "--load", "ctr", "--register-local-models", "--traffic-percent", "100"}, serveArgs...)...)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if code, body, _ := s.get(t, "/v1/models/ctr"); code != 200 {
			return fmt.Errorf("ctr not registered yet: %d %s", code, body)
		}
		return nil
	})
	w := startWorld(s.addr)
	defer w.close(t)

	state := filepath.Join(t.TempDir(), "trainer.json")
	cmd := exec.Command(binPath, append([]string{"trainer", "ctr", "--addr", "http://" + s.addr, "--state", state, "--interval", "100ms",
		"--drift-rows", "300", "--window", "5000", "--min-examples", "300", "--epochs", "40",
		"--shadow-percent", "100", "--canary-percent", "50", "--min-shadow-examples", "100", "--min-canary-examples", "100",
		"--ort-lib", testenv.ORTLib(t)}, trainerArgs...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("trainer:\n%s", out.String())
		}
	}()

	readState := func() trainer.State {
		var st trainer.State
		if b, err := os.ReadFile(state); err == nil {
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatalf("state file: %v\n%s", err, b)
			}
		}
		return st
	}
	// The reference and as many again, unshifted: no drift, no training.
	testenv.CheckFor(t, 30*time.Second, func() error {
		if n := w.sent.Load(); n < 800 {
			return fmt.Errorf("%d predictions sent", n)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // five steps of the trainer on them
	if st := readState(); len(st.History) != 0 {
		t.Fatalf("the trainer acted without drift: %+v", st.History)
	}
	w.shifted.Store(true)
	testenv.CheckFor(t, 90*time.Second, func() error {
		select {
		case err := <-exited:
			t.Fatalf("the trainer exited: %v", err)
		default:
		}
		if st := readState(); len(st.History) == 0 || st.History[len(st.History)-1].Action != "promote" {
			return fmt.Errorf("not promoted yet: %+v", st.History)
		}
		return nil
	})
	st := readState()
	var actions []string
	for _, d := range st.History {
		actions = append(actions, d.Action)
	}
	if got := strings.Join(actions, ","); got != "upload,shadow,canary,promote" || st.History[0].Version != 2 {
		t.Fatalf("the trainer did %s (version %d); want upload,shadow,canary,promote of version 2", got, st.History[0].Version)
	}
	if !strings.Contains(st.History[0].Reason, "drift: ") {
		t.Fatalf("the upload's reason %q does not name the drift", st.History[0].Reason)
	}
	code, body, _ := s.get(t, "/v1/models/ctr")
	var m trainer.ModelState
	if err := json.Unmarshal(body, &m); code != 200 || err != nil || m.Production != 2 || m.Experiment != nil || m.Shadow != nil {
		t.Fatalf("after the promotion: %d %s (%v); want production 2, no experiment, no shadow", code, body, err)
	}
	for _, d := range st.History {
		t.Logf("%s %s version %d: %s", d.Time.Format(time.StampMilli), d.Action, d.Version, d.Reason)
	}
	return s
}

// TestTrainerFlags: settings that cannot run are refused before the
// trainer calls any node, with what to fix.
func TestTrainerFlags(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		out, err := exec.Command(binPath, append([]string{"trainer"}, args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Fatalf("infergate trainer %q: %v\n%s\nwant an error saying %q", args, err, out, want)
		}
	}
	f("MODEL", "--interval", "1s")
	f("canary percent 0: use 1 to 99", "ctr", "--canary-percent", "0")
	f("shadow percent 101", "ctr", "--shadow-percent", "101")
	f("drift rows 300: the window 500 must hold twice as many", "ctr", "--drift-rows", "300", "--window", "500")
	f("confidence level 1: use 0.5 or more and less than 1", "ctr", "--confidence", "1")
	f(`--hidden "8,x": "x" is not a layer size`, "ctr", "--hidden", "8,x")
	f("cannot read model ctr's metadata", "ctr", "--addr", "http://127.0.0.1:1", "--timeout", "2s", "--state", filepath.Join(t.TempDir(), "st.json"))
	f("minimum shadow examples 600: a window of 500 predictions holds at most 100 shadowed at 20%", "ctr", "--window", "500", "--drift-rows", "200", "--min-examples", "100", "--min-shadow-examples", "600")

	// A node that keeps no traffic log: the trainer says so and stops,
	// rather than trying again forever.
	s := startServer(t, "--models", demoRepo(t), "--load", "ctr")
	f("keeps no traffic log; start it with --traffic-percent above 0", "ctr", "--addr", "http://"+s.addr, "--state", filepath.Join(t.TempDir(), "st.json"))
}
