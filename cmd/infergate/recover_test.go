package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// Two of a group's three voters are lost: one machine for good (its data
// gone), one down for a while. The survivor has no majority: it serves
// what it loaded and takes no writes. `cluster recover` on the stopped
// survivor makes it the group's only member; started again, it takes
// writes. The other voter, started on its old raft state, is refused and
// reports not ready, saying what to do; done (its --data/raft moved
// aside, started with --join), it joins again and serves what the
// recovered group decided.
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
	if code, out := recover("--data", survivor.data); code != 1 || !strings.Contains(out, "is running on") || !strings.Contains(out, "stop it first") {
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

	// Who made the change is in the log of the node called.
	if l := again.stderr.String(); !strings.Contains(l, `admin: 127.0.0.1 promoted model "ctr" version 2 to production`) {
		t.Fatalf("the promotion is not in the log of the node called:\n%s", l)
	}

	// The other voter on its old raft state: refused, not ready, and says why.
	stale, log := startUnready(t, "--data", away.data, "--models", away.models, "--cluster", away.raft,
		"--admin-token", clusterToken, "--join", again.url())
	testenv.CheckFor(t, 30*time.Second, func() error {
		code, b, _ := stale.get(t, "/v2/health/ready")
		if code != 503 || !strings.Contains(string(b), "dropped from its group") {
			return fmt.Errorf("the dropped node's readiness: %d %s; want 503 saying it was dropped", code, b)
		}
		return nil
	})
	testenv.CheckFor(t, 5*time.Second, func() error {
		if l := log.String(); !strings.Contains(l, "move its --data/raft aside") {
			return fmt.Errorf("the dropped node's log does not say what to do:\n%s", l)
		}
		return nil
	})
	if v, err := again.cluster(t); err != nil || len(v.Members) != 3 || !strings.Contains(fmt.Sprint(v.Members), "dropped") {
		t.Fatalf("the group with the dropped node refused: %+v, %v; want it and the lost one listed dropped", v.Members, err)
	}
	stale.cmd.Process.Kill()
	<-stale.done
	// Started again on the same raft state, it is not ready from its
	// first answer: the refusal left a mark in its raft directory.
	stale, log = startUnready(t, "--data", away.data, "--models", away.models, "--cluster", away.raft,
		"--admin-token", clusterToken, "--join", again.url())
	testenv.CheckFor(t, 30*time.Second, func() error {
		code, b, _ := stale.get(t, "/v2/health/ready")
		switch {
		case code == 200:
			t.Fatalf("the dropped node restarted on its raft state said ready: %s", b)
		case code == 503 && strings.Contains(string(b), "initial models"):
			return fmt.Errorf("still loading")
		case code != 503 || !strings.Contains(string(b), "dropped from its group"):
			t.Fatalf("the dropped node restarted: %d %s; want 503 saying it was dropped", code, b)
		}
		return nil
	})
	// Its readiness says so as it reads the mark, a moment before the
	// log line.
	testenv.CheckFor(t, 5*time.Second, func() error {
		if l := log.String(); !strings.Contains(l, "was dropped from its group") {
			return fmt.Errorf("the restarted dropped node's log does not say it was dropped:\n%s", l)
		}
		return nil
	})
	stale.cmd.Process.Kill()
	<-stale.done

	if err := os.Rename(filepath.Join(away.data, "raft"), filepath.Join(away.data, "raft.old")); err != nil {
		t.Fatal(err)
	}
	back := startNode(t, away.data, away.models, away.raft, again.url())
	testenv.CheckFor(t, 30*time.Second, func() error {
		if err := servesVersion(t, back, body, "2"); err != nil {
			return err
		}
		v, err := again.cluster(t)
		if err != nil {
			return err
		}
		var voters []string
		for _, m := range v.Members {
			if m.Voter {
				voters = append(voters, m.ID)
			}
		}
		if v.Leader != ids[survivor] || len(voters) != 2 {
			return fmt.Errorf("leader %s, members %+v; want %s leading, %s a voter again", v.Leader, v.Members, ids[survivor], ids[away])
		}
		return nil
	})
}

// startUnready starts serve with args and returns once it serves, ready
// or not, with its log; the test kills it.
func startUnready(t *testing.T, args ...string) (*server, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"serve", "--http", "127.0.0.1:0", "--ort-lib", testenv.ORTLib(t)}, args...)...)
	log := &syncBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, stderr: log, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("log of %v:\n%s", args, log.String())
		}
	})
	testenv.CheckFor(t, 30*time.Second, func() error {
		m := servingLine.FindStringSubmatch(log.String())
		if m == nil {
			return fmt.Errorf("not serving yet")
		}
		s.scheme, s.addr = m[1], m[2]
		return nil
	})
	return s, log
}

// A member's raft log is damaged (a disk that lost its pages): serve
// refuses to start and says how to rebuild the node from its group, and
// that way works: remove it on another member, move its raft directory
// aside, start it with --join.
func TestDamagedRaftLogRebuiltFromGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateways")
	}
	victim, victimID, rest, body := threeNodesWithStagedVersion(t)
	victim.kill(t)
	db := filepath.Join(victim.data, "raft", "raft.db")
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 8192), 0); err != nil { // both meta pages
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(binPath, "serve", "--http", "127.0.0.1:0", "--data", victim.data, "--models", victim.models,
		"--cluster", victim.raft, "--admin-token", clusterToken, "--ort-lib", testenv.ORTLib(t))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is damaged") || !strings.Contains(string(out), "infergate cluster remove "+victimID) {
		t.Fatalf("serve on a damaged raft log: %v\n%s\nwant it refused, saying how to rebuild the node", err, out)
	}
	if code, b, _ := rest[0].admin(t, "DELETE", "/v1/cluster/members/"+victimID, nil); code != 200 {
		t.Fatalf("remove %s: %d %s", victimID, code, b)
	}
	if err := os.Rename(filepath.Join(victim.data, "raft"), filepath.Join(victim.data, "raft.damaged")); err != nil {
		t.Fatal(err)
	}
	again := startNode(t, victim.data, victim.models, victim.raft, rest[0].url())
	testenv.CheckFor(t, 30*time.Second, func() error {
		if err := servesVersion(t, again, body, "1"); err != nil {
			return err
		}
		if code, b, _ := again.post(t, "/v2/models/ctr/versions/2/infer", body); code != 200 {
			return fmt.Errorf("version 2 on the rebuilt node: %d %s", code, b)
		}
		v, err := rest[0].cluster(t)
		if err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.ID == victimID && m.Voter {
				return nil
			}
		}
		return fmt.Errorf("the group does not list %s as a voter again: %+v", victimID, v.Members)
	})
}
