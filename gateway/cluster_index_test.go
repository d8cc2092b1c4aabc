package gateway_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// TestIndexShowsClusterVersionFailedHere registers a cluster version
// whose file on this node holds other bytes, put there by hand: the
// node refuses to place or load it, and the repository index and the
// status page must say so and why, not leave the version out (found by a
// walk on real servers: only `infergate models show` told).
func TestIndexShowsClusterVersionFailedHere(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	placeByHand(t, s, "clash/1", "bytes put here by hand")
	if r := s.admin(t, "POST", "/v1/models/clash/versions?promote=true", ctrONNX()); r.code/100 != 2 {
		t.Fatalf("upload: %s", r)
	}
	const why = "holds other bytes than the cluster's model"
	var row registry.IndexEntry
	testenv.CheckFor(t, 10*time.Second, func() error {
		r := s.do(t, "POST", "/v2/repository/index", nil)
		var idx []registry.IndexEntry
		if err := json.Unmarshal(r.body, &idx); err != nil {
			return fmt.Errorf("index %s: %v", r, err)
		}
		var clash []registry.IndexEntry
		for _, e := range idx {
			if e.Name == "clash" {
				clash = append(clash, e)
			}
		}
		if len(clash) != 1 || clash[0].Version != "1" || clash[0].State != registry.StateUnavailable || !strings.Contains(clash[0].Reason, why) {
			return fmt.Errorf("clash in the index: %+v; want one row, version 1 UNAVAILABLE because the file %s", clash, why)
		}
		row = clash[0]
		return nil
	})
	if r := s.do(t, "POST", "/v2/repository/index", []byte(`{"ready":true}`)); strings.Contains(string(r.body), `"clash"`) {
		t.Fatalf("the index of ready versions lists clash: %s", r.body)
	}
	// The node's log says so too, once.
	if n := strings.Count(s.log.String(), `cluster: model "clash" version 1 cannot serve on this node: `); n != 1 {
		t.Fatalf("the log says %d times that clash version 1 cannot serve here; want once:\n%s", n, s.log)
	}
	page := string(s.do(t, "GET", "/", nil).body)
	if !strings.Contains(page, "<td>clash</td><td>1") || !strings.Contains(page, "holds other bytes than the cluster") {
		t.Fatalf("the status page does not show clash version 1 failing (%q):\n%s", row.Reason, page)
	}
}
