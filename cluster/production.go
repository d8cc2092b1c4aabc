package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
)

// productionFile keeps, in the raft data directory, each replicated
// model's production version as this node last knew it. A node that
// restarts serves the versions on its disk before raft has given it the
// group's state back, with the repository's own rule for unversioned
// requests, the highest version, which may be a staged one: the file lets
// RestoreProduction, called before the repository loads, route them to
// production from the first request (or answer "not ready" until
// production loads) instead.
const productionFile = "production.json"

// saveProduction records, for each of st's models with a production
// version, the version this node routes its unversioned requests to:
// production, or while production is not ready here (it failed to load on
// this node, say) the version that serves in its place (see route), so
// that a restart serves as the node served before it, not "not ready"
// for ever. Only the reconciler's goroutine calls it. An empty state
// before the first save writes nothing, so that a restarted node that has
// not caught up yet keeps the file it found.
func (n *Node) saveProduction(st *fsm.State) {
	prod := make(map[string]int64, len(st.Models))
	for name, m := range st.Models {
		if p := m.Production(); p != 0 {
			if d := n.cfg.Registry.DefaultVersion(name); d != 0 {
				p = d
			}
			prod[name] = p
		}
	}
	if !maps.Equal(prod, n.savedProduction) && n.saveJSON(productionFile, "the models' production versions", prod) {
		n.savedProduction = prod
	}
	stands := make(map[string]standInRecord)
	for name, d := range prod {
		if lm := n.cfg.Registry.Model(name); lm != nil {
			if retired, until := lm.StandIn(); retired != 0 && retired == d {
				stands[name] = standInRecord{Version: retired, Until: until}
			}
		}
	}
	if n.savedStandIns == nil && len(stands) == 0 {
		if _, err := os.Stat(filepath.Join(n.cfg.DataDir, standInsFile)); os.IsNotExist(err) {
			n.savedStandIns = stands
			return
		}
	}
	if n.savedStandIns != nil && maps.Equal(stands, n.savedStandIns) {
		return
	}
	if n.saveJSON(standInsFile, "the models' retired stand-ins", stands) {
		n.savedStandIns = stands
	}
}

// standInsFile keeps, beside productionFile, each model whose recorded
// version there is a retired stand-in (reconciler.standIn), so that a
// restarted node answers only the unversioned requests with it, as
// before, and not requests that name it.
const standInsFile = "standins.json"

// standInRecord is a retired version that answers a model's unversioned
// requests until version Until is ready.
type standInRecord struct {
	Version int64 `json:"version"`
	Until   int64 `json:"until"`
}

// splitsFile keeps, in the raft data directory, each replicated model's
// experiment and shadow as this node last knew them, for the reason
// productionFile keeps production: a restarted node splits a unit's
// requests as the other nodes do as soon as the arms have loaded, not only once
// raft has replayed its log.
const splitsFile = "splits.json"

// split is a model's experiment and shadow, as splitsFile holds them.
type split struct {
	Experiment *route.Experiment `json:"experiment,omitempty"`
	Shadow     *route.Shadow     `json:"shadow,omitempty"`
}

func (a split) equal(b split) bool {
	return a.Experiment.Equal(b.Experiment) && a.Shadow.Equal(b.Shadow)
}

// saveSplits records st's experiments and shadows when they changed, as
// saveProduction does production.
func (n *Node) saveSplits(st *fsm.State) {
	splits := make(map[string]split)
	for name, m := range st.Models {
		if m.Experiment != nil || m.Shadow != nil {
			splits[name] = split{Experiment: m.Experiment, Shadow: m.Shadow}
		}
	}
	if len(st.Models) == 0 && n.savedSplits == nil {
		return
	}
	if n.savedSplits != nil && maps.EqualFunc(splits, n.savedSplits, split.equal) {
		return
	}
	if n.saveJSON(splitsFile, "the models' experiments and shadows", splits) {
		n.savedSplits = splits
	}
}

