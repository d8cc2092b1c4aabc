package cluster

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/VictoriaMetrics/metrics"
	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/registry/blobs"
)

// Config configures a Node. DefaultConfig gives timings suited to loopback
// and small machines; Validate names the first bad field.
type Config struct {
	// NodeID names the node in the raft group; it must stay the same
	// across restarts on the same data directory.
	NodeID string
	// RaftAddr is the TCP address raft listens on and advertises
	// (host:port; the host must be an IP peers can reach).
	RaftAddr string
	// HTTPAddr is this node's gateway base URL as peers reach it
	// (http://host:port): forwarded writes and blob pulls go there.
	HTTPAddr string
	// DataDir holds raft's log (raft.db) and snapshots; the node's
	// data directory's raft subdirectory.
	DataDir string
	// Join is a member's base URL to join through on first start; empty
	// bootstraps a new one-voter group instead. Ignored once the data
	// directory holds raft state.
	Join string
	// Token is the admin bearer token presented to peers (and required
	// by them). Empty only for a lone node.
	Token string
	// TLS, when set, makes raft and the calls between peers mutual TLS;
	// HTTPAddr and Join must then be https URLs. Nil: plain TCP.
	TLS *TLS
	// MaxVoters is how many voters the leader admits (3 or 5 make
	// sense); later nodes join as non-voters, which serve all the same.
	MaxVoters int

	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout are raft's
	// failure-detection timings; CommitTimeout bounds how long a write
	// may sit before it is sent.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// HoldTimeout is how long a write waits for a leader to exist before
	// failing with ErrNoLeader.
	HoldTimeout time.Duration
	// ApplyTimeout bounds one raft apply on the leader.
	ApplyTimeout time.Duration
	// TrialLoadWait bounds how long an upload or a promotion waits for
	// one of the node's trial loads (Check), which other uploads and
	// promotions hold, before it fails with ErrTrialLoadsBusy (429): a
	// request waiting holds its body (a whole model, for an upload) and
	// a connection, and its client is better told to come back before
	// its own timeout (the CLI's 30 s, the trainer's 15 s) gives up not
	// knowing.
	TrialLoadWait time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot.
	SnapshotThreshold uint64

	// Registry receives the replicated models; Blobs stores their bytes.
	Registry *registry.Repository
	Blobs    *blobs.Store
	// Disk, when set, keeps its minimum free where Blobs is: an upload
	// or a pull from a peer that would eat into it is refused with a
	// *diskfree.LowError (a pulled version fails on this node, saying
	// so, and is tried again later). Nil: no check.
	Disk *diskfree.Guard
	// RegisterLocal makes a node that bootstraps a new group register
	// the models its registry serves from its own directory, so that they
	// become the cluster's. Otherwise local models stay local: served by
	// this node alone, managed through files and the repository API.
	RegisterLocal bool
	// Check, when set, is called on uploaded bytes before they are
	// registered (a trial load) and returns the model's inputs and
	// outputs, so that the cluster never registers a version no node can
	// load: the bytes must load, and the configurations the version will
	// run with must fit it (registry.ModelConfig.CheckModel).
	Check func(onnx []byte) (inputs, outputs []oip.TensorMetadata, err error)
	// Metrics receives the control plane's metrics (infergate_cluster_*);
	// nil means a private set.
	Metrics *metrics.Set
	// Logf logs control-plane events; nil means log.Printf.
	Logf func(format string, args ...any)

	// inmem, set by tests, replaces the TCP transport and the on-disk
	// stores with raft's in-memory ones, so that tests can partition.
	inmem *raft.InmemTransport
	// voterCheck, set by tests, replaces voterCheckInterval.
	voterCheck time.Duration
	// blobSweep, set by tests, replaces blobSweepEvery and blobGrace.
	blobSweep time.Duration
	// trailingLogs, set by tests, replaces raft's TrailingLogs (10240),
	// the entries a snapshot leaves in the log.
	trailingLogs uint64
}

