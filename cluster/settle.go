package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/internal/logging"
)

// Settling reports whether this node should not take clients' requests
// yet, or any more, and why: a recovery dropped it (it serves what it
// had, which may be stale), its raft has stopped (the group removed it),
// or, started on a fresh data directory with Config.Join, it has not
// been admitted, it has not applied the state the leader had committed
// by then, or a live version of a cluster model is still being fetched
// or loaded here. A version that failed here (the index and
// "infergate models show" say why) does not hold it up. Once settled, a
// node stays so; a node that bootstrapped, or restarted on its data, is
// settled from the start (serve waits for what it served before), but
// for one that bootstrapped with Config.RegisterLocal, which settles once
// its local models are registered (or failed to be). The
// gateway answers /v2/health/ready with 503 and the reason meanwhile, so
// that a load balancer sends a new gateway nothing it would answer 404.
func (n *Node) Settling() (bool, string) {
	if why := n.dropWhy.Load(); why != nil && n.dropped.Load() {
		return true, *why
	}
	if n.dropped.Load() {
		return true, "this node was dropped from its group when the group was recovered, and it serves what it had, which may be stale: stop it, move its --data/raft aside, and start it again with --join"
	}
	if n.raft.State() == raft.Shutdown {
		select {
		case <-n.stop:
		default:
			return true, "raft has stopped on this node: its group removed it (the log says why); restart it"
		}
	}
	if n.seeding.Load() {
		return true, "this node is registering the models of its --models directory in the cluster it started (--register-local-models)"
	}
	if n.settled.Load() {
		return false, ""
	}
	switch {
	case !n.announced.Load():
		return true, "this node has not joined its cluster yet, through " + n.cfg.Join + " (the log says what holds it up)"
	case !n.caughtUp.Load():
		return true, "this node joined its cluster and is catching up with its state"
	}
	pending := n.pendingVersions()
	if len(pending) == 0 {
		// Once ready, ready for good: settle logs it at its next look.
		n.settled.Store(true)
		return false, ""
	}
	more := ""
	if len(pending) > 3 {
		more = fmt.Sprintf(" and %d more", len(pending)-3)
		pending = pending[:3]
	}
	return true, "this node joined its cluster and is still fetching or loading " + strings.Join(pending, ", ") + more
}

// joiningFile, in the raft data directory, marks a node that joined on a
// fresh data directory and has not settled yet: a restart before it has
// must settle all the same (its raft state is not fresh then, and
// served.json lists nothing to wait for).
const joiningFile = "joining"

// joining reports whether this start has to settle, and marks it on disk:
// a fresh start with Config.Join, or a start that finds the mark.
func (n *Node) joining() bool {
	path := filepath.Join(n.cfg.DataDir, joiningFile)
	if n.cfg.Join == "" || n.existing {
		_, err := os.Stat(path)
		return err == nil
	}
	if err := durable.WriteFile(path, nil, 0o644); err != nil {
		n.logf(logging.Error+"cluster: cannot mark this node as joining (%v): a restart before it serves the cluster's models would report it ready at once", err)
	}
	return true
}

// settle, on a node started fresh with Config.Join, waits until the node
// is admitted, then until it has applied what the leader had committed
// then (a read index), then until no live version of a cluster model is
// being fetched or loaded here, and marks it settled.
func (n *Node) settle() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	wait := func() bool {
		select {
		case <-n.stop:
			return false
		case <-t.C:
			return true
		}
	}
	for !n.announced.Load() {
		if !wait() {
			return
		}
	}
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.HoldTimeout)
		err := n.ReadIndex(ctx)
		cancel()
		if err == nil {
			break
		}
		if !wait() {
			return
		}
	}
	n.caughtUp.Store(true)
	for !n.settled.Load() && len(n.pendingVersions()) > 0 {
		if !wait() {
			return
		}
	}
	n.settled.Store(true)
	if err := os.Remove(filepath.Join(n.cfg.DataDir, joiningFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		n.logf(logging.Error+"cluster: cannot remove the joining mark: %v", err)
	}
	st, _ := n.fsm.State()
	n.logf("cluster: node %s serves the cluster's %d model(s), %s after it was admitted", n.cfg.NodeID, len(st.Models), time.Since(start).Round(time.Millisecond))
}

// pendingVersions lists, sorted, the live versions of cluster models
// ("model version N (state)") that this node has not yet loaded or
// failed to load.
func (n *Node) pendingVersions() []string {
	st, _ := n.fsm.State()
	n.rec.mu.Lock()
	defer n.rec.mu.Unlock()
	var out []string
	for name, m := range st.Models {
		for _, v := range m.Versions {
			if v.Stage == fsm.StageRetired {
				continue
			}
			s, ok := n.rec.status[name][v.Number]
			switch {
			case !ok:
				out = append(out, name+" version "+strconv.FormatInt(v.Number, 10))
			case s.State == VersionFetching || s.State == VersionLoading:
				out = append(out, name+" version "+strconv.FormatInt(v.Number, 10)+" ("+s.State+")")
			}
		}
	}
	slices.Sort(out)
	return out
}
