// Package route splits a model's unversioned requests among its versions
// for A/B experiments.
//
// An Experiment names two or more arms, each a version with a weight.
// A request that carries a unit id (a user, a session, a device: whatever
// the experiment compares) gets the arm the unit hashes to, the same on
// every node and after every restart, for as long as the experiment's
// salt and arms stay the same. A request without one gets an arm at
// random, in proportion to the weights.
//
// The arms take contiguous ranges of the hash space in their order, so
// growing the share of the first or the last arm keeps in it every unit it
// had: ramping a treatment listed last from 10% to 50% only moves units
// into it. A new salt reshuffles every unit.
//
// The package is pure logic: it imports no server code and no ONNX
// Runtime, and its zero values are not useful (use Validate, then
// Assign).
package route

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Limits of an Experiment.
const (
	// MaxArms is the most arms an experiment has.
	MaxArms = 16
	// MaxWeight is the largest weight of one arm.
	MaxWeight = 1_000_000
	// MaxSaltLen is the longest salt, in bytes.
	MaxSaltLen = 128
	// MaxUnitLen is the longest unit id Assign hashes whole; longer ones
	// are refused by the gateway before they reach it.
	MaxUnitLen = 256
)

// Experiment splits a model's unversioned requests among versions.
type Experiment struct {
	// Name names the experiment in metrics and in the response header
	// that carries the arm.
	Name string `json:"name"`
	// Salt is hashed with each unit id; empty means Name. Two experiments
	// with different salts assign units independently.
	Salt string `json:"salt,omitempty"`
	// Arms are the versions compared, in the order their ranges of the
	// hash space follow.
	Arms []Arm `json:"arms"`
	// Phase and Started are set by the cluster, not by a client (a
	// request's are ignored): the raft index of the write that began the
	// experiment's current phase, and when the node that took that write
	// received it. A phase begins when the experiment starts and each time
	// its split changes (salt, arms, versions or weights), which moves
	// units between arms; its arms' counts are the phase's. Both are zero
	// for an experiment a release before phases began.
	Phase   uint64    `json:"phase,omitempty"`
	Started time.Time `json:"started,omitzero"`
}

// Arm is one side of an experiment.
type Arm struct {
	// Name is the arm's name, like "control" or "treatment".
	Name string `json:"name"`
	// Version is the model version the arm's requests get. Two arms may
	// name the same version (an A/A test).
	Version int64 `json:"version"`
	// Weight is the arm's share of units against the other arms' weights;
	// 0 takes it out of the split without ending the experiment.
	Weight int `json:"weight"`
}

// namePattern is the rule for experiment and arm names.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// CheckName reports whether s is a valid experiment or arm name.
func CheckName(s string) error {
	if !namePattern.MatchString(s) {
		return fmt.Errorf("name %q is not valid; use 1-63 lowercase letters, digits, '_' or '-', starting with a letter", s)
	}
	return nil
}

// Validate reports what is wrong with e, in words that say what to fix;
// it does not look at which versions exist.
func (e *Experiment) Validate() error {
	if e == nil {
		return errors.New("the experiment is missing")
	}
	if err := CheckName(e.Name); err != nil {
		return fmt.Errorf("experiment %w", err)
	}
	if len(e.Salt) > MaxSaltLen {
		return fmt.Errorf("the salt has %d bytes; at most %d", len(e.Salt), MaxSaltLen)
	}
	if len(e.Arms) < 2 || len(e.Arms) > MaxArms {
		return fmt.Errorf("the experiment has %d arms; give 2 to %d, each {\"name\": ..., \"version\": N, \"weight\": W}", len(e.Arms), MaxArms)
	}
	total := 0
	for i, a := range e.Arms {
		if err := CheckName(a.Name); err != nil {
			return fmt.Errorf("arm %d: %w", i, err)
		}
		for _, b := range e.Arms[:i] {
			if b.Name == a.Name {
				return fmt.Errorf("two arms are called %q; arm names must differ", a.Name)
			}
		}
		if a.Version < 1 {
			return fmt.Errorf("arm %q: version %d; name the version of the model it serves (1 or more)", a.Name, a.Version)
		}
		if a.Weight < 0 || a.Weight > MaxWeight {
			return fmt.Errorf("arm %q: weight %d is out of range; want 0-%d", a.Name, a.Weight, MaxWeight)
		}
		total += a.Weight
	}
	if total == 0 {
		return errors.New("every arm has weight 0; give at least one a positive weight")
	}
	return nil
}

