package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/registry/blobs"
)

// brokenLoads counts the test loader's attempts at "broken" models.
var brokenLoads atomic.Int64

// loadGates holds, by model content, a channel the test loader receives
// from before it loads those bytes, for a test to hold a load running.
var loadGates sync.Map // string -> chan struct{}

// loadStarts holds, by model content, a channel of capacity 1 the test
// loader sends to (without blocking) when a gated load of those bytes
// has begun.
var loadStarts sync.Map // string -> chan struct{}

// textBackend stands in for ONNX Runtime: a model is any bytes (those
// starting with "broken" fail to load).
type textBackend struct{}

func (textBackend) Inputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "x", Datatype: oip.FP32, Shape: []int64{-1, 1}}}
}
func (textBackend) Outputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "y", Datatype: oip.FP32, Shape: []int64{-1, 1}}}
}
func (textBackend) Run(_ context.Context, in []oip.Tensor, _ []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	return dst, nil
}
func (textBackend) Close() error { return nil }

// testCluster is n nodes over raft's in-memory transport; node 0
// bootstraps and the others join through it.
type testCluster struct {
	t     *testing.T
	nodes []*Node
	trans []*raft.InmemTransport
	logs  []*nodeLog // each node's log lines, as t.Logf gets them too
}

func testConfig(t *testing.T, id string, trans *raft.InmemTransport, join string) Config {
	t.Helper()
	repo, err := registry.New(registry.Config{
		Dir: t.TempDir(),
		Load: func(b []byte, _ registry.ModelConfig) (registry.Backend, error) {
			if bytes.HasPrefix(b, []byte("broken")) {
				brokenLoads.Add(1)
				return nil, errors.New("not a model")
			}
			if gate, ok := loadGates.Load(string(b)); ok {
				if started, ok := loadStarts.Load(string(b)); ok {
					select {
					case started.(chan struct{}) <- struct{}{}:
					default:
					}
				}
				<-gate.(chan struct{})
			}
			return textBackend{}, nil
		},
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	store, err := blobs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.RaftAddr = string(trans.LocalAddr())
	cfg.HTTPAddr = "http://" + string(trans.LocalAddr())
	cfg.DataDir = t.TempDir()
	cfg.Join = join
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	cfg.ElectionTimeout = 100 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.HoldTimeout = 500 * time.Millisecond
	cfg.ApplyTimeout = time.Second
	cfg.Registry = repo
	cfg.Blobs = store
	cfg.Logf = func(format string, args ...any) { t.Logf(id+": "+format, args...) }
	cfg.inmem = trans
	cfg.voterCheck = 100 * time.Millisecond
	return cfg
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	for i := range n {
		addr := raft.ServerAddress(fmt.Sprintf("127.0.0.%d:7000", i+1))
		_, tr := raft.NewInmemTransport(addr)
		for _, other := range c.trans {
			tr.Connect(other.LocalAddr(), other)
			other.Connect(addr, tr)
		}
		c.trans = append(c.trans, tr)
		join := ""
		if i > 0 {
			// Never answers: the test adds the node on the leader.
			join = "http://127.0.0.1:1"
		}
		cfg := testConfig(t, fmt.Sprintf("n%d", i), tr, join)
		log := &nodeLog{}
		c.logs = append(c.logs, log)
		tlogf := cfg.Logf
		cfg.Logf = func(format string, args ...any) {
			log.add(fmt.Sprintf(format, args...))
			tlogf(format, args...)
		}
		node, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Stop() })
		c.nodes = append(c.nodes, node)
	}
	c.joinAll()
	return c
}

