package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/registry"
)

// An upload's config is checked against the model by the trial load
// (input, output, model_warmup): a sample that names an input the model
// has not (or gives x another type) is refused, rather than registered to
// fail the version's load on every node.
func TestUploadChecksWarmupAgainstModel(t *testing.T) {
	n := checkedNode(t, registry.ModelConfig{})
	ctx := context.Background()
	for _, config := range []string{
		`{"model_warmup":[{"name":"w","inputs":{"nope":{"data_type":"TYPE_FP32","dims":[1],"zero_data":true}}}]}`,
		`{"model_warmup":[{"name":"w","inputs":{"x":{"data_type":"TYPE_INT64","dims":[1],"zero_data":true}}}]}`,
	} {
		_, _, err := n.Upload(ctx, "m", []byte("narrow"), true, []byte(config))
		if !errors.Is(err, fsm.ErrInvalid) {
			t.Errorf("upload with config %s (the model's one input is x, FP32 [-1,1]): got %v; want fsm.ErrInvalid", config, err)
		}
	}
}
