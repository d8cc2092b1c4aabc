package gateway

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/infergate/infergate/internal/diskfree"
)

// A write that finds the disk full, or that the node refuses to keep its
// minimum free, is 507 with what to do, not a 500 "internal error".
func TestDiskErrorsAre507(t *testing.T) {
	f := func(err error, wantCode int, wantMsg string) {
		t.Helper()
		he := toHTTPError(clusterError(err))
		if he.code != wantCode || !strings.Contains(he.msg, wantMsg) {
			t.Fatalf("%v: got %d %q; want %d containing %q", err, he.code, he.msg, wantCode, wantMsg)
		}
	}
	full := fmt.Errorf("cannot store the upload: %w", &os.PathError{Op: "write", Path: "/data/blobs/tmp/put-1", Err: syscall.ENOSPC})
	f(full, 507, "this node's disk is full, and nothing was stored")
	f(fmt.Errorf("x: %w", &os.PathError{Op: "write", Path: "/q", Err: syscall.EDQUOT}), 507, "disk is full")
	low := &diskfree.LowError{Dir: "/data", Free: 1 << 20, Need: 2 << 20, Min: 64 << 20}
	f(fmt.Errorf("cannot store the upload on node n1: %w", low), 507, "the disk of /data has 1 MiB free")
	f(errors.New("something else"), 500, errInternalMsg)
}
