package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// removeStub adds DELETE /v1/cluster/members/{id} to adminStub, as
// gateway/admin.go serves it: forwarded -> RemoveLocal, else Remove.
type removeStub struct{ *adminStub }

func (a removeStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/v1/cluster/members/")
	n := a.node.Load()
	if r.Method != http.MethodDelete || !ok || n == nil {
		a.adminStub.ServeHTTP(w, r)
		return
	}
	var err error
	if r.Header.Get(HeaderForwarded) != "" {
		err = n.RemoveLocal(id)
	} else {
		err = n.Remove(r.Context(), id)
	}
	if err != nil {
		stubWriteErr(w, err)
		return
	}
	w.Write([]byte("{}"))
}

// Removing the leader (DELETE /v1/cluster/members/{leader}) removes its
// member record too: the leader hands leadership over and the new one
// removes it, so that GET /v1/cluster no longer lists it and the others
// stop asking it for status and blobs.
func TestRemoveLeaderForgetsRecord(t *testing.T) {
	trans, apis, _ := stubNet(t, 3, 7300)
	var nodes []*Node
	for i, tr := range trans {
		srv := httptest.NewServer(removeStub{apis[i]})
		t.Cleanup(srv.Close)
		cfg := testConfig(t, fmt.Sprintf("n%d", i), tr, "")
		cfg.HTTPAddr = srv.URL
		if i > 0 {
			cfg.Join = "http://127.0.0.1:1" // joined by hand below
		}
		nodes = append(nodes, startOn(t, cfg, apis[i]))
	}
	c := &testCluster{t: t, nodes: nodes, trans: trans}
	c.joinAll()
	leader := c.waitLeader(nodes...)
	// Every node holds every member's record (each node's announce
	// writes its own) before the removal.
	testenv.CheckFor(t, 10*time.Second, func() error {
		for _, n := range nodes {
			for _, m := range nodes {
				if stateOf(n).Members[m.ID()] == nil {
					return fmt.Errorf("%s has no record of %s yet", n.ID(), m.ID())
				}
			}
		}
		return nil
	})
	var rest []*Node
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	// What DELETE /v1/cluster/members/{leader} sent to the leader does.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leader.Remove(ctx, leader.ID()); err != nil {
		t.Fatalf("remove the leader: %v", err)
	}
	newLeader := c.waitLeader(rest...)
	testenv.CheckFor(t, 10*time.Second, func() error {
		_, members, err := newLeader.Members()
		if err != nil {
			return err
		}
		for _, m := range members {
			if m.ID == leader.ID() {
				return fmt.Errorf("removed node %s still listed by the new leader %s: %+v", leader.ID(), newLeader.ID(), m)
			}
		}
		return nil
	})
}

// An upload for a cluster model to a node that has just restarted, whose
// state machine has not caught up yet while it serves the model's files
// from disk, is not refused as a local model of that name: the node
// catches up first.
func TestUploadRightAfterRestart(t *testing.T) {
	cfg, n := startSolo(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	if _, err := c.register(n, "m", "good one"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	_, again := restartAsServe(t, cfg, n, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, _, err := again.Upload(ctx, "m", []byte("good two"), false, nil)
	if err != nil {
		st, _ := again.FSM().State()
		t.Fatalf("upload of cluster model m right after the restart (state machine knows %d models): %v (conflict: %v)", len(st.Models), err, errors.Is(err, fsm.ErrConflict))
	}
	if res.Version != 2 {
		t.Fatalf("got version %d; want 2", res.Version)
	}
}
