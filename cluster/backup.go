package cluster

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/registry/blobs"
)

// BackupFormat is the newest format version of the archives Backup
// writes; ReadBackup reads it and every earlier one, and refuses a later
// one: a release that changes the layout raises it. Format 2 added the
// experiment_counts.json entry and its description after the manifest's
// object (backupAddendum). Backup writes an archive without them (no
// model runs an experiment) in format 1, which releases from before
// format 2 read as well.
const BackupFormat = 2

// backupFormatNoCounts is the format of an archive without experiment
// counts: manifest, state and blobs.
const backupFormatNoCounts = 1

// The names of an archive's entries, in the order they come: the manifest,
// the state machine's snapshot as raft stored it, the experiments' counts
// (format 2, when a model runs one), then one entry per blob.
const (
	backupManifestName = "manifest.json"
	backupStateName    = "state.json"
	backupCountsName   = "experiment_counts.json"
	backupBlobPrefix   = "blobs/sha256/"
)

// maxBackupState bounds the snapshot a backup reads into memory (the
// control plane's state: models, versions, experiments, members, never
// model bytes) and the manifest a restore reads.
const maxBackupState = 256 << 20

// BackupManifest describes a backup archive: the raft entry its state is
// the cut at, and every blob it carries.
type BackupManifest struct {
	// Format is BackupFormat of the release that wrote it.
	Format int `json:"format"`
	// Release is the infergate release of the node that took it.
	Release string `json:"release"`
	// NodeID is the node that took it.
	NodeID string `json:"node_id"`
	// Index and Term are of the last raft entry the state holds.
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Time is when the snapshot was taken, UTC.
	Time time.Time `json:"time"`
	// Members are raft's configuration at Index, with the HTTP address
	// each had in the state when it recorded one.
	Members []fsm.Member `json:"members"`
	// StateSHA256 and StateSize describe the state entry.
	StateSHA256 string `json:"state_sha256"`
	StateSize   int64  `json:"state_size"`
	// Models and Versions count the models the state holds and their
	// versions that are not retired.
	Models   int `json:"models"`
	Versions int `json:"versions"`
	// Blobs lists the blobs of those versions, each once, in the order
	// the archive holds them.
	Blobs []BackupBlob `json:"blobs"`
	// ExperimentCounts describes the archive's experiment_counts.json:
	// nil when it has none (format 1). It is not in the manifest's JSON
	// object but in a second one after it (backupAddendum).
	ExperimentCounts *BackupCounts `json:"-"`

	// counts is the content of experiment_counts.json, by model, as
	// ReadBackup read it (RestoreBackup writes it out); nil when the
	// archive has none.
	counts map[string]*ExperimentResults
}

// backupAddendum is the second JSON object of a format 2 manifest.json,
// after the manifest's. The manifest's own object keeps the fields of
// format 1: a release that reads format 1 only decodes that object alone,
// refusing a field it does not know, and reads no further, so it refuses
// a format 2 archive by its format, saying so, not as a damaged manifest.
type backupAddendum struct {
	ExperimentCounts *BackupCounts `json:"experiment_counts"`
}

// BackupCounts describes what a backup carries of the counts of the A/B
// experiments the state's models run, each in the phase the state gives
// it: by model, the sum that the model's experiment_results made when
// the backup was taken (ExperimentResults, with the members in its sums
// and those missing), which a restore hands to the restored node to
// carry on.
type BackupCounts struct {
	// SHA256 and Size describe the entry.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Models names the models it counts, sorted: every model of the
	// state that runs an experiment.
	Models []string `json:"models"`
	// Nodes names, sorted, the members whose counts are in the sums of
	// every model; Missing the others, whose counts are left out of the
	// sums of one model or more: members that did not answer within
	// peerStatusTimeout, or that had not applied the experiment's phase
	// (the entry says which, model by model).
	Nodes   []string `json:"nodes"`
	Missing []string `json:"missing,omitempty"`
}

// BackupBlob is one blob of a backup.
type BackupBlob struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Versions names the versions that hold it, as "model:version".
	Versions []string `json:"versions"`
}

// Bytes returns the sum of the blobs' sizes.
func (m *BackupManifest) Bytes() int64 {
	var n int64
	for _, b := range m.Blobs {
		n += b.Size
	}
	return n
}

