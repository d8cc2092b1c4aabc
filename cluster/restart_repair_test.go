package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// A node restarts (a new process: a new registry on the same repository
// directory, the same blob store and raft state). A version's file that
// the cluster placed in the earlier run has rotted since (its stored blob
// with it: the file is a hard link to it). The node must repair it as it
// does within one run (TestRottenLocalBlobIsFetchedAgain): drop the
// rotten copy and fetch the version again from a peer, not report it
// failed for ever as "a local model of that name".
func TestRestartRepairsRottenPlacedFile(t *testing.T) {
	cfg, n := startSolo(t)

	good := []byte("model bytes placed in the first run")
	sum := sha256.Sum256(good)
	hexSum := hex.EncodeToString(sum[:])
	if _, _, err := n.cfg.Blobs.Put(bytes.NewReader(good), 1<<20); err != nil {
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
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	// Rot: same size, other bytes, in the blob and so in the file linked
	// to it (and in the file itself, should it be a copy).
	rotten := bytes.ToUpper(good)
	for _, p := range []string{n.cfg.Blobs.Path(hexSum), path} {
		os.Chmod(p, 0o644)
		if err := os.WriteFile(p, rotten, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The restart: a fresh registry over the same directory.
	again, _ := restartNode(t, cfg, func(b []byte, _ registry.ModelConfig) (registry.Backend, error) { return textBackend{}, nil })
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := again.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("after restart: status %+v; want ready, the rotten file replaced", s)
		}
		return nil
	})
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("repository file after restart: %q, %v; want the good bytes", b, err)
	}
}

// A node polls its repository (serve --poll-interval; every server is a
// cluster node). A cluster model has production version 1, version 2
// that fails to load on this node, and staged version 3. The reconciler's
// load of [1 2 3] fails in part (version 2); a poll must leave alone what
// the reconciler loaded, here after a first load of [1] alone (the
// failed load of [1 2 3] must not put back that override, or the poll
// would unload the staged version 3).
func TestPollKeepsProductionBesideFailedVersion(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	if _, err := c.register(n, "m", "good one"); err != nil { // v1, production
		t.Fatal(err)
	}
	if _, err := c.register(n, "m", "broken two"); err != nil { // v2
		t.Fatal(err)
	}
	if _, err := c.register(n, "m", "good three"); err != nil { // v3, staged
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		st := n.LocalStatus().Models["m"]
		if st["1"].State != VersionReady || st["2"].State != VersionFailed || st["3"].State != VersionReady {
			return fmt.Errorf("statuses %+v; want 1 ready, 2 failed, 3 ready", st)
		}
		return nil
	})
	repo := n.cfg.Registry
	checkServesOneAndThree(t, repo, "before the poll")
	repo.Poll()
	checkServesOneAndThree(t, repo, "after a poll")
}

// checkServesOneAndThree checks that model m serves production version 1
// unversioned and staged version 3 by number.
func checkServesOneAndThree(t *testing.T, repo *registry.Repository, when string) {
	t.Helper()
	v, err := repo.Acquire("m", 0)
	if err != nil {
		t.Fatalf("unversioned request %s: %v; want production version 1 serving (loaded: %v)", when, err, loadedVersions(repo, "m"))
	}
	num := v.Number
	v.Release()
	if num != 1 {
		t.Fatalf("unversioned request %s got version %d; want 1", when, num)
	}
	if m := repo.Model("m"); m == nil || m.Version(3) == nil {
		t.Fatalf("staged version 3 %s: not loaded (loaded: %v); want it serving", when, loadedVersions(repo, "m"))
	}
}

func loadedVersions(r *registry.Repository, name string) []int64 {
	m := r.Model(name)
	if m == nil {
		return nil
	}
	var out []int64
	for _, v := range m.Versions() {
		out = append(out, v.Number)
	}
	return out
}

