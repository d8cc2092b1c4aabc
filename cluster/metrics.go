package cluster

import (
	"errors"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/hashicorp/raft"
)

// nodeMetrics are the control plane's metrics. The gauges read the node
// when scraped; the counters are bumped where things happen.
// applyBuckets are the upper bounds, in seconds, of the raft apply
// histogram: a write commits in milliseconds on a LAN, and waits up to
// the hold timeout without a leader.
var applyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type nodeMetrics struct {
	applyOK, applyNotLeader, applyUnknown, applyRefused *metrics.Counter
	applyDuration                                       *metrics.PrometheusHistogram
	fetchOK, fetchFailed                                *metrics.Counter
	blobsRemoved, blobBytesRemoved                      *metrics.Counter

	// set holds the metrics, under names; Stop takes them out, so that a
	// node started again on the same Config registers them anew.
	set   *metrics.Set
	names []string
}

// unregister takes the node's metrics out of its set.
func (m *nodeMetrics) unregister() {
	for _, name := range m.names {
		m.set.UnregisterMetric(name)
	}
}

func newNodeMetrics(n *Node) nodeMetrics {
	set := n.cfg.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	m := nodeMetrics{set: set}
	// name records each name as it is registered.
	name := func(s string) string {
		m.names = append(m.names, s)
		return s
	}
	set.NewGauge(name(`infergate_cluster_is_leader`), func() float64 {
		if n.IsLeader() {
			return 1
		}
		return 0
	})
	set.NewGauge(name(`infergate_cluster_known_leader`), func() float64 {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return 1
		}
		return 0
	})
	// raft's applied index, not the state machine's (Node.Staleness): a
	// new leader's no-op and a membership change are entries the state
	// machine never sees, and would leave commit - applied above 0 for
	// good on a node that lags in nothing.
	set.NewGauge(name(`infergate_cluster_applied_index`), func() float64 { return float64(n.raft.AppliedIndex()) })
	set.NewGauge(name(`infergate_cluster_commit_index`), func() float64 { return float64(n.raft.CommitIndex()) })
	set.NewGauge(name(`infergate_cluster_last_contact_seconds`), func() float64 {
		if n.raft.State() == raft.Leader {
			return 0
		}
		t := n.raft.LastContact()
		if t.IsZero() {
			return -1
		}
		return time.Since(t).Seconds()
	})
	set.NewGauge(name(`infergate_cluster_voters`), func() float64 {
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
	set.NewGauge(name(`infergate_cluster_members_unreachable`), func() float64 {
		return float64(n.membersUnreachable())
	})
	set.NewGauge(name(`infergate_cluster_versions_not_ready`), func() float64 {
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
	m.applyOK = set.NewCounter(name(`infergate_cluster_apply_total{result="ok"}`))
	m.applyNotLeader = set.NewCounter(name(`infergate_cluster_apply_total{result="not_leader"}`))
	m.applyUnknown = set.NewCounter(name(`infergate_cluster_apply_total{result="unknown_outcome"}`))
	m.applyRefused = set.NewCounter(name(`infergate_cluster_apply_total{result="error"}`))
	m.applyDuration = set.NewPrometheusHistogramExt(name(`infergate_cluster_apply_duration_seconds`), applyBuckets)
	m.fetchOK = set.NewCounter(name(`infergate_cluster_blob_fetch_total{result="ok"}`))
	m.fetchFailed = set.NewCounter(name(`infergate_cluster_blob_fetch_total{result="failed"}`))
	m.blobsRemoved = set.NewCounter(name(`infergate_cluster_blobs_removed_total`))
	m.blobBytesRemoved = set.NewCounter(name(`infergate_cluster_blob_bytes_removed_total`))
	return m
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
