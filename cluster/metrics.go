package cluster

import (
	"errors"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/hashicorp/raft"
)

// nodeMetrics are the control plane's metrics. The gauges read the node
// when scraped; the counters are bumped where things happen.
type nodeMetrics struct {
	applyOK, applyNotLeader, applyUnknown, applyRefused *metrics.Counter
	applyDuration                                       *metrics.Histogram
	fetchOK, fetchFailed                                *metrics.Counter
}

func newNodeMetrics(n *Node) nodeMetrics {
	set := n.cfg.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	set.NewGauge(`infergate_cluster_is_leader`, func() float64 {
		if n.IsLeader() {
			return 1
		}
		return 0
	})
	set.NewGauge(`infergate_cluster_known_leader`, func() float64 {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return 1
		}
		return 0
	})
	set.NewGauge(`infergate_cluster_applied_index`, func() float64 { return float64(n.fsm.Applied()) })
	set.NewGauge(`infergate_cluster_commit_index`, func() float64 { return float64(n.raft.CommitIndex()) })
	set.NewGauge(`infergate_cluster_last_contact_seconds`, func() float64 {
		if n.raft.State() == raft.Leader {
			return 0
		}
		t := n.raft.LastContact()
		if t.IsZero() {
			return -1
		}
		return time.Since(t).Seconds()
	})
	set.NewGauge(`infergate_cluster_voters`, func() float64 {
		f := n.raft.GetConfiguration()
		if f.Error() != nil {
			return 0
		}
		v := 0
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				v++
			}
		}
		return float64(v)
	})
	set.NewGauge(`infergate_cluster_versions_not_ready`, func() float64 {
		r := n.rec
		r.mu.Lock()
		defer r.mu.Unlock()
		c := 0
		for _, vs := range r.status {
			for _, s := range vs {
				if s.State != VersionReady {
					c++
				}
			}
		}
		return float64(c)
	})
	return nodeMetrics{
		applyOK:        set.NewCounter(`infergate_cluster_apply_total{result="ok"}`),
		applyNotLeader: set.NewCounter(`infergate_cluster_apply_total{result="not_leader"}`),
		applyUnknown:   set.NewCounter(`infergate_cluster_apply_total{result="unknown_outcome"}`),
		applyRefused:   set.NewCounter(`infergate_cluster_apply_total{result="error"}`),
		applyDuration:  set.NewHistogram(`infergate_cluster_apply_duration_seconds`),
		fetchOK:        set.NewCounter(`infergate_cluster_blob_fetch_total{result="ok"}`),
		fetchFailed:    set.NewCounter(`infergate_cluster_blob_fetch_total{result="failed"}`),
	}
}

// applied counts one raft apply on this node (the leader) and its outcome.
func (m *nodeMetrics) applied(start time.Time, err error) {
	m.applyDuration.UpdateDuration(start)
	switch {
	case err == nil:
		m.applyOK.Inc()
	case errors.Is(err, ErrNotLeader):
		m.applyNotLeader.Inc()
	case errors.Is(err, ErrUnknownOutcome):
		m.applyUnknown.Inc()
	default:
		m.applyRefused.Inc()
	}
}

// fetched counts one blob pull.
func (m *nodeMetrics) fetched(err error) {
	if err == nil {
		m.fetchOK.Inc()
	} else {
		m.fetchFailed.Inc()
	}
}
