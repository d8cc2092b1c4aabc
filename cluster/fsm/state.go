package fsm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
)

// Version stages.
const (
	// StageStaged is a version that is stored but takes no unversioned
	// traffic.
	StageStaged = "staged"
	// StageProduction is the version the production alias points to.
	StageProduction = "production"
	// StageRetired is a version that is kept for the record but can no
	// longer be aliased or served.
	StageRetired = "retired"
)

// AliasProduction is the alias that routes unversioned traffic.
const AliasProduction = "production"

const (
	// maxVersion is the largest version number: 18 digits, the most a
	// version directory name may have in a registry.
	maxVersion = 999_999_999_999_999_999
	// maxHistory bounds Model.History.
	maxHistory = 32
)

// State is the replicated control-plane state.
//
// A State returned by FSM.State belongs to the caller. Its maps are never
// nil.
type State struct {
	// Models holds every model by name.
	Models map[string]*Model `json:"models"`
	// Members holds every cluster member by node id.
	Members map[string]*Member `json:"members"`
	// Dropped holds the ids of the members a recovery dropped
	// (cluster.Recover): their raft logs may hold entries the group does
	// not, so the leader takes them in again only on fresh raft state.
	Dropped map[string]bool `json:"dropped,omitempty"`
}

// Model is one model and all its versions.
type Model struct {
	// Name is the model name; see registry.CheckName.
	Name string `json:"name"`
	// Versions is ascending by Number; retired versions are kept.
	Versions []*Version `json:"versions"`
	// Aliases maps an alias to a version number. AliasProduction routes
	// unversioned traffic.
	Aliases map[string]int64 `json:"aliases"`
	// History holds the earlier production versions, oldest first, at most
	// 32. Rollback pops it.
	History []int64 `json:"production_history"`
	// NextVersion is the number the next registered version gets when it
	// asks for none. Numbers are never reused, even after retirement.
	NextVersion int64 `json:"next_version"`
	// Experiment, when set, splits the model's unversioned requests among
	// its arms' versions in place of the production alias. Its arms name
	// versions that exist and are not retired.
	Experiment *route.Experiment `json:"experiment,omitempty"`
	// Shadow, when set, copies a sample of the model's requests to its
	// version, which exists and is not retired, to compare the answers.
	Shadow *route.Shadow `json:"shadow,omitempty"`
}

// Version is one immutable version of a model.
type Version struct {
	// Number is the version number, starting at 1.
	Number int64 `json:"version"`
	// SHA256 is the blob's checksum: 64 lowercase hex characters.
	SHA256 string `json:"sha256"`
	// Size is the blob's size in bytes, > 0.
	Size int64 `json:"size"`
	// Stage is StageStaged, StageProduction or StageRetired.
	Stage string `json:"stage"`
	// Created is set by the node that accepted the write, never by Apply.
	Created time.Time `json:"created"`
	// Origin is the id of the node that stored the blob first; peers fetch
	// from it first.
	Origin string `json:"origin"`
	// Config is the model's config.json for this version, a compact JSON
	// object that this package does not interpret.
	Config json.RawMessage `json:"config,omitempty"`
}

// Member is one node of the cluster.
type Member struct {
	// ID is the raft server id.
	ID string `json:"id"`
	// RaftAddr is the raft transport address.
	RaftAddr string `json:"raft_addr"`
	// HTTPAddr is the base URL of the node's API, like
	// http://127.0.0.1:8080.
	HTTPAddr string `json:"http_addr"`
	// Voter says whether the node votes in raft elections.
	Voter bool `json:"voter"`
	// RaftTLS says the node speaks raft over mutual TLS (--cluster-ca).
	RaftTLS bool `json:"raft_tls,omitempty"`
	// Fresh, in a join request, says the node's raft state is empty
	// (nothing in its log or snapshots). It travels in a header
	// (cluster.HeaderFresh), never in JSON, so that a node of an earlier
	// release reads the request and the log entry.
	Fresh bool `json:"-"`
	// KnowsDropped, in a join request, says the node's release reads
	// State.Dropped (it sent the header at all): a node of an earlier
	// release cannot read a recovered group's snapshots. Never stored.
	KnowsDropped bool `json:"-"`
	// Protocol, in a join request, is the joining node's
	// cluster.Protocol (cluster.HeaderProtocol); 0 from an earlier
	// release. Never stored.
	Protocol int `json:"-"`
}

