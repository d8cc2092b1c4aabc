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
same bytes are left alone.`)
	out := fs.String("out", "models", "repository directory to write into")
	if err := parse(fs, args); err != nil {
		return err
	}
	for _, m := range []struct {
		name string
		mlp  *onnx.MLP
	}{{"ctr", onnx.DemoCTR()}, {"ranker", onnx.DemoRanker()}} {
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
