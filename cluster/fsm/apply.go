package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// apply applies the valid command c to s. Each op checks everything
// against s before it changes anything, so a failing command leaves s as it
// was.
func (s *State) apply(c *Command, index uint64) *Result {
	var n int64
	var err error
	switch c.Op {
	case OpRegisterVersion:
		n, err = s.registerVersion(c)
	case OpSetAlias:
		n, err = c.Version, s.setAlias(c)
	case OpRollback:
		n, err = s.rollback(c)
	case OpRetireVersion:
		n, err = c.Version, s.retireVersion(c)
	case OpSetMember:
		m := *c.Member
		m.Fresh = false // a join request's, not the member's
		s.Members[m.ID] = &m
		// Taken in again (on fresh raft state, which the leader checks):
		// no longer barred.
		delete(s.Dropped, m.ID)
	case OpRemoveMember:
		// A mark from a recovery stays: only a fresh join lifts it.
		delete(s.Members, c.Member.ID)
	case OpDropMember:
		delete(s.Members, c.Member.ID)
		s.Dropped[c.Member.ID] = true
	case OpSetExperiment:
		err = s.setExperiment(c, index)
	case OpEndExperiment:
		err = s.endExperiment(c)
	case OpSetShadow:
		err = s.setShadow(c)
	case OpEndShadow:
		err = s.endShadow(c)
	case OpRemoveModel:
		err = s.removeModel(c)
	default:
		panic(fmt.Sprintf("BUG: op %q passed Validate but has no apply", c.Op))
	}
	if err != nil {
		return &Result{Err: err}
	}
	return &Result{Version: n}
}

func (s *State) registerVersion(c *Command) (int64, error) {
	m := s.Models[c.Model]
	next := int64(1)
	if m != nil {
		next = m.NextVersion
	}
	n := c.Version
	switch {
	case n == 0 && next > maxVersion:
		return 0, fmt.Errorf("%w: model %q has used every version number up to %d", ErrConflict, c.Model, int64(maxVersion))
	case n == 0:
		n = next
	case m != nil && m.Version(n) != nil:
		return 0, fmt.Errorf("%w: model %q already has version %d", ErrConflict, c.Model, n)
	case n < next:
		return 0, fmt.Errorf("%w: model %q cannot get version %d: numbers below %d were used or skipped and are never reused; ask for version 0 to get %d", ErrConflict, c.Model, n, next, next)
	}

	var config json.RawMessage
	if len(c.Config) > 0 {
		var b bytes.Buffer
		if err := json.Compact(&b, c.Config); err != nil {
			panic(fmt.Sprintf("BUG: config passed Validate but does not compact: %v", err))
		}
		config = b.Bytes()
	}
	if m == nil {
		m = &Model{Name: c.Model, Aliases: map[string]int64{}}
		s.Models[c.Model] = m
	}
	v := &Version{
		Number:  n,
		SHA256:  c.SHA256,
		Size:    c.Size,
		Stage:   StageStaged,
		Created: c.Created,
		Origin:  c.Origin,
		Config:  config,
	}
	// n >= NextVersion, which is above every number in Versions.
	m.Versions = append(m.Versions, v)
	m.NextVersion = n + 1
	if c.Promote || m.Production() == 0 {
		m.promote(v)
	}
	return n, nil
}

func (s *State) setAlias(c *Command) error {
	m, v, err := s.version(c.Model, c.Version)
	if err != nil {
		return err
	}
	if v.Stage == StageRetired {
		return fmt.Errorf("%w: cannot point alias %q at version %d of model %q: the version is retired", ErrConflict, c.Alias, v.Number, c.Model)
	}
	if c.Alias == AliasProduction {
		m.promote(v)
	} else {
		m.Aliases[c.Alias] = v.Number
	}
	return nil
}

func (s *State) rollback(c *Command) (int64, error) {
	m := s.Models[c.Model]
	if m == nil {
		return 0, fmt.Errorf("%w: model %q", ErrNotFound, c.Model)
	}
	cur := m.Production()
	// History[i:] is popped with the entry it rolls back to.
	i := m.rollbackEntry()
	if i < 0 {
		return 0, fmt.Errorf("%w: model %q has no earlier production version to roll back to", ErrConflict, c.Model)
	}
	to := m.Version(m.History[i])
	m.History = m.History[:i]
	if p := m.Version(cur); p != nil {
		p.Stage = StageStaged
	}
	to.Stage = StageProduction
	m.Aliases[AliasProduction] = to.Number
	return to.Number, nil
}

