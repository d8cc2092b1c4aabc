package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// production.json is damaged (a torn sector, a hand edit). The node
// restarts as serve does, and the repository's rule (the highest version)
// routes unversioned requests until raft gives the state back: the log
// says so, naming the file by its whole path and what to do.
func TestDamagedProductionFileSaysWhatItMeans(t *testing.T) {
	cfg, n := startSolo(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	for _, content := range []string{"good one", "good two"} {
		if _, err := c.register(n, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	prodPath := filepath.Join(cfg.DataDir, productionFile)
	testenv.CheckFor(t, 5*time.Second, func() error {
		st := n.LocalStatus().Models["m"]
		if st["1"].State != VersionReady || st["2"].State != VersionReady {
			return fmt.Errorf("statuses %+v; want 1 and 2 ready", st)
		}
		_, err := os.Stat(prodPath)
		return err
	})
	b, err := os.ReadFile(prodPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prodPath, b[:len(b)/2], 0o644); err != nil { // torn
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs []string
	cfg.Logf = func(format string, args ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(format, args...))
		mu.Unlock()
		t.Logf(format, args...)
	}
	restartAsServe(t, cfg, n, nil)
	mu.Lock()
	defer mu.Unlock()
	for _, l := range logs {
		if strings.Contains(l, "cannot read the models' production versions from "+prodPath) &&
			strings.Contains(l, "unversioned requests go to each model's highest version") && strings.Contains(l, "remove the file") {
			return
		}
	}
	t.Fatalf("with %s damaged, the log says nothing naming it and what it means:\n%s", prodPath, strings.Join(logs, "\n"))
}

// peers.json is damaged. A node that restarts on a new raft address
// needs it to find the group (raft knows no leader to tell it): the error
// it logs names the file and says to give --join (before, the damage was
// ignored and the error said "no other member is known to ask").
func TestDamagedPeersFileNamed(t *testing.T) {
	cfg, n := startSolo(t)
	peers := filepath.Join(cfg.DataDir, peersFile)
	if err := os.WriteFile(peers, []byte(`["http://127.0.0.1:1`), 0o644); err != nil { // torn
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := n.rejoin(ctx, fsm.Member{ID: n.ID(), RaftAddr: cfg.RaftAddr, HTTPAddr: cfg.HTTPAddr})
	if err == nil || !strings.Contains(err.Error(), "cannot read the members' addresses from "+peers) || !strings.Contains(err.Error(), "give --join") {
		t.Errorf("rejoin with %s damaged: %v; want an error naming %s and that it could not be read", peersFile, err, peers)
	}
}