// newState returns an empty State.
func newState() *State {
	return &State{Models: map[string]*Model{}, Members: map[string]*Member{}, Dropped: map[string]bool{}}
}

// Model returns the model called name, or nil. s may be nil.
func (s *State) Model(name string) *Model {
	if s == nil {
		return nil
	}
	return s.Models[name]
}

// Clone returns a deep copy of s. s may be nil.
func (s *State) Clone() *State {
	if s == nil {
		return nil
	}
	c := &State{
		Models:  make(map[string]*Model, len(s.Models)),
		Members: make(map[string]*Member, len(s.Members)),
		Dropped: make(map[string]bool, len(s.Dropped)),
	}
	for id := range s.Dropped {
		c.Dropped[id] = true
	}
	for name, m := range s.Models {
		c.Models[name] = m.clone()
	}
	for id, mb := range s.Members {
		mb := *mb
		c.Members[id] = &mb
	}
	return c
}

func (m *Model) clone() *Model {
	c := *m
	c.Versions = make([]*Version, len(m.Versions))
	for i, v := range m.Versions {
		v := *v
		v.Config = bytes.Clone(v.Config)
		c.Versions[i] = &v
	}
	c.Aliases = maps.Clone(m.Aliases)
	c.History = slices.Clone(m.History)
	c.Experiment = m.Experiment.Clone()
	c.Shadow = m.Shadow.Clone()
	return &c
}

// rollbackEntry returns the index in History of the version a rollback
// makes production: the most recent entry that exists, is not retired
// and is not production; -1 for none.
func (m *Model) rollbackEntry() int {
	cur := m.Production()
	for i := len(m.History) - 1; i >= 0; i-- {
		if v := m.Version(m.History[i]); v != nil && v.Number != cur && v.Stage != StageRetired {
			return i
		}
	}
	return -1
}

// RollbackTarget returns the version a rollback would make production
// now, or 0 when there is none.
func (m *Model) RollbackTarget() int64 {
	if i := m.rollbackEntry(); i >= 0 {
		return m.History[i]
	}
	return 0
}

// Version returns version n of m, or nil. m may be nil.
func (m *Model) Version(n int64) *Version {
	if m == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(m.Versions, n, func(v *Version, n int64) int {
		return cmp.Compare(v.Number, n)
	})
	if !ok {
		return nil
	}
	return m.Versions[i]
}

// Removed reports whether m was removed (OpRemoveModel): it has versions
// and every one is retired. Only a removal leaves a model so, since
// production is never retired; an upload makes it served again. m may be
// nil.
func (m *Model) Removed() bool {
	if m == nil || len(m.Versions) == 0 {
		return false
	}
	for _, v := range m.Versions {
		if v.Stage != StageRetired {
			return false
		}
	}
	return true
}

// Production returns the number of the version the production alias points
// to, or 0 if there is none. m may be nil.
func (m *Model) Production() int64 {
	if m == nil {
		return 0
	}
	return m.Aliases[AliasProduction]
}

// promote points the production alias at v. The previous production
// version, if another, goes back to staged and onto History.
func (m *Model) promote(v *Version) {
	prev := m.Production()
	if prev == v.Number {
		return
	}
	if p := m.Version(prev); p != nil {
		p.Stage = StageStaged
		m.History = append(m.History, prev)
		if n := len(m.History); n > maxHistory {
			m.History = slices.Delete(m.History, 0, n-maxHistory)
		}
	}
	v.Stage = StageProduction
	m.Aliases[AliasProduction] = v.Number
}