// RestoreProduction routes the unversioned requests of every model whose
// production version the node in raft data directory dir recorded to that
// version, unless something set the model's default already, so that a
// restarted node never sends them to a staged version while raft catches
// up; and it gives every model the experiment and shadow the node
// recorded, so that a unit gets the same arm there as on the other nodes,
// with the counts of its arms (countsFile).
// Call it before the repository loads: models load and serve before the
// control plane starts. Missing files (a new node) are no error; a
// damaged one is, saying what it means: the repository's own rule, the
// highest version, routes those requests until raft has caught up and the
// file is written again.
func RestoreProduction(dir string, repo *registry.Repository) error {
	// The counts first: the experiments restoreSplits sets take them.
	return errors.Join(restoreProduction(dir, repo), restoreCounts(dir, repo), restoreSplits(dir, repo))
}

func restoreProduction(dir string, repo *registry.Repository) error {
	path := filepath.Join(dir, productionFile)
	var prod map[string]int64
	if err := loadJSON(path, &prod); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("cannot read the models' production versions from %s (%v): until raft catches up with the group and writes it again, unversioned requests go to each model's highest version, which may be a staged one; remove the file to silence this", path, err)
	}
	for name, v := range prod {
		if v > 0 && repo.DefaultVersion(name) == 0 {
			repo.SetDefault(name, v)
		}
	}
	path = filepath.Join(dir, standInsFile)
	var stands map[string]standInRecord
	if err := loadJSON(path, &stands); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("cannot read the models' retired stand-ins from %s (%v): until raft catches up with the group, requests that name one are answered too; remove the file to silence this", path, err)
	}
	for name, rec := range stands {
		if rec.Version > 0 && rec.Until > 0 && rec.Version == prod[name] && repo.DefaultVersion(name) == rec.Version {
			repo.HandOver(name, rec.Version, rec.Until, true)
		}
	}
	return nil
}

// restoreSplits gives every model the experiment and shadow the node in
// dir recorded. A missing file is no error; a damaged one, or a damaged
// entry, is, and leaves those models without until raft catches up.
func restoreSplits(dir string, repo *registry.Repository) error {
	path := filepath.Join(dir, splitsFile)
	var splits map[string]split
	if err := loadJSON(path, &splits); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("cannot read the models' experiments and shadows from %s (%v): until raft catches up with the group and writes it again, unversioned requests go to production and nothing is shadowed; remove the file to silence this", path, err)
	}
	var errs []error
	for name, sp := range splits {
		if sp.Experiment != nil {
			if err := sp.Experiment.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("model %q: experiment: %w", name, err))
			} else {
				repo.SetExperiment(name, sp.Experiment)
			}
		}
		if sp.Shadow != nil {
			if err := sp.Shadow.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("model %q: shadow: %w", name, err))
			} else {
				repo.SetShadow(name, sp.Shadow)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s holds entries that are not valid, left out until raft catches up: %w", path, errors.Join(errs...))
	}
	return nil
}

// servedFile keeps, in the raft data directory, the versions of each
// replicated model this node last loaded and the configuration it loaded
// them with, for the reason productionFile keeps production: a restarted
// node loads what it served before, production and the experiment's arms
// included, before it says it is ready. Without it the repository's own
// rule loads only each model's highest version, and the others come
// later, once raft has caught up: meanwhile unversioned requests find no
// production and the arms fall back.
const servedFile = "served.json"

// servedModel is what servedFile holds of one model.
type servedModel struct {
	Versions []int64         `json:"versions"`
	Config   json.RawMessage `json:"config,omitempty"`
	// SHA256 holds each version's digest by its number, for
	// CheckRestoredFiles; a file of a release before has none.
	SHA256 map[string]string `json:"sha256,omitempty"`
}

func (a servedModel) equal(b servedModel) bool {
	return slices.Equal(a.Versions, b.Versions) && bytes.Equal(a.Config, b.Config) && maps.Equal(a.SHA256, b.SHA256)
}

