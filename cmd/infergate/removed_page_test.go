package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// A model removed from the cluster leaves its directory in the node's
// --models, emptied. Once the node restarts, the registry finds that
// directory with no version in it; the repository index and the status
// page must give the row as what it is, a removed model (grey, not
// counted as not serving), and not as a red failure to load, which sends
// an operator after a fault there is none of; the page's cluster table
// says it was removed, not "production 0".
func TestRemovedModelAfterRestartIsNotAFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway twice")
	}
	demo := demoRepo(t)
	data, raft := t.TempDir(), testenv.FreeAddr(t)
	n := startNode(t, data, demo, raft, "")
	testenv.CheckFor(t, 20*time.Second, func() error {
		_, _, err := n.model(t, "ctr", false)
		return err
	})
	if code, b, _ := n.admin(t, "DELETE", "/v1/models/ctr", nil); code != 200 {
		t.Fatalf("remove ctr: %d %s", code, b)
	}
	testenv.CheckFor(t, 20*time.Second, func() error {
		if code, b, _ := n.post(t, "/v2/models/ctr/infer", []byte(`{}`)); code != 404 {
			return fmt.Errorf("ctr after its removal: %d %s; want 404", code, b)
		}
		// The node removes the files as for a retirement: the restart
		// must find the directory emptied.
		if _, err := os.Stat(filepath.Join(demo, "ctr", "1", "model.onnx")); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ctr's file after its removal: %v; want it gone", err)
		}
		return nil
	})
	n.kill(t)

	again := startNode(t, data, demo, raft, "")
	testenv.CheckFor(t, 30*time.Second, func() error {
		code, b, _ := again.post(t, "/v2/repository/index", nil)
		if code != 200 {
			return fmt.Errorf("index: %d %s", code, b)
		}
		var idx []struct{ Name, Version, State, Reason string }
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("index %s: %w", b, err)
		}
		for _, e := range idx {
			if e.Name == "ctr" && !strings.Contains(e.Reason, "removed from the cluster") {
				return fmt.Errorf("index row of the removed ctr: %+v; want its reason to say it was removed from the cluster", e)
			}
		}
		_, page, _ := again.do(t, "GET", "/", nil, nil)
		if strings.Contains(string(page), "not serving") {
			i := strings.Index(string(page), "<td>ctr</td>")
			return fmt.Errorf("the status page counts ctr as not serving: %.400s", page[max(i, 0):])
		}
		if !strings.Contains(string(page), `<td>ctr</td><td class="OFF">none: removed from the cluster</td>`) {
			i := strings.LastIndex(string(page), "<td>ctr</td>")
			return fmt.Errorf("the status page's cluster row of ctr: %.200s; want it to say ctr was removed, not production 0", page[max(i, 0):])
		}
		if !strings.Contains(string(page), `<td class="OFF">UNAVAILABLE</td>`) {
			return fmt.Errorf("the status page shows no grey row for the removed ctr")
		}
		return nil
	})
}
