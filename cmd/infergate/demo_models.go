package main

import (
	"bytes"
	"errors"
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
same bytes are left alone, and one that holds another model (a ctr of your
own) stops the command before it writes anything, unless --force. --seed writes models of the same shapes with other
weights, new versions to try shadows and experiments with:

  infergate demo-models --out /tmp/v2 --seed 7
  infergate models upload ranker /tmp/v2/ranker/1/model.onnx`)
	out := fs.String("out", "models", "repository directory to write into")
	seed := fs.Uint64("seed", 0, "draw the weights from this seed instead of the demo models' own (ctr 1, ranker 2)")
	remove := fs.Bool("remove", false, "remove the demo model files instead (what make clean does): only those whose bytes are the demo models' of --seed, and their directories once empty; any other file is left alone")
	force := fs.Bool("force", false, "replace a DIR/ctr/1/model.onnx or DIR/ranker/1/model.onnx that holds another model (without it, such a file is left alone and nothing is written)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is empty: give the repository directory to write into")
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
	type file struct {
		path     string
		data     []byte
		upToDate bool
	}
	var files []file
	for _, m := range []struct {
		name string
		mlp  *onnx.MLP
	}{{"ctr", ctr}, {"ranker", ranker}} {
		f := file{path: filepath.Join(*out, m.name, "1", "model.onnx"), data: m.mlp.Model().Marshal()}
		// A file of other bytes may be a model of the user's own
		// (a repository with a ctr of its own): it is replaced only
		// when asked, and checked before anything is written.
		old, err := os.ReadFile(f.path)
		if *remove {
			if err := removeDemo(f.path, old, err, f.data); err != nil {
				return err
			}
			continue
		}
		switch {
		case err == nil && bytes.Equal(old, f.data):
			f.upToDate = true
		case err == nil && !*force:
			return fmt.Errorf("%s exists and holds another model (%d bytes, not this demo model); nothing written: write elsewhere (--out), remove it, or replace it with --force", f.path, len(old))
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("cannot read %s: %w", f.path, err)
		}
		files = append(files, f)
	}
	for _, f := range files {
		if f.upToDate {
			fmt.Fprintf(os.Stderr, "%s is up to date\n", f.path)
			continue
		}
		if err := writeFileAtomic(f.path, f.data); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", f.path, len(f.data))
	}
	return nil
}

// removeDemo removes the file at path, whose bytes (or the error reading
// them) are old and readErr, when they are demo's, and then its version
// and model directories if that leaves them empty; a file of other bytes
// (a model of the user's own) stays.
func removeDemo(path string, old []byte, readErr error, demo []byte) error {
	switch {
	case errors.Is(readErr, os.ErrNotExist):
		return nil
	case readErr != nil:
		return fmt.Errorf("cannot read %s: %w", path, readErr)
	case !bytes.Equal(old, demo):
		fmt.Fprintf(os.Stderr, "%s holds another model (%d bytes, not this demo model): left alone\n", path, len(old))
		return nil
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "removed %s\n", path)
	// The version's directory, then the model's, each only when empty
	// (os.Remove leaves a directory with files).
	if vdir := filepath.Dir(path); os.Remove(vdir) == nil {
		os.Remove(filepath.Dir(vdir))
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
