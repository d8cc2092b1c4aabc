package registry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A load that fails before it tries any version is the model's latest
// outcome, whatever an earlier load recorded of its versions: the index
// shows the serving version with this failure as its reason, and neither
// the row of a version whose failure belongs to the earlier load nor the
// stand-in reason that named it; infergate_model_load_failing counts the
// model's failure alone. (The rows of the earlier load hid the new
// failure: the index, the status page and the gauge went on saying
// version 2 failed, after its directory was gone.)
func TestModelFailureReplacesEarlierVersionFailures(t *testing.T) {
	r, set, dir := newRepoWithMetrics(t)
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	writeModel(t, dir, "m", 2, "fail2")
	if err := r.Load("m", nil); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Load with version 2 broken: got %v; want ErrLoadFailed", err)
	}
	want := "m/1 READY serving in place of version 2, which failed to load (the version policy picks the newest)\n" +
		"m/2 UNAVAILABLE cannot load model \"m\" version 2 from " + filepath.Join(dir, "m", "2", "model.onnx") + ": broken model \"fail2\"\n"
	if got := indexString(t, r); got != want {
		t.Fatalf("index after version 2 failed:\n%s; want\n%s", got, want)
	}

	for _, v := range []string{"1", "2"} {
		if err := os.RemoveAll(filepath.Join(dir, "m", v)); err != nil {
			t.Fatal(err)
		}
	}
	err := r.Load("m", nil)
	if !errors.Is(err, ErrNoVersions) {
		t.Fatalf("Load with no version directory: got %v; want ErrNoVersions", err)
	}
	want = "m/1 READY serving as loaded before; the model's latest load failed: " + err.Error() + "\n"
	if got := indexString(t, r); got != want {
		t.Fatalf("index after the load found no version:\n%s; want\n%s", got, want)
	}
	if got, want := loadFailingLine(set), "infergate_model_load_failing 1"; got != want {
		t.Fatalf("got %s; want %s (the model's failure, not version 2's of the earlier load)", got, want)
	}
	if f := r.Failing(); len(f) != 0 {
		t.Fatalf("Failing: got %+v; want none (version 1 serves)", f)
	}
	v := mustAcquire(t, r, "m", 0)
	v.Release()
	if v.Number != 1 {
		t.Fatalf("unversioned: got version %d; want 1, as loaded before", v.Number)
	}

	// Version 2 back, still broken: the next load tries it, and its
	// failure is the latest outcome in turn (version 1, not on disk,
	// serves on as a load that fails retires nothing).
	writeModel(t, dir, "m", 2, "fail2-again")
	if err := r.Load("m", nil); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Load with version 2 broken again: got %v; want ErrLoadFailed", err)
	}
	want = "m/1 READY \n" +
		"m/2 UNAVAILABLE cannot load model \"m\" version 2 from " + filepath.Join(dir, "m", "2", "model.onnx") + ": broken model \"fail2-again\"\n"
	if got := indexString(t, r); got != want {
		t.Fatalf("index after version 2 failed again:\n%s; want\n%s", got, want)
	}
	if got, want := loadFailingLine(set), "infergate_model_load_failing 1"; got != want {
		t.Fatalf("got %s; want %s (version 2)", got, want)
	}
}

// A configuration refused while a version's broken file stays on disk
// drops that version's row too: the load that failed it ran with another
// configuration, and the next load with a good one tries it again. A
// version serving its earlier file, its new one refused, serves as
// loaded before, the model's failure its reason.
func TestModelFailureReplacesFailedFileRows(t *testing.T) {
	r, set, dir := newRepoWithMetrics(t)
	two := `{"version_policy": {"latest": {"num_versions": 2}}}`
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	writeConfig(t, dir, "m", two)
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	writeModel(t, dir, "m", 2, "fail2-new-file")
	writeModel(t, dir, "m", 3, "fail3")
	if err := r.Load("m", nil); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Load with versions 2 and 3 broken: got %v; want ErrLoadFailed", err)
	}
	if got, want := loadFailingLine(set), "infergate_model_load_failing 2"; got != want {
		t.Fatalf("got %s; want %s (versions 2 and 3)\nindex:\n%s", got, want, indexString(t, r))
	}
	writeConfig(t, dir, "m", `{"instancez": 2}`)
	err := r.Load("m", nil)
	if err == nil || !strings.Contains(err.Error(), "instancez") {
		t.Fatalf("Load with a bad configuration: got %v; want the unknown field named", err)
	}
	reason := "serving as loaded before; the model's latest load failed: " + err.Error()
	want := "m/1 READY " + reason + "\nm/2 READY " + reason + "\n"
	if got := indexString(t, r); got != want {
		t.Fatalf("index after the configuration was refused:\n%s; want\n%s", got, want)
	}
	if got, want := loadFailingLine(set), "infergate_model_load_failing 1"; got != want {
		t.Fatalf("got %s; want %s (the configuration)", got, want)
	}
	writeConfig(t, dir, "m", two)
	if err := r.Load("m", nil); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Load with the configuration fixed: got %v; want ErrLoadFailed (versions 2 and 3 still broken)", err)
	}
	if got, want := loadFailingLine(set), "infergate_model_load_failing 2"; got != want {
		t.Fatalf("got %s; want %s (versions 2 and 3, tried again)\nindex:\n%s", got, want, indexString(t, r))
	}
}
