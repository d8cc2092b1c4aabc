package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/testenv"
)

// TestRestartWithUnreadableSnapshot restarts a node whose newest snapshot
// cannot be read (its state.bin damaged on disk). Raft then restores the
// one before; where the log was compacted past that one (more than
// TrailingLogs entries between two snapshots: 12,000 alias writes in
// 30 s do it), the entries between are gone, and raft.NewRaft panicked
// ("log not found") with a stack trace instead of telling the operator
// what to do. The node must refuse to start with a message naming the
// directory, and still start when the older snapshot and the log cover
// the state.
func TestRestartWithUnreadableSnapshot(t *testing.T) {
	// run makes two snapshots with writes between (trailing: the entries
	// raft keeps behind a snapshot), damages the newest (all: every
	// one), and starts the node again.
	run := func(t *testing.T, trailing uint64, all bool) (Config, *Node, error) {
		_, tr := raft.NewInmemTransport("unused")
		cfg := testConfig(t, "solo", tr, "")
		cfg.inmem = nil
		cfg.RaftAddr = testenv.FreeAddr(t)
		cfg.trailingLogs = trailing
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		testenv.CheckFor(t, 5*time.Second, func() error {
			if !n.IsLeader() {
				return errors.New("not leader yet")
			}
			return nil
		})
		c := &testCluster{t: t, nodes: []*Node{n}}
		for i := range 16 {
			if _, err := c.register(n, fmt.Sprintf("m%d", i%3), fmt.Sprintf("content %d", i)); err != nil {
				t.Fatal(err)
			}
			if i == 5 || i == 15 {
				if err := n.raft.Snapshot().Error(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		dirs, err := filepath.Glob(filepath.Join(cfg.DataDir, "snapshots", "*"))
		if err != nil || len(dirs) != 2 {
			t.Fatalf("snapshot directories %v, %v; want 2", dirs, err)
		}
		// Names are term-index-time.
		index := func(d string) int64 {
			i, _ := strconv.ParseInt(strings.Split(filepath.Base(d), "-")[1], 10, 64)
			return i
		}
		slices.SortFunc(dirs, func(a, b string) int { return int(index(a) - index(b)) })
		if !all {
			dirs = dirs[len(dirs)-1:]
		}
		for _, d := range dirs {
			if err := os.Truncate(filepath.Join(d, "state.bin"), 10); err != nil {
				t.Fatal(err)
			}
		}
		var again *Node
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("Start panicked: %v", p)
				}
			}()
			again, err = Start(cfg)
		}()
		if again != nil {
			t.Cleanup(func() { again.Stop() })
		}
		return cfg, again, err
	}
	refused := func(t *testing.T, cfg Config, err error, want string) {
		t.Helper()
		if err == nil || strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), cfg.DataDir) || !strings.Contains(err.Error(), "--join") {
			t.Fatalf("Start: got %v; want a refusal saying %q, naming %s and what to do (--join)", err, want, cfg.DataDir)
		}
	}

	t.Run("older snapshot behind the log", func(t *testing.T) {
		cfg, _, err := run(t, 2, false)
		refused(t, cfg, err, "log starts at")
	})
	t.Run("no snapshot readable", func(t *testing.T) {
		cfg, _, err := run(t, 10240, true)
		refused(t, cfg, err, "no snapshot")
	})
	t.Run("older snapshot and the log cover it", func(t *testing.T) {
		_, n, err := run(t, 10240, false)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		testenv.CheckFor(t, 5*time.Second, func() error {
			st, _ := n.FSM().State()
			var got []int
			for _, name := range []string{"m0", "m1", "m2"} {
				if m := st.Model(name); m != nil {
					got = append(got, len(m.Versions))
				}
			}
			if want := []int{6, 5, 5}; !reflect.DeepEqual(got, want) {
				return fmt.Errorf("versions of m0, m1, m2: got %v; want %v", got, want)
			}
			return nil
		})
	})
}
