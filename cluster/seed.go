package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
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
		n.logf("cluster: cannot register the local models in the new group: %v", err)
		return
	}
	if !n.inConfiguration() {
		// Another group took this node's raft address over (a member's
		// wiped --data: watchTakeover): its models are not this node's
		// to register.
		n.logf("cluster: not registering the local models: this node is not in the raft configuration it bootstrapped, another group's leader replicates to it")
		return
	}
	st, _ := n.fsm.State()
	for _, m := range n.cfg.Registry.Models() {
		if st.Models[m.Name] != nil {
			continue
		}
		if err := n.seedModel(ctx, m.Name); err != nil {
			n.logf("cluster: cannot register local model %q: %v", m.Name, err)
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
	if def != nil && def.Number != first {
		_, err := n.Apply(ctx, fsm.Command{Op: fsm.OpSetAlias, Model: name, Alias: fsm.AliasProduction, Version: def.Number})
		return err
	}
	return nil
}