// Uses reports whether an arm of e serves version n.
func (e *Experiment) Uses(n int64) bool {
	for _, a := range e.Arms {
		if a.Version == n {
			return true
		}
	}
	return false
}

// Clone returns a deep copy of e; e may be nil.
func (e *Experiment) Clone() *Experiment {
	if e == nil {
		return nil
	}
	c := *e
	c.Arms = append([]Arm(nil), e.Arms...)
	return &c
}

// Equal reports whether e and o split requests the same way under the
// same name, in the same phase; either may be nil.
func (e *Experiment) Equal(o *Experiment) bool {
	return e.SameSplit(o) && (e == nil || e.Phase == o.Phase && e.Started.Equal(o.Started))
}

// SameSplit reports whether e and o split requests the same way under
// the same name, whatever their phases; either may be nil.
func (e *Experiment) SameSplit(o *Experiment) bool {
	if e == nil || o == nil {
		return e == o
	}
	if e.Name != o.Name || e.salt() != o.salt() || len(e.Arms) != len(o.Arms) {
		return false
	}
	for i := range e.Arms {
		if e.Arms[i] != o.Arms[i] {
			return false
		}
	}
	return true
}

// String renders e on one line: its name, each arm's version and share
// of the weights, and its salt when it is not the name.
func (e *Experiment) String() string {
	total := 0
	for _, a := range e.Arms {
		total += a.Weight
	}
	var b strings.Builder
	b.WriteString(e.Name)
	b.WriteString(": ")
	for i, a := range e.Arms {
		if i > 0 {
			b.WriteString(", ")
		}
		share := 0.0
		if total > 0 {
			share = 100 * float64(a.Weight) / float64(total)
		}
		pct := strings.TrimSuffix(strconv.FormatFloat(share, 'f', 1, 64), ".0")
		fmt.Fprintf(&b, "%s=version %d (%s%%)", a.Name, a.Version, pct)
	}
	if e.Salt != "" && e.Salt != e.Name {
		fmt.Fprintf(&b, ", salt %q", e.Salt)
	}
	return b.String()
}

func (e *Experiment) salt() string {
	if e.Salt == "" {
		return e.Name
	}
	return e.Salt
}

// Assign returns the index in e.Arms of the arm unit belongs to; with an
// empty unit, an arm at random in proportion to the weights. e must be
// valid.
func (e *Experiment) Assign(unit []byte) int {
	var x uint64
	if len(unit) == 0 {
		x = rand.Uint64()
	} else {
		x = UnitHash(e.salt(), unit)
	}
	return e.arm(x)
}

// arm maps x, uniform over 64 bits, onto the arms' ranges.
func (e *Experiment) arm(x uint64) int {
	total := 0
	for _, a := range e.Arms {
		total += a.Weight
	}
	// The high word of x × total is uniform over [0, total) without the
	// bias of a modulo.
	pos, _ := bits.Mul64(x, uint64(total))
	last := 0
	for i, a := range e.Arms {
		if a.Weight == 0 {
			continue
		}
		if pos < uint64(a.Weight) {
			return i
		}
		pos -= uint64(a.Weight)
		last = i
	}
	return last // unreachable while total is the sum
}

// UnitHash is the 64-bit position of unit in an experiment salted with
// salt: FNV-1a over the salt, a 0xff byte (which UTF-8 text never holds)
// and the unit, then MurmurHash3's 64-bit finalizer, so that units that
// differ in one byte land far apart. It is part of the contract: the same
// salt and unit give the same arm on every node and in every release.
func UnitHash(salt string, unit []byte) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(salt); i++ {
		h ^= uint64(salt[i])
		h *= prime
	}
	h ^= 0xff
	h *= prime
	for _, c := range unit {
		h ^= uint64(c)
		h *= prime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
