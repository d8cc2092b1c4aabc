package route

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func exp(weights ...int) *Experiment {
	e := &Experiment{Name: "ranker-v2"}
	for i, w := range weights {
		e.Arms = append(e.Arms, Arm{Name: fmt.Sprintf("arm%d", i), Version: int64(i + 1), Weight: w})
	}
	return e
}

func TestValidate(t *testing.T) {
	f := func(e *Experiment, want string) {
		t.Helper()
		err := e.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("Validate(%+v) = %v; want nil", e, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate(%+v) = %v; want an error containing %q", e, err, want)
		}
	}
	f(exp(90, 10), "")
	f(exp(0, 10), "")
	f(&Experiment{Name: "aa", Arms: []Arm{{"a", 1, 1}, {"b", 1, 1}}}, "") // A/A
	f(nil, "missing")
	f(exp(100), "has 1 arms")
	f(exp(make([]int, MaxArms+1)...), "has 17 arms")
	f(exp(0, 0), "every arm has weight 0")
	f(exp(-1, 10), "weight -1 is out of range")
	f(exp(MaxWeight+1, 1), "out of range")
	f(&Experiment{Name: "Bad Name", Arms: exp(1, 1).Arms}, `experiment name "Bad Name" is not valid`)
	f(&Experiment{Name: "x", Arms: []Arm{{"a", 1, 1}, {"a", 2, 1}}}, `two arms are called "a"`)
	f(&Experiment{Name: "x", Arms: []Arm{{"a", 0, 1}, {"b", 2, 1}}}, `arm "a": version 0`)
	f(&Experiment{Name: "x", Arms: []Arm{{"", 1, 1}, {"b", 2, 1}}}, `arm 0: name ""`)
	f(&Experiment{Name: "x", Salt: strings.Repeat("s", MaxSaltLen+1), Arms: exp(1, 1).Arms}, "salt has 129 bytes")
}

// TestUnitHashIsStable pins the hash: a unit's arm must not move between
// releases, or every running experiment reshuffles on upgrade.
func TestUnitHashIsStable(t *testing.T) {
	f := func(salt, unit string, want uint64) {
		t.Helper()
		if got := UnitHash(salt, []byte(unit)); got != want {
			t.Fatalf("UnitHash(%q, %q) = %#x; want %#x", salt, unit, got, want)
		}
	}
	f("ranker-v2", "user-1", 0x1f9aa4834b4240e6)
	f("ranker-v2", "user-2", 0x5e8cb78f6337a674)
	f("", "", 0x1bbd5c813c69a8d7)
}

// within reports whether n of total is within 6 standard deviations of
// the share p: false only for a broken split, not for bad luck.
func within(n, total int, p float64) bool {
	mean := p * float64(total)
	sd := math.Sqrt(float64(total) * p * (1 - p))
	return math.Abs(float64(n)-mean) <= 6*sd+1
}

func TestAssignFollowsWeights(t *testing.T) {
	f := func(unit func(i int) []byte, weights ...int) {
		t.Helper()
		e := exp(weights...)
		const n = 200_000
		got := make([]int, len(weights))
		for i := range n {
			got[e.Assign(unit(i))]++
		}
		total := 0
		for _, w := range weights {
			total += w
		}
		for i, w := range weights {
			if !within(got[i], n, float64(w)/float64(total)) {
				t.Fatalf("weights %v: arm %d got %d of %d; want about %.0f", weights, i, got[i], n, float64(n*w)/float64(total))
			}
		}
	}
	units := func(i int) []byte { return fmt.Appendf(nil, "user-%d", i) }
	random := func(int) []byte { return nil }
	for _, unit := range []func(int) []byte{units, random} {
		f(unit, 90, 10)
		f(unit, 50, 50)
		f(unit, 1, 1, 1)
		f(unit, 0, 3, 1)
		f(unit, 999_999, 1)
	}
}

func TestAssignIsStickyAndSalted(t *testing.T) {
	a := exp(50, 50)
	b := a.Clone()
	b.Salt = "other"
	moved := 0
	const n = 10_000
	for i := range n {
		u := fmt.Appendf(nil, "user-%d", i)
		first := a.Assign(u)
		for range 3 {
			if got := a.Assign(u); got != first {
				t.Fatalf("unit %s: arm %d, then %d", u, first, got)
			}
		}
		if b.Assign(u) != first {
			moved++
		}
	}
	// Independent salts: about half the units change arms.
	if !within(moved, n, 0.5) {
		t.Fatalf("a new salt moved %d of %d units; want about half", moved, n)
	}
}