// saveServed records served when it changed, as saveProduction does
// production. Only the reconciler's goroutine calls it.
func (n *Node) saveServed(st *fsm.State, served map[string]servedModel) {
	if len(st.Models) == 0 && n.savedServed == nil {
		return
	}
	if n.savedServed != nil && maps.EqualFunc(served, n.savedServed, servedModel.equal) {
		return
	}
	if n.saveJSON(servedFile, "the versions this node serves", served) {
		n.savedServed = maps.Clone(served)
	}
}

// RestoredLoads returns, for each replicated model the node in raft data
// directory dir served when it stopped, the configuration to load it with
// (repository.Load's override): the versions it served and the
// configuration the cluster gave them. Load them so, before the control
// plane starts, and the node serves as it did from its first ready
// moment. A missing file (a new node) gives none and no error; a damaged
// one, or a damaged entry, gives an error saying what it means, and the
// other entries.
func RestoredLoads(dir string) (map[string]*registry.ModelConfig, error) {
	path := filepath.Join(dir, servedFile)
	var served map[string]servedModel
	if err := loadJSON(path, &served); err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot read the versions this node served from %s (%v): each model's highest version loads first, the others once raft catches up; remove the file to silence this", path, err)
	}
	out := make(map[string]*registry.ModelConfig, len(served))
	var errs []error
	for name, sm := range served {
		cfg, err := sm.modelConfig()
		if err != nil {
			errs = append(errs, fmt.Errorf("model %q: %w", name, err))
			continue
		}
		out[name] = cfg
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s holds entries that are not valid; those models load their highest version first, the others once raft catches up: %w", path, errors.Join(errs...))
	}
	return out, nil
}

// CheckRestoredFiles hashes the repository files (under repoDir) of the
// versions restored (from RestoredLoads) loads, and leaves out each whose
// digest is not the one recorded in raft data directory dir: a file that
// rotted on disk. The digest check of the running node waits for raft to
// replay, which takes as long as the group has no leader, and the node
// would serve the file's bytes meanwhile. A model left with no version
// stays in restored as nil: load nothing of it before raft replays (then
// its files are fetched again). The error names each file left out. It
// reads each restored file once more before its load.
func CheckRestoredFiles(dir, repoDir string, restored map[string]*registry.ModelConfig) error {
	var served map[string]servedModel
	if err := loadJSON(filepath.Join(dir, servedFile), &served); err != nil {
		return nil // RestoredLoads said what is wrong with it
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(restored)) {
		cfg, sm := restored[name], served[name]
		if cfg == nil || cfg.VersionPolicy.Specific == nil || len(sm.SHA256) == 0 {
			continue
		}
		var keep []int64
		for _, v := range cfg.VersionPolicy.Specific.Versions {
			want := sm.SHA256[strconv.FormatInt(v, 10)]
			path := filepath.Join(repoDir, name, strconv.FormatInt(v, 10), "model.onnx")
			if want != "" {
				if got, err := fileSHA256(path); err == nil && got != want {
					errs = append(errs, fmt.Errorf("model %q version %d: %s holds other bytes (sha256 %.12s) than the cluster registered (%.12s): it is not loaded until raft has replayed and the file is fetched again", name, v, path, got, want))
					continue
				}
			}
			keep = append(keep, v)
		}
		if len(keep) == 0 {
			restored[name] = nil
			continue
		}
		cfg.VersionPolicy.Specific.Versions = keep
	}
	return errors.Join(errs...)
}

// fileSHA256 returns the hex sha256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// modelConfig is the override that loads sm's versions as recorded.
func (sm servedModel) modelConfig() (*registry.ModelConfig, error) {
	if len(sm.Versions) == 0 {
		return nil, errors.New("no versions")
	}
	for _, v := range sm.Versions {
		if v < 1 {
			return nil, fmt.Errorf("version %d is not a positive integer", v)
		}
	}
	var cfg registry.ModelConfig
	if len(sm.Config) > 0 {
		var err error
		if cfg, err = registry.ParseModelConfig(sm.Config); err != nil {
			return nil, fmt.Errorf("its config: %w", err)
		}
	}
	cfg.VersionPolicy = registry.VersionPolicy{Specific: &registry.SpecificPolicy{Versions: slices.Clone(sm.Versions)}}
	return &cfg, nil
}
