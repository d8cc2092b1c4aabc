package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// A node a recovery dropped cannot be removed: it is not a member, and
// the mark stays, since removing it would let the node back in on its
// old log (it asks to join again by itself). The answer says so.
func TestDroppedMarkOutlastsRemove(t *testing.T) {
	cfg0 := tcpConfig(t, "n0", "")
	n0 := startTCP(t, cfg0)
	waitLeads(t, n0)
	n1 := startTCP(t, tcpConfig(t, "n1", "http://127.0.0.1:1"))
	if err := joinOn(t, n0, n1.self()); err != nil {
		t.Fatal(err)
	}
	n1.Stop() // its machine is gone for good
	n0.Stop()
	if _, err := Recover(cfg0.DataDir, "n0", "", true); err != nil {
		t.Fatal(err)
	}
	n0 = startTCP(t, cfg0)
	waitLeads(t, n0)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !stateOf(n0).Dropped["n1"] {
			return errors.New("n1 not marked dropped yet")
		}
		return nil
	})
	err := n0.RemoveLocal("n1")
	if !errors.Is(err, fsm.ErrConflict) || !strings.Contains(err.Error(), "the mark stays") {
		t.Fatalf("removing the dropped n1: %v; want a conflict saying the mark stays", err)
	}
	if st := stateOf(n0); !st.Dropped["n1"] {
		t.Fatalf("dropped after the removal: %v; want n1 still marked", st.Dropped)
	}
	// Asking again on its old raft state, it is refused.
	n1 = startTCP(t, n1.cfg)
	if err := refusedJoin(t, n0, n1.self()); !errors.Is(err, ErrDropped) {
		t.Fatalf("the dropped n1 on its old log after the removal: %v; want ErrDropped", err)
	}
	// A node of an earlier release (no freshness header) is refused too:
	// it could not read the recovered snapshots.
	old := fsm.Member{ID: "old", RaftAddr: testenv.FreeAddr(t), HTTPAddr: "http://127.0.0.1:1", Fresh: true}
	if err := n0.JoinLocal(old); !errors.Is(err, fsm.ErrConflict) || !strings.Contains(err.Error(), "earlier release") {
		t.Fatalf("a join from an earlier release after a recovery: %v; want a conflict saying to upgrade", err)
	}
}