// Backup is a consistent cut of the group's state, ready to be written
// with WriteTo; Node.Backup returns it. Close it when done: until then
// its blobs are kept from the sweep of unused blobs.
type Backup struct {
	Manifest BackupManifest
	state    []byte
	counts   []byte // experiment_counts.json; nil for none
	store    *blobs.Store
	release  []func()
}

// Backup takes a consistent cut of the group's state for an archive: it
// waits until this node has applied every write the leader committed
// before the call (so that a follower's backup is as new as the leader's;
// at most backupCutTimeout for this and the snapshot),
// has raft snapshot the state machine and reads that snapshot back with
// its index, term and configuration. The versions the state holds that
// are not retired need their blobs on this node: a blob missing here is
// fetched from a peer, or the call fails naming it. Those fetches stop
// when ctx ends (the call's error then wraps ctx.Err()) or the node stops
// (ErrStopped), leaving no partial blob. Before them it sums the counts
// of the experiments the state's models run (experimentsOf): this node's
// and those of every member that answers within peerStatusTimeout (and
// before ctx ends); a member that does not is named in the manifest,
// never an error. Only one backup runs at a time on a node; a second
// gets ErrBackupBusy. Nothing of raft's is held once
// it returns: the blobs are read while WriteTo streams them.
func (n *Node) Backup(ctx context.Context, release string) (*Backup, error) {
	if !n.backingUp.CompareAndSwap(false, true) {
		return nil, ErrBackupBusy
	}
	b, err := n.backup(ctx, release)
	if err != nil {
		n.backingUp.Store(false)
		return nil, err
	}
	b.release = append(b.release, func() { n.backingUp.Store(false) })
	return b, nil
}

// backupCutTimeout bounds the cut of a backup (catching up with the
// leader and the snapshot), which needs a leader: without one it would
// wait for ctx alone. Fetching missing blobs afterwards is bounded by
// ctx and by each fetch's own limit (fetchFrom), which grows with the
// blob's size.
const backupCutTimeout = 30 * time.Second

func (n *Node) backup(ctx context.Context, release string) (*Backup, error) {
	cctx, cancelCut := context.WithTimeout(ctx, backupCutTimeout)
	defer cancelCut()
	if err := n.ReadIndex(cctx); err != nil {
		return nil, fmt.Errorf("cluster: cannot back up from node %s: %w", n.cfg.NodeID, err)
	}
	meta, state, err := n.snapshotForBackup(cctx)
	if err != nil {
		return nil, err
	}
	f := fsm.New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(state))); err != nil {
		return nil, fmt.Errorf("cluster: the snapshot at raft index %d does not read back: %w", meta.Index, err)
	}
	st, _ := f.State()
	sum := sha256.Sum256(state)
	b := &Backup{
		store: n.cfg.Blobs,
		state: state,
		Manifest: BackupManifest{
			Format:      backupFormatNoCounts,
			Release:     release,
			NodeID:      n.cfg.NodeID,
			Index:       meta.Index,
			Term:        meta.Term,
			Time:        time.Now().UTC().Truncate(time.Millisecond),
			StateSHA256: hex.EncodeToString(sum[:]),
			StateSize:   int64(len(state)),
		},
	}
	for _, s := range meta.Configuration.Servers {
		m := fsm.Member{ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter}
		if rec := st.Members[m.ID]; rec != nil {
			m.HTTPAddr, m.RaftTLS = rec.HTTPAddr, rec.RaftTLS
		}
		b.Manifest.Members = append(b.Manifest.Members, m)
	}
	b.Manifest.Models, b.Manifest.Versions, b.Manifest.Blobs = backupBlobs(st)
	if c := experimentsOf(st, func() map[string]*LocalStatus { return n.memberStatuses(ctx, st) }); c != nil {
		var err error
		if b.counts, b.Manifest.ExperimentCounts, err = encodeBackupCounts(c); err != nil {
			return nil, err
		}
		b.Manifest.Format = BackupFormat
		b.Manifest.counts = c
	}
	// From here on, whatever fails releases the holds.
	for _, bl := range b.Manifest.Blobs {
		b.release = append(b.release, n.holdBlob(bl.SHA256))
	}
	// The fetches end with the caller's ctx or when the node stops,
	// whichever comes first.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.ctx, cancel)()
	cur, _ := n.fsm.State()
	for _, bl := range b.Manifest.Blobs {
		if n.cfg.Blobs.Has(bl.SHA256) {
			continue
		}
		v := &fsm.Version{SHA256: bl.SHA256, Size: bl.Size, Origin: originOf(st, bl)}
		if err := n.rec.fetch(fctx, cur, v); err != nil {
			b.Close()
			if fctx.Err() != nil {
				cause := ctx.Err()
				if cause == nil {
					cause = ErrStopped
				}
				return nil, fmt.Errorf("cluster: the backup on node %s stopped fetching blob sha256:%s (%d bytes, %s) from its peers: %w",
					n.cfg.NodeID, bl.SHA256, bl.Size, strings.Join(bl.Versions, ", "), cause)
			}
			return nil, fmt.Errorf("cluster: %w: blob sha256:%s (%d bytes, %s) is not on node %s and no peer gave it: %v",
				ErrBackupBlobMissing, bl.SHA256, bl.Size, strings.Join(bl.Versions, ", "), n.cfg.NodeID, err)
		}
	}
	return b, nil
}

