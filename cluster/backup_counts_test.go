package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/registry/blobs"
)

// fakeMember adds a member to n's state whose API is srv (nil for one
// that is down: its address refuses connections).
func fakeMember(t *testing.T, n *Node, id string, srv *httptest.Server) {
	t.Helper()
	addr := "http://127.0.0.1:1"
	if srv != nil {
		addr = srv.URL
	}
	mustApply(t, n, fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: id, RaftAddr: "10.0.0.1:1", HTTPAddr: addr}})
}

// restoreAndStart restores the archive at path into a fresh directory
// and starts a node on it as serve does: RestoreProduction (which reads
// the counts) before the node, which elects itself.
func restoreAndStart(t *testing.T, path string) (*registry.Repository, *Node) {
	t.Helper()
	cfg := tcpConfig(t, "restored", "")
	dir := t.TempDir()
	store, err := blobs.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreBackup(path, filepath.Join(dir, "raft"), store, "restored", cfg.RaftAddr); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.Blobs = filepath.Join(dir, "raft"), store
	if err := RestoreProduction(cfg.DataDir, cfg.Registry); err != nil {
		t.Fatal(err)
	}
	return cfg.Registry, startLeading(t, cfg)
}

// TestBackupCarriesExperimentCounts: a backup carries, for the experiment
// a model runs, the sum of its members' counts that experiment_results
// gives (this node's and a member's that answers; a member that is down
// is named missing, and the backup is taken all the same), and a node
// started on the restored directory counts on from that sum: its
// experiment_results give the same arms, phase and counts as the group's
// at the backup. Before, the counts started over on a restored group.
func TestBackupCarriesExperimentCounts(t *testing.T) {
	_, n := soloWithTwoVersions(t)
	x := runExperiment(t, n, nil)
	testenv.CheckFor(t, 10*time.Second, func() error {
		for i := range 16 {
			v, _, err := n.cfg.Registry.AcquireUnversioned("m", fmt.Appendf(nil, "unit-%d", i))
			if err != nil {
				return err
			}
			v.Release()
		}
		return nil
	})
	one, half := 1.0, 0.5
	x.Outcome("treatment", &one, &half)
	x.Outcome("control", &one, nil)
	x.Outcome("control", nil, &half)

	// A member that answers with its counts of the same phase, and one
	// that is down.
	peer := &LocalStatus{Node: "peer", Experiments: map[string]*ExperimentCounts{"m": {Experiment: "exp", Phase: x.Phase, Arms: []ArmCounts{
		{Arm: "control", Version: 1, ArmStats: registry.ArmStats{Requests: 5, Labels: 2, LabelSum: 1, LabelSquares: 1}},
		{Arm: "treatment", Version: 2, ArmStats: registry.ArmStats{Requests: 7, Fallbacks: 1, Rewards: 2, RewardSum: 1.5, RewardSquares: 1.25}},
	}}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/local/models" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(peer)
	}))
	t.Cleanup(srv.Close)
	fakeMember(t, n, "peer", srv)
	fakeMember(t, n, "down", nil)

	views, err := n.Models(context.Background(), "m")
	if err != nil {
		t.Fatal(err)
	}
	before := views[0].ExperimentResults
	if got := fmt.Sprint(before.Nodes, before.Missing); got != "[peer solo] [down]" {
		t.Fatalf("before the backup, experiment_results sums %s; want [peer solo] [down]", got)
	}

	data := takeBackup(t, n)
	m, _, _ := readArchive(t, data)
	wantDesc := BackupCounts{Models: []string{"m"}, Nodes: []string{"peer", "solo"}, Missing: []string{"down"}}
	if m.Format != BackupFormat || m.ExperimentCounts == nil {
		t.Fatalf("manifest: format %d, experiment counts %+v; want format %d with counts", m.Format, m.ExperimentCounts, BackupFormat)
	}
	if got := *m.ExperimentCounts; got.SHA256 == "" || !reflect.DeepEqual(got.Models, wantDesc.Models) || !reflect.DeepEqual(got.Nodes, wantDesc.Nodes) || !reflect.DeepEqual(got.Missing, wantDesc.Missing) {
		t.Fatalf("manifest's experiment counts: got %+v; want %+v", got, wantDesc)
	}
	if got := m.counts["m"]; !reflect.DeepEqual(got, before) {
		t.Fatalf("archive's counts of m: got %+v; want experiment_results' %+v", got, before)
	}

	path := filepath.Join(t.TempDir(), "b.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	repo, again := restoreAndStart(t, path)
	var got *ExperimentResults
	testenv.CheckFor(t, 10*time.Second, func() error {
		views, err := again.Models(context.Background(), "m")
		if err != nil {
			return err
		}
		if got = views[0].ExperimentResults; got == nil || !reflect.DeepEqual(got.Arms, before.Arms) {
			return fmt.Errorf("restored, experiment_results gives %+v; want the arms %+v", got, before.Arms)
		}
		return nil
	})
	if got.Experiment != before.Experiment || got.Phase != before.Phase || !got.Started.Equal(before.Started) || fmt.Sprint(got.Nodes) != "[restored]" {
		t.Fatalf("restored, experiment_results gives %+v; want %+v summed on the restored node alone", got, before)
	}
	// It counts on from there.
	x = repo.ExperimentOf("m")
	x.Outcome("control", &one, nil)
	if c := x.Counts(); c.Arms[0].Labels != before.Arms[0].Labels+1 {
		t.Fatalf("restored, a label more gives control %d labels; want %d", c.Arms[0].Labels, before.Arms[0].Labels+1)
	}
}

