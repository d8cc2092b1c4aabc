package gateway

import (
	"errors"
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/cluster/fsm"
)

// The control plane's errors reach a client as the status that tells it
// what to do: 500 is for bugs alone.
func TestClusterErrorStatus(t *testing.T) {
	f := func(err error, code, retryAfter int) {
		t.Helper()
		var he *httpError
		if !errors.As(clusterError(err), &he) {
			t.Fatalf("%v: got %T; want *httpError", err, clusterError(err))
		}
		if he.code != code || he.retryAfter != retryAfter {
			t.Fatalf("%v: got %d with Retry-After %d; want %d with %d", err, he.code, he.retryAfter, code, retryAfter)
		}
	}
	wrap := func(sentinel error) error { return fmt.Errorf("%w: details", sentinel) }
	f(wrap(cluster.ErrBehind), fasthttp.StatusServiceUnavailable, 1)
	f(wrap(cluster.ErrNoLeader), fasthttp.StatusServiceUnavailable, 1)
	f(wrap(cluster.ErrNotLeader), fasthttp.StatusServiceUnavailable, 1)
	f(wrap(cluster.ErrStopped), fasthttp.StatusServiceUnavailable, 1)
	f(wrap(cluster.ErrUnknownOutcome), fasthttp.StatusServiceUnavailable, 0)
	f(wrap(fsm.ErrInvalid), fasthttp.StatusBadRequest, 0)
	f(wrap(fsm.ErrNotFound), fasthttp.StatusNotFound, 0)
	f(wrap(fsm.ErrConflict), fasthttp.StatusConflict, 0)
	f(wrap(cluster.ErrUnauthorized), fasthttp.StatusBadGateway, 0)
	f(wrap(cluster.ErrTrialLoadsBusy), fasthttp.StatusTooManyRequests, 5)
	f(errors.New("something else"), fasthttp.StatusInternalServerError, 0)
}

// A write whose outcome is unknown may have changed the cluster: it is
// audited as one that may have, with the 503 that says to read back.
// Writes refused for other reasons changed nothing and are not logged.
func TestUnknownOutcomeIsAudited(t *testing.T) {
	var lines []string
	s := &Server{logf: func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }}
	ctx := &fasthttp.RequestCtx{}
	c := fsm.Command{Op: fsm.OpRollback, Model: "ctr"}
	err := s.writeFailed(ctx, fmt.Errorf("%w: leadership lost", cluster.ErrUnknownOutcome), "%s", describeCommand(&c, nil))
	var he *httpError
	if !errors.As(err, &he) || he.code != fasthttp.StatusServiceUnavailable || he.kind != "unknown-outcome" {
		t.Fatalf("unknown outcome: got %v; want a 503 of kind unknown-outcome", err)
	}
	want := `admin: 0.0.0.0 may have rolled model "ctr" back (the leader was lost before it confirmed the write: read the state back to know)`
	if len(lines) != 1 || lines[0] != want {
		t.Fatalf("logged %q; want [%q]", lines, want)
	}
	lines = nil
	for _, e := range []error{cluster.ErrNotLeader, cluster.ErrNoLeader, fsm.ErrConflict, fsm.ErrNotFound} {
		s.writeFailed(ctx, fmt.Errorf("%w: details", e), "removed member %s from the cluster", "node-b")
	}
	if len(lines) != 0 {
		t.Fatalf("writes that changed nothing were logged: %q", lines)
	}
}