func (s *State) retireVersion(c *Command) error {
	m, v, err := s.version(c.Model, c.Version)
	if err != nil || v.Stage == StageRetired {
		return err
	}
	var aliases []string
	for alias, n := range m.Aliases {
		if n == v.Number {
			aliases = append(aliases, alias)
		}
	}
	if len(aliases) > 0 {
		slices.Sort(aliases)
		return fmt.Errorf("%w: cannot retire version %d of model %q: aliases %q point to it; point them at another version first (infergate models alias, or PUT /v1/models/%s/aliases/{alias})", ErrConflict, v.Number, c.Model, aliases, c.Model)
	}
	if sh := m.Shadow; sh != nil && sh.Version == v.Number {
		return fmt.Errorf("%w: cannot retire version %d of model %q: it is the model's shadow; end the shadow first (infergate models end-shadow %s, or DELETE /v1/models/%s/shadow)", ErrConflict, v.Number, c.Model, c.Model, c.Model)
	}
	if e := m.Experiment; e != nil && e.Uses(v.Number) {
		return fmt.Errorf("%w: cannot retire version %d of model %q: it is an arm of experiment %q; end the experiment (infergate models end-experiment %s, or DELETE /v1/models/%s/experiment) or set it without this version first", ErrConflict, v.Number, c.Model, e.Name, c.Model, c.Model)
	}
	v.Stage = StageRetired
	return nil
}

// version returns model name and its version n, or an error wrapping
// ErrNotFound.
func (s *State) version(name string, n int64) (*Model, *Version, error) {
	m := s.Models[name]
	if m == nil {
		return nil, nil, fmt.Errorf("%w: model %q", ErrNotFound, name)
	}
	v := m.Version(n)
	if v == nil {
		return nil, nil, fmt.Errorf("%w: model %q has no version %d", ErrNotFound, name, n)
	}
	return m, v, nil
}

// setExperiment sets c's experiment, the write at raft index index. An
// experiment that splits requests as the one it replaces carries on that
// one's phase; any other begins a phase at index (see
// route.Experiment.Phase), unless c has no Created time: a write of a
// release before phases, whose experiment has none, so that a node that
// replays it and one that restores a snapshot of that release agree.
func (s *State) setExperiment(c *Command, index uint64) error {
	m := s.Models[c.Model]
	if m == nil {
		return fmt.Errorf("%w: model %q is not registered in the cluster", ErrNotFound, c.Model)
	}
	for _, a := range c.Experiment.Arms {
		v := m.Version(a.Version)
		if v == nil {
			return fmt.Errorf("%w: arm %q: model %q has no version %d", ErrNotFound, a.Name, c.Model, a.Version)
		}
		if v.Stage == StageRetired {
			return fmt.Errorf("%w: arm %q: version %d of model %q is retired; retired versions are not served", ErrConflict, a.Name, a.Version, c.Model)
		}
	}
	e := c.Experiment.Clone()
	if old := m.Experiment; old.SameSplit(e) {
		e.Phase, e.Started = old.Phase, old.Started
	} else if !c.Created.IsZero() {
		e.Phase, e.Started = index, c.Created
	} else {
		e.Phase, e.Started = 0, time.Time{}
	}
	m.Experiment = e
	return nil
}

func (s *State) endExperiment(c *Command) error {
	m := s.Models[c.Model]
	if m == nil {
		return fmt.Errorf("%w: model %q is not registered in the cluster", ErrNotFound, c.Model)
	}
	if m.Experiment == nil {
		return fmt.Errorf("%w: model %q runs no experiment", ErrNotFound, c.Model)
	}
	m.Experiment = nil
	return nil
}

func (s *State) setShadow(c *Command) error {
	m := s.Models[c.Model]
	if m == nil {
		return fmt.Errorf("%w: model %q is not registered in the cluster", ErrNotFound, c.Model)
	}
	v := m.Version(c.Shadow.Version)
	if v == nil {
		return fmt.Errorf("%w: model %q has no version %d", ErrNotFound, c.Model, c.Shadow.Version)
	}
	if v.Stage == StageRetired {
		return fmt.Errorf("%w: version %d of model %q is retired; retired versions are not served", ErrConflict, v.Number, c.Model)
	}
	m.Shadow = c.Shadow.Clone()
	return nil
}

func (s *State) endShadow(c *Command) error {
	m := s.Models[c.Model]
	if m == nil {
		return fmt.Errorf("%w: model %q is not registered in the cluster", ErrNotFound, c.Model)
	}
	if m.Shadow == nil {
		return fmt.Errorf("%w: model %q has no shadow", ErrNotFound, c.Model)
	}
	m.Shadow = nil
	return nil
}

// removeModel ends model c.Model's experiment and shadow, drops its
// aliases and retires every version: no node serves it any more, and it
// stays for the record, with its numbering.
func (s *State) removeModel(c *Command) error {
	m := s.Models[c.Model]
	if m == nil {
		return fmt.Errorf("%w: model %q is not registered in the cluster", ErrNotFound, c.Model)
	}
	if m.Removed() {
		return fmt.Errorf("%w: model %q was removed already (every version is retired)", ErrNotFound, c.Model)
	}
	m.Experiment, m.Shadow = nil, nil
	clear(m.Aliases)
	for _, v := range m.Versions {
		v.Stage = StageRetired
	}
	return nil
}
