package batching

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// A priority level with a queue bound of its own refuses its requests
// beyond it with ErrLevelFull at once, displacing nobody, while other
// levels still queue up to the shared bound; each level's requests wait
// at most their level's default timeout.
func TestLevelPolicies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Second}
		policies := map[int]LevelPolicy{
			2: {MaxQueueSize: 1, DefaultTimeout: 500 * time.Millisecond},
			3: {}, // no bound of its own, and no timeout: not the default one
		}
		b := newBatcher(t, f, Config{MaxBatchSize: 1, MaxQueueSize: 4, PriorityLevels: 3,
			DefaultTimeout: 1500 * time.Millisecond, LevelPolicies: policies})
		policies[3] = LevelPolicy{MaxQueueSize: 1} // New keeps its own copy
		do := func(id int, priority int64) <-chan error {
			r := request(1, 1, float32(id))
			r.Priority = priority
			ch := goDo(b, r)
			synctest.Wait()
			return ch
		}
		start := time.Now()
		busy := do(1, 1) // runs for 1 s
		p2 := do(2, 2)   // queued; times out at 0.5 s
		r := request(1, 1, 3)
		r.Priority = 2
		if err := b.Do(r); !errors.Is(err, ErrLevelFull) {
			t.Fatalf("second priority-2 request with priority 2 bounded at 1: got %v; want ErrLevelFull", err)
		}
		p3a, p3b := do(4, 3), do(5, 3) // no bound of their own; no timeout
		p1 := do(6, 1)                 // the default timeout, 1.5 s
		if n := b.QueueLen(); n != 4 {
			t.Fatalf("queued %d; want 4", n)
		}
		if err := <-p2; !errors.Is(err, ErrTimeout) || time.Since(start) != 500*time.Millisecond {
			t.Fatalf("priority 2 with a 0.5 s timeout: got %v after %s; want ErrTimeout after 500ms", err, time.Since(start))
		}
		for i, ch := range []<-chan error{busy, p1, p3a, p3b} {
			if err := <-ch; err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		// busy, then priority 1 at 1 s, then the two of priority 3, which
		// waited past the default timeout (1.5 s) untouched.
		if got := fmt.Sprint(f.runs()); got != "[1 1 1 1]" || time.Since(start) != 4*time.Second {
			t.Fatalf("runs %s ending after %s; want [1 1 1 1] after 4s", got, time.Since(start))
		}
	})
}

func TestValidateLevelPolicies(t *testing.T) {
	f := func(cfg Config, want string) {
		t.Helper()
		err := cfg.Validate()
		if err == nil || err.Error() != want {
			t.Errorf("Validate(%+v) = %v; want %q", cfg.LevelPolicies, err, want)
		}
	}
	f(Config{PriorityLevels: 2, LevelPolicies: map[int]LevelPolicy{3: {}}}, "a queue policy is given for priority 3, outside 1..2")
	f(Config{LevelPolicies: map[int]LevelPolicy{0: {}}}, "a queue policy is given for priority 0, outside 1..1")
	f(Config{LevelPolicies: map[int]LevelPolicy{1: {MaxQueueSize: -1}}}, "priority 1: max queue size must not be negative, got -1")
	f(Config{LevelPolicies: map[int]LevelPolicy{1: {DefaultTimeout: -time.Second}}}, "priority 1: default timeout must not be negative, got -1s")
}
