package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// Upload stores onnx as the next version of model name, after the trial
// load of Config.Check, and registers it through raft from any node; with
// promote it becomes production at once (the first version always does).
// config, when not empty, is the version's config.json (batching,
// instances, cache; the cluster picks the versions, so no
// version_policy); the production version's config applies to the model.
// The bytes stay in this node's blob store; the others pull them.
func (n *Node) Upload(ctx context.Context, name string, onnx []byte, promote bool, config []byte) (*fsm.Result, string, error) {
	return n.UploadChecked(ctx, name, onnx, promote, config, nil)
}

// UploadChecked is Upload with check, when not nil, called with the
// model's inputs and outputs once the trial load (Config.Check) has read
// them, before anything is stored: an error from it refuses the upload as
// it is. Without Config.Check, check is not called.
func (n *Node) UploadChecked(ctx context.Context, name string, onnx []byte, promote bool, config []byte, check func(inputs, outputs []oip.TensorMetadata) error) (*fsm.Result, string, error) {
	if err := registry.CheckName(name); err != nil {
		return nil, "", fmt.Errorf("%w: %w", fsm.ErrInvalid, err)
	}
	var cfg registry.ModelConfig
	if len(bytes.TrimSpace(config)) > 0 {
		var err error
		cfg, err = registry.ParseModelConfig(config)
		if err != nil {
			return nil, "", fmt.Errorf("%w: the model config: %w", fsm.ErrInvalid, err)
		}
		if p := cfg.VersionPolicy; p.Latest != nil || p.All != nil || p.Specific != nil {
			return nil, "", fmt.Errorf("%w: the model config sets version_policy; in a cluster the registered versions and the production alias decide what is served, so leave it out", fsm.ErrInvalid)
		}
		if err := cfg.CheckClusterConfig(); err != nil {
			return nil, "", fmt.Errorf("%w: the model config: %w", fsm.ErrInvalid, err)
		}
	} else {
		config = nil
	}
	if len(onnx) == 0 {
		return nil, "", fmt.Errorf("%w: the body is empty; send the ONNX model's bytes (Content-Type: application/octet-stream)", fsm.ErrInvalid)
	}
	if st, _ := n.fsm.State(); st.Models[name] == nil && n.cfg.Registry.Model(name) != nil && n.behind() {
		// A restart serves the cluster's files before raft has caught
		// up: decide on the group's state, not on a stale one.
		if err := n.ReadIndex(ctx); err != nil {
			return nil, "", err
		}
	}
	if st, _ := n.fsm.State(); st.Models[name] == nil && n.cfg.Registry.Model(name) != nil {
		return nil, "", fmt.Errorf("%w: model %q is served from this node's --models directory, outside the cluster; a cluster model of that name would replace its files. Pick another name, or move the local model out of --models first", fsm.ErrConflict, name)
	}
	if n.cfg.Check != nil {
		in, out, err := n.trialLoad(ctx, onnx)
		if err != nil && (ctx.Err() != nil || errors.Is(err, ErrTrialLoadsBusy)) {
			return nil, "", err // not the model's fault
		}
		if err != nil {
			return nil, "", fmt.Errorf("%w: the body is not a model this gateway can serve: %w", fsm.ErrInvalid, err)
		}
		// Its own config applies once it is production; while it is
		// staged, production's does (see reconciler.modelConfig).
		if err := cfg.CheckModel(name, in, out); err != nil {
			return nil, "", fmt.Errorf("%w: the model config does not fit the model: %w", fsm.ErrInvalid, err)
		}
		if promote {
			if err := n.checkLiveVersions(name, cfg); err != nil {
				return nil, "", err
			}
		}
		if pc, p, ok := n.productionConfig(name); ok && !promote {
			if err := pc.CheckModel(name, in, out); err != nil {
				return nil, "", fmt.Errorf("%w: the config of version %d, production, which applies to every version of %q while this one is staged, does not fit it; upload it with promote, so that its own config applies, or first give production a config that fits both: %w", fsm.ErrInvalid, p, name, err)
			}
		}
		if check != nil {
			if err := check(in, out); err != nil {
				return nil, "", err
			}
		}
	}
	if err := n.cfg.Disk.Check(int64(len(onnx))); err != nil {
		return nil, "", fmt.Errorf("cannot store the upload on node %s: %w", n.cfg.NodeID, err)
	}
	sum := sha256.Sum256(onnx)
	defer n.holdBlob(fmt.Sprintf("%x", sum))() // until registered: see sweepBlobs
	hex, size, err := n.cfg.Blobs.Put(bytes.NewReader(onnx), int64(len(onnx)))
	if err != nil {
		return nil, "", fmt.Errorf("cannot store the upload: %w", err)
	}
	res, err := n.Apply(ctx, fsm.Command{
		Op: fsm.OpRegisterVersion, Model: name, SHA256: hex, Size: size,
		Created: time.Now().UTC().Truncate(time.Millisecond), Origin: n.cfg.NodeID, Promote: promote, Config: config,
	})
	return res, hex, err
}

