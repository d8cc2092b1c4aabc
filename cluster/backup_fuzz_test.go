package cluster

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/registry/blobs"
)

// smallArchive returns a backup archive of a state with one model
// version, written as Backup.WriteTo writes one; with counts, the model
// has a second version (of the same blob) and runs an experiment, whose
// counts the archive carries (format 2).
func smallArchive(tb testing.TB, counts bool) []byte {
	tb.Helper()
	store, err := blobs.Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	content := []byte("model bytes")
	h, n, err := store.Put(bytes.NewReader(content), 1<<20)
	if err != nil {
		tb.Fatal(err)
	}
	f := fsm.New()
	if r := f.ApplyCommand(fsm.Command{Op: fsm.OpRegisterVersion, Model: "m", SHA256: h, Size: n, Created: time.Unix(1, 0).UTC(), Origin: "n0"}, 3); r.Err != nil {
		tb.Fatal(r.Err)
	}
	if counts {
		e := &route.Experiment{Name: "exp", Arms: []route.Arm{{Name: "control", Version: 1, Weight: 1}, {Name: "treatment", Version: 2, Weight: 1}}}
		for i, c := range []fsm.Command{
			{Op: fsm.OpRegisterVersion, Model: "m", SHA256: h, Size: n, Created: time.Unix(1, 0).UTC(), Origin: "n0"},
			{Op: fsm.OpSetExperiment, Model: "m", Experiment: e, Created: time.Unix(1, 0).UTC()},
		} {
			if r := f.ApplyCommand(c, uint64(4+i)); r.Err != nil {
				tb.Fatal(r.Err)
			}
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	var state bytes.Buffer
	if err := snap.Persist(&bufferSink{Buffer: &state}); err != nil {
		tb.Fatal(err)
	}
	st, _ := f.State()
	sum := sha256.Sum256(state.Bytes())
	b := &Backup{store: store, state: state.Bytes(), Manifest: BackupManifest{
		Format: backupFormatNoCounts, NodeID: "n0", Index: 3, Term: 1, Time: time.Unix(2, 0).UTC(),
		StateSHA256: hex.EncodeToString(sum[:]), StateSize: int64(state.Len()),
	}}
	b.Manifest.Models, b.Manifest.Versions, b.Manifest.Blobs = backupBlobs(st)
	if counts {
		c := experimentsOf(st, func() map[string]*LocalStatus {
			e := st.Models["m"].Experiment
			return map[string]*LocalStatus{"n0": {Experiments: map[string]*ExperimentCounts{"m": {Experiment: e.Name, Phase: e.Phase, Arms: []ArmCounts{
				{Arm: "control", Version: 1, ArmStats: registry.ArmStats{Requests: 3, Labels: 1, LabelSum: 1, LabelSquares: 1}},
				{Arm: "treatment", Version: 2, ArmStats: registry.ArmStats{Requests: 2, Rewards: 1, RewardSum: -0.5, RewardSquares: 0.25}},
			}}}}, "n1": nil}
		})
		var err error
		if b.counts, b.Manifest.ExperimentCounts, err = encodeBackupCounts(c); err != nil {
			tb.Fatal(err)
		}
		b.Manifest.Format = BackupFormat
	}
	var out bytes.Buffer
	if _, err := b.WriteTo(&out); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

// FuzzReadBackup feeds ReadBackup arbitrary archives: it must never
// panic, and what it accepts must hold every blob its manifest lists.
func FuzzReadBackup(f *testing.F) {
	good := smallArchive(f, false)
	if m, _, err := ReadBackup(bytes.NewReader(good), nil); err != nil || len(m.Blobs) != 1 {
		f.Fatalf("the seed archive: %v; want it read, with 1 blob", err)
	}
	f.Add(good)
	withCounts := smallArchive(f, true)
	if m, _, err := ReadBackup(bytes.NewReader(withCounts), nil); err != nil || m.ExperimentCounts == nil || m.counts["m"] == nil {
		f.Fatalf("the seed archive with counts: %v; want it read, with the counts of m", err)
	}
	f.Add(withCounts)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(good)
	zw.Close()
	f.Add(gz.Bytes())
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		seen := 0
		m, _, err := ReadBackup(bytes.NewReader(data), func(bl BackupBlob, r io.Reader) error {
			seen++
			return nil
		})
		if err == nil && seen != len(m.Blobs) {
			t.Fatalf("accepted an archive with %d blobs read of %d listed", seen, len(m.Blobs))
		}
		if err == nil && m.ExperimentCounts == nil && m.counts != nil {
			t.Fatalf("accepted an archive holding %d models' counts that its manifest does not describe", len(m.counts))
		}
	})
}

// bufferSink is a raft.SnapshotSink into a buffer.
type bufferSink struct{ *bytes.Buffer }

func (*bufferSink) ID() string    { return "buffer" }
func (*bufferSink) Cancel() error { return nil }
func (*bufferSink) Close() error  { return nil }
