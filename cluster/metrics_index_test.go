package cluster

import (
	"bytes"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/testenv"
)

// On a node that has applied everything committed, the applied and
// commit index gauges are equal, so that commit - applied, which an
// alert on a lagging node watches, is 0. Before, the applied gauge
// counted the state machine's commands only, and every no-op of a new
// leader and every membership change after the last command left it
// behind for good: 12 against 19 on an idle 3-node cluster on loopback.
func TestAppliedIndexGaugeCatchesUpWithCommit(t *testing.T) {
	_, tr0 := raft.NewInmemTransport("127.0.0.1:7000")
	cfg0 := testConfig(t, "n0", tr0, "")
	cfg0.Metrics = metrics.NewSet()
	n0 := startLeading(t, cfg0)
	c := &testCluster{t: t, nodes: []*Node{n0}, trans: []*raft.InmemTransport{tr0}}
	if _, err := c.register(n0, "m", "version one"); err != nil {
		t.Fatal(err)
	}
	// A membership change after the last command: a configuration entry.
	if err := n0.raft.AddNonvoter("gone", "127.0.0.9:7000", 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	gauge := func(set *metrics.Set, name string) string {
		var b bytes.Buffer
		set.WritePrometheus(&b)
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b.Bytes())
		if m == nil {
			return ""
		}
		return string(m[1])
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		applied, commit := gauge(cfg0.Metrics, "infergate_cluster_applied_index"), gauge(cfg0.Metrics, "infergate_cluster_commit_index")
		if applied == "" || applied != commit {
			return fmt.Errorf("infergate_cluster_applied_index %s, infergate_cluster_commit_index %s; want them equal on a node with nothing left to apply", applied, commit)
		}
		return nil
	})
}
