package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// A voter that died (killed: a machine that crashed) is removed, as the
// README says to; the group then promotes version 2 and retires version 1.
// The machine comes back and serve starts again on the same --data with
// --join. It never got the entry that removed it: its own log still
// counts it a voter, and nobody sends it anything. watchRemoval must ask
// the members it knows, join again, and serve the group's production,
// not the retired version 1 (it once waited for a leader for good).
func TestRemovedWhileDownRejoinsAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateways")
	}
	victim, victimID, rest, body := threeNodesWithStagedVersion(t)
	victim.kill(t)
	removeAndRetire(t, rest, victimID, body)

	again := startNode(t, victim.data, victim.models, victim.raft, rest[0].url())
	defer func() {
		if t.Failed() {
			t.Logf("restarted node's log:\n%s", again.stderr.String())
		}
	}()
	testenv.CheckFor(t, 30*time.Second, func() error {
		if err := servesVersion(t, again, body, "2"); err != nil {
			return err
		}
		v, err := rest[0].cluster(t)
		if err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.ID == victimID {
				return nil
			}
		}
		return fmt.Errorf("the group does not list %s again", victimID)
	})
}

// threeNodesWithStagedVersion starts a cluster of three gateways on the
// demo models, uploads ctr version 2 (staged: version 1 stays production)
// and waits until every node serves both. It returns a follower, its id,
// the two other nodes, and a ctr request body.
func threeNodesWithStagedVersion(t *testing.T) (victim *clusterNode, victimID string, rest []*clusterNode, body []byte) {
	t.Helper()
	demo := demoRepo(t)
	first := startFounder(t, demo)
	nodes := []*clusterNode{first}
	for range 2 {
		nodes = append(nodes, startNode(t, t.TempDir(), t.TempDir(), testenv.FreeAddr(t), first.url()))
	}
	body, _ = inferBody(1, 64, 7)
	for _, n := range nodes {
		testenv.CheckFor(t, 30*time.Second, func() error { return servesVersion(t, n, body, "1") })
	}
	onnxBytes, err := os.ReadFile(filepath.Join(demo, "ctr", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if code, b, _ := first.admin(t, "POST", "/v1/models/ctr/versions", onnxBytes); code != 201 {
		t.Fatalf("upload version 2: %d %s", code, b)
	}
	for _, n := range nodes {
		testenv.CheckFor(t, 20*time.Second, func() error {
			if code, b, _ := n.post(t, "/v2/models/ctr/versions/2/infer", body); code != 200 {
				return fmt.Errorf("%s: version 2: %d %s", n.addr, code, b)
			}
			return nil
		})
	}
	v, err := first.cluster(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		for _, m := range v.Members {
			if m.HTTPAddr == n.url() && m.ID != v.Leader && victim == nil {
				victim, victimID = n, m.ID
			}
		}
	}
	for _, n := range nodes {
		if n != victim {
			rest = append(rest, n)
		}
	}
	return victim, victimID, rest, body
}

// removeAndRetire has the group of rest remove member victimID, promote
// ctr version 2 and retire version 1, and waits until rest serve 2.
func removeAndRetire(t *testing.T, rest []*clusterNode, victimID string, body []byte) {
	t.Helper()
	admin := func(method, path string, body []byte) {
		t.Helper()
		testenv.CheckFor(t, 20*time.Second, func() error {
			if code, b, _ := rest[0].admin(t, method, path, body); code/100 != 2 {
				return fmt.Errorf("%s %s: %d %s", method, path, code, b)
			}
			return nil
		})
	}
	admin("DELETE", "/v1/cluster/members/"+victimID, nil)
	admin("PUT", "/v1/models/ctr/aliases/production", []byte(`{"version":2}`))
	admin("DELETE", "/v1/models/ctr/versions/1", nil)
	for _, n := range rest {
		testenv.CheckFor(t, 20*time.Second, func() error { return servesVersion(t, n, body, "2") })
	}
}