// joinAll waits for the first node to lead and joins the others on the
// leader, by hand. A loaded machine may cost a young group its leader
// between two joins (two voters need each other's heartbeats), or during
// one: a join refused so, or whose outcome that left unknown, goes to
// whoever leads the members joined so far.
func (c *testCluster) joinAll() {
	c.t.Helper()
	c.waitLeader(c.nodes[0])
	for i, node := range c.nodes[1:] {
		m := fsm.Member{ID: node.ID(), RaftAddr: node.cfg.RaftAddr, HTTPAddr: node.cfg.HTTPAddr}
		testenv.CheckFor(c.t, 10*time.Second, func() error {
			err := c.waitLeader(c.nodes[:i+1]...).JoinLocal(m)
			if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUnknownOutcome) {
				return fmt.Errorf("join %s: %w", node.ID(), err)
			}
			if err != nil {
				c.t.Fatalf("join %s: %v", node.ID(), err)
			}
			return nil
		})
	}
}

// waitLeader waits until one of among leads and every one of them knows it.
func (c *testCluster) waitLeader(among ...*Node) *Node {
	c.t.Helper()
	var leader *Node
	testenv.CheckFor(c.t, 5*time.Second, func() error {
		leader = nil
		for _, n := range among {
			if n.IsLeader() {
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		for _, n := range among {
			if id, _ := n.Leader(); id != leader.ID() {
				return fmt.Errorf("%s follows %q, not %s", n.ID(), id, leader.ID())
			}
		}
		return nil
	})
	return leader
}

// partition cuts node i off from every other node, both ways.
func (c *testCluster) partition(i int) {
	for j, tr := range c.trans {
		if j != i {
			tr.Disconnect(c.trans[i].LocalAddr())
			c.trans[i].Disconnect(tr.LocalAddr())
		}
	}
}

// follower returns a node other than leader.
func (c *testCluster) follower(leader *Node) *Node {
	for _, n := range c.nodes {
		if n != leader {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// isolate partitions node n from the others and returns the others.
func (c *testCluster) isolate(n *Node) (rest []*Node) {
	for i, m := range c.nodes {
		if m == n {
			c.partition(i)
		} else {
			rest = append(rest, m)
		}
	}
	return rest
}

// heal reconnects every pair.
func (c *testCluster) heal() {
	for i, a := range c.trans {
		for j, b := range c.trans {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
}

// register applies a register_version command on n for model with
// content, storing its blob on every node first (there is no HTTP here to
// pull it from a peer).
func (c *testCluster) register(n *Node, model, content string) (*fsm.Result, error) {
	sum := sha256.Sum256([]byte(content))
	for _, node := range c.nodes {
		if _, _, err := node.cfg.Blobs.Put(bytes.NewReader([]byte(content)), 1<<20); err != nil {
			c.t.Fatal(err)
		}
	}
	return n.ApplyLocal(fsm.Command{
		Op: fsm.OpRegisterVersion, Model: model, SHA256: hex.EncodeToString(sum[:]),
		Size: int64(len(content)), Created: time.Unix(1, 0).UTC(), Origin: n.ID(),
	})
}

func stateOf(n *Node) *fsm.State {
	st, _ := n.FSM().State()
	return st
}

// waitConverged waits until every node in among has the same state.
func (c *testCluster) waitConverged(among ...*Node) {
	c.t.Helper()
	testenv.CheckFor(c.t, 5*time.Second, func() error {
		want := stateOf(among[0])
		for _, n := range among[1:] {
			if got := stateOf(n); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("%s has %d models, %s has %d", n.ID(), len(got.Models), among[0].ID(), len(want.Models))
			}
		}
		return nil
	})
}

func TestClusterReplicatesAndServes(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	res, err := c.register(leader, "m", "model one")
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 1 {
		t.Fatalf("first version: got %d; want 1", res.Version)
	}
	c.waitConverged(c.nodes...)
	// Every node's reconciler links the blob into its repository, loads it
	// and routes unversioned requests to production.
	for _, n := range c.nodes {
		testenv.CheckFor(t, 5*time.Second, func() error {
			v, err := n.cfg.Registry.Acquire("m", 0)
			if err != nil {
				return fmt.Errorf("%s: %w", n.ID(), err)
			}
			defer v.Release()
			if v.Number != 1 {
				return fmt.Errorf("%s routes version %d; want 1", n.ID(), v.Number)
			}
			if s := n.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
				return fmt.Errorf("%s reports %+v; want ready", n.ID(), s)
			}
			return nil
		})
	}
	// Every node records its own addresses (the joiners through the join,
	// the first node by announcing itself).
	testenv.CheckFor(t, 5*time.Second, func() error {
		if st := stateOf(c.nodes[2]); len(st.Members) != 3 {
			return fmt.Errorf("members: got %d records; want 3", len(st.Members))
		}
		return nil
	})
}

func TestLeaderLossElectsAndKeepsCommittedWrites(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.waitLeader(c.nodes...)
	for i := range 5 {
		if _, err := c.register(old, "m", fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rest := c.isolate(old)
	start := time.Now()
	leader := c.waitLeader(rest...)
	t.Logf("new leader %s after %s", leader.ID(), time.Since(start).Round(time.Millisecond))
	// A new leader applies what committed under the old one once it has
	// committed in its own term: read through a barrier.
	if _, err := leader.LeaderIndex(); err != nil {
		t.Fatal(err)
	}
	if m := stateOf(leader).Models["m"]; m == nil || len(m.Versions) != 5 {
		t.Fatalf("the new leader lost committed writes: %+v", m)
	}
	res, err := c.register(leader, "m", "after")
	if err != nil || res.Version != 6 {
		t.Fatalf("write on the new leader: got %+v, %v; want version 6", res, err)
	}
}

func TestPartitionedMinorityCannotCommit(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.waitLeader(c.nodes...)
	if _, err := c.register(old, "m", "before"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(c.nodes...)
	// Cut the leader off: it is the minority, and what it is asked to
	// write must never commit.
	rest := c.isolate(old)
	if res, err := c.register(old, "minority", "lost"); err == nil {
		t.Fatalf("the partitioned leader committed a write: %+v", res)
	} else if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("minority write: got %v; want ErrNotLeader or ErrUnknownOutcome", err)
	}
	// Apply holds for a leader, then gives up with ErrNoLeader.
	start := time.Now()
	_, err := old.Apply(context.Background(), fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: "beta", Version: 1})
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Apply on the minority: got %v; want ErrNoLeader", err)
	}
	if held := time.Since(start); held < old.cfg.HoldTimeout {
		t.Fatalf("Apply gave up after %s; want it to hold %s", held, old.cfg.HoldTimeout)
	}

	leader := c.waitLeader(rest...)
	if _, err := c.register(leader, "majority", "kept"); err != nil {
		t.Fatal(err)
	}
	c.heal()
	c.waitConverged(c.nodes...)
	st := stateOf(old)
	if st.Models["minority"] != nil {
		t.Fatal("the minority's write survived the heal")
	}
	if st.Models["majority"] == nil {
		t.Fatal("the healed node did not catch up with the majority's write")
	}
}

func TestRemoveMember(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	victim := c.follower(leader)
	if err := leader.RemoveLocal(victim.ID()); err != nil {
		t.Fatal(err)
	}
	_, members, err := leader.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m.ID == victim.ID() {
			t.Fatalf("removed node still listed: %+v", m)
		}
	}
	if err := leader.RemoveLocal("nobody"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("removing an unknown node: got %v; want ErrNotFound", err)
	}
}

func TestNodesBeyondMaxVotersJoinAsNonvoters(t *testing.T) {
	c := newTestCluster(t, 4)
	leader := c.waitLeader(c.nodes...)
	_, members, err := leader.Members()
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, m := range members {
		if m.Voter {
			voters++
		} else if m.State != "nonvoter" || m.ID != "n3" {
			t.Fatalf("non-voter: got %+v; want n3 as nonvoter", m)
		}
	}
	if voters != 3 || len(members) != 4 {
		t.Fatalf("got %d voters of %d members; want 3 of 4", voters, len(members))
	}
	// The non-voter replicates and serves like the others.
	if _, err := c.register(leader, "m", "served everywhere"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		v, err := c.nodes[3].cfg.Registry.Acquire("m", 0)
		if err != nil {
			return err
		}
		v.Release()
		return nil
	})
}

// TestRestartFromSnapshot restarts a node on its data directory (raft-boltdb
// and file snapshots over a real TCP transport) after a snapshot, so that
// its state comes back through FSM.Restore plus the entries after it.
func TestRestartFromSnapshot(t *testing.T) {
	addr := testenv.FreeAddr(t)
	_, tr := raft.NewInmemTransport("unused")
	cfg := testConfig(t, "solo", tr, "")
	cfg.inmem = nil
	cfg.RaftAddr = addr
	cfg.SnapshotThreshold = 8
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !n.IsLeader() {
			return errors.New("not leader yet")
		}
		return nil
	})
	c := &testCluster{t: t, nodes: []*Node{n}}
	for i := range 20 {
		if _, err := c.register(n, fmt.Sprintf("m%d", i%3), fmt.Sprintf("content %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.register(n, "after", "after the snapshot"); err != nil {
		t.Fatal(err)
	}
	want, wantIndex := n.FSM().State()
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	again, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Stop()
	testenv.CheckFor(t, 5*time.Second, func() error {
		got, index := again.FSM().State()
		if index < wantIndex || !reflect.DeepEqual(got.Models, want.Models) {
			return fmt.Errorf("after restart: index %d with %d models; want %d with %d", index, len(got.Models), wantIndex, len(want.Models))
		}
		return nil
	})
}

// TestCorruptBlobIsNeverLoaded points a version's origin at a peer that
// serves wrong bytes, then truncated ones: the node refuses both, loads
// nothing and says why, and takes the blob from an honest peer once there
// is one.
func TestCorruptBlobIsNeverLoaded(t *testing.T) {
	c := newTestCluster(t, 2)
	leader := c.waitLeader(c.nodes...)
	node := c.follower(leader)
	good := []byte("the real model bytes")
	sum := sha256.Sum256(good)
	hexSum := hex.EncodeToString(sum[:])
	serve := func(body []byte) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/blobs/sha256:"+hexSum {
				http.NotFound(w, r)
				return
			}
			w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	member := func(id string, srv *httptest.Server) {
		t.Helper()
		if _, err := leader.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: id, RaftAddr: "10.0.0.1:1", HTTPAddr: srv.URL}}); err != nil {
			t.Fatal(err)
		}
	}
	member("evil", serve([]byte("the fake model bytes")))
	member("short", serve(good[:7]))
	if _, err := leader.ApplyLocal(fsm.Command{
		Op: fsm.OpRegisterVersion, Model: "m", SHA256: hexSum, Size: int64(len(good)),
		Created: time.Unix(1, 0).UTC(), Origin: "evil",
	}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(node.cfg.Registry.Dir(), "m", "1", "model.onnx")
	testenv.CheckFor(t, 5*time.Second, func() error {
		s := node.LocalStatus().Models["m"]["1"]
		if s.State != VersionFailed || !strings.Contains(s.Reason, "sha256") || !strings.Contains(s.Reason, "got 7 bytes") {
			return fmt.Errorf("status %+v; want failed, naming the digest and the short read", s)
		}
		return nil
	})
	if node.cfg.Blobs.Has(hexSum) {
		t.Fatal("a blob that failed verification was stored")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the repository holds %s after failed fetches (stat: %v)", path, err)
	}
	if node.cfg.Registry.Model("m") != nil {
		t.Fatal("the registry loaded a model whose blob never verified")
	}

	member("honest", serve(good))
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := node.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("status %+v; want ready from the honest peer", s)
		}
		return nil
	})
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("repository file: %q, %v; want the real bytes", b, err)
	}
}