// normalize replaces the nil maps that JSON null decodes to with empty ones.
func (s *State) normalize() {
	if s.Models == nil {
		s.Models = map[string]*Model{}
	}
	if s.Members == nil {
		s.Members = map[string]*Member{}
	}
	if s.Dropped == nil {
		s.Dropped = map[string]bool{}
	}
	for _, m := range s.Models {
		if m != nil && m.Aliases == nil {
			m.Aliases = map[string]int64{}
		}
	}
}

// check reports a broken invariant of s, or nil. Every State that Apply
// produces passes; Restore rejects snapshots that do not.
func (s *State) check() error {
	for name, m := range s.Models {
		if m == nil {
			return fmt.Errorf("model %q is null", name)
		}
		if m.Name != name {
			return fmt.Errorf("model %q is stored under the name %q", m.Name, name)
		}
		if err := m.check(); err != nil {
			return fmt.Errorf("model %q: %w", name, err)
		}
	}
	for id, mb := range s.Members {
		if mb == nil {
			return fmt.Errorf("member %q is null", id)
		}
		if mb.ID != id {
			return fmt.Errorf("member %q is stored under the id %q", mb.ID, id)
		}
		if err := checkMember(mb); err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) check() error {
	if err := registry.CheckName(m.Name); err != nil {
		return err
	}
	if m.NextVersion < 1 || m.NextVersion > maxVersion+1 {
		return fmt.Errorf("next_version %d is out of range [1, %d]", m.NextVersion, int64(maxVersion+1))
	}
	prod := m.Production()
	var last int64
	for _, v := range m.Versions {
		if v == nil {
			return fmt.Errorf("null version after version %d", last)
		}
		if v.Number <= last || v.Number >= m.NextVersion {
			return fmt.Errorf("version %d is not between the previous one (%d) and next_version (%d)", v.Number, last, m.NextVersion)
		}
		last = v.Number
		if err := checkBlob(v.SHA256, v.Size, v.Config); err != nil {
			return fmt.Errorf("version %d: %w", v.Number, err)
		}
		switch v.Stage {
		case StageStaged, StageRetired:
		case StageProduction:
			if v.Number != prod {
				return fmt.Errorf("version %d is in stage production but the production alias points to %d", v.Number, prod)
			}
		default:
			return fmt.Errorf("version %d has the unknown stage %q", v.Number, v.Stage)
		}
	}
	for alias, n := range m.Aliases {
		if err := checkAlias(alias); err != nil {
			return err
		}
		v := m.Version(n)
		if v == nil || v.Stage == StageRetired {
			return fmt.Errorf("alias %q points to version %d, which does not exist or is retired", alias, n)
		}
		if alias == AliasProduction && v.Stage != StageProduction {
			return fmt.Errorf("the production alias points to version %d in stage %s", n, v.Stage)
		}
	}
	if e := m.Experiment; e != nil {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
		for _, a := range e.Arms {
			if v := m.Version(a.Version); v == nil || v.Stage == StageRetired {
				return fmt.Errorf("arm %q of experiment %q serves version %d, which does not exist or is retired", a.Name, e.Name, a.Version)
			}
		}
	}
	if sh := m.Shadow; sh != nil {
		if err := sh.Validate(); err != nil {
			return fmt.Errorf("shadow: %w", err)
		}
		if v := m.Version(sh.Version); v == nil || v.Stage == StageRetired {
			return fmt.Errorf("the shadow is version %d, which does not exist or is retired", sh.Version)
		}
	}
	if len(m.History) > maxHistory {
		return fmt.Errorf("production_history has %d entries; want at most %d", len(m.History), maxHistory)
	}
	for _, n := range m.History {
		if m.Version(n) == nil {
			return fmt.Errorf("production_history holds version %d, which does not exist", n)
		}
	}
	return nil
}
