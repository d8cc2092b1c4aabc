package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// A machine a recovery dropped that is gone for good is removed like any
// member ("infergate cluster remove ID"): its mark goes, so that status
// stops listing it and snapshots drop the field.
func TestDroppedIDCanBeForgotten(t *testing.T) {
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
	if err := n0.RemoveLocal("n1"); err != nil {
		_, members, _ := n0.Members()
		t.Fatalf("forgetting the lost n1: %v (not found: %v); members %v: it is listed dropped for good", err, errors.Is(err, fsm.ErrNotFound), fmt.Sprint(members))
	}
	if st := stateOf(n0); len(st.Dropped) != 0 {
		t.Fatalf("dropped after the removal: %v", st.Dropped)
	}
	_, members, _ := n0.Members()
	if len(members) != 1 {
		t.Fatalf("members %v; want n0 alone", members)
	}
}