// DefaultConfig returns the timings used by infergate serve. Raft's
// library defaults (1 s heartbeat and election timeouts) are tuned for
// WANs; on loopback and LANs half of that elects a new leader in about a
// second while staying clear of GC pauses on a busy two-core machine.
func DefaultConfig() Config {
	return Config{
		MaxVoters:          3,
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		HoldTimeout:        5 * time.Second,
		ApplyTimeout:       5 * time.Second,
		TrialLoadWait:      10 * time.Second,
		SnapshotThreshold:  1024,
	}
}

// Validate reports the first problem of c in words a person can act on.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "":
		return fmt.Errorf("cluster: the node id is empty; set --node-id")
	case len(c.NodeID) > 128:
		return fmt.Errorf("cluster: node id %q is longer than 128 bytes", c.NodeID)
	case c.DataDir == "":
		return fmt.Errorf("cluster: the data directory is empty; set --data")
	case c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < 5*time.Millisecond:
		return fmt.Errorf("cluster: heartbeat and election timeouts must be at least 5ms, got %s and %s", c.HeartbeatTimeout, c.ElectionTimeout)
	case c.LeaderLeaseTimeout <= 0 || c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("cluster: the leader lease timeout must be positive and at most the heartbeat timeout (%s), got %s", c.HeartbeatTimeout, c.LeaderLeaseTimeout)
	case c.HoldTimeout <= 0 || c.ApplyTimeout <= 0 || c.CommitTimeout <= 0:
		return fmt.Errorf("cluster: hold, apply and commit timeouts must be positive")
	case c.TrialLoadWait <= 0:
		return fmt.Errorf("cluster: the trial load wait must be positive, got %s", c.TrialLoadWait)
	case c.Registry == nil || c.Blobs == nil:
		return fmt.Errorf("cluster: Config.Registry and Config.Blobs are required")
	}
	return c.ValidateAddrs()
}

// ValidateAddrs reports the first bad one of the settings a person gives
// (the node id, the addresses and MaxVoters), so that a server can refuse
// them before it starts anything.
func (c *Config) ValidateAddrs() error {
	if c.NodeID != "" && (len(c.NodeID) > 128 || strings.TrimSpace(c.NodeID) != c.NodeID || strings.ContainsFunc(c.NodeID, unicode.IsControl)) {
		return fmt.Errorf("cluster: node id %q: use at most 128 bytes, without spaces at either end or control characters", c.NodeID)
	}
	if c.MaxVoters < 1 || c.MaxVoters > 9 {
		return fmt.Errorf("cluster: max voters must be between 1 and 9, got %d", c.MaxVoters)
	}
	host, port, err := net.SplitHostPort(c.RaftAddr)
	if p, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || p == 0 || port != strconv.FormatUint(p, 10) {
		return fmt.Errorf("cluster: raft address %q must be host:port with a fixed port, 1 to 65535 (--cluster)", c.RaftAddr)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return fmt.Errorf("cluster: raft address %q must name an IP that peers can reach, not a hostname or 0.0.0.0", c.RaftAddr)
	}
	if err := checkBaseURL(c.HTTPAddr); err != nil {
		return fmt.Errorf("cluster: this node's HTTP address: %w", err)
	}
	if u, _ := url.Parse(c.HTTPAddr); u != nil {
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("cluster: this node's HTTP address %s is not one peers can reach; set --advertise-http (e.g. http://10.0.0.5:8080)", c.HTTPAddr)
		}
	}
	if c.Join != "" {
		if err := checkBaseURL(c.Join); err != nil {
			return fmt.Errorf("cluster: --join: %w", err)
		}
	}
	if c.TLS != nil {
		if u, _ := url.Parse(c.HTTPAddr); u != nil && u.Scheme != "https" {
			return fmt.Errorf("cluster: this node's HTTP address %s must be https:// when the cluster runs over TLS (--cluster-ca): give --advertise-http an https:// URL", c.HTTPAddr)
		}
		if u, _ := url.Parse(c.Join); u != nil && c.Join != "" && u.Scheme != "https" {
			return fmt.Errorf("cluster: --join %s must be https:// when the cluster runs over TLS (--cluster-ca): its members serve HTTPS", c.Join)
		}
	}
	return nil
}

// checkBaseURL accepts http(s)://host:port with no path beyond "/".
func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%q is not a base URL like http://10.0.0.5:8080", s)
	}
	return nil
}
