package fsm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"time"

	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
)

// Op names what a Command does.
type Op string

// The ops a Command can carry.
const (
	// OpRegisterVersion adds a version to a model, creating the model if
	// needed.
	OpRegisterVersion Op = "register_version"
	// OpSetAlias points an alias at a version.
	OpSetAlias Op = "set_alias"
	// OpRollback points the production alias back at the previous
	// production version.
	OpRollback Op = "rollback"
	// OpRetireVersion retires a version no alias points to.
	OpRetireVersion Op = "retire_version"
	// OpSetMember adds or replaces a cluster member.
	OpSetMember Op = "set_member"
	// OpRemoveMember removes a cluster member.
	OpRemoveMember Op = "remove_member"
	// OpDropMember removes a member a recovery dropped and records it in
	// State.Dropped: it may join again only on fresh raft state.
	OpDropMember Op = "drop_member"
	// OpSetExperiment starts an A/B experiment on a model, or replaces the
	// one it runs: its unversioned requests split among the arms.
	OpSetExperiment Op = "set_experiment"
	// OpEndExperiment ends a model's experiment: its unversioned requests
	// go to production again.
	OpEndExperiment Op = "end_experiment"
	// OpSetShadow starts copying a sample of a model's requests to a
	// shadow version, or changes what it copies.
	OpSetShadow Op = "set_shadow"
	// OpEndShadow stops a model's shadow.
	OpEndShadow Op = "end_shadow"
	// OpRemoveModel takes a model off the cluster: it ends its experiment
	// and shadow, drops its aliases and retires every version. The model
	// stays in the State for the record (Model.Removed), with its
	// numbering: a later upload continues it. Its effect is only fields
	// that earlier releases read, so their snapshots stay readable; a
	// node of an earlier release refuses the op itself, so the leader
	// applies it only once every member runs a release that knows it
	// (cluster.Protocol).
	OpRemoveModel Op = "remove_model"
)

// Command is one change to the State: the payload of one raft log entry.
// Which fields matter depends on Op; the others are ignored.
type Command struct {
	// Op is what the command does.
	Op Op `json:"op"`
	// Model is the model name, for the model ops.
	Model string `json:"model,omitempty"`
	// Version is the version number. For OpRegisterVersion, 0 asks for the
	// model's next number and a positive one (used when seeding a node's
	// versions on disk) must not be below it.
	Version int64 `json:"version,omitempty"`
	// SHA256 is the new version's checksum, 64 lowercase hex characters.
	SHA256 string `json:"sha256,omitempty"`
	// Size is the new version's size in bytes.
	Size int64 `json:"size,omitempty"`
	// Created is when the node that accepted the write received it.
	Created time.Time `json:"created,omitzero"`
	// Origin is the id of the node that stored the new version's blob.
	Origin string `json:"origin,omitempty"`
	// Config is the new version's config.json; if set, a JSON object.
	Config json.RawMessage `json:"config,omitempty"`
	// Alias is the alias OpSetAlias sets.
	Alias string `json:"alias,omitempty"`
	// Promote makes the version OpRegisterVersion adds production.
	Promote bool `json:"promote,omitempty"`
	// Member is the member OpSetMember stores; OpRemoveMember and
	// OpDropMember use only its ID.
	Member *Member `json:"member,omitempty"`
	// Experiment is the experiment OpSetExperiment sets.
	Experiment *route.Experiment `json:"experiment,omitempty"`
	// Shadow is the shadow OpSetShadow sets.
	Shadow *route.Shadow `json:"shadow,omitempty"`
}

// Result is what FSM.Apply returns, as the raft ApplyFuture's Response.
type Result struct {
	// Version is the version number the command registered, aliased,
	// rolled back to or retired; 0 for member ops.
	Version int64 `json:"version,omitempty"`
	// Index is the raft log index the command was applied at (0 from a
	// leader of an earlier release), for the node that forwarded it to
	// wait for.
	Index uint64 `json:"index,omitempty"`
	// Err is nil if the command was applied, or wraps ErrInvalid,
	// ErrNotFound or ErrConflict.
	Err error `json:"-"`
}

