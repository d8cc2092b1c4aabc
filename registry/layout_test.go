package registry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A model directory in a layout other than Triton's (a model.onnx with
// no version directory, as KServe's storage holds one; a version file of
// another name; a version directory named v1) is refused with the file
// found and where it belongs, not only "no version".
func TestLoadNamesLayoutMistakes(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	put := func(rel string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("onnx"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := func(name, want string) {
		t.Helper()
		err := r.Load(name, nil)
		if !errors.Is(err, ErrNoVersions) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Load(%q): got %v; want ErrNoVersions containing %q", name, err, want)
		}
		if err := r.Check(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Check(%q): got %v; want an error containing %q", name, err, want)
		}
	}
	put("flat/model.onnx")
	f("flat", "found "+filepath.Join(dir, "flat", "model.onnx")+": move it into a version directory, "+filepath.Join(dir, "flat", "1", "model.onnx"))
	put("named/1/named.onnx")
	f("named", "found "+filepath.Join(dir, "named", "1", "named.onnx")+": a version's file must be called model.onnx")
	put("vdir/v1/model.onnx")
	f("vdir", `found `+filepath.Join(dir, "vdir", "v1", "model.onnx")+`: "v1" is not a version directory; versions are numbers: 1, 2, ...`)
	put("zero/01/model.onnx")
	f("zero", `"01" is not a version directory`)
}

// A model file at the top of the repository, where model directories
// belong (--models pointed at a directory of .onnx files), is refused by
// Check and LoadAll, which read every model, saying where it belongs,
// rather than passing over it as if the repository were empty.
func TestStrayModelFileAtTop(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "ok", 1, "x")
	if err := os.WriteFile(filepath.Join(dir, "ctr.onnx"), []byte("onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "found " + filepath.Join(dir, "ctr.onnx") + " at the top of the model repository, which holds a directory per model: move it to " + filepath.Join(dir, "ctr", "1", "model.onnx")
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Check(): got %v; want an error containing %q", err, want)
	}
	if err := r.CheckLayout(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("CheckLayout(): got %v; want an error containing %q", err, want)
	}
	if err := r.LoadAll(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("LoadAll(): got %v; want an error containing %q", err, want)
	}
	if r.Model("ok") == nil {
		t.Fatalf("LoadAll() did not load model ok beside the stray file")
	}
	// A named model's check does not read the top.
	if err := r.Check("ok"); err != nil {
		t.Fatalf("Check(ok): got %v; want nil", err)
	}
}
