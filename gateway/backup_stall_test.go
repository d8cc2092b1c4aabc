package gateway_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/trainer/onnx"
)

// bigONNX is a valid model of about 4 MiB: y = x + c over 1M floats.
func bigONNX() []byte {
	const n = 1 << 20
	r := rand.New(rand.NewPCG(1, 2))
	c := make([]float32, n)
	for i := range c {
		c[i] = r.Float32()
	}
	m := onnx.Model{Graph: onnx.Graph{
		Name:         "big",
		Inputs:       []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{n}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Dims: []int64{n}}},
		Nodes:        []onnx.Node{{OpType: "Add", Name: "add", Inputs: []string{"x", "c"}, Outputs: []string{"y"}}},
		Initializers: []onnx.Tensor{{Name: "c", Type: onnx.Float, Dims: []int64{n}, Floats: c}},
	}}
	return m.Marshal()
}

// TestStalledBackupClientFreesTheSlot: a client that asks for a backup
// and then reads nothing holds the node's one backup slot (others get
// 429) only until a write has made no progress for --write-timeout, not
// for the whole archive's allowance (30 s plus 1 s per MiB), which on a
// large model set is hours.
func TestStalledBackupClientFreesTheSlot(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	cfg.WriteTimeout = 500 * time.Millisecond
	s := startAdmin(t, cfg)
	if r := s.admin(t, "POST", "/v1/models/big/versions", bigONNX()); r.code != 201 {
		t.Fatalf("upload big: %s", r)
	}
	c, err := s.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/cluster/backup HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer %s\r\n\r\n", adminToken)
	// Read the answer's head, so that the backup is under way, then
	// nothing more.
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 16), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stalled client's backup: %v %v", resp, err)
	}
	if r := s.admin(t, "GET", "/v1/cluster/backup", nil); r.code != 429 {
		t.Fatalf("a backup while another streams: %s; want 429", r)
	}
	start := time.Now()
	testenv.CheckFor(t, 10*time.Second, func() error {
		if r := s.admin(t, "GET", "/v1/cluster/backup", nil); r.code != 200 {
			return fmt.Errorf("a backup %s after the client stalled: %s; want 200", time.Since(start).Round(time.Millisecond), r)
		}
		return nil
	})
}
