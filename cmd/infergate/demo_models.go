package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/trainer/onnx"
)

func runDemoModels(args []string) error {
	fs := newFlagSet("demo-models", "--out DIR",
		`Write the demo models in Triton layout: DIR/ctr/1/model.onnx (input "features"
FP32 [-1,64], output "score" FP32 [-1,1]) and DIR/ranker/1/model.onnx (input
"features" FP32 [-1,256], output "score" FP32 [-1,1]). Weights are deterministic,
so the files are identical on every machine; files already in place with the
same bytes are left alone. --seed writes models of the same shapes with other
weights, new versions to try shadows and experiments with:

  infergate demo-models --out /tmp/v2 --seed 7
  infergate models upload ranker /tmp/v2/ranker/1/model.onnx`)
	out := fs.String("out", "models", "repository directory to write into")
	seed := fs.Uint64("seed", 0, "draw the weights from this seed instead of the demo models' own (ctr 1, ranker 2)")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctr, ranker := onnx.DemoCTR(), onnx.DemoRanker()
	if *seed != 0 {
		for _, m := range []*onnx.MLP{ctr, ranker} {
			other := onnx.NewMLP(*seed, append([]int{m.In()}, layerOuts(m)...), onnx.Relu, onnx.Sigmoid)
			m.Layers = other.Layers
			m.Metadata[onnx.MetaInitSeed] = other.Metadata[onnx.MetaInitSeed]
			m.DocString = fmt.Sprintf("infergate demo model %s with other weights: random, seed %d", m.Metadata[onnx.MetaModel], *seed)
		}
	}
	for _, m := range []struct {
		name string
		mlp  *onnx.MLP
	}{{"ctr", ctr}, {"ranker", ranker}} {
		path := filepath.Join(*out, m.name, "1", "model.onnx")
		data := m.mlp.Model().Marshal()
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := writeFileAtomic(path, data); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", path, len(data))
	}
	return nil
}

// writeFileAtomic writes data to path, creating its directory, so that
// a reader (or whoever looks after a crash) sees the old file or the whole
// new one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := durable.MakeDirs(dir); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	if err := durable.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// layerOuts lists the output sizes of m's layers.
func layerOuts(m *onnx.MLP) []int {
	var out []int
	for _, l := range m.Layers {
		out = append(out, l.Out)
	}
	return out
}