// Validate reports whether c is well formed, without looking at any state.
// Its error wraps ErrInvalid and says which field is wrong and why.
func (c *Command) Validate() error {
	var err error
	switch c.Op {
	case OpRegisterVersion:
		err = c.validateRegister()
	case OpSetAlias:
		err = cmp.Or(registry.CheckName(c.Model), checkVersion(c.Version), checkAlias(c.Alias))
	case OpRollback:
		err = registry.CheckName(c.Model)
	case OpRetireVersion:
		err = cmp.Or(registry.CheckName(c.Model), checkVersion(c.Version))
	case OpSetMember:
		if c.Member == nil {
			err = errors.New("member is required")
		} else {
			err = checkMember(c.Member)
		}
	case OpRemoveMember, OpDropMember:
		if c.Member == nil || c.Member.ID == "" {
			err = errors.New("member.id is required")
		}
	case OpSetExperiment:
		err = registry.CheckName(c.Model)
		if err == nil {
			err = c.Experiment.Validate()
		}
	case OpSetShadow:
		err = registry.CheckName(c.Model)
		if err == nil {
			err = c.Shadow.Validate()
		}
	case OpEndExperiment, OpEndShadow, OpRemoveModel:
		err = registry.CheckName(c.Model)
	default:
		return fmt.Errorf("%w: unknown op %q; want %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s or %s", ErrInvalid, c.Op,
			OpRegisterVersion, OpSetAlias, OpRollback, OpRetireVersion, OpSetMember, OpRemoveMember, OpDropMember,
			OpSetExperiment, OpEndExperiment, OpSetShadow, OpEndShadow, OpRemoveModel)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, c.Op, err)
	}
	return nil
}

func (c *Command) validateRegister() error {
	if err := registry.CheckName(c.Model); err != nil {
		return err
	}
	if c.Version != 0 {
		if err := checkVersion(c.Version); err != nil {
			return fmt.Errorf("%w, or 0 for the next free number", err)
		}
	}
	if _, err := c.Created.MarshalText(); err != nil {
		return fmt.Errorf("created %v cannot be stored: %w", c.Created, err)
	}
	return checkBlob(c.SHA256, c.Size, c.Config)
}

// Encode validates c and returns it as the data of a raft log entry.
func (c *Command) Encode() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// Decode parses the data of a raft log entry. It rejects unknown fields and
// trailing data but does not validate the command; the error wraps
// ErrInvalid.
func Decode(b []byte) (Command, error) {
	var c Command
	if err := decodeStrict(bytes.NewReader(b), &c); err != nil {
		return Command{}, fmt.Errorf("%w: cannot decode %d bytes: %w", ErrInvalid, len(b), err)
	}
	return c, nil
}

// decodeStrict decodes exactly one JSON value from r into v, rejecting
// unknown fields and anything but white space after the value.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after offset %d", dec.InputOffset())
	}
	return nil
}

func checkVersion(n int64) error {
	if n < 1 || n > maxVersion {
		return fmt.Errorf("version %d is out of range; want 1-%d", n, int64(maxVersion))
	}
	return nil
}

func checkBlob(sha string, size int64, config json.RawMessage) error {
	if !isSHA256(sha) {
		return fmt.Errorf("sha256 %q is not 64 lowercase hex characters", sha)
	}
	if size <= 0 {
		return fmt.Errorf("size %d is not positive", size)
	}
	if len(config) > 0 && !isObject(config) {
		return fmt.Errorf("config is not a JSON object: %.40q", config)
	}
	return nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isObject(b []byte) bool {
	return json.Valid(b) && bytes.TrimLeft(b, " \t\r\n")[0] == '{'
}

// aliasName is the rule for alias names.
var aliasName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

func checkAlias(alias string) error {
	if !aliasName.MatchString(alias) {
		return fmt.Errorf("alias %q is not valid; use 1-63 lowercase letters, digits, '_' or '-', starting with a letter", alias)
	}
	return nil
}

func checkMember(m *Member) error {
	if m.ID == "" {
		return errors.New("member.id is required")
	}
	if m.RaftAddr == "" {
		return fmt.Errorf("member %q: raft_addr is required", m.ID)
	}
	u, err := url.Parse(m.HTTPAddr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("member %q: http_addr %q is not an http:// or https:// URL with a host, like http://127.0.0.1:8080", m.ID, m.HTTPAddr)
	}
	return nil
}