// TestBackupCountsAreChecked: an archive whose experiment counts are
// damaged is refused, and one without them (as the release before wrote
// them, format 1) restores with no counts file: the counts start over,
// as they did before archives carried them. A backup of a state with no
// experiment is written in format 1.
func TestBackupCountsAreChecked(t *testing.T) {
	_, n := soloWithTwoVersions(t)
	if m, _, _ := readArchive(t, takeBackup(t, n)); m.Format != backupFormatNoCounts || m.ExperimentCounts != nil {
		t.Fatalf("without an experiment: format %d, experiment counts %+v; want format %d without", m.Format, m.ExperimentCounts, backupFormatNoCounts)
	}
	x := runExperiment(t, n, nil)
	one := 1.0
	x.Outcome("control", &one, nil)
	data := takeBackup(t, n)

	at := bytes.Index(data, []byte(`"label_sum": 1`))
	if at < 0 {
		t.Fatalf("the archive holds no label sum of 1")
	}
	flipped := bytes.Clone(data)
	flipped[at+len(`"label_sum": `)] = '3'
	if _, _, err := ReadBackup(bytes.NewReader(flipped), nil); !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), "experiment counts read as") {
		t.Fatalf("damaged counts: got %v; want ErrBadBackup saying the counts are damaged", err)
	}
	f := func(name string, edit func(string) string, want string) {
		t.Helper()
		_, _, err := ReadBackup(bytes.NewReader(retarManifest(t, data, func(b []byte) []byte { return []byte(edit(string(b))) })), nil)
		if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v; want ErrBadBackup saying %q", name, err, want)
		}
	}
	f("format 1 with counts", func(s string) string { return strings.Replace(s, `"format": 2,`, `"format": 1,`, 1) }, "format 1 and lists experiment counts")
	f("format 3", func(s string) string { return strings.Replace(s, `"format": 2,`, `"format": 3,`, 1) }, "reads formats 1 to 2")
	f("format 3 with a field this release does not know", func(s string) string {
		return strings.Replace(s, `"format": 2,`, `"format": 3, "later": true,`, 1)
	}, "backup format 3")
	f("a third object", func(s string) string { return s + "{}\n" }, "follows its manifest's object")
	f("a second object of another kind", func(s string) string {
		return strings.Replace(s, `"experiment_counts": {`, `"other": {`, 1)
	}, "follows its manifest's object")

	// A release that reads format 1 only decodes the manifest's first
	// JSON object, refusing fields it does not know, and checks the
	// format next: that object holds format 1's fields alone, so such a
	// release refuses the archive by its format 2, saying so.
	tr := tar.NewReader(bytes.NewReader(data))
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	var first map[string]any
	if err := json.NewDecoder(tr).Decode(&first); err != nil {
		t.Fatal(err)
	}
	formatOne := []string{"blobs", "format", "index", "members", "models", "node_id", "release", "state_sha256", "state_size", "term", "time", "versions"}
	if got := slices.Sorted(maps.Keys(first)); !slices.Equal(got, formatOne) || first["format"] != 2.0 {
		t.Fatalf("the manifest's first object: format %v, fields %v; want format 2 with format 1's fields %v", first["format"], got, formatOne)
	}

	old := formatOneArchive(t, data)
	m, _, err := ReadBackup(bytes.NewReader(old), nil)
	if err != nil || m.Format != backupFormatNoCounts || m.ExperimentCounts != nil {
		t.Fatalf("format 1 archive: %+v, %v; want it read, without counts", m, err)
	}
	path := filepath.Join(t.TempDir(), "old.tar")
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := blobs.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreBackup(path, filepath.Join(dir, "raft"), store, "restored", "127.0.0.1:1"); err != nil {
		t.Fatalf("restore of a format 1 archive: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft", countsFile)); !os.IsNotExist(err) {
		t.Fatalf("restore of a format 1 archive wrote %s: %v", countsFile, err)
	}
}

// formatOneArchive returns the archive data as a release before format 2
// wrote it: without the experiment counts' entry and manifest field.
func formatOneArchive(t *testing.T, data []byte) []byte {
	t.Helper()
	return retar(t, data, func(name string, body []byte) ([]byte, bool) {
		switch name {
		case backupCountsName:
			return nil, false
		case backupManifestName:
			// Its first JSON object, without what follows.
			var m map[string]any
			if err := json.NewDecoder(bytes.NewReader(body)).Decode(&m); err != nil {
				t.Fatal(err)
			}
			m["format"] = 1
			b, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			return b, true
		}
		return body, true
	})
}