// TestStagedVersionNeverTakesUnversionedTraffic: production fails to load
// on a node while a staged version loads; unversioned requests must get
// "not ready", not the staged version.
func TestStagedVersionNeverTakesUnversionedTraffic(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	if _, err := c.register(n, "m", "broken model"); err != nil { // v1, production
		t.Fatal(err)
	}
	if _, err := c.register(n, "m", "good model"); err != nil { // v2, staged
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		st := n.LocalStatus().Models["m"]
		if st["1"].State != VersionFailed || st["2"].State != VersionReady {
			return fmt.Errorf("statuses %+v; want 1 failed, 2 ready", st)
		}
		return nil
	})
	if v, err := n.cfg.Registry.Acquire("m", 0); !errors.Is(err, registry.ErrModelNotReady) {
		if err == nil {
			v.Release()
		}
		t.Fatalf("unversioned request while production failed: got %v, %v; want ErrModelNotReady", v, err)
	}
	v, err := n.cfg.Registry.Acquire("m", 2)
	if err != nil {
		t.Fatalf("the staged version by number: %v", err)
	}
	v.Release()

	// A burst of admin writes does not load the broken version again for
	// each one: failures are retried on the retry interval.
	before := brokenLoads.Load()
	for i := range 50 {
		if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: "beta", Version: int64(1 + i%2)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := brokenLoads.Load() - before; got > 1 {
		t.Fatalf("50 alias writes loaded the broken version %d more times; want at most 1", got)
	}
}