// experimentsOf returns, by model, the sums of the members' counts for
// the experiment each model of st runs, as experiment_results gives
// them; nil when no model runs one. It calls ask, for the members'
// statuses (memberStatuses: nil for a member that did not answer), once
// and only if a model runs one: asking waits for the slowest member.
func experimentsOf(st *fsm.State, ask func() map[string]*LocalStatus) map[string]*ExperimentResults {
	var out map[string]*ExperimentResults
	var statuses map[string]*LocalStatus
	for name, m := range st.Models {
		if m.Experiment == nil {
			continue
		}
		if out == nil {
			out = make(map[string]*ExperimentResults)
			statuses = ask()
		}
		out[name] = experimentResults(name, m.Experiment, statuses)
	}
	return out
}

// encodeBackupCounts returns the entry experiment_counts.json holding c
// and its description. The counts stay finite (feedback is bounded:
// gateway.MaxOutcome), so they encode.
func encodeBackupCounts(c map[string]*ExperimentResults) ([]byte, *BackupCounts, error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: cannot encode the experiments' counts for the backup: %w", err)
	}
	data = append(data, '\n')
	sum := sha256.Sum256(data)
	d := &BackupCounts{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Models: slices.Sorted(maps.Keys(c)), Nodes: []string{}}
	missing := map[string]bool{}
	for _, r := range c {
		for _, id := range r.Missing {
			missing[id] = true
		}
	}
	for _, r := range c {
		for _, id := range r.Nodes {
			if !missing[id] && !slices.Contains(d.Nodes, id) {
				d.Nodes = append(d.Nodes, id)
			}
		}
	}
	slices.Sort(d.Nodes)
	d.Missing = slices.Sorted(maps.Keys(missing))
	return data, d, nil
}

// originOf returns the node that stored bl first, for fetch's order.
func originOf(st *fsm.State, bl BackupBlob) string {
	for _, m := range st.Models {
		for _, v := range m.Versions {
			if v.SHA256 == bl.SHA256 {
				return v.Origin
			}
		}
	}
	return ""
}