// checkLiveVersions reports a live version of model name, loaded on this
// node, that cfg does not fit: promoted with an upload, cfg applies to
// every version of the model (reconciler.modelConfig). Versions this node
// has not loaded cannot be checked here; they fail where they load, with
// the reason in their status.
func (n *Node) checkLiveVersions(name string, cfg registry.ModelConfig) error {
	st, _ := n.fsm.State()
	m := st.Models[name]
	lm := n.cfg.Registry.Model(name)
	if m == nil || lm == nil {
		return nil
	}
	for _, v := range lm.Versions() {
		if fv := m.Version(v.Number); fv == nil || fv.Stage == fsm.StageRetired {
			continue
		}
		if err := cfg.CheckModel(name, v.Inputs, v.Outputs); err != nil {
			return fmt.Errorf("%w: promoted, the model config applies to every version of %q, and does not fit version %d, which is live: %w", fsm.ErrInvalid, name, v.Number, err)
		}
	}
	return nil
}

// productionConfig returns the config of model name's production version
// from the local state, and the version; ok is false when there is none
// or it cannot be read (the reconciler reports that).
func (n *Node) productionConfig(name string) (cfg registry.ModelConfig, version int64, ok bool) {
	st, _ := n.fsm.State()
	m := st.Models[name]
	if m == nil {
		return cfg, 0, false
	}
	p := m.Production()
	pv := m.Version(p)
	if p == 0 || pv == nil {
		return cfg, 0, false
	}
	if len(pv.Config) == 0 {
		return cfg, p, true
	}
	cfg, err := registry.ParseModelConfig(pv.Config)
	return cfg, p, err == nil
}

// ModelView is a model as the admin API shows it.
type ModelView struct {
	Name       string `json:"name"`
	Production int64  `json:"production,omitempty"`
	// RollbackTo is the version a rollback would make production now
	// (infergate models rollback), if any.
	RollbackTo int64            `json:"rollback_to,omitempty"`
	Aliases    map[string]int64 `json:"aliases"`
	Versions   []VersionView    `json:"versions"`
	// Experiment is the A/B experiment the model runs, if any.
	Experiment *route.Experiment `json:"experiment,omitempty"`
	// Shadow is the version that gets copies of the model's requests, if
	// any.
	Shadow *route.Shadow `json:"shadow,omitempty"`
	// ExperimentResults is what the members counted for Experiment.
	ExperimentResults *ExperimentResults `json:"experiment_results,omitempty"`
	// Removed says the model was taken off the cluster (fsm.OpRemoveModel):
	// every version is retired and no node serves it, until an upload.
	Removed bool `json:"removed,omitempty"`
}

// VersionView is one version with its state on every member.
type VersionView struct {
	fsm.Version
	// Nodes maps member ids to the version's state there; a member that
	// did not answer in time is "unreachable". Retired versions have none,
	// but from a member that keeps one as the stand-in of a production
	// not ready there yet, whose state says so.
	Nodes map[string]VersionStatus `json:"nodes,omitempty"`
}

// peerStatusTimeout bounds the wait for the members' readiness reports.
const peerStatusTimeout = time.Second

