package gateway

import (
	"strconv"
	"testing"

	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
)

// TestRecentArmsUsesEverySlot: after 65,536 predictions a direct-mapped
// table of 65,536 slots holds about 41,400 of them (1-1/e). Found by a
// reviewing helper: the slot came from the tag's low bits, which the
// tag's "| 1" (0 marks an empty slot) made odd, so half the slots were
// never used and about 28,300 were remembered.
func TestRecentArmsUsesEverySlot(t *testing.T) {
	r := newRecentArms()
	x := &registry.Experiment{Model: "m", Experiment: route.Experiment{Name: "exp", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 1}}}}
	ids := make([]string, recentArmsSize)
	for i := range ids {
		ids[i] = "pred-" + strconv.Itoa(i)
		r.add(ids[i], x, 0)
	}
	used, even := 0, 0
	for i, sl := range r.slots {
		if sl.h != 0 {
			used++
			if i%2 == 0 {
				even++
			}
		}
	}
	remembered := 0
	for _, id := range ids {
		if a, _ := r.arm(id, "m"); a == "a" {
			remembered++
		}
	}
	t.Logf("%d of the last %d predictions remembered", remembered, recentArmsSize)
	if even == 0 || remembered < 38000 {
		t.Fatalf("after %d predictions: %d slots used (%d of them even), %d predictions remembered; a %d-slot table holds ~41,400",
			recentArmsSize, used, even, remembered, recentArmsSize)
	}
}