// TestRampKeepsUnits: growing the last arm's share only moves units into
// it, and growing the first's only moves units into the first.
func TestRampKeepsUnits(t *testing.T) {
	f := func(before, after []int, keep int) {
		t.Helper()
		b, a := exp(before...), exp(after...)
		for i := range 20_000 {
			u := fmt.Appendf(nil, "u%d", i)
			if b.Assign(u) == keep && a.Assign(u) != keep {
				t.Fatalf("%v -> %v: unit %s left arm %d", before, after, u, keep)
			}
		}
	}
	f([]int{90, 10}, []int{50, 50}, 1)
	f([]int{90, 10}, []int{90, 30}, 1)
	f([]int{10, 45, 45}, []int{30, 35, 35}, 0)
	f([]int{80, 10, 10}, []int{60, 10, 30}, 2)
}

func TestZeroWeightArmGetsNothing(t *testing.T) {
	e := exp(1, 0, 1)
	for i := range 50_000 {
		if got := e.Assign(fmt.Appendf(nil, "%d", i)); got == 1 {
			t.Fatalf("unit %d went to the arm of weight 0", i)
		}
	}
	// The extremes of the hash space land on the arms with weight.
	f := func(x uint64, want int) {
		t.Helper()
		if got := e.arm(x); got != want {
			t.Fatalf("arm(%#x) = %d; want %d", x, got, want)
		}
	}
	f(0, 0)
	f(math.MaxUint64, 2)
	f(1<<63-1, 0)
	f(1<<63, 2)
}

func TestEqualAndUses(t *testing.T) {
	a := exp(90, 10)
	b := a.Clone()
	if !a.Equal(b) {
		t.Fatal("a clone is not Equal")
	}
	b.Arms[1].Weight = 20
	if a.Equal(b) || a.Arms[1].Weight != 10 {
		t.Fatalf("Clone shares arms or Equal ignores weights: %+v %+v", a, b)
	}
	c := a.Clone()
	c.Salt = a.Name // the default salt spelled out splits the same way
	if !a.Equal(c) {
		t.Fatal("an explicit salt equal to the name is not Equal")
	}
	var nilExp *Experiment
	if !nilExp.Equal(nil) || a.Equal(nil) {
		t.Fatal("Equal with nil")
	}
	if !a.Uses(2) || a.Uses(3) {
		t.Fatalf("Uses: %+v", a)
	}
}

func TestString(t *testing.T) {
	f := func(e *Experiment, want string) {
		t.Helper()
		if got := e.String(); got != want {
			t.Fatalf("String() = %q; want %q", got, want)
		}
	}
	f(exp(90, 10), "ranker-v2: arm0=version 1 (90%), arm1=version 2 (10%)")
	f(exp(1, 2, 0), "ranker-v2: arm0=version 1 (33.3%), arm1=version 2 (66.7%), arm2=version 3 (0%)")
	salted := exp(1, 1)
	salted.Salt = "round-2"
	f(salted, `ranker-v2: arm0=version 1 (50%), arm1=version 2 (50%), salt "round-2"`)
}

func TestShadow(t *testing.T) {
	f := func(s *Shadow, want string) {
		t.Helper()
		err := s.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("Validate(%+v) = %v; want nil", s, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate(%+v) = %v; want an error containing %q", s, err, want)
		}
	}
	f(&Shadow{Version: 2, Percent: 10}, "")
	f(&Shadow{Version: 2, Percent: 100, Tolerance: 0.5}, "")
	f(nil, "missing")
	f(&Shadow{Version: 0, Percent: 10}, "version 0")
	f(&Shadow{Version: 2, Percent: 0}, "percent 0 is out of range")
	f(&Shadow{Version: 2, Percent: 100.5}, "percent 100.5")
	f(&Shadow{Version: 2, Percent: math.NaN()}, "percent NaN")
	f(&Shadow{Version: 2, Percent: 5, Tolerance: -1}, "tolerance -1")
	f(&Shadow{Version: 2, Percent: 5, Tolerance: math.Inf(1)}, "tolerance +Inf")

	s := &Shadow{Version: 2, Percent: 25}
	n, hits := 100_000, 0
	for range n {
		if s.Sample() {
			hits++
		}
	}
	if !within(hits, n, 0.25) {
		t.Fatalf("25%% sampled %d of %d", hits, n)
	}
	all := &Shadow{Version: 2, Percent: 100}
	for range 1000 {
		if !all.Sample() {
			t.Fatal("100% skipped a request")
		}
	}
	if got, want := s.String(), "version 2 gets a copy of 25% of the requests (tolerance 0.001)"; got != want {
		t.Fatalf("String() = %q; want %q", got, want)
	}
	if c := s.Clone(); !c.Equal(s) || c == s || s.Equal(nil) || s.Limit() != DefaultTolerance {
		t.Fatal("Clone, Equal or Limit")
	}
}
