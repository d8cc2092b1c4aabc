package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// Two of a group's three voters are lost: one machine for good (its data
// gone), one down for a while. The survivor has no majority: it serves
// what it loaded and takes no writes. `cluster recover` on the stopped
// survivor makes it the only voter; started again, it takes writes, and
// the other voter, started on its own data, finds itself dropped, joins
// again and serves what the recovered group decided.
func TestRecoverAfterLosingMajority(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateways")
	}
	lost, lostID, rest, body := threeNodesWithStagedVersion(t)
	survivor, away := rest[0], rest[1]
	v, err := survivor.cluster(t)
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[*clusterNode]string)
	for _, m := range v.Members {
		for _, n := range rest {
			if m.HTTPAddr == n.url() {
				ids[n] = m.ID
			}
		}
	}
	lost.kill(t)
	if err := os.RemoveAll(lost.data); err != nil {
		t.Fatal(err)
	}
	away.kill(t)
	if err := servesVersion(t, survivor, body, "1"); err != nil {
		t.Fatalf("the survivor without a majority: %v", err)
	}
	if code, b, _ := survivor.admin(t, "PUT", "/v1/models/ctr/aliases/production", []byte(`{"version":2}`)); code != 503 {
		t.Fatalf("a write without a majority: %d %s; want 503", code, b)
	}

	recover := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := clusterGroup.main(append([]string{"recover"}, args...), &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	if code, out := recover("--data", survivor.data); code != 1 || !strings.Contains(out, "stop the node") {
		t.Fatalf("recover of a running node: exit %d, %q; want it refused", code, out)
	}
	survivor.kill(t)
	code, out := recover("--data", survivor.data, "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run: nothing written") || !strings.Contains(out, "dropped: ") ||
		!strings.Contains(out, lostID) || !strings.Contains(out, ids[away]) {
		t.Fatalf("dry run: exit %d:\n%s\nwant both other voters dropped and nothing written", code, out)
	}
	code, out = recover("--data", survivor.data)
	if code != 0 || !strings.Contains(out, "recovered: start the node again") {
		t.Fatalf("recover: exit %d:\n%s", code, out)
	}
	t.Logf("recover said:\n%s", out)

	again := startNode(t, survivor.data, survivor.models, survivor.raft, "")
	testenv.CheckFor(t, 20*time.Second, func() error {
		if code, b, _ := again.admin(t, "PUT", "/v1/models/ctr/aliases/production", []byte(`{"version":2}`)); code != 200 {
			return fmt.Errorf("a write after the recovery: %d %s", code, b)
		}
		return servesVersion(t, again, body, "2")
	})

	back := startNode(t, away.data, away.models, away.raft, again.url())
	testenv.CheckFor(t, 30*time.Second, func() error {
		if err := servesVersion(t, back, body, "2"); err != nil {
			return err
		}
		v, err := again.cluster(t)
		if err != nil {
			return err
		}
		if v.Leader != ids[survivor] || len(v.Members) != 2 {
			return fmt.Errorf("leader %s, members %+v; want %s leading %s", v.Leader, v.Members, ids[survivor], ids[away])
		}
		for _, m := range v.Members {
			if !m.Voter {
				return fmt.Errorf("member %s is not a voter", m.ID)
			}
		}
		return nil
	})
}
