package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster"
)

func clusterRecover(out adminOutput, args []string) error {
	fs := out.flagSet("cluster recover", "--data DIR [--cluster ADDR] [--dry-run]",
		`Make a stopped node the only member of its group, for a group that lost most
of its voters for good (their machines or data directories gone): with no
majority it elects no leader and takes no writes, though every node goes on
serving what it has loaded.

Run it on one survivor whose process is stopped, with that node's --data. It
prints the node's newest raft entry (index and term): with several survivors,
run it with --dry-run on each, non-voters too, and recover the one with the
highest term, then the highest index. Then start that node as before: it
elects itself and takes writes.

Every other member is dropped: its raft log may hold entries the recovered
node does not have, which raft cannot reconcile, so the group takes it in
again only on fresh raft state. For each survivor: stop it, move its
--data/raft aside, and start it again with --join (a member's URL); it gets
the recovered state and serves again. Started on its old raft state, it is
refused, says so in its log and reports not ready. A lost machine's
replacement joins the same way, on a fresh --data.

Do not run it while the lost voters could come back with their data: two of
them started together may elect each other under the old configuration, and
the group would have two leaders. Keep them down until they start on fresh
raft state.`)
	data := fs.String("data", "", "the stopped node's data directory (serve's --data); required")
	raftAddr := fs.String("cluster", "", "the raft address the node will listen on from now (serve's --cluster), when it moves; default: the one its configuration names")
	dryRun := fs.Bool("dry-run", false, "print what the node holds and what would change, and write nothing")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *data == "" {
		fmt.Fprintln(fs.Output(), "--data is required: the stopped node's data directory")
		fs.Usage()
		return errUsage
	}
	if *raftAddr != "" {
		if _, _, err := net.SplitHostPort(*raftAddr); err != nil {
			return fmt.Errorf("--cluster %q: want host:port, as serve's --cluster: %v", *raftAddr, err)
		}
	}
	if fi, err := os.Stat(*data); err != nil || !fi.IsDir() {
		return fmt.Errorf("--data %s is not a directory", *data)
	}
	id, err := storedNodeID(*data, "")
	if err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("%s has no node-id: it is not a node's data directory, or the node never started", *data)
	}
	unlock, err := lockDataDir(*data)
	if err != nil {
		return fmt.Errorf("node %s is running on %s (its lock is held): stop it first", id, *data)
	}
	defer unlock()
	r, err := cluster.Recover(filepath.Join(*data, "raft"), id, *raftAddr, !*dryRun)
	if err != nil {
		return err
	}
	printRecovery(out.stdout, r, *data, *dryRun)
	return nil
}

// printRecovery says what Recover found, what it changed (or would), and
// what to do next.
func printRecovery(w io.Writer, r *cluster.Recovery, data string, dryRun bool) {
	fmt.Fprintf(w, "node %s in %s: newest raft entry %d, term %d\n", r.NodeID, data, r.LastIndex, r.LastTerm)
	fmt.Fprintf(w, "configuration now:       %s\n", describeServers(r.Before.Servers))
	if !r.Needed() {
		fmt.Fprintf(w, "nothing to recover: %s is its group's only member already\n", r.NodeID)
		return
	}
	fmt.Fprintf(w, "configuration recovered: %s\n", describeServers(r.After.Servers))
	if len(r.Dropped) > 0 {
		fmt.Fprintf(w, "dropped: %s\n", strings.Join(r.Dropped, ", "))
	}
	if dryRun {
		fmt.Fprintln(w, "dry run: nothing written")
		return
	}
	fmt.Fprintf(w, `recovered: start the node again on --data %s; it elects itself and takes writes.
Each dropped node joins again only on fresh raft state: stop it, move its
--data/raft aside, and start it with --join and a member's URL.
`, data)
}

// describeServers lists a raft configuration's servers in one line.
func describeServers(servers []raft.Server) string {
	if len(servers) == 0 {
		return "(empty)"
	}
	parts := make([]string, 0, len(servers))
	for _, s := range servers {
		kind := "voter"
		if s.Suffrage == raft.Nonvoter {
			kind = "non-voter"
		}
		parts = append(parts, fmt.Sprintf("%s (%s, raft %s)", s.ID, kind, s.Address))
	}
	return strings.Join(parts, ", ")
}