// The same after a restart (or on a node that joins). When the
// reconciler's first load is of [1 2 3] (raft replays the log before it
// runs), it fails in part (version 2); its override must stay, or a poll
// would load the model as its directory alone says: the latest version, 3,
// with production version 1 no longer serving.
func TestPollAfterRestartKeepsProduction(t *testing.T) {
	cfg, n := startSolo(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	for _, content := range []string{"good one", "broken two", "good three"} {
		if _, err := c.register(n, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		st := n.LocalStatus().Models["m"]
		if st["1"].State != VersionReady || st["2"].State != VersionFailed || st["3"].State != VersionReady {
			return fmt.Errorf("statuses %+v; want 1 ready, 2 failed, 3 ready", st)
		}
		return nil
	})
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	again, repo := restartNode(t, cfg, func(b []byte, _ registry.ModelConfig) (registry.Backend, error) {
		if bytes.HasPrefix(b, []byte("broken")) {
			return nil, errors.New("not a model")
		}
		return textBackend{}, nil
	})
	testenv.CheckFor(t, 5*time.Second, func() error {
		st := again.LocalStatus().Models["m"]
		if st["1"].State != VersionReady || st["2"].State != VersionFailed || st["3"].State != VersionReady {
			return fmt.Errorf("after restart: statuses %+v; want 1 ready, 2 failed, 3 ready", st)
		}
		return nil
	})
	checkServesOneAndThree(t, repo, "after the restart")
	repo.Poll()
	checkServesOneAndThree(t, repo, "after a poll")
}

// startSolo starts a one-node cluster over real TCP, whose raft state and
// stores restartNode can take over, and waits until it leads. It stops
// when the test ends, if the test has not stopped it.
func startSolo(t *testing.T) (Config, *Node) {
	t.Helper()
	_, tr := raft.NewInmemTransport("unused")
	cfg := testConfig(t, "solo", tr, "")
	cfg.inmem = nil
	cfg.RaftAddr = testenv.FreeAddr(t)
	return cfg, startLeading(t, cfg)
}

// startLeading starts a one-node cluster on cfg and waits until it leads.
// It stops when the test ends, if the test has not stopped it.
func startLeading(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !n.IsLeader() {
			return errors.New("not leader yet")
		}
		return nil
	})
	return n
}

// restartNode starts a node again on cfg's directories, with a fresh
// registry over the same repository that loads with load: a new process,
// as far as the node can tell. Both stop at the end of the test.
func restartNode(t *testing.T, cfg Config, load registry.LoadFunc) (*Node, *registry.Repository) {
	t.Helper()
	repo, err := registry.New(registry.Config{Dir: cfg.Registry.Dir(), Load: load, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	cfg.Registry = repo
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n, repo
}

// A node restarts as serve does it: a new registry over the same
// repository loads what is on disk (LoadAll, whose rule for unversioned
// requests is the highest version), then the control plane starts. Model m
// has production version 1 and staged version 2. From Start's return, and
// before raft has given the node the group's state back (an election, or
// a quorum, away), unversioned requests never reach staged version 2:
// production.json routes them to version 1, which serves once the
// reconciler has loaded it again.
func TestRestartKeepsStagedVersionFromUnversioned(t *testing.T) {
	cfg, n := startSolo(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	for _, content := range []string{"good one", "good two"} {
		if _, err := c.register(n, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		st := n.LocalStatus().Models["m"]
		if st["1"].State != VersionReady || st["2"].State != VersionReady {
			return fmt.Errorf("statuses %+v; want 1 and 2 ready", st)
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, productionFile)); err != nil {
			return err
		}
		_, err := os.Stat(filepath.Join(cfg.DataDir, servedFile))
		return err
	})
	// Without served.json (a node upgraded from a release that did not
	// write it, or one whose file was damaged), the restart loads by the
	// repository's own rule, and production.json alone must keep the
	// staged version from unversioned requests. (With it, both versions
	// load: TestRestartedNodeServesAsBeforeWhenReady.)
	// Stopped first: a reconcile pass still running would write it again.
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(cfg.DataDir, servedFile)); err != nil {
		t.Fatal(err)
	}
	repo, again := restartAsServe(t, cfg, n, func(repo *registry.Repository) {
		// The repository's own rule loaded version 2 alone (latest 1),
		// and production.json, applied before, keeps unversioned
		// requests off it: "not ready" until version 1 loads.
		if lm := repo.Model("m"); lm == nil || lm.Version(2) == nil {
			t.Fatalf("after LoadAll, before the control plane: version 2 not loaded (else this test tests nothing)")
		}
		if v := repo.Model("m").Default(); v != nil {
			t.Fatalf("after LoadAll, before the control plane: unversioned requests go to version %d; want none until production, 1, loads", v.Number)
		}
	})
	// serve reports ready here.
	if v, err := repo.Acquire("m", 0); err == nil {
		v.Release()
		if v.Number != 1 {
			st, _ := again.FSM().State()
			t.Fatalf("right after the restart: unversioned requests for m are served by version %d (models known to the state machine: %d); production is 1, version 2 is staged", v.Number, len(st.Models))
		}
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		v, err := repo.Acquire("m", 0)
		if err != nil {
			return err
		}
		defer v.Release()
		if v.Number != 1 {
			return fmt.Errorf("unversioned requests served by version %d; want 1", v.Number)
		}
		return nil
	})
}

