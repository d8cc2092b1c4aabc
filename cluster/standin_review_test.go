package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// gatedPeer is a member ("peer", an HTTP server) that serves the blob of
// each of contents once its gate opens, for pulls held on their way.
type gatedPeer struct {
	srv   *httptest.Server
	mu    sync.Mutex
	gates map[string]chan struct{} // by sha256 hex
	blobs map[string]string
	fails map[string]int // answers to fail first, by sha256 hex
}

// newGatedPeer starts a gatedPeer and makes it a member of n's group.
func newGatedPeer(t *testing.T, n *Node, contents ...string) *gatedPeer {
	t.Helper()
	p := &gatedPeer{gates: map[string]chan struct{}{}, blobs: map[string]string{}, fails: map[string]int{}}
	for _, c := range contents {
		p.gates[hexOf(c)] = make(chan struct{})
		p.blobs[hexOf(c)] = c
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.URL.Path[len("/v1/blobs/sha256:"):]
		p.mu.Lock()
		gate, ok := p.gates[h]
		fail := p.fails[h] > 0
		if fail {
			p.fails[h]--
		}
		p.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if fail {
			http.Error(w, "peer restarting", http.StatusServiceUnavailable)
			return
		}
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		w.Write([]byte(p.blobs[h]))
	}))
	t.Cleanup(func() {
		p.mu.Lock()
		for _, g := range p.gates {
			select {
			case <-g:
			default:
				close(g)
			}
		}
		p.mu.Unlock()
		p.srv.Close()
	})
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: "peer", RaftAddr: "10.0.0.1:1", HTTPAddr: p.srv.URL}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// open lets the pulls of content through; again, it does nothing.
func (p *gatedPeer) open(content string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.gates[hexOf(content)]
	select {
	case <-g:
	default:
		close(g)
	}
}

func hexOf(content string) string {
	s := sha256.Sum256([]byte(content))
	return hex.EncodeToString(s[:])
}

func registerPulled(t *testing.T, n *Node, model, content string, promote bool) {
	t.Helper()
	res, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRegisterVersion, Model: model, SHA256: hexOf(content), Size: int64(len(content)),
		Created: time.Unix(2, 0).UTC(), Origin: "peer", Promote: promote})
	if err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
}

// TestDemotedVersionNeverServedTakesNoUnversioned: a node pulls
// production version 1 of a model it serves nothing of yet; production
// moves to version 2 (also being pulled). Version 1 is staged now, and
// it never served here. When its pull ends first it loads, and must not
// take the unversioned requests ("not ready" until production is, as
// route's doc and registry.Model.Default say: a cluster's staged versions
// take no unversioned traffic). Found by a reviewing helper: route handed
// them over to it from a model not loaded yet.
func TestDemotedVersionNeverServedTakesNoUnversioned(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	repo := n.cfg.Registry
	const one, two = "review demoted one", "review demoted two"
	peer := newGatedPeer(t, n, one, two)
	registerPulled(t, n, "m", one, true)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["1"]; s.State != VersionFetching {
			return fmt.Errorf("version 1: %+v; want fetching", s)
		}
		return nil
	})
	registerPulled(t, n, "m", two, true)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["2"]; s.State != VersionFetching {
			return fmt.Errorf("version 2: %+v; want fetching", s)
		}
		return nil
	})
	peer.open(one)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("version 1: %+v; want ready (staged)", s)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // route after the load
	if st := stateOf(n).Models["m"]; st.Version(1).Stage != fsm.StageStaged || st.Production() != 2 {
		t.Fatalf("setup: version 1 %s, production %d", st.Version(1).Stage, st.Production())
	}
	v, err := repo.Acquire("m", 0)
	if err == nil {
		got := v.Number
		v.Release()
		t.Fatalf("unversioned request got staged version %d, which never served on this node, while production 2 is pulled; want ErrModelNotReady (DefaultVersion %d)", got, repo.DefaultVersion("m"))
	}
	if !errors.Is(err, registry.ErrModelNotReady) {
		t.Fatalf("unversioned request: %v; want ErrModelNotReady", err)
	}
}

