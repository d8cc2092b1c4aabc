package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/registry/blobs"
)

// wideBackend is textBackend with input x of shape [-1,2].
type wideBackend struct{ textBackend }

func (wideBackend) Inputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "x", Datatype: oip.FP32, Shape: []int64{-1, 2}}}
}

// checkedNode starts a one-node cluster whose registry has defaults and
// whose trial load reads the model's input from its bytes.
func checkedNode(t *testing.T, defaults registry.ModelConfig) *Node {
	t.Helper()
	_, tr := raft.NewInmemTransport(raft.ServerAddress("127.0.0.1:7000"))
	cfg := testConfig(t, "n0", tr, "")
	repo, err := registry.New(registry.Config{
		Dir:      t.TempDir(),
		Defaults: defaults,
		Load: func(b []byte, _ registry.ModelConfig) (registry.Backend, error) {
			if bytes.HasPrefix(b, []byte("wide")) {
				return wideBackend{}, nil
			}
			return textBackend{}, nil
		},
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	cfg.Registry = repo
	store, err := blobs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Blobs = store
	// The trial load: "wide" models take x of shape [-1,2].
	cfg.Check = func(b []byte) ([]oip.TensorMetadata, []oip.TensorMetadata, error) {
		if bytes.HasPrefix(b, []byte("wide")) {
			return wideBackend{}.Inputs(), wideBackend{}.Outputs(), nil
		}
		return textBackend{}.Inputs(), textBackend{}.Outputs(), nil
	}
	return startLeading(t, cfg)
}

// A version uploaded without promote runs with production's config while
// it is staged, so the upload is refused when that config does not fit
// it, with advice that works: promoted, its own config applies.
func TestUploadStagedCheckedAgainstProduction(t *testing.T) {
	n := checkedNode(t, registry.ModelConfig{})
	ctx := context.Background()
	if _, _, err := n.Upload(ctx, "m", []byte("narrow"), false, []byte(`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[1]}]}`)); err != nil {
		t.Fatal(err)
	}
	for _, config := range []string{"", `{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[2]}]}`} {
		_, _, err := n.Upload(ctx, "m", []byte("wide"), false, []byte(config))
		if !errors.Is(err, fsm.ErrInvalid) || !strings.Contains(err.Error(), "upload it with promote, so that its own config applies, or first give production a config that fits both") {
			t.Fatalf("staged upload with config %q: got %v; want it refused with its advice", config, err)
		}
	}
	// Promoted, its own config applies, to it and to the live version 1
	// alike (TestUploadPromotedCheckedAgainstLiveVersions): none fits both.
	if _, _, err := n.Upload(ctx, "m", []byte("wide"), true, nil); err != nil {
		t.Fatalf("promoted with a config of its own that fits: %v", err)
	}
	if _, _, err := n.Upload(ctx, "m", []byte("wide"), true, []byte(`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[1]}]}`)); !errors.Is(err, fsm.ErrInvalid) || !strings.Contains(err.Error(), "the model config does not fit the model") {
		t.Fatalf("promoted with a config of its own that does not fit: got %v; want it refused", err)
	}
}

// A version that fails because its model's configuration cannot load on
// this node (preferred sizes above the node's --max-batch-size, refused
// before any version is tried) is reported failed with that reason.
func TestFailedVersionHasModelReason(t *testing.T) {
	n := checkedNode(t, registry.ModelConfig{MaxBatchSize: 8})
	if _, _, err := n.Upload(context.Background(), "m", []byte("narrow"), true, []byte(`{"dynamic_batching":{"preferred_batch_sizes":[16]}}`)); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		s, ok := n.LocalStatus().Models["m"]["1"]
		if !ok || s.State != VersionFailed {
			return fmt.Errorf("version 1: %+v; want failed", s)
		}
		return nil
	})
	if s := n.LocalStatus().Models["m"]["1"]; !strings.Contains(s.Reason, "preferred_batch_sizes holds 16, above max_batch_size 8") {
		t.Fatalf("version 1 is %+v; want the configuration's error as its reason", s)
	}
}

// Promoted, an upload's config applies to every live version of the
// model: one that does not fit a live version loaded here is refused.
func TestUploadPromotedCheckedAgainstLiveVersions(t *testing.T) {
	n := checkedNode(t, registry.ModelConfig{})
	ctx := context.Background()
	if _, _, err := n.Upload(ctx, "m", []byte("narrow1"), true, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Upload(ctx, "m", []byte("wide2"), false, nil); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["2"]; s.State != VersionReady {
			return fmt.Errorf("version 2: %+v; want ready", s)
		}
		return nil
	})
	_, _, err := n.Upload(ctx, "m", []byte("narrow3"), true, []byte(`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[1]}]}`))
	if !errors.Is(err, fsm.ErrInvalid) || !strings.Contains(err.Error(), "does not fit version 2, which is live") {
		t.Fatalf("got %v; want the promoted upload refused for version 2", err)
	}
}