// snapshotForBackup has raft snapshot the state machine (as it does on
// its own every SnapshotThreshold entries) and reads the newest snapshot
// back: the state at one raft index, with that index's term and the
// configuration committed then. Raft refuses a snapshot while a
// membership change is in flight; that is retried until ctx ends.
//
// Raft also refuses one ("nothing new to snapshot") when its state machine
// has been given no entry since the node started: a follower restarted
// after its last snapshot, with no write since (the new leader's no-op
// never reaches the state machine). Its state is then the snapshot it
// restored at start, which is read back instead.
func (n *Node) snapshotForBackup(ctx context.Context) (*raft.SnapshotMeta, []byte, error) {
	applied := n.fsm.Applied()
	delay := 50 * time.Millisecond
	for {
		fut := n.raft.Snapshot()
		err := fut.Error()
		if err == nil {
			meta, rc, err := fut.Open()
			if err != nil {
				return nil, nil, fmt.Errorf("cluster: cannot open the snapshot taken for the backup: %w", err)
			}
			return readBackupSnapshot(meta, rc)
		}
		if errors.Is(err, raft.ErrRaftShutdown) {
			return nil, nil, ErrStopped
		}
		if errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return n.restoredSnapshot(applied)
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("cluster: raft did not take a snapshot for the backup (last: %v): %w", err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// readBackupSnapshot reads the snapshot in rc, which it closes, within
// the bound of a backup's state.
func readBackupSnapshot(meta *raft.SnapshotMeta, rc io.ReadCloser) (*raft.SnapshotMeta, []byte, error) {
	defer rc.Close()
	if meta.Size > maxBackupState {
		return nil, nil, fmt.Errorf("cluster: the snapshot at raft index %d holds %d bytes, more than a backup takes (%d)", meta.Index, meta.Size, maxBackupState)
	}
	state, err := io.ReadAll(io.LimitReader(rc, maxBackupState+1))
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: cannot read the snapshot at raft index %d: %w", meta.Index, err)
	}
	if len(state) > maxBackupState {
		return nil, nil, fmt.Errorf("cluster: the snapshot at raft index %d holds more than the %d bytes a backup takes", meta.Index, maxBackupState)
	}
	return meta, state, nil
}

// restoredSnapshot returns the snapshot raft restored when this node
// started (the newest that reads, as raft picks it), for a backup when
// raft has nothing new to snapshot. It checks that the snapshot holds
// every command up to applied, which the state machine had processed
// before raft was asked: else the state has moved on and the snapshot
// would be older than the backup must be.
func (n *Node) restoredSnapshot(applied uint64) (*raft.SnapshotMeta, []byte, error) {
	list, err := n.snaps.List()
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: cannot list the snapshots of node %s for the backup: %w", n.cfg.NodeID, err)
	}
	if len(list) == 0 {
		return nil, nil, fmt.Errorf("cluster: node %s has applied no raft entry yet: nothing to back up", n.cfg.NodeID)
	}
	var skipped []string
	for _, sm := range list {
		meta, rc, err := n.snaps.Open(sm.ID)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", sm.ID, err))
			continue
		}
		meta, state, err := readBackupSnapshot(meta, rc)
		if err != nil {
			return nil, nil, err
		}
		f := fsm.New()
		if err := f.Restore(io.NopCloser(bytes.NewReader(state))); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", sm.ID, err))
			continue
		}
		if got := f.Applied(); got < applied {
			return nil, nil, fmt.Errorf("cluster: raft had nothing new to snapshot on node %s, but its newest snapshot (%s) holds commands up to raft index %d and the state machine had processed %d: try again", n.cfg.NodeID, sm.ID, got, applied)
		}
		return meta, state, nil
	}
	return nil, nil, fmt.Errorf("cluster: raft had nothing new to snapshot on node %s and none of its snapshots reads (%s)", n.cfg.NodeID, strings.Join(skipped, "; "))
}

// backupBlobs returns how many models st holds, how many of their
// versions are not retired, and those versions' blobs, each once, sorted
// by digest.
func backupBlobs(st *fsm.State) (models, versions int, out []BackupBlob) {
	at := map[string]int{}
	for _, name := range slices.Sorted(maps.Keys(st.Models)) {
		m := st.Models[name]
		if m.Removed() {
			continue
		}
		models++
		for _, v := range m.Versions {
			if v.Stage == fsm.StageRetired {
				continue
			}
			versions++
			label := fmt.Sprintf("%s:%d", name, v.Number)
			if i, ok := at[v.SHA256]; ok {
				out[i].Versions = append(out[i].Versions, label)
				continue
			}
			at[v.SHA256] = len(out)
			out = append(out, BackupBlob{SHA256: v.SHA256, Size: v.Size, Versions: []string{label}})
		}
	}
	slices.SortFunc(out, func(a, b BackupBlob) int { return strings.Compare(a.SHA256, b.SHA256) })
	return models, versions, out
}

// Close releases what b holds; it may be called more than once.
func (b *Backup) Close() {
	for _, f := range b.release {
		f()
	}
	b.release = nil
}