// Models returns the replicated models from the local state (all of them,
// or the one named), with each version's readiness on every member, asked
// in parallel and bounded by a second.
func (n *Node) Models(ctx context.Context, only string) ([]ModelView, error) {
	st, _ := n.fsm.State()
	if only != "" && st.Models[only] == nil {
		return nil, fmt.Errorf("%w: model %q is not registered in the cluster", fsm.ErrNotFound, only)
	}
	statuses := n.memberStatuses(ctx, st)
	var out []ModelView
	for name, m := range st.Models {
		if only != "" && name != only {
			continue
		}
		mv := ModelView{Name: name, Production: m.Production(), RollbackTo: m.RollbackTarget(), Aliases: m.Aliases, Experiment: m.Experiment, Shadow: m.Shadow, Removed: m.Removed()}
		if m.Experiment != nil {
			mv.ExperimentResults = experimentResults(name, m.Experiment, statuses)
		}
		if mv.Aliases == nil {
			mv.Aliases = map[string]int64{}
		}
		for _, v := range m.Versions {
			vv := VersionView{Version: *v}
			num := strconv.FormatInt(v.Number, 10)
			if v.Stage == fsm.StageRetired {
				// Reported only where a node keeps it as the stand-in of
				// a production not ready there (reconciler.standIn).
				for id, ls := range statuses {
					if ls == nil {
						continue
					}
					if s, ok := ls.Models[name][num]; ok {
						if vv.Nodes == nil {
							vv.Nodes = make(map[string]VersionStatus)
						}
						vv.Nodes[id] = s
					}
				}
			} else {
				vv.Nodes = make(map[string]VersionStatus, len(statuses))
				for id, ls := range statuses {
					switch {
					case ls == nil:
						vv.Nodes[id] = VersionStatus{State: "unreachable"}
					case ls.Models[name] == nil:
						vv.Nodes[id] = pendingStatus(ls)
					default:
						s, ok := ls.Models[name][num]
						if !ok {
							s = pendingStatus(ls)
						}
						vv.Nodes[id] = s
					}
				}
			}
			mv.Versions = append(mv.Versions, vv)
		}
		out = append(out, mv)
	}
	slices.SortFunc(out, func(a, b ModelView) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// memberStatuses asks every member for its LocalStatus; nil marks one that
// did not answer, or that is listed unreachable: by this node, or, on a
// follower, by the leader, asked beside the members (a hung member would
// hold every call up for peerStatusTimeout).
func (n *Node) memberStatuses(ctx context.Context, st *fsm.State) map[string]*LocalStatus {
	ctx, cancel := context.WithTimeout(ctx, peerStatusTimeout)
	defer cancel()
	out := make(map[string]*LocalStatus, len(st.Members)+1)
	out[n.cfg.NodeID] = n.LocalStatus()
	var mu sync.Mutex // guards out once the goroutines start
	var wg sync.WaitGroup
	asks := make(map[string]context.CancelFunc, len(st.Members))
	for id, m := range st.Members {
		if id == n.cfg.NodeID {
			continue
		}
		if n.unreachable(raft.ServerID(id)) {
			mu.Lock()
			out[id] = nil
			mu.Unlock()
			continue
		}
		ask, cancelAsk := context.WithCancel(ctx)
		defer cancelAsk()
		asks[id] = cancelAsk
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls, err := n.peers.localStatus(ask, m.HTTPAddr)
			if err != nil {
				ls = nil
			}
			mu.Lock()
			out[id] = ls
			mu.Unlock()
		}()
	}
	if !n.IsLeader() && len(asks) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			silent, _ := n.leaderUnreachable()
			for id := range silent {
				if cancelAsk := asks[id]; cancelAsk != nil {
					cancelAsk() // its goroutine marks it nil, unless it answered first
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// behind reports whether this node's state may lag the group's by more
// than replication does: it knows of no leader (it has just started, or is
// cut off), or it has not applied what it knows to be committed.
func (n *Node) behind() bool {
	if addr, _ := n.raft.LeaderWithID(); addr == "" {
		return true
	}
	return n.raft.AppliedIndex() < n.raft.CommitIndex()
}

// maxTrialLoads bounds the trial loads (Config.Check) a node runs at
// once. Each holds a session of its model, as much memory as serving it
// takes, for as long as it loads: a script that uploads or promotes many
// models at once would otherwise hold one per request. More wait their
// turn.
const maxTrialLoads = 2

// trialLoad runs Config.Check on onnx once fewer than maxTrialLoads run,
// or fails when ctx ends first, or with ErrTrialLoadsBusy after
// Config.TrialLoadWait.
func (n *Node) trialLoad(ctx context.Context, onnx []byte) (inputs, outputs []oip.TensorMetadata, err error) {
	wait := time.NewTimer(n.cfg.TrialLoadWait)
	defer wait.Stop()
	select {
	case n.trialLoads <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("waited for one of the %d trial loads of other uploads or promotions running on node %s: %w", maxTrialLoads, n.cfg.NodeID, ctx.Err())
	case <-wait.C:
		return nil, nil, fmt.Errorf("%w: other uploads or promotions held node %s's %d trial loads for all of %s; retry once they are done", ErrTrialLoadsBusy, n.cfg.NodeID, maxTrialLoads, n.cfg.TrialLoadWait)
	}
	defer func() { <-n.trialLoads }()
	return n.cfg.Check(onnx)
}

// VersionSignature returns the inputs and outputs of version v of model
// name from the trial load (Config.Check) of its blob on this node's
// disk, for a node that has not loaded it (yet). ok is false when the
// state has no such version, its blob is not here (still being fetched),
// or the node has no Config.Check. A large model takes as long as its
// load: call it for admin writes, not requests.
func (n *Node) VersionSignature(name string, v int64) (inputs, outputs []oip.TensorMetadata, ok bool, err error) {
	st, _ := n.fsm.State()
	m := st.Models[name]
	if m == nil || n.cfg.Check == nil {
		return nil, nil, false, nil
	}
	ver := m.Version(v)
	if ver == nil || !n.cfg.Blobs.Has(ver.SHA256) {
		return nil, nil, false, nil
	}
	f, size, err := n.cfg.Blobs.Open(ver.SHA256)
	if err != nil {
		return nil, nil, false, nil // gone meanwhile (a sweep): cannot tell
	}
	data := make([]byte, size) // read at once: a model may be large
	_, err = io.ReadFull(f, data)
	f.Close()
	if err != nil {
		return nil, nil, false, fmt.Errorf("cannot read the blob of model %q version %d: %w", name, v, err)
	}
	if inputs, outputs, err = n.trialLoad(context.Background(), data); errors.Is(err, ErrTrialLoadsBusy) {
		return nil, nil, false, err
	} else if err != nil {
		return nil, nil, false, fmt.Errorf("cannot load model %q version %d from its blob: %w", name, v, err)
	}
	return inputs, outputs, true, nil
}
