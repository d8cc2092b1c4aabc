package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/testenv"
)

// Uploading bytes a live version already has (the same model under a new
// name, or again with another config) must not make that version's
// repository file look changed: the file is a hard link to the blob, so
// a Put that touched the blob's time touched the file's too, and the
// registry reloaded the serving version (a new session, for nothing).
func TestUploadOfStoredBytesLeavesServingVersionLoaded(t *testing.T) {
	_, tr := raft.NewInmemTransport("127.0.0.1:7000")
	cfg := testConfig(t, "n0", tr, "")
	n := startLeading(t, cfg)
	ctx := context.Background()
	onnx := []byte("the same bytes, twice")
	if _, _, err := n.Upload(ctx, "a", onnx, false, nil); err != nil {
		t.Fatal(err)
	}
	ready := func(model string, v int64) {
		t.Helper()
		testenv.CheckFor(t, 5*time.Second, func() error {
			if lm := cfg.Registry.Model(model); lm == nil || lm.Version(v) == nil {
				return fmt.Errorf("model %q version %d not loaded", model, v)
			}
			return nil
		})
	}
	ready("a", 1)
	before := cfg.Registry.Model("a").Version(1)
	// A moment, so that a time made now differs from the file's.
	time.Sleep(20 * time.Millisecond)
	if _, _, err := n.Upload(ctx, "a", onnx, false, nil); err != nil {
		t.Fatal(err)
	}
	ready("a", 2)
	if after := cfg.Registry.Model("a").Version(1); after != before {
		t.Fatalf("version 1 was loaded again after an upload of the same bytes as version 2")
	}
}