// TestRottenLocalBlobIsFetchedAgain damages a node's stored blob; the next
// reconcile must notice when placing it, drop it, and fetch a good copy.
func TestRottenLocalBlobIsFetchedAgain(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	good := []byte("model bytes that will rot")
	sum := sha256.Sum256(good)
	hexSum := hex.EncodeToString(sum[:])
	if _, _, err := n.cfg.Blobs.Put(bytes.NewReader(good), 1<<20); err != nil {
		t.Fatal(err)
	}
	// Rot: same size, other bytes.
	blob := n.cfg.Blobs.Path(hexSum)
	os.Chmod(blob, 0o644)
	if err := os.WriteFile(blob, bytes.ToUpper(good), 0o644); err != nil {
		t.Fatal(err)
	}
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(good) }))
	defer peer.Close()
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: "peer", RaftAddr: "10.0.0.1:1", HTTPAddr: peer.URL}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRegisterVersion, Model: "m", SHA256: hexSum, Size: int64(len(good)), Created: time.Unix(1, 0).UTC(), Origin: "peer"}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	path := filepath.Join(n.cfg.Registry.Dir(), "m", "1", "model.onnx")
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("repository file: %q, %v; want the good bytes", b, err)
	}
}

// TestSlowPullDoesNotHoldOtherModels: while one model's blob is still on
// its way, another model registered after it becomes ready.
func TestSlowPullDoesNotHoldOtherModels(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	slow := []byte("a large model, slowly")
	sum := sha256.Sum256(slow)
	slowHex := hex.EncodeToString(sum[:])
	release := make(chan struct{})
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(slow)
	}))
	defer peer.Close()
	defer close(release)
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: "peer", RaftAddr: "10.0.0.1:1", HTTPAddr: peer.URL}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRegisterVersion, Model: "big", SHA256: slowHex, Size: int64(len(slow)), Created: time.Unix(1, 0).UTC(), Origin: "peer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.register(n, "small", "quick model"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		st := n.LocalStatus().Models
		if st["small"]["1"].State != VersionReady || st["big"]["1"].State != VersionFetching {
			return fmt.Errorf("statuses %+v; want small ready while big is fetching", st)
		}
		return nil
	})
	release <- struct{}{}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["big"]["1"]; s.State != VersionReady {
			return fmt.Errorf("big: %+v; want ready once its pull ends", s)
		}
		return nil
	})
}

// nodeLog keeps one node's log lines for a test to look through.
type nodeLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *nodeLog) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

// count returns how many lines hold every one of parts.
func (l *nodeLog) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := 0
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		c++
	}
	return c
}