// WriteTo writes b as a tar archive to w: the manifest, the state, the
// experiments' counts if it has them, then each blob straight from the
// store, hashed while it streams. A blob whose bytes are not its
// digest's any more (rot on this node's disk) stops it with
// ErrDigestMismatch naming the blob; the archive then lacks its end and
// ReadBackup refuses it. Memory stays bounded by a copy buffer.
func (b *Backup) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	manifest, err := json.MarshalIndent(&b.Manifest, "", "  ")
	if err != nil {
		return cw.n, fmt.Errorf("cluster: cannot encode the backup manifest: %w", err)
	}
	mod := b.Manifest.Time
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mod, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	manifest = append(manifest, '\n')
	if c := b.Manifest.ExperimentCounts; c != nil {
		add, err := json.MarshalIndent(&backupAddendum{ExperimentCounts: c}, "", "  ")
		if err != nil {
			return cw.n, fmt.Errorf("cluster: cannot encode the backup manifest: %w", err)
		}
		manifest = append(append(manifest, add...), '\n')
	}
	if err := put(backupManifestName, manifest); err != nil {
		return cw.n, fmt.Errorf("cluster: cannot write the backup manifest: %w", err)
	}
	if err := put(backupStateName, b.state); err != nil {
		return cw.n, fmt.Errorf("cluster: cannot write the backup's state: %w", err)
	}
	if b.counts != nil {
		if err := put(backupCountsName, b.counts); err != nil {
			return cw.n, fmt.Errorf("cluster: cannot write the backup's experiment counts: %w", err)
		}
	}
	for _, bl := range b.Manifest.Blobs {
		if err := b.writeBlob(tw, bl); err != nil {
			return cw.n, err
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, fmt.Errorf("cluster: cannot end the backup archive: %w", err)
	}
	return cw.n, nil
}

