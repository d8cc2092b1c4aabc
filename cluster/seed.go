package cluster

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/registry"
)

// seed registers the versions the registry serves from its directory when
// this node has just bootstrapped a new group, so that a lone gateway's
// models become the cluster's and joining nodes pull them. Version numbers
// and the configuration are kept (config.json, or config.pbtxt in the same
// JSON form); the served default becomes production. A configuration given
// through the repository load API is not: the cluster's is the file's.
func (n *Node) seed() {
	ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
	defer cancel()
	if err := n.ReadIndex(ctx); err != nil {
		n.logf(logging.Error+"cluster: cannot register the local models in the new group: %v", err)
		return
	}
	if !n.inConfiguration() {
		// Another group took this node's raft address over (a member's
		// wiped --data: watchTakeover): its models are not this node's
		// to register.
		n.logf(logging.Warning + "cluster: not registering the local models: this node is not in the raft configuration it bootstrapped, another group's leader replicates to it")
		return
	}
	st, _ := n.fsm.State()
	for _, m := range n.cfg.Registry.Models() {
		if st.Models[m.Name] != nil {
			continue
		}
		if err := n.seedModel(ctx, m.Name); err != nil {
			n.logf(logging.Error+"cluster: cannot register local model %q: %v", m.Name, err)
		}
	}
}

func (n *Node) seedModel(ctx context.Context, name string) error {
	m := n.cfg.Registry.Model(name)
	if m == nil {
		return nil
	}
	dir := filepath.Join(n.cfg.Registry.Dir(), name)
	config, err := registry.ModelConfigJSON(dir)
	if err != nil {
		return err
	}
	if cfg, err := registry.ParseModelConfig(config); err != nil {
		return err
	} else if err := cfg.CheckClusterConfig(); err != nil {
		return err
	}
	// What this node serves unversioned now becomes production. (Read it
	// before registering: the reconciler starts only after seeding, but
	// this keeps the rule in one place.)
	def := m.Default()
	var first int64 // the first version registered becomes production
	for _, v := range m.Versions() {
		path := filepath.Join(dir, strconv.FormatInt(v.Number, 10), "model.onnx")
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		if st, err := f.Stat(); err == nil {
			if err := n.cfg.Disk.Check(st.Size()); err != nil {
				f.Close()
				return fmt.Errorf("storing %s: %w", path, err)
			}
		}
		hex, size, err := n.cfg.Blobs.Put(f, 1<<40)
		f.Close()
		if err != nil {
			return fmt.Errorf("storing %s: %w", path, err)
		}
		res, err := n.Apply(ctx, fsm.Command{
			Op: fsm.OpRegisterVersion, Model: name, Version: v.Number,
			SHA256: hex, Size: size, Created: time.Now().UTC(), Origin: n.cfg.NodeID, Config: config,
		})
		if err != nil {
			return err
		}
		if first == 0 {
			first = res.Version
		}
		n.logf("cluster: registered local model %q version %d (sha256:%s)", name, res.Version, hex)
	}
	prod := first
	if def != nil && def.Number != first {
		if _, err := n.Apply(ctx, fsm.Command{Op: fsm.OpSetAlias, Model: name, Alias: fsm.AliasProduction, Version: def.Number}); err != nil {
			return err
		}
		prod = def.Number
	}
	if prod != 0 {
		n.logf("cluster: model %q: production is version %d, the highest version its version_policy serves%s", name, prod, leftOut(dir, m.Versions()))
	}
	return nil
}

// leftOut names the version directories in the model directory dir that
// are not among registered (the model's version_policy leaves them out),
// as a clause of seedModel's log line: after a wiped --data, the highest
// directory may be a version the cluster rolled back, and the others the
// production it replaced.
func leftOut(dir string, registered []*registry.Version) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var out []string
	for _, e := range entries {
		v, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || !e.IsDir() || slices.ContainsFunc(registered, func(r *registry.Version) bool { return r.Number == v }) {
			continue
		}
		out = append(out, e.Name())
	}
	if len(out) == 0 {
		return ""
	}
	slices.SortFunc(out, func(a, b string) int {
		x, _ := strconv.ParseInt(a, 10, 64)
		y, _ := strconv.ParseInt(b, 10, 64)
		return cmp.Compare(x, y)
	})
	return fmt.Sprintf("; not registered: version %s of its directory, which the policy leaves out or which did not load (to make another version production, restore --data from a backup, or set config.json's version_policy and start on an empty --data again)", strings.Join(out, ", "))
}
