package gateway

import (
	"testing"
	"time"

	"github.com/infergate/infergate/batching"
)

// A queue timeout says why the request waited: busy instances, or, with a
// queue delay, an idle one that may have been holding it for a batch.
func TestQueueState(t *testing.T) {
	f := func(bc batching.Config, want string) {
		t.Helper()
		if got := queueState(bc); got != want {
			t.Errorf("queueState(%+v) = %q; want %q", bc, got, want)
		}
	}
	f(batching.Config{Instances: 2}, "2 instances busy")
	f(batching.Config{Instances: 2, MaxQueueDelay: 200 * time.Microsecond}, "2 instances, busy or holding requests up to max_queue_delay_us 200 to fill a batch")
}
