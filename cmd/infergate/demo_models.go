package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

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

// writeFileAtomic writes data to path through a temporary file that is
// fsynced and renamed, so a reader sees the old file or the whole new one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write into %s: %w", dir, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