// TestRetiredStandInGoesWhenProductionConfigFails: production moves to a
// version whose configuration this node cannot read (a field of a newer
// release, say), and the old production is retired. Production fails
// here (it is never loaded: "failed" with the config error), so nothing
// is on its way and retired means gone (found by a reviewing helper: the
// stand-in stayed for good, its status saying "failed").
func TestRetiredStandInGoesWhenProductionConfigFails(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	repo := n.cfg.Registry
	if _, err := c.register(n, "m", "review cfg one"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error { return unversionedGets(repo, 1) })
	const two = "review cfg two"
	if _, _, err := n.cfg.Blobs.Put(bytes.NewReader([]byte(two)), 1<<20); err != nil {
		t.Fatal(err)
	}
	res, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRegisterVersion, Model: "m", SHA256: hexOf(two), Size: int64(len(two)),
		Created: time.Unix(2, 0).UTC(), Origin: n.ID(), Promote: true, Config: json.RawMessage(`{"a_field_of_a_newer_release":1}`)})
	if err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["2"]; s.State != VersionFailed {
			return fmt.Errorf("version 2: %+v; want failed (its config)", s)
		}
		return nil
	})
	path := filepath.Join(repo.Dir(), "m", "1", "model.onnx")
	// Give the reconciler passes (writes wake it; failures retry).
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: "poke", Version: 2})
		time.Sleep(200 * time.Millisecond)
	}
	var problems []string
	if lm := repo.Model("m"); lm != nil && lm.Version(1) != nil {
		problems = append(problems, "retired version 1 still loaded")
	}
	if v, err := repo.Acquire("m", 0); err == nil {
		problems = append(problems, fmt.Sprintf("unversioned requests still get version %d", v.Number))
		v.Release()
	}
	if _, err := os.Stat(path); err == nil {
		problems = append(problems, "its file is still there")
	}
	if s, ok := n.LocalStatus().Models["m"]["1"]; ok {
		problems = append(problems, fmt.Sprintf("its status: %+v", s))
	}
	if len(problems) > 0 {
		t.Fatalf("production 2 failed here (its config), yet the retired stand-in stays: %q", problems)
	}
}

// TestRetiredStandInOutlivesAPullThatFails: production's pull fails
// once (its only holder answered 503 while restarting) and is retried on
// retryInterval: production is still on its way, and the retired
// stand-in stays (found by a reviewing helper: dropped at the first
// failed attempt, it left the node answering nothing unversioned for the
// retry interval plus the pull, the window the stand-in exists to close).
func TestRetiredStandInOutlivesAPullThatFails(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	repo := n.cfg.Registry
	if _, err := c.register(n, "m", "review retry one"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error { return unversionedGets(repo, 1) })
	const two = "review retry two"
	peer := newGatedPeer(t, n, two)
	peer.fails[hexOf(two)] = 1
	registerPulled(t, n, "m", two, true)
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	// The first attempt fails; the retry (after retryInterval) will
	// succeed once the gate opens.
	testenv.CheckFor(t, 10*time.Second, func() error {
		peer.mu.Lock()
		left := peer.fails[hexOf(two)]
		peer.mu.Unlock()
		if left > 0 {
			return fmt.Errorf("the peer has not failed the first pull yet")
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // the pass that sees the failure
	if err := unversionedGets(repo, 1); err != nil {
		t.Fatalf("one failed pull attempt of production, to be retried in %s: %v (the stand-in is gone)", retryInterval, err)
	}
}

// TestFailedPullSaysItIsTriedAgain: production's pull fails, from a member
// that holds it and will be asked again, so the node's status says the
// failure is retried (a retire then does not warn of this node, where the
// stand-in waits for it); a version whose load failed says no such thing
// (TestRetiredStandInGoesWhenProductionFails).
func TestFailedPullSaysItIsTriedAgain(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	if _, err := c.register(n, "m", "retrying one"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error { return unversionedGets(n.cfg.Registry, 1) })
	const two = "retrying two"
	peer := newGatedPeer(t, n, two)
	peer.fails[hexOf(two)] = 1 << 30 // every pull fails
	registerPulled(t, n, "m", two, true)
	testenv.CheckFor(t, 10*time.Second, func() error {
		s := n.LocalStatus().Models["m"]["2"]
		if s.State != VersionFailed || !s.Retrying {
			return fmt.Errorf("version 2: %+v; want failed, saying the pull is tried again", s)
		}
		// A pull is a read: the peer's 503 is no write of unknown outcome.
		if !strings.Contains(s.Reason, "is unavailable (HTTP 503): peer restarting") || strings.Contains(s.Reason, "may or may not") {
			t.Fatalf("version 2's reason %q; want the peer's 503 said as such", s.Reason)
		}
		return nil
	})
}
