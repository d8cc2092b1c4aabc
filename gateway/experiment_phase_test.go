package gateway_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/infergate/infergate/gateway"
)

// A write says it began a phase only when it did: of writes of one new
// split sent at once, the first the cluster applies begins the phase and
// the others find it running. Before, each compared the node's state of
// before its write with that of after, and every write that read the
// state before the first was applied said it began the phase (so did
// any write through a node whose state lagged the leader's, a restarted
// one still replaying its log, say).
func TestExperimentNewPhaseOnlyForTheWriteThatBeganIt(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	const writers = 8
	for round := range 3 {
		body := []byte(fmt.Sprintf(`{"name":"race","arms":[{"name":"a","version":1,"weight":%d},{"name":"b","version":1,"weight":1}]}`, round+1))
		var wg sync.WaitGroup
		answers := make([]response, writers)
		errs := make([]error, writers)
		start := make(chan struct{})
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				answers[i], errs[i] = s.send("PUT", "/v1/models/ctr/experiment", body, "Authorization", "Bearer "+adminToken)
			}()
		}
		close(start)
		wg.Wait()
		began := 0
		for i, r := range answers {
			if errs[i] != nil || r.code != 200 {
				t.Fatalf("round %d, write %d: %v %s", round, i, errs[i], r)
			}
			switch {
			case bytes.Contains(r.body, []byte(`"new_phase":true`)):
				began++
			case !bytes.Contains(r.body, []byte(`"new_phase":false`)):
				t.Fatalf("round %d, write %d says nothing of the phase: %s", round, i, r)
			}
		}
		if began != 1 {
			t.Fatalf("round %d: %d of %d writes of one split said they began its phase; want 1", round, began, writers)
		}
	}
}
