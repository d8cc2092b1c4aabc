package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/internal/certs"
	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/registry/blobs"
)

// clusterBackup is `infergate cluster backup`: GET /v1/cluster/backup
// into a file, written atomically and checked before it is renamed.
func clusterBackup(out adminOutput, args []string) error {
	fs := out.flagSet("cluster backup", "--out FILE [flags]",
		`Save a consistent backup of the cluster's state, taken online from the member
at --addr (any member: a follower first catches up with the leader's commit
index), into FILE: a tar archive holding the replicated state at one raft
index (models, versions, aliases, experiments, shadows, members), a manifest,
the counts of each running experiment summed over the members that answer
within a second (as "experiment_results" sums them; those that do not are
named), and the blob of every version that is not retired, each checked
against its sha256. The node takes a raft snapshot for it and streams the
blobs from its store, neither stopping nor slowing predictions; one backup
runs at a time on a node. The traffic log and models only in a node's
--models are not in it.

The archive is written to a temporary file beside FILE, read back and checked
in full, synced, and only then renamed to FILE: FILE is never a partial
archive. Restore it with "infergate cluster restore".`)
	cfg := adminFlags(fs, false)
	// The archive takes as long as its blobs take: --timeout bounds only
	// the wait for the node's answer to start (below).
	fs.Lookup("timeout").Usage = "give up waiting for the node's answer to start after this long (it takes a raft snapshot first, and a follower catches up with the leader); the archive itself then takes as long as its blobs take"
	outPath := fs.String("out", "", "the file to write the archive to; required")
	gz := fs.Bool("gzip", false, "have the node gzip the archive (model weights compress little; it costs the node CPU)")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *outPath == "" {
		fmt.Fprintln(fs.Output(), "--out is required: the file to write the backup to")
		fs.Usage()
		return errUsage
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	start := time.Now()
	u := cl.base + "/v1/cluster/backup"
	if *gz {
		u += "?gzip=1"
	}
	// --timeout bounds the wait for the answer to start; the archive
	// itself takes as long as its blobs take.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timer := time.AfterFunc(cl.timeout, cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("cannot build the request GET %s: %w", u, err)
	}
	req.Header.Set("User-Agent", "infergate/"+version)
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	hc := *cl.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if !timer.Stop() && err != nil {
		return fmt.Errorf("GET %s: no answer within --timeout %s", u, cl.timeout)
	}
	if err != nil {
		return fmt.Errorf("cannot reach the admin API at %s: %w%s", cl.base, err, certs.Hint(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return newAdminError(resp, body, cl.token != "")
	}
	dir, base := filepath.Split(*outPath)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("--out %s: cannot create a file beside it: %w", *outPath, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, resp.Body)
	if err != nil {
		return fmt.Errorf("the backup stopped after %d bytes (the node logs why): %w", n, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	m, _, err := cluster.ReadBackup(tmp, nil)
	if err != nil {
		return fmt.Errorf("the archive received (%d bytes) does not check out, nothing written to %s (the node logs why, if it stopped): %w", n, *outPath, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("cannot sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), *outPath); err != nil {
		return fmt.Errorf("cannot rename %s to %s: %w", tmp.Name(), *outPath, err)
	}
	done = true
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("cannot sync %s: %w", dir, err)
	}
	fmt.Fprintf(out.stdout, "backup of raft index %d (term %d) taken by node %s (release %s) at %s\n", m.Index, m.Term, m.NodeID, orValue(m.Release, "dev"), m.Time.Format(time.RFC3339))
	fmt.Fprintf(out.stdout, "holds %s, %s, %s (%d bytes); members then: %s\n", counted(m.Models, "model"), counted(m.Versions, "version"), counted(len(m.Blobs), "blob"), m.Bytes(), backupMembers(m))
	fmt.Fprintln(out.stdout, backupCounts(m, "none (no model runs an experiment)"))
	fmt.Fprintf(out.stdout, "wrote %s: %d bytes in %s\n", *outPath, n, time.Since(start).Round(time.Millisecond))
	return nil
}

// backupMembers lists a backup's members in one line.
func backupMembers(m *cluster.BackupManifest) string {
	parts := make([]string, 0, len(m.Members))
	for _, mb := range m.Members {
		kind := "voter"
		if !mb.Voter {
			kind = "non-voter"
		}
		parts = append(parts, fmt.Sprintf("%s (%s, raft %s)", mb.ID, kind, mb.RaftAddr))
	}
	return strings.Join(parts, ", ")
}

// backupCounts says in one line which experiment counts the backup m
// carries, or none, why.
func backupCounts(m *cluster.BackupManifest, none string) string {
	c := m.ExperimentCounts
	if c == nil {
		return "experiment counts: " + none
	}
	return fmt.Sprintf("experiment counts of %s from %s (missing: %s)", counted(len(c.Models), "model"), counted(len(c.Nodes), "node"), orValue(strings.Join(c.Missing, ", "), "none"))
}

// clusterRestore is `infergate cluster restore`: offline, into an empty
// data directory.
func clusterRestore(out adminOutput, args []string) error {
	fs := out.flagSet("cluster restore", "--from FILE --data DIR --cluster ADDR [--node-id ID]",
		`Make a new data directory from a backup ("infergate cluster backup"), for a
group lost as a whole, or to start a copy of one: a node started on it with
"serve --data DIR --cluster ADDR" is the only voter of a group holding the
backed-up state, elects itself, and serves the backup's models from their
blobs. Then start the others on fresh --data with --join and its URL; they
fetch the state and the blobs from it.

It checks the whole archive first (its format, the state's and every blob's
sha256, its end) and writes nothing when any of it is wrong. DIR must be empty
or not exist. The old members are not carried over: the restored state marks
them dropped, as "cluster recover" does, so none joins on its old raft state
(move its --data/raft aside first, as after a recovery). The node gets a new
id unless --node-id names one. The experiments' counts the backup carries
become the restored node's own, so the group's results go on from them (the
joiners count from 0); an archive without them (from a release before they
were carried) starts them over.`)
	from := fs.String("from", "", "the backup archive; required")
	data := fs.String("data", "", "the data directory to create (serve's --data): empty or absent; required")
	raftAddr := fs.String("cluster", "", "the raft address the restored node will listen on (serve's --cluster); required")
	id := fs.String("node-id", "", "the restored node's id (default: a new random one)")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	for _, f := range []struct{ name, v, what string }{{"from", *from, "the backup archive"}, {"data", *data, "the data directory to create"}, {"cluster", *raftAddr, "the raft address the node will listen on"}} {
		if f.v == "" {
			fmt.Fprintf(fs.Output(), "--%s is required: %s\n", f.name, f.what)
			fs.Usage()
			return errUsage
		}
	}
	if _, _, err := net.SplitHostPort(*raftAddr); err != nil {
		return fmt.Errorf("--cluster %q: want host:port, as serve's --cluster: %v", *raftAddr, err)
	}
	if *id != "" && (len(*id) > 128 || strings.TrimSpace(*id) != *id || strings.ContainsFunc(*id, unicode.IsControl)) {
		return fmt.Errorf("--node-id %q: use at most 128 bytes, without spaces at either end or control characters", *id)
	}
	existed := false
	switch entries, err := os.ReadDir(*data); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("--data %s: %w", *data, err)
	case len(entries) > 0:
		return fmt.Errorf("--data %s is not empty (it holds %s): restore into a new directory", *data, entries[0].Name())
	default:
		existed = true
	}
	start := time.Now()
	m, _, err := cluster.ReadBackupFile(*from, nil)
	if err != nil {
		return fmt.Errorf("--from %s: %w; nothing written to %s", *from, err, *data)
	}
	res, err := restoreInto(*from, *data, *id, *raftAddr)
	if err != nil {
		// Leave DIR as it was: absent, or empty.
		if existed {
			entries, _ := os.ReadDir(*data)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(*data, e.Name()))
			}
		} else {
			os.RemoveAll(*data)
		}
		return err
	}
	w := out.stdout
	fmt.Fprintf(w, "restored raft index %d (term %d) of the backup taken by node %s at %s into %s in %s\n", m.Index, m.Term, m.NodeID, m.Time.Format(time.RFC3339), *data, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(w, "%s, %s, %s (%d bytes)\n", counted(m.Models, "model"), counted(m.Versions, "version"), counted(len(m.Blobs), "blob"), m.Bytes())
	fmt.Fprintln(w, backupCounts(m, "none in the archive (its experiments count from 0)"))
	fmt.Fprintf(w, "node %s, the only voter, raft %s\n", res.NodeID, res.RaftAddr)
	if len(res.Dropped) > 0 {
		fmt.Fprintf(w, "dropped: %s\n", strings.Join(res.Dropped, ", "))
	}
	fmt.Fprintf(w, `next: infergate serve --data %s --cluster %s --http ... ; then start the
others on fresh --data with --join and its URL.
`, *data, *raftAddr)
	return nil
}

// restoreInto writes the node id, the blobs and the raft state into data.
func restoreInto(from, data, id, raftAddr string) (*cluster.Restored, error) {
	unlock, err := lockDataDir(data)
	if err != nil {
		return nil, err
	}
	defer unlock()
	nid, err := nodeID(data, id)
	if err != nil {
		return nil, err
	}
	store, err := blobs.Open(filepath.Join(data, "blobs"))
	if err != nil {
		return nil, err
	}
	return cluster.RestoreBackup(from, filepath.Join(data, "raft"), store, nid, raftAddr)
}

// counted returns n and the noun one, plural but for 1: "1 model", "2 models".
func counted(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}
