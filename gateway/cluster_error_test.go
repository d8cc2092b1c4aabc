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
	f(errors.New("something else"), fasthttp.StatusInternalServerError, 0)
}
