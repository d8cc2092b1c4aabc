package gateway_test

import (
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/registry"
)

// Each guarded directory's line says what the node refuses for it: a
// low --traffic-dir on its own filesystem stops the traffic log alone.
func TestStatusPageSaysWhatEachLowDiskRefuses(t *testing.T) {
	cfg := gateway.DefaultConfig()
	data := diskfree.New(t.TempDir(), 0)        // --data: room
	traffic := diskfree.New(t.TempDir(), 1<<62) // --traffic-dir elsewhere: low
	cfg.Disks = []gateway.Disk{{Guard: data, Refuses: "uploads and blob pulls"}, {Guard: traffic, Refuses: "the traffic log's records"}}
	s := startServer(t, serverOptions{cfg: cfg, load: func([]byte, registry.ModelConfig) (registry.Backend, error) { return nil, nil }})
	r := s.do(t, "GET", "/", nil)
	page := string(r.body)
	i := strings.Index(page, traffic.Dir())
	if i < 0 {
		t.Fatalf("the status page does not name %s", traffic.Dir())
	}
	line := page[i:min(len(page), i+200)]
	if strings.Contains(line, "uploads") || !strings.Contains(line, "it refuses the traffic log&#39;s records") {
		t.Fatalf("status line of the low --traffic-dir: %q; want it to refuse the traffic log's records alone", line)
	}
}
