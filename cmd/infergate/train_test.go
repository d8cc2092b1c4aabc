package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// TestTrainFromTraffic: predictions logged by a real gateway, labels sent
// as feedback by a rule the served (random) model does not know; `infergate
// train` learns the rule, beats the live version on the holdout, passes
// the ONNX Runtime check, and uploads version 2, staged.
func TestTrainFromTraffic(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--load", "ctr", "--register-local-models", "--traffic-percent", "100")
	testenv.CheckFor(t, 10*time.Second, func() error {
		if code, body, _ := s.get(t, "/v1/models/ctr"); code != 200 {
			return fmt.Errorf("ctr not registered yet: %d %s", code, body)
		}
		return nil
	})
	var feedback []string
	for i := range 400 {
		body, x := inferBody(1, 64, uint64(i))
		if code, resp, _ := s.post(t, "/v2/models/ctr/infer", body); code != 200 {
			t.Fatalf("infer: %d %s", code, resp)
		}
		label := 0
		if x[0]+x[1] > 0 {
			label = 1
		}
		feedback = append(feedback, fmt.Sprintf(`{"id":"req-%d","label":%d}`, i, label))
	}
	if code, resp, _ := s.post(t, "/v2/models/ctr/feedback", []byte("["+strings.Join(feedback, ",")+"]")); code != 200 {
		t.Fatalf("feedback: %d %s", code, resp)
	}
	var out []byte
	testenv.CheckFor(t, 5*time.Second, func() error { // the predictions are read once fsynced
		var err error
		out, err = exec.Command(binPath, "train", "ctr", "--addr", "http://"+s.addr, "--upload", "--epochs", "60", "--holdout-every", "4", "--ort-lib", testenv.ORTLib(t)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("train: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "joined 400 labeled examples") {
			return fmt.Errorf("not all read yet:\n%s", out)
		}
		return nil
	})
	for _, want := range []string{"ONNX Runtime agrees with the trainer", "uploaded ctr version 2", "staged"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("train's output lacks %q:\n%s", want, out)
		}
	}
	code, body, _ := s.get(t, "/v1/models/ctr")
	var m struct {
		Versions []struct {
			Version int64  `json:"version"`
			Stage   string `json:"stage"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(body, &m); code != 200 || err != nil || len(m.Versions) != 2 || m.Versions[1].Version != 2 || m.Versions[1].Stage != "staged" {
		t.Fatalf("GET /v1/models/ctr after the upload: %d %s (%v)", code, body, err)
	}
	t.Logf("train:\n%s", out)

	// A node that cannot be read is named: the figures are of the
	// others' traffic alone.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	out, err = exec.Command(binPath, "train", "ctr", "--addr", "http://"+s.addr+","+down, "--epochs", "1", "--ort-lib", testenv.ORTLib(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "from 1 of 2 node(s) (not read: "+down+")") || !strings.Contains(string(out), "cannot reach "+down) {
		t.Fatalf("train with a node down: %v\n%s\nwant the node named as not read, and why", err, out)
	}
}
