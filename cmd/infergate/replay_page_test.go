package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// A node restarted while the rest of its group is down cannot replay its
// raft log: its state machine is empty until a leader is back. Its status
// page said "no model is registered in the cluster; infergate models
// upload NAME FILE adds one", advice that would register a model the
// group has already, and said nothing of the replay. It must say that the
// node is replaying, and not that the cluster has no models.
func TestStatusPageWhileReplayingSaysSo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateways")
	}
	demo := demoRepo(t)
	first := startFounder(t, demo)
	second := startNode(t, t.TempDir(), t.TempDir(), testenv.FreeAddr(t), first.url())
	testenv.CheckFor(t, 20*time.Second, func() error {
		v, err := first.cluster(t)
		if err != nil {
			return err
		}
		if len(v.Members) != 2 {
			return fmt.Errorf("members %+v; want 2", v.Members)
		}
		return nil
	})
	second.kill(t)
	first.kill(t)

	again := startNode(t, first.data, first.models, first.raft, "")
	testenv.CheckFor(t, 20*time.Second, func() error {
		code, page, _ := again.do(t, "GET", "/", nil, nil)
		if code != 200 {
			return fmt.Errorf("status page: %d %.200s", code, page)
		}
		i := strings.Index(string(page), "<h2>Cluster</h2>")
		if i < 0 {
			return fmt.Errorf("the status page has no cluster section")
		}
		cl := string(page[i:])
		if strings.Contains(cl, "no model is registered in the cluster") {
			return fmt.Errorf("the replaying node's page says the cluster has no model: %.1500s", cl)
		}
		if !strings.Contains(cl, "replaying its raft log") {
			return fmt.Errorf("the replaying node's page does not say it replays: %.1500s", cl)
		}
		return nil
	})
}