func (b *Backup) writeBlob(tw *tar.Writer, bl BackupBlob) error {
	f, size, err := b.store.Open(bl.SHA256)
	if err != nil {
		return fmt.Errorf("cluster: %w: %v", ErrBackupBlobMissing, err)
	}
	defer f.Close()
	if size != bl.Size {
		return fmt.Errorf("cluster: blob sha256:%s on this node holds %d bytes; want %d: %w", bl.SHA256, size, bl.Size, blobs.ErrDigestMismatch)
	}
	if err := tw.WriteHeader(&tar.Header{Name: backupBlobPrefix + bl.SHA256, Mode: 0o444, Size: bl.Size, ModTime: b.Manifest.Time, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("cluster: cannot write blob sha256:%s into the backup: %w", bl.SHA256, err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(f, bl.Size)); err != nil {
		return fmt.Errorf("cluster: cannot write blob sha256:%s into the backup: %w", bl.SHA256, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != bl.SHA256 {
		return fmt.Errorf("cluster: blob sha256:%s on this node reads as sha256:%s (damaged on disk; restarting the node fetches it again): %w", bl.SHA256, got, blobs.ErrDigestMismatch)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadBackup reads an archive that Backup wrote (gzipped or not) and
// checks everything in it: the format (1 or 2), the state's digest and
// that it restores, the experiment counts' digest and that they are of
// the experiments the state gives, each blob's size and digest, that
// every blob the manifest lists comes once and nothing else does, and the
// archive's end. It hands
// each blob to blob, whose reader yields the blob's bytes (blob need not
// read them all); a nil blob only checks. It returns the manifest and the
// state; an error says what is wrong with the archive (ErrBadBackup).
func ReadBackup(r io.Reader, blob func(bl BackupBlob, r io.Reader) error) (*BackupManifest, []byte, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: its gzip header does not read: %v", ErrBadBackup, err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	tr := tar.NewReader(r)
	next := func(what string) (*tar.Header, error) {
		h, err := tr.Next()
		switch {
		case err == io.EOF:
			return nil, fmt.Errorf("%w: it ends before its %s (truncated?)", ErrBadBackup, what)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%w: it ends in the middle of an entry, before its %s (truncated?)", ErrBadBackup, what)
		case err != nil:
			return nil, fmt.Errorf("%w: it is not a tar archive as a backup is, before its %s: %v", ErrBadBackup, what, err)
		}
		return h, nil
	}
	h, err := next(backupManifestName)
	if err != nil {
		return nil, nil, err
	}
	if h.Name != backupManifestName {
		return nil, nil, fmt.Errorf("%w: its first entry is %q, not %s: it is not an infergate backup", ErrBadBackup, h.Name, backupManifestName)
	}
	if h.Size > maxBackupState {
		return nil, nil, fmt.Errorf("%w: its first entry is %s of %d bytes; a backup's is at most %d (damaged?)", ErrBadBackup, backupManifestName, h.Size, maxBackupState)
	}
	var m BackupManifest
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: its manifest does not read (truncated?): %v", ErrBadBackup, err)
	}
	// The format first, not minding fields this release does not know: a
	// later format's manifest may hold some, and is refused by its format.
	var head struct {
		Format  int    `json:"format"`
		Release string `json:"release"`
	}
	badFormat := func(format int, release string) error {
		return fmt.Errorf("%w: it is in backup format %d (written by release %q), and this release reads formats %d to %d: restore it with a release that reads it", ErrBadBackup, format, release, backupFormatNoCounts, BackupFormat)
	}
	if json.NewDecoder(bytes.NewReader(data)).Decode(&head) == nil && (head.Format < backupFormatNoCounts || head.Format > BackupFormat) {
		return nil, nil, badFormat(head.Format, head.Release)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("%w: its manifest is not the JSON a backup holds (damaged?): %v", ErrBadBackup, err)
	}
	if m.Format < backupFormatNoCounts || m.Format > BackupFormat {
		return nil, nil, badFormat(m.Format, m.Release)
	}
	var add backupAddendum
	switch err := dec.Decode(&add); {
	case err == io.EOF:
	case err != nil:
		return nil, nil, fmt.Errorf("%w: what follows its manifest's object is not the JSON a backup holds (damaged?): %v", ErrBadBackup, err)
	case add.ExperimentCounts == nil || dec.Decode(new(json.RawMessage)) != io.EOF:
		return nil, nil, fmt.Errorf("%w: what follows its manifest's object is not what a backup holds there (damaged?)", ErrBadBackup)
	default:
		m.ExperimentCounts = add.ExperimentCounts
	}
	if m.Format == backupFormatNoCounts && m.ExperimentCounts != nil {
		return nil, nil, fmt.Errorf("%w: its manifest is of format %d and lists experiment counts, which that format does not hold (damaged?)", ErrBadBackup, m.Format)
	}
	if c := m.ExperimentCounts; c != nil && (c.Size < 0 || c.Size > maxBackupState) {
		return nil, nil, fmt.Errorf("%w: its manifest gives the experiment counts %d bytes; a backup's are at most %d", ErrBadBackup, c.Size, maxBackupState)
	}
	if m.StateSize < 0 || m.StateSize > maxBackupState {
		return nil, nil, fmt.Errorf("%w: its manifest gives the state %d bytes; a backup's is at most %d", ErrBadBackup, m.StateSize, maxBackupState)
	}
	h, err = next(backupStateName)
	if err != nil {
		return nil, nil, err
	}
	if h.Name != backupStateName || h.Size != m.StateSize {
		return nil, nil, fmt.Errorf("%w: its second entry is %q of %d bytes; want %s of %d bytes", ErrBadBackup, h.Name, h.Size, backupStateName, m.StateSize)
	}
	state, err := io.ReadAll(tr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: its state does not read (truncated?): %v", ErrBadBackup, err)
	}
	if sum := sha256.Sum256(state); hex.EncodeToString(sum[:]) != m.StateSHA256 {
		return nil, nil, fmt.Errorf("%w: its state reads as sha256:%x; the manifest says sha256:%s (damaged)", ErrBadBackup, sum, m.StateSHA256)
	}
	f := fsm.New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(state))); err != nil {
		return nil, nil, fmt.Errorf("%w: its state does not restore: %v", ErrBadBackup, err)
	}
	// The manifest's counts and blobs are the state's: a manifest damaged
	// where no digest covers it says so here.
	st, _ := f.State()
	models, versions, bls := backupBlobs(st)
	if models != m.Models || versions != m.Versions || !slices.EqualFunc(bls, m.Blobs, func(a, b BackupBlob) bool {
		return a.SHA256 == b.SHA256 && a.Size == b.Size && slices.Equal(a.Versions, b.Versions)
	}) {
		return nil, nil, fmt.Errorf("%w: its manifest lists %d models, %d versions and %d blobs, and its state holds %d, %d and %d, or other blobs (damaged)", ErrBadBackup, m.Models, m.Versions, len(m.Blobs), models, versions, len(bls))
	}
	if m.ExperimentCounts != nil {
		if m.counts, err = readBackupCounts(next, tr, m.ExperimentCounts, st); err != nil {
			return nil, nil, err
		}
	}
	want := make(map[string]BackupBlob, len(m.Blobs))
	for _, bl := range m.Blobs {
		want[bl.SHA256] = bl
	}
	for range m.Blobs {
		h, err := next(fmt.Sprintf("blobs (%d listed)", len(m.Blobs)))
		if err != nil {
			return nil, nil, err
		}
		bl, ok := want[strings.TrimPrefix(h.Name, backupBlobPrefix)]
		if !ok || !strings.HasPrefix(h.Name, backupBlobPrefix) {
			return nil, nil, fmt.Errorf("%w: it holds %q, which its manifest does not list (or lists once only)", ErrBadBackup, h.Name)
		}
		delete(want, bl.SHA256)
		if h.Size != bl.Size {
			return nil, nil, fmt.Errorf("%w: blob sha256:%s is %d bytes in it; the manifest says %d", ErrBadBackup, bl.SHA256, h.Size, bl.Size)
		}
		hs := sha256.New()
		body := io.TeeReader(tr, hs)
		if blob != nil {
			if err := blob(bl, body); err != nil {
				return nil, nil, err
			}
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return nil, nil, fmt.Errorf("%w: blob sha256:%s ends early (truncated?): %v", ErrBadBackup, bl.SHA256, err)
		}
		if got := hex.EncodeToString(hs.Sum(nil)); got != bl.SHA256 {
			return nil, nil, fmt.Errorf("%w: blob sha256:%s (%s) reads as sha256:%s (damaged)", ErrBadBackup, bl.SHA256, strings.Join(bl.Versions, ", "), got)
		}
	}
	switch _, err := tr.Next(); {
	case err == io.EOF:
	case err != nil:
		return nil, nil, fmt.Errorf("%w: it lacks its end after the last blob (truncated?): %v", ErrBadBackup, err)
	default:
		return nil, nil, fmt.Errorf("%w: it holds more entries than its manifest lists", ErrBadBackup)
	}
	return &m, state, nil
}

// readBackupCounts reads the experiment_counts.json entry that d describes,
// the next in tr (next reads its header), and checks it against d and
// the state st: it counts, for each model d lists, the experiment the
// model runs in st, in its phase.
func readBackupCounts(next func(string) (*tar.Header, error), tr *tar.Reader, d *BackupCounts, st *fsm.State) (map[string]*ExperimentResults, error) {
	h, err := next(backupCountsName)
	if err != nil {
		return nil, err
	}
	if h.Name != backupCountsName || h.Size != d.Size {
		return nil, fmt.Errorf("%w: its third entry is %q of %d bytes; want %s of %d bytes", ErrBadBackup, h.Name, h.Size, backupCountsName, d.Size)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, fmt.Errorf("%w: its experiment counts do not read (truncated?): %v", ErrBadBackup, err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != d.SHA256 {
		return nil, fmt.Errorf("%w: its experiment counts read as sha256:%x; the manifest says sha256:%s (damaged)", ErrBadBackup, sum, d.SHA256)
	}
	var c map[string]*ExperimentResults
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%w: its experiment counts are not the JSON a backup holds: %v", ErrBadBackup, err)
	}
	if got := slices.Sorted(maps.Keys(c)); !slices.Equal(got, d.Models) {
		return nil, fmt.Errorf("%w: its experiment counts are of models %v; the manifest lists %v (damaged)", ErrBadBackup, got, d.Models)
	}
	for name, r := range c {
		m := st.Models[name]
		if r == nil || m == nil || m.Experiment == nil || !(&ExperimentCounts{Experiment: r.Experiment, Phase: r.Phase, Arms: r.Arms}).Of(m.Experiment) {
			return nil, fmt.Errorf("%w: its experiment counts for model %q are not of the experiment its state gives the model, in that phase (damaged)", ErrBadBackup, name)
		}
	}
	return c, nil
}

// ReadBackupFile is ReadBackup over the file at path.
func ReadBackupFile(path string, blob func(bl BackupBlob, r io.Reader) error) (*BackupManifest, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return ReadBackup(f, blob)
}
