package gateway

import (
	"strconv"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
)

// TestRecentArmsHoldsTheRecent: after 65,536 predictions, a table of
// 65,536 slots in sets of 4, each giving a new prediction its oldest
// slot, holds about 80% of them (E[min(K, 4)]/4 for K ~ Poisson(4): 52,700)
// and all but a few of the newest quarter. A direct-mapped table held
// 1-1/e of them (41,400), and lost one in nine of the newest quarter,
// whose feedback comes soonest. Found earlier by a
// reviewing helper: a slot taken from the tag's low bits, which "| 1"
// made odd, left half the table unused.
func TestRecentArmsHoldsTheRecent(t *testing.T) {
	r := newRecentArms()
	x := &registry.Experiment{Model: "m", Experiment: route.Experiment{Name: "exp", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 1}}}}
	ids := make([]string, recentArmsSize)
	for i := range ids {
		ids[i] = "pred-" + strconv.Itoa(i)
		r.add(ids[i], x, 0)
	}
	remembered, newest := 0, 0
	for i, id := range ids {
		if a, _ := r.arm(id, "m"); a == "a" {
			remembered++
			if i >= len(ids)-len(ids)/4 {
				newest++
			}
		}
	}
	t.Logf("%d of the last %d predictions remembered, %d of the newest %d", remembered, len(ids), newest, len(ids)/4)
	if remembered < 50000 || newest < len(ids)/4*98/100 {
		t.Fatalf("after %d predictions: %d remembered, %d of the newest %d; want about 52,700, and nearly all the newest",
			len(ids), remembered, newest, len(ids)/4)
	}
	if a, _ := r.arm(ids[len(ids)-1], "other"); a != "" {
		t.Fatalf("the arm of another model's prediction: %q; want none", a)
	}
}

// A prediction id answered twice (a client's own id, sent again, that
// drew another arm) is remembered with its latest arm (found by a
// reviewing helper: the set kept both, and the older was found first).
func TestRecentArmsRepeatedIDGivesTheLatestArm(t *testing.T) {
	r := newRecentArms()
	x := &registry.Experiment{Model: "m", Experiment: route.Experiment{Name: "exp", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 1}, {Name: "b", Version: 2, Weight: 1}}}}
	r.add("req-1", x, 0)
	r.add("req-1", x, 1)
	if a, _ := r.arm("req-1", "m"); a != "b" {
		t.Fatalf("arm of req-1: %q; want b, the arm that answered it last", a)
	}
}

// An id answered again is its set's newest: the ids of the set that came
// before its second answer leave before it (found by a reviewing helper:
// it kept its first answer's place, and the next id of its set evicted
// it, a quarter of the table's reach later).
func TestRecentArmsRepeatedIDIsNewest(t *testing.T) {
	r := newRecentArms()
	x := &registry.Experiment{Model: "m", Experiment: route.Experiment{Name: "exp", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 1}, {Name: "b", Version: 2, Weight: 1}}}}
	_, set := r.hash("req-1")
	var others []string // ids of req-1's set
	for i := 0; len(others) < 2*recentArmsWays; i++ {
		if id := "other-" + strconv.Itoa(i); func() bool { _, s := r.hash(id); return s == set }() {
			others = append(others, id)
		}
	}
	r.add("req-1", x, 0)
	for _, id := range others[:recentArmsWays-1] {
		r.add(id, x, 0)
	}
	r.add("req-1", x, 1) // answered again: the newest of its set
	for i, id := range others[recentArmsWays-1 : 2*recentArmsWays-2] {
		r.add(id, x, 0)
		if a, _ := r.arm("req-1", "m"); a != "b" {
			t.Fatalf("after %d more ids of its set: the arm of req-1, answered last: %q; want b", i+1, a)
		}
	}
	// The ids before req-1's second answer left first.
	for _, id := range others[:recentArmsWays-1] {
		if a, _ := r.arm(id, "m"); a != "" {
			t.Fatalf("%s, older than req-1's second answer, is still remembered while req-1 is", id)
		}
	}
}

// TestLoggedArmResolve: a prediction read back from the traffic log
// counts for the arm of the experiment the model runs now only when that
// arm has its name and version and the experiment's phase began at or
// before the prediction; a phase from before phases began (Started zero)
// cannot be told apart, and none count for it.
func TestLoggedArmResolve(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	x := &registry.Experiment{Model: "m", Experiment: route.Experiment{Name: "exp", Phase: 5, Started: t0,
		Arms: []route.Arm{{Name: "a", Version: 1, Weight: 1}, {Name: "b", Version: 2, Weight: 1}}}}
	f := func(x *registry.Experiment, lg loggedArm, at time.Time, want string) {
		t.Helper()
		got, gx := lg.resolve(x, at.UnixNano())
		if got != want || (want != "") != (gx == x && gx != nil) {
			t.Fatalf("resolve(%+v at %s) under %+v: %q, %p; want %q", lg, at, x, got, gx, want)
		}
	}
	f(x, loggedArm{model: "m", arm: "b", version: 2}, t0, "b")
	f(x, loggedArm{model: "m", arm: "b", version: 2}, t0.Add(time.Hour), "b")
	f(x, loggedArm{model: "m", arm: "b", version: 2}, t0.Add(-time.Nanosecond), "") // the phase before
	f(x, loggedArm{model: "m", arm: "b", version: 1}, t0.Add(time.Hour), "")        // another version
	f(x, loggedArm{model: "m", arm: "c", version: 2}, t0.Add(time.Hour), "")        // no such arm
	f(x, loggedArm{model: "n", arm: "b", version: 2}, t0.Add(time.Hour), "")        // another model
	f(nil, loggedArm{model: "m", arm: "b", version: 2}, t0.Add(time.Hour), "")      // no experiment now
	old := &registry.Experiment{Model: "m", Experiment: route.Experiment{Name: "exp", Arms: x.Arms}}
	f(old, loggedArm{model: "m", arm: "b", version: 2}, t0.Add(time.Hour), "")
}