// restartAsServe stops n and starts it again on cfg as serve does: a new
// registry over the same repository takes the recorded production
// versions (RestoreProduction), loads the versions the node served
// (RestoredLoads, LoadRestored) and what else is on disk (LoadAll), then
// the control plane starts, with serve's timings (an election takes a
// while). beforeStart, when not nil, sees the registry in between.
func restartAsServe(t *testing.T, cfg Config, n *Node, beforeStart func(*registry.Repository)) (*registry.Repository, *Node) {
	t.Helper()
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	repo, err := registry.New(registry.Config{Dir: cfg.Registry.Dir(), Load: func(b []byte, _ registry.ModelConfig) (registry.Backend, error) { return textBackend{}, nil }, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	// serve's order: RestoreProduction, then its loadInitial.
	if err := RestoreProduction(cfg.DataDir, repo); err != nil {
		cfg.Logf("%v", err) // serve logs it and goes on
	}
	restored, err := RestoredLoads(cfg.DataDir)
	if err != nil {
		cfg.Logf("%v", err)
	}
	if err := repo.LoadRestored(restored); err != nil {
		t.Fatal(err)
	}
	if err := repo.LoadAll(); err != nil {
		t.Fatal(err)
	}
	if beforeStart != nil {
		beforeStart(repo)
	}
	d := DefaultConfig()
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = d.HeartbeatTimeout, d.ElectionTimeout, d.LeaderLeaseTimeout
	cfg.HoldTimeout = 5 * time.Second
	cfg.Registry = repo
	again, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Stop() })
	return repo, again
}

// TestRestartKeepsServingWhenProductionFailsHere: production moved to a
// version that fails to load on this node, so its unversioned requests
// stay with the version that served before; after a restart they must
// too, not get "not ready" for as long as the version fails here (found
// by a walk on real servers: the node said ready and answered every
// unversioned request 503).
func TestRestartKeepsServingWhenProductionFailsHere(t *testing.T) {
	cfg, n := soloWithTwoVersions(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	if _, err := c.register(n, "m", "broken three"); err != nil {
		t.Fatal(err)
	}
	if res, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: fsm.AliasProduction, Version: 3}); err != nil || res.Err != nil {
		t.Fatalf("promote 3: %v %v", err, res)
	}
	unversioned := func(repo *registry.Repository) (int64, error) {
		v, err := repo.Acquire("m", 0)
		if err != nil {
			return 0, err
		}
		v.Release()
		return v.Number, nil
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["3"]; s.State != VersionFailed {
			return fmt.Errorf("version 3: %+v; want failed", s)
		}
		var prod map[string]int64
		if err := loadJSON(filepath.Join(cfg.DataDir, productionFile), &prod); err != nil {
			return err
		}
		if prod["m"] != 1 {
			return fmt.Errorf("production.json %v; want m routed to 1, which serves in production's place", prod)
		}
		return nil
	})
	if v, err := unversioned(n.cfg.Registry); err != nil || v != 1 {
		t.Fatalf("before the restart: version %d, %v; want 1 serving in place of production", v, err)
	}
	repo, _ := restartAsServe(t, cfg, n, func(repo *registry.Repository) {
		if v, err := unversioned(repo); err != nil || v != 1 {
			t.Fatalf("after the initial loads: version %d, %v; want 1, as before the restart", v, err)
		}
	})
	// restartAsServe's loader takes any bytes: version 3 loads now, and
	// takes production's requests once it does.
	testenv.CheckFor(t, 10*time.Second, func() error {
		if v, err := unversioned(repo); err != nil || v != 3 {
			return fmt.Errorf("after catching up: version %d, %v; want 3, production, loaded now", v, err)
		}
		return nil
	})
}

// TestLateNodeServesFormerProductionWhenProductionFails: a node that
// catches up after production moved to a version that fails to load on
// it (here on every node) serves unversioned requests from the version
// production replaced, as the nodes that served it before do, not "not
// ready" for as long as production fails. Before, nothing had served
// them on it yet, so production, which never loads, was its default
// (found through a timing flake of the test above: a node that applied
// the promotion before its first routing pass did the same).
func TestLateNodeServesFormerProductionWhenProductionFails(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	late := c.follower(leader)
	rest := c.isolate(late)
	leader = c.waitLeader(rest...)
	for _, content := range []string{"good one", "good two", "broken three"} {
		if _, err := c.register(leader, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := leader.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: fsm.AliasProduction, Version: 3}); err != nil || res.Err != nil {
		t.Fatalf("promote 3: %v %v", err, res)
	}
	unversioned := func(n *Node) error {
		v, err := n.cfg.Registry.Acquire("m", 0)
		if err != nil {
			return fmt.Errorf("%s: %w", n.ID(), err)
		}
		v.Release()
		if v.Number != 1 {
			return fmt.Errorf("%s: unversioned requests get version %d; want 1, the former production, while 3 fails", n.ID(), v.Number)
		}
		return nil
	}
	c.heal()
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := late.LocalStatus().Models["m"]["3"]; s.State != VersionFailed {
			return fmt.Errorf("version 3 on %s: %+v; want failed", late.ID(), s)
		}
		for _, n := range c.nodes {
			if err := unversioned(n); err != nil {
				return err
			}
		}
		return nil
	})
}
