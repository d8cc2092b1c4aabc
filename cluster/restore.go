package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/registry/blobs"
)

// Restored is what RestoreBackup wrote.
type Restored struct {
	Manifest *BackupManifest
	// NodeID and RaftAddr are of the group's only voter from now.
	NodeID, RaftAddr string
	// Dropped lists, sorted, the backed-up group's members other than
	// NodeID: the restored state marks them dropped, as Recover does.
	Dropped []string
}

// RestoreBackup seeds a node's empty raft state in dir (Config.DataDir)
// and its blob store from the archive at path, which ReadBackup should
// have checked first (RestoreBackup checks it again as it reads). The
// node, started on dir as nodeID listening for raft on raftAddr, is the
// only voter of a group that holds the backed-up state at the backup's
// raft index and term, and elects itself.
//
// Every member of the backed-up group other than nodeID is dropped, as
// Recover drops them: the restored snapshot marks them dropped in the
// replicated state, so that none joins on a raft log of the old group
// (the leader refuses it with ErrDropped); each joins on fresh raft
// state with --join. The blobs go into store, verified against their
// digests.
//
// The experiments' counts the archive carries (format 2) become the
// node's countsFile, as if it had counted them all itself: the node
// carries them on for the experiment of the same phase, which the
// restored state gives it, so that the group's experiment_results sum
// what they summed at the backup (joiners count from 0). An archive
// without them restores as before it had them: the counts start over.
func RestoreBackup(path, dir string, store *blobs.Store, nodeID, raftAddr string) (*Restored, error) {
	if nodeID == "" || raftAddr == "" {
		return nil, fmt.Errorf("cluster: a restore needs the node's id and raft address")
	}
	m, state, err := ReadBackupFile(path, func(bl BackupBlob, r io.Reader) error {
		if err := store.PutExpect(r, bl.SHA256, bl.Size); err != nil {
			return fmt.Errorf("cluster: cannot restore blob sha256:%s (%d bytes): %w", bl.SHA256, bl.Size, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	f := fsm.New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(state))); err != nil {
		return nil, fmt.Errorf("cluster: %w: its state does not restore: %v", ErrBadBackup, err)
	}
	st, _ := f.State()
	res := &Restored{Manifest: m, NodeID: nodeID, RaftAddr: raftAddr}
	for _, mb := range m.Members {
		if mb.ID != nodeID {
			res.Dropped = append(res.Dropped, mb.ID)
		}
	}
	for id := range st.Members {
		if id != nodeID && !slices.Contains(res.Dropped, id) {
			res.Dropped = append(res.Dropped, id)
		}
	}
	slices.Sort(res.Dropped)
	for _, id := range res.Dropped {
		if r := f.ApplyCommand(fsm.Command{Op: fsm.OpDropMember, Member: &fsm.Member{ID: id}}, m.Index); r.Err != nil {
			return nil, fmt.Errorf("cluster: cannot mark member %s dropped: %w", id, r.Err)
		}
	}

	if err := durable.MakeDirs(dir); err != nil {
		return nil, fmt.Errorf("cluster: cannot create %s: %w", dir, err)
	}
	dbPath := filepath.Join(dir, "raft.db")
	db, err := raftboltdb.New(raftboltdb.Options{Path: dbPath})
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot create the raft log %s: %w", dbPath, err)
	}
	defer db.Close()
	// Raft's key for its current term: the node starts in the backup's
	// term, so that its first election is past every entry it holds.
	if err := db.SetUint64([]byte("CurrentTerm"), m.Term); err != nil {
		return nil, fmt.Errorf("cluster: cannot write the term into %s: %w", dbPath, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot open the snapshot store in %s: %w", dir, err)
	}
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	conf := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(nodeID), Address: raft.ServerAddress(raftAddr), Suffrage: raft.Voter}}}
	sink, err := snaps.Create(raft.SnapshotVersionMax, m.Index, m.Term, conf, m.Index, trans)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot create a snapshot in %s: %w", dir, err)
	}
	snap, err := f.Snapshot()
	if err != nil {
		sink.Cancel()
		return nil, fmt.Errorf("cluster: cannot snapshot the restored state: %w", err)
	}
	if err := snap.Persist(sink); err != nil {
		return nil, fmt.Errorf("cluster: cannot write the restored snapshot in %s: %w", dir, err)
	}
	if err := writeRestoredCounts(dir, m.counts); err != nil {
		return nil, err
	}
	if err := durable.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("cluster: cannot sync %s: %w", dir, err)
	}
	return res, nil
}

// writeRestoredCounts writes the experiments' counts c of a backup into
// dir's countsFile, as saveCounts writes a node's own: restoreCounts
// reads them when the node starts. Nothing is written for nil.
func writeRestoredCounts(dir string, c map[string]*ExperimentResults) error {
	if c == nil {
		return nil
	}
	counts := make(map[string]*ExperimentCounts, len(c))
	for name, r := range c {
		counts[name] = &ExperimentCounts{Experiment: r.Experiment, Phase: r.Phase, Arms: r.Arms}
	}
	data, err := json.Marshal(counts)
	if err == nil {
		err = durable.WriteFile(filepath.Join(dir, countsFile), data, 0o644)
	}
	if err != nil {
		return fmt.Errorf("cluster: cannot write the backup's experiment counts into %s: %w", filepath.Join(dir, countsFile), err)
	}
	return nil
}
